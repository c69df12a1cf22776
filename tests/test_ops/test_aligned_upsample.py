# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the compiled aligned upsampling op (dr1mask spec section 6)."""
import importlib
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import mmdr1
from mmdr1.models.layers.aligned_upsample import aligned_upsample_ref
from mmdr1.ops import (aligned_upsample, aligned_upsample_supported,
                       ext_available, load_ext)

# ``mmdr1.ops.aligned_upsample`` the attribute is the function; get modules
# from sys.modules.
op_module = importlib.import_module('mmdr1.ops.aligned_upsample')
ext_loader = importlib.import_module('mmdr1.ops.ext_loader')

requires_ext = pytest.mark.skipif(
    not ext_available(op_module.EXT_FUNCS),
    reason='mmdr1._ext is not built (python setup.py build_ext --inplace)')


def _cuda_ok() -> bool:
    return (torch.cuda.is_available() and ext_available(op_module.EXT_FUNCS)
            and load_ext(op_module.EXT_FUNCS).compiled_with_cuda())


requires_cuda = pytest.mark.skipif(
    not _cuda_ok(), reason='needs a GPU and mmdr1._ext built with CUDA')

SHAPES = [(1, 1, 1, 1), (2, 3, 1, 1), (1, 2, 1, 5), (2, 1, 4, 1), (2, 3, 5, 7),
          (1, 2, 8, 6)]
FACTORS = [1, 2, 3, 4]
DTYPES = [torch.float32, torch.float64]


def _tol(dtype: torch.dtype) -> dict:
    if dtype == torch.float64:
        return dict(rtol=1e-10, atol=1e-10)
    if dtype == torch.float16:
        return dict(rtol=1e-2, atol=1e-2)
    return dict(rtol=1e-5, atol=1e-5)


@requires_ext
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('factor', FACTORS)
@pytest.mark.parametrize('shape', SHAPES)
def test_forward_matches_reference(shape, factor, dtype):
    x = torch.randn(shape, dtype=dtype)
    out = aligned_upsample(x, factor)
    n, c, h, w = shape
    assert out.shape == (n, c, factor * h, factor * w)
    assert out.dtype == dtype and out.is_contiguous()
    torch.testing.assert_close(out, aligned_upsample_ref(x, factor),
                               **_tol(dtype))


@requires_ext
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('factor', FACTORS)
@pytest.mark.parametrize('shape', SHAPES)
def test_backward_matches_reference(shape, factor, dtype):
    x = torch.randn(shape, dtype=dtype)
    grad_out = torch.randn(
        shape[0], shape[1], factor * shape[2], factor * shape[3], dtype=dtype)
    x_op = x.clone().requires_grad_()
    aligned_upsample(x_op, factor).backward(grad_out)
    x_ref = x.clone().requires_grad_()
    aligned_upsample_ref(x_ref, factor).backward(grad_out)
    torch.testing.assert_close(x_op.grad, x_ref.grad, **_tol(dtype))


@requires_ext
def test_factor1_is_identity_and_gradient_mass_is_kept():
    x = torch.randn(2, 3, 5, 4)
    assert torch.equal(aligned_upsample(x, 1), x)
    # Each output pixel's weights sum to 1, so the input gradient of a
    # ones-gradient sums to the number of output pixels.
    x.requires_grad_()
    aligned_upsample(x, 3).sum().backward()
    torch.testing.assert_close(x.grad.sum(), torch.tensor(2 * 3 * 15 * 12.))


@requires_ext
@pytest.mark.parametrize('shape', [(1, 1, 1, 1), (2, 3, 5, 7), (1, 1, 4, 9)])
def test_factor2_odd_pixels_equal_input(shape):
    x = torch.randn(shape, dtype=torch.float64)
    out = aligned_upsample(x, 2)
    assert torch.equal(out[:, :, 1::2, 1::2], x)
    # Output pixel 0 replicates the border; even pixels 2i (i >= 1) are the
    # midpoints between input pixels i - 1 and i.
    assert torch.equal(out[:, :, 0, 1::2], x[:, :, 0])
    torch.testing.assert_close(out[:, :, 2::2, 1::2],
                               (x[:, :, :-1] + x[:, :, 1:]) / 2)


