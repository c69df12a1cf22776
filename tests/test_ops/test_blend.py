# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the compiled fused blender ``mmdr1.ops.blend``."""
import importlib

import pytest
import torch
from torch.autograd import gradcheck

from mmdr1.ops import blend, blend_ref, blend_supported, ext_available

op_module = importlib.import_module('mmdr1.ops.blend')

requires_ext = pytest.mark.skipif(
    not ext_available(op_module.EXT_FUNCS),
    reason='mmdr1._ext is not built (python setup.py build_ext --inplace)')


def _cuda_ok() -> bool:
    return (torch.cuda.is_available() and ext_available(op_module.EXT_FUNCS)
            and op_module._get_ext().compiled_with_cuda())


DEVICES = [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not _cuda_ok(), reason='needs a GPU and mmdr1._ext with CUDA'))
]

pytestmark = requires_ext


def make_rois(num, num_imgs, img_h, img_w, g, dtype=torch.float64):
    """Boxes partly outside the image, tiny boxes and zero-size boxes."""
    inds = torch.randint(0, num_imgs, (num, ), generator=g).to(dtype)
    x = (torch.rand(num, 2, generator=g, dtype=dtype) * 1.6 - 0.3) * img_w
    y = (torch.rand(num, 2, generator=g, dtype=dtype) * 1.6 - 0.3) * img_h
    x1, x2 = x.min(1).values, x.max(1).values
    y1, y2 = y.min(1).values, y.max(1).values
    if num > 2:
        x2[1], y2[1] = x1[1] + 0.3, y1[1] + 0.2  # tiny
        x2[2], y2[2] = x1[2], y1[2]  # empty
    return torch.stack([inds, x1, y1, x2, y2], dim=1)


def make_inputs(n, k, h, w, m, p, dtype, seed, scale=0.25):
    g = torch.Generator().manual_seed(seed)
    bases = torch.randn(n, k, h, w, generator=g, dtype=dtype)
    rois = make_rois(p, n, h / scale, w / scale, g, dtype)
    attns = torch.randn(p, k, m, m, generator=g, dtype=dtype) * 2
    return bases, rois, attns


def _tol(dtype):
    if dtype == torch.float64:
        return dict(rtol=1e-10, atol=1e-10)
    return dict(rtol=1e-5, atol=1e-5)


# (N, K, H, W, M, R, P, sampling_ratio, spatial_scale)
CASES = [
    (1, 4, 12, 10, 14, 28, 6, 1, 0.25),
    (2, 3, 9, 11, 5, 7, 7, 0, 0.25),
    (2, 2, 8, 8, 3, 5, 5, 2, 0.5),
    (1, 1, 10, 7, 4, 6, 4, 1, 0.25),  # K = 1
    (2, 4, 7, 13, 6, 6, 5, 0, 1 / 3),  # M = R
    (1, 2, 1, 1, 1, 3, 3, 1, 0.25),  # 1 x 1 bases and attentions
]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', CASES)
def test_forward_backward_match_reference(case, dtype, device):
    n, k, h, w, m, r, p, ratio, scale = case
    bases, rois, attns = make_inputs(n, k, h, w, m, p, dtype,
                                     CASES.index(case), scale)
    bases, rois, attns = bases.to(device), rois.to(device), attns.to(device)
    b1, a1 = bases.clone().requires_grad_(), attns.clone().requires_grad_()
    b2, a2 = bases.clone().requires_grad_(), attns.clone().requires_grad_()
    out = blend(b1, rois, a1, scale, ratio, r)
    ref = blend_ref(b2, rois, a2, scale, ratio, r)
    assert out.shape == (p, r, r) and out.dtype == dtype
    torch.testing.assert_close(out, ref, **_tol(dtype))
    grad = torch.randn(
        out.shape, generator=torch.Generator().manual_seed(1),
        dtype=dtype).to(device)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(b1.grad, b2.grad, **_tol(dtype))
    torch.testing.assert_close(a1.grad, a2.grad, **_tol(dtype))
    # Inference (no logsumexp saved) gives the same values.
    with torch.no_grad():
        torch.testing.assert_close(
            blend(bases, rois, attns, scale, ratio, r),
            out.detach(),
            rtol=0,
            atol=0)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('ratio', [0, 1, 2])
def test_gradcheck(ratio, device):
    bases, rois, attns = make_inputs(2, 2, 6, 5, 3, 4, torch.float64, ratio)
    rois = torch.cat([rois, rois.new_tensor([[1., -6., -3., 9., 30.]])])
    attns = torch.cat([attns, attns[:1]])
    bases = bases.to(device).requires_grad_()
    attns = attns.to(device).requires_grad_()
    rois = rois.to(device)
    assert gradcheck(lambda b, a: blend(b, rois, a, 0.25, ratio, 5),
                     (bases, attns))


@pytest.mark.parametrize('device', DEVICES)
def test_no_rois(device):
    bases = torch.randn(2, 3, 5, 6, device=device, requires_grad=True)
    attns = torch.randn(0, 3, 4, 4, device=device, requires_grad=True)
    out = blend(bases, torch.zeros(0, 5, device=device), attns, 0.25, 1, 7)
    assert out.shape == (0, 7, 7) and out.requires_grad
    out.sum().backward()
    assert torch.all(bases.grad == 0) and attns.grad.shape == (0, 3, 4, 4)


