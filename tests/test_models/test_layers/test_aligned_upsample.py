# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of AlignedUpsample and its reference (dr1mask spec section 6)."""
import importlib

import pytest
import torch
from mmdet.registry import MODELS

from mmdr1.models.layers import AlignedUpsample, aligned_upsample_ref
from mmdr1.ops import aligned_upsample, ext_available

ext_loader = importlib.import_module('mmdr1.ops.ext_loader')
op_module = importlib.import_module('mmdr1.ops.aligned_upsample')

requires_ext = pytest.mark.skipif(
    not ext_available(op_module.EXT_FUNCS),
    reason='mmdr1._ext is not built (python setup.py build_ext --inplace)')


def test_reference_hand_computed_factor2():
    # x[r, c] = 4r + 2c; the output rows/cols sample coordinates
    # clamp((y - 1) / 2, 0, 1) = 0, 0, 0.5, 1.
    x = torch.tensor([[[[0., 2.], [4., 6.]]]])
    expected = torch.tensor([[[[0., 0., 1., 2.], [0., 0., 1., 2.],
                               [2., 2., 3., 4.], [4., 4., 5., 6.]]]])
    assert torch.equal(aligned_upsample_ref(x, 2), expected)


def test_reference_hand_computed_factor3():
    # columns sample clamp((x - 1) / 3, 0, 1) = 0, 0, 1/3, 2/3, 1, 1
    x = torch.tensor([[[[0., 3.]]]], dtype=torch.float64)
    expected = torch.tensor([[0., 0., 1., 2., 3., 3.]],
                            dtype=torch.float64).expand(3, 6)
    torch.testing.assert_close(aligned_upsample_ref(x, 3)[0, 0], expected)


def test_reference_factor1_is_identity():
    x = torch.randn(2, 3, 5, 4)
    assert torch.equal(aligned_upsample_ref(x, 1), x)


@pytest.mark.parametrize('shape', [(1, 1, 1, 1), (2, 3, 5, 7), (1, 2, 6, 3)])
def test_reference_factor2_odd_pixels_equal_input(shape):
    x = torch.randn(shape, dtype=torch.float64)
    out = aligned_upsample_ref(x, 2)
    assert out.shape == shape[:2] + (2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(out[:, :, 1::2, 1::2], x, rtol=0, atol=1e-12)


def test_build_from_registry():
    module = MODELS.build(dict(type='AlignedUpsample'))
    assert isinstance(module, AlignedUpsample)
    assert module.factor == 2 and module.impl == 'auto'
    module = MODELS.build(dict(type='AlignedUpsample', factor=4, impl='ref'))
    assert module.factor == 4 and module.impl == 'ref'
    assert 'factor=4' in repr(module)


@pytest.mark.parametrize('kwargs', [
    dict(factor=0),
    dict(factor=1.5),
    dict(factor=True),
    dict(impl='cuda'),
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        AlignedUpsample(**kwargs)


def test_impl_ref():
    module = AlignedUpsample(factor=3, impl='ref')
    x = torch.randn(1, 2, 3, 5)
    assert not module.uses_ext(x)
    assert torch.equal(module(x), aligned_upsample_ref(x, 3))


@requires_ext
def test_impl_ext_and_auto():
    x = torch.randn(2, 2, 3, 5, dtype=torch.float64)
    for impl in ('ext', 'auto'):
        module = AlignedUpsample(factor=2, impl=impl)
        assert module.uses_ext(x)
        out = module(x)
        assert torch.equal(out, aligned_upsample(x, 2))
        torch.testing.assert_close(out, aligned_upsample_ref(x, 2))


@requires_ext
def test_auto_falls_back_for_unsupported_dtype():
    x = torch.randn(1, 2, 3, 3).half()  # no float16 CPU kernel
    auto = AlignedUpsample(impl='auto')
    assert not auto.uses_ext(x)
    assert torch.equal(auto(x), aligned_upsample_ref(x))
    with pytest.raises(TypeError, match='supports'):
        AlignedUpsample(impl='ext')(x)


def test_auto_falls_back_without_extension(monkeypatch):
    monkeypatch.setattr(ext_loader, 'EXT_NAME', 'mmdr1._ext_not_built')
    # a getter with an empty cache
    monkeypatch.setattr(op_module, '_get_ext',
                        ext_loader.ext_getter(op_module.EXT_FUNCS))
    x = torch.randn(1, 2, 3, 3)
    auto = AlignedUpsample(impl='auto')
    assert not auto.uses_ext(x)
    assert torch.equal(auto(x), aligned_upsample_ref(x))
    with pytest.raises(ImportError, match='build_ext --inplace'):
        AlignedUpsample(impl='ext')(x)


@pytest.mark.parametrize('impl', ['ref', 'auto'])
def test_size_crops_right_bottom(impl):
    module = AlignedUpsample(factor=2, impl=impl)
    x = torch.randn(1, 2, 3, 5)
    full = module(x)
    assert full.shape == (1, 2, 6, 10)
    out = module(x, size=(5, 9))
    assert out.shape == (1, 2, 5, 9)
    assert torch.equal(out, full[:, :, :5, :9])
    assert torch.equal(module(x, size=torch.Size([6, 10])), full)


def test_size_errors():
    module = AlignedUpsample(factor=2, impl='ref')
    x = torch.randn(1, 1, 3, 5)
    with pytest.raises(ValueError, match='cannot crop to size'):
        module(x, size=(7, 10))
    with pytest.raises(ValueError, match='cannot crop to size'):
        module(x, size=(6, 11))
    with pytest.raises(ValueError, match='cannot crop to size'):
        module(x, size=(0, 4))
    with pytest.raises(ValueError, match=r'must be \(H, W\)'):
        module(x, size=(6, ))


@pytest.mark.parametrize('impl', ['ref', 'auto'])
def test_gradient_through_crop(impl):
    module = AlignedUpsample(factor=2, impl=impl)
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    module(x, size=(5, 5)).sum().backward()
    # Only the kept pixels send gradient back, as with the reference.
    x_ref = x.detach().clone().requires_grad_()
    aligned_upsample_ref(x_ref, 2)[:, :, :5, :5].sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