@requires_ext
@pytest.mark.parametrize('shape,factor', [((1, 2, 3, 4), 2), ((2, 1, 3, 2), 3),
                                          ((1, 1, 1, 1), 2), ((1, 1, 2, 1), 4),
                                          ((1, 1, 2, 3), 1)])
def test_gradcheck_op(shape, factor):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: aligned_upsample(t, factor), (x, ))
    assert gradgradcheck(lambda t: aligned_upsample(t, factor), (x, ))


@pytest.mark.parametrize('shape,factor', [((1, 1, 2, 3), 2), ((1, 1, 3, 2), 3),
                                          ((1, 1, 1, 1), 4)])
def test_gradcheck_reference(shape, factor):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: aligned_upsample_ref(t, factor), (x, ))


@requires_ext
@pytest.mark.parametrize('view', ['permuted', 'strided', 'channels_last'])
def test_non_contiguous_inputs(view):
    views = dict(
        permuted=lambda t: t.permute(0, 3, 1, 2),  # (2, 3, 5, 6)
        strided=lambda t: t[:, ::2, 1:, :],  # (2, 3, 5, 3)
        channels_last=lambda t: t.to(memory_format=torch.channels_last))
    make_view = views[view]
    base = torch.randn(2, 5, 6, 3, dtype=torch.float64, requires_grad=True)
    x = make_view(base)
    assert not x.is_contiguous()
    out = aligned_upsample(x, 3)
    assert torch.equal(out, aligned_upsample(x.contiguous(), 3))
    # the incoming gradient is not contiguous either
    grad_out = torch.randn(
        out.shape[::-1], dtype=out.dtype).permute(3, 2, 1, 0)
    grad_op, = torch.autograd.grad(out, base, grad_out)
    grad_ref, = torch.autograd.grad(
        aligned_upsample_ref(make_view(base), 3), base, grad_out)
    torch.testing.assert_close(grad_op, grad_ref, **_tol(torch.float64))


@requires_ext
def test_empty_batch():
    x = torch.randn(0, 3, 4, 5, requires_grad=True)
    out = aligned_upsample(x, 2)
    assert out.shape == (0, 3, 8, 10)
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize(
    'x,factor,error,match',
    [(torch.zeros(2, 4, 4), 2, ValueError, r'\(N, C, H, W\)'),
     (torch.zeros(1, 1, 0, 4), 2, ValueError, 'H > 0 and W > 0'),
     (torch.zeros(1, 1, 2, 2), 0, ValueError, 'factor must be >= 1'),
     (torch.zeros(1, 1, 2, 2), 2.0, TypeError, 'factor must be an int'),
     (torch.zeros(1, 1, 2, 2), True, TypeError, 'factor must be an int'),
     (torch.zeros(1, 1, 2, 2,
                  dtype=torch.int64), 2, TypeError, 'floating-point'),
     ([[1.0]], 2, TypeError, 'torch.Tensor')])
def test_bad_inputs_raise_for_op_and_reference(x, factor, error, match):
    for fn in (aligned_upsample, aligned_upsample_ref):
        with pytest.raises(error, match=match):
            fn(x, factor)


@requires_ext
def test_unsupported_dtype_and_device():
    with pytest.raises(TypeError, match='on cpu supports'):
        aligned_upsample(torch.zeros(1, 1, 2, 2, dtype=torch.float16))
    assert not aligned_upsample_supported(torch.zeros(1, dtype=torch.float16))
    assert aligned_upsample_supported(torch.zeros(1))
    meta = torch.empty(1, 1, 2, 2, device='meta')
    assert not aligned_upsample_supported(meta)
    with pytest.raises(RuntimeError, match='no kernel for device meta'):
        aligned_upsample(meta)