@pytest.mark.parametrize('device', DEVICES)
def test_single_basis_is_roi_align(device):
    from mmcv.ops import roi_align
    bases, rois, attns = make_inputs(2, 1, 9, 8, 4, 5, torch.float32, 3)
    bases, rois, attns = bases.to(device), rois.to(device), attns.to(device)
    out = blend(bases, rois, attns, 0.25, 1, 6)
    pooled = roi_align(bases, rois, (6, 6), 0.25, 1, 'avg', True)[:, 0]
    torch.testing.assert_close(out, pooled, rtol=1e-6, atol=1e-6)


def test_empty_and_outside_boxes_give_zero():
    bases = torch.randn(1, 3, 6, 6)
    attns = torch.randn(3, 3, 4, 4)
    rois = torch.tensor([[0., 10., 10., 10., 10.],
                         [0., 200., 200., 260., 240.],
                         [0., -90., -80., -30., -40.]])
    # Empty box with adaptive sampling: no samples; far outside: all
    # samples contribute 0 (as mmcv's RoIAlign).
    out = blend(bases, rois, attns, 0.25, 0, 5)
    assert torch.all(out == 0)
    torch.testing.assert_close(out, blend_ref(bases, rois, attns, 0.25, 0, 5))


def test_result_does_not_depend_on_threads():
    bases, rois, attns = make_inputs(2, 3, 12, 10, 5, 9, torch.float32, 11)
    bases.requires_grad_()
    attns.requires_grad_()
    num = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            bases.grad = attns.grad = None
            out = blend(bases, rois, attns, 0.25, 1, 8)
            out.backward(torch.ones_like(out))
            results.append((out.detach(), bases.grad, attns.grad))
    finally:
        torch.set_num_threads(num)
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(x, y)


def test_noncontiguous_inputs():
    bases, rois, attns = make_inputs(2, 3, 8, 9, 4, 5, torch.float32, 5)
    bases_t = bases.transpose(2, 3).contiguous().transpose(2, 3)
    attns_t = attns.transpose(2, 3).contiguous().transpose(2, 3)
    assert not bases_t.is_contiguous() and not attns_t.is_contiguous()
    torch.testing.assert_close(
        blend(bases_t, rois, attns_t, 0.25, 1, 6),
        blend(bases, rois, attns, 0.25, 1, 6),
        rtol=0,
        atol=0)


def test_supported():
    bases, rois, attns = make_inputs(1, 2, 4, 4, 3, 2, torch.float32, 0)
    assert blend_supported(bases, rois, attns)
    assert blend_supported(bases.double(), rois.double(), attns.double())
    assert not blend_supported(bases.half(), rois.half(), attns.half())
    assert not blend_supported(bases, rois.double(), attns)
    assert not blend_supported(bases, None, attns)
    assert not blend_supported()


@pytest.mark.parametrize('change, error, match', [
    (dict(bases=torch.randn(2, 8, 8)), ValueError, r'\(N, C, H, W\)'),
    (dict(rois=torch.zeros(1, 4)), ValueError, r'rois must be \(P, 5\)'),
    (dict(attns=torch.randn(1, 3, 4, 4)), ValueError, r'\(P, K, M, M\)'),
    (dict(attns=torch.randn(1, 2, 4, 3)), ValueError, r'\(P, K, M, M\)'),
    (dict(attns=torch.randn(1, 2, 4, 4).double()), ValueError, 'match'),
    (dict(rois=torch.zeros(1, 5).double()), ValueError, 'match'),
    (dict(bases=torch.zeros(2, 2, 8, 8, dtype=torch.int32)), TypeError,
     'floating point'),
    (dict(spatial_scale=0.), ValueError, 'spatial_scale'),
    (dict(sampling_ratio=-1), ValueError, 'sampling_ratio'),
    (dict(output_size=0), ValueError, 'output_size'),
])
def test_bad_arguments(change, error, match):
    args = dict(
        bases=torch.randn(2, 2, 8, 8),
        rois=torch.tensor([[1., 0., 0., 16., 16.]]),
        attns=torch.randn(1, 2, 4, 4),
        spatial_scale=0.25,
        sampling_ratio=1,
        output_size=5)
    args.update(change)
    with pytest.raises(error, match=match):
        blend(**args)


@pytest.mark.parametrize('roi, match', [
    ([0., 10., 0., 5., 8.], 'negative size'),
    ([2., 0., 0., 5., 8.], 'batch index'),
    ([0.5, 0., 0., 5., 8.], 'batch index'),
])
def test_bad_rois_raise_on_cpu(roi, match):
    with pytest.raises(RuntimeError, match=match):
        blend(
            torch.randn(2, 2, 8, 8), torch.tensor([roi]),
            torch.randn(1, 2, 3, 3), 0.25, 1, 4)


def test_half_on_cpu_is_rejected():
    with pytest.raises(TypeError, match='supports'):
        blend(
            torch.randn(1, 2, 8, 8).half(),
            torch.tensor([[0., 0., 0., 5., 8.]]).half(),
            torch.randn(1, 2, 3, 3).half(), 0.25, 1, 4)