@requires_ext
def test_extension_checks_and_device_dispatch():
    ext = load_ext(op_module.EXT_FUNCS)
    with pytest.raises(RuntimeError, match='must be contiguous'):
        ext.aligned_upsample_forward(torch.zeros(1, 1, 2, 4)[..., ::2], 2)
    with pytest.raises(RuntimeError, match='factor must be >= 1'):
        ext.aligned_upsample_forward(torch.zeros(1, 1, 2, 2), 0)
    with pytest.raises(RuntimeError, match='does not match factor'):
        ext.aligned_upsample_backward(torch.zeros(1, 1, 4, 5), 2, 2, 2)
    # mmcv's DISPATCH_DEVICE_IMPL picks the kernel registered for the device.
    with pytest.raises(
            RuntimeError,
            match='aligned_upsample_forward_impl: implementation '
            'for device meta not found'):
        ext.aligned_upsample_forward(torch.empty(1, 1, 2, 2, device='meta'), 2)


def test_missing_extension_error(monkeypatch):
    monkeypatch.setattr(ext_loader, 'EXT_NAME', 'mmdr1._ext_not_built')
    # a getter with an empty cache
    monkeypatch.setattr(op_module, '_get_ext',
                        ext_loader.ext_getter(op_module.EXT_FUNCS))
    hint = (r'pip install --no-build-isolation \.` in the mmdr1 checkout, '
            r'or `python setup\.py build_ext --inplace` for development')
    with pytest.raises(ImportError, match=hint):
        load_ext(['aligned_upsample_forward'])
    with pytest.raises(ImportError, match=hint):
        aligned_upsample(torch.zeros(1, 1, 2, 2))
    assert not ext_available()
    assert not aligned_upsample_supported(torch.zeros(1, 1, 2, 2))


@requires_ext
def test_extension_missing_function_error():
    with pytest.raises(RuntimeError, match=r"lacks \['no_such_op'\]"):
        load_ext(['aligned_upsample_forward', 'no_such_op'])


def test_ops_import_without_mmdet():
    """``mmdr1.ops`` needs only torch: block mmdet/mmcv/mmengine and import.

    ``import mmdr1`` registers nothing when mmdet cannot be found, so the
    real package (the one under test, with its built extension) imports.
    """
    code = textwrap.dedent(f"""
        import importlib.abc
        import sys

        BLOCKED = ('mmdet', 'mmcv', 'mmengine')

        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ImportError(f'{{name}} is blocked in this test')
                return None

        sys.meta_path.insert(0, Blocker())
        sys.path.insert(0, {osp.dirname(osp.dirname(mmdr1.__file__))!r})

        import torch
        import mmdr1.ops
        from mmdr1.ops import aligned_upsample, ext_available
        if ext_available():
            out = aligned_upsample(torch.ones(1, 1, 2, 3), 2)
            assert out.shape == (1, 1, 4, 6) and bool((out == 1).all())
        loaded = sorted(m for m in sys.modules
                        if m.split('.')[0] in BLOCKED)
        assert not loaded, loaded
        assert mmdr1.ops.__file__.startswith({osp.dirname(mmdr1.__file__)!r})
        print('ok', ext_available())
        """)
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True,
                            text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('ok')


@requires_cuda
@pytest.mark.parametrize('dtype',
                         [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize('factor', FACTORS)
@pytest.mark.parametrize('shape', [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 17, 9)])
def test_cuda_matches_cpu(shape, factor, dtype):
    x = torch.randn(shape, dtype=torch.float64)
    grad_out = torch.randn(
        shape[0],
        shape[1],
        factor * shape[2],
        factor * shape[3],
        dtype=torch.float64)
    x_cpu = x.clone().requires_grad_()
    aligned_upsample(x_cpu, factor).backward(grad_out)
    out_cpu = aligned_upsample(x, factor)
    x_cuda = x.to('cuda', dtype).requires_grad_()
    out_cuda = aligned_upsample(x_cuda, factor)
    out_cuda.backward(grad_out.to('cuda', dtype))
    assert out_cuda.device.type == 'cuda' and out_cuda.dtype == dtype
    torch.testing.assert_close(out_cuda.double().cpu(), out_cpu, **_tol(dtype))
    torch.testing.assert_close(x_cuda.grad.double().cpu(), x_cpu.grad,
                               **_tol(dtype))


@requires_cuda
def test_cuda_gradcheck():
    x = torch.randn(
        1, 2, 3, 4, dtype=torch.float64, device='cuda', requires_grad=True)
    assert gradcheck(lambda t: aligned_upsample(t, 3), (x, ))
