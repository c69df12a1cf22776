# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the compiled factored attention ops ``mmdr1.ops.factored_*``."""
import importlib

import pytest
import torch
from torch.autograd import gradcheck

from mmdr1.ops import (ext_available, factored_blend, factored_blend_ref,
                       factored_blend_supported, factored_project,
                       factored_softmax_blend)

op_module = importlib.import_module('mmdr1.ops.factored_blend')

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


def make_rois(num, num_imgs, img_h, img_w, g, dtype):
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


def make_inputs(n, c, k, d, h, w, r, p, dtype, seed, scale=0.25):
    """basis, rois, w, s, U, V."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    rois = make_rois(p, n, h / scale, w / scale, g, dtype)
    weight = torch.randn(p, k, c, generator=g, dtype=dtype)
    factors = torch.randn(p, k, d, generator=g, dtype=dtype)
    u = torch.randn(k, r, d, generator=g, dtype=dtype)
    v = torch.randn(k, d, r, generator=g, dtype=dtype)
    return basis, rois, weight, factors, u, v


def _tol(dtype, grad=False):
    if dtype == torch.float64:
        return dict(rtol=1e-10, atol=1e-10)
    # The gradients of w, s, U and V sum hundreds to thousands of float32
    # products (the float32 reference itself is off from the float64 one
    # by ~1e-5 relative to |grad| + 1).
    return dict(rtol=1e-4, atol=1e-4) if grad else dict(rtol=1e-5, atol=1e-5)


# (N, C, K, d, H, W, R, P, sampling_ratio, spatial_scale)
CASES = [
    (1, 6, 4, 4, 12, 10, 14, 6, 1, 0.25),
    (2, 5, 3, 2, 9, 11, 7, 7, 0, 0.25),
    (2, 3, 2, 1, 8, 8, 5, 5, 2, 0.5),
    (1, 4, 1, 3, 10, 7, 6, 4, 1, 0.25),  # K = 1
    (2, 1, 2, 2, 1, 1, 3, 3, 1, 1 / 3),  # C = 1, 1 x 1 basis
]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', CASES)
def test_forward_backward_match_reference(case, dtype, device):
    n, c, k, d, h, w, r, p, ratio, scale = case
    inputs = make_inputs(n, c, k, d, h, w, r, p, dtype, CASES.index(case),
                         scale)
    inputs = [t.to(device) for t in inputs]
    rois = inputs[1]
    ins1 = [t.clone().requires_grad_() for t in inputs if t is not rois]
    ins2 = [t.clone().requires_grad_() for t in inputs if t is not rois]
    out = factored_blend(ins1[0], rois, *ins1[1:], scale, ratio)
    ref = factored_blend_ref(ins2[0], rois, *ins2[1:], scale, ratio)
    assert out.shape == (p, r, r) and out.dtype == dtype
    torch.testing.assert_close(out, ref, **_tol(dtype))
    grad = torch.randn(
        out.shape, generator=torch.Generator().manual_seed(1),
        dtype=dtype).to(device)
    out.backward(grad)
    ref.backward(grad)
    for name, x, y in zip(('basis', 'w', 's', 'U', 'V'), ins1, ins2):
        torch.testing.assert_close(
            x.grad, y.grad, **_tol(dtype, grad=True), msg=name)
    with torch.no_grad():
        torch.testing.assert_close(
            factored_blend(inputs[0], rois, *inputs[2:], scale, ratio),
            out.detach(),
            rtol=0,
            atol=0)


@pytest.mark.parametrize('device', DEVICES)
def test_parts_match_reference(device):
    from mmcv.ops import roi_align
    basis, rois, weight, factors, u, v = [
        t.to(device)
        for t in make_inputs(2, 4, 3, 2, 9, 8, 6, 5, torch.float64, 7)
    ]
    proj = factored_project(basis, rois, weight, 0.25, 1, 6)
    crops = roi_align(basis, rois, (6, 6), 0.25, 1, 'avg', True)
    torch.testing.assert_close(proj,
                               torch.einsum('pkc,pchw->pkhw', weight, crops))
    q = torch.einsum('krd,pkd,kds->pkrs', u, factors, v)
    torch.testing.assert_close(
        factored_softmax_blend(proj, factors, u, v),
        (q.softmax(1) * proj).sum(1))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('ratio', [0, 1, 2])
def test_gradcheck(ratio, device):
    basis, rois, weight, factors, u, v = make_inputs(2, 3, 2, 2, 6, 5, 4, 4,
                                                     torch.float64, ratio)
    rois = torch.cat([rois, rois.new_tensor([[1., -6., -3., 9., 30.]])])
    weight = torch.cat([weight, weight[:1]])
    factors = torch.cat([factors, factors[:1]])
    rois = rois.to(device)
    inputs = [
        t.to(device).requires_grad_() for t in (basis, weight, factors, u, v)
    ]

    def fn(b, w, s, u_, v_):
        return factored_blend(b, rois, w, s, u_, v_, 0.25, ratio)

    assert gradcheck(fn, inputs)


@pytest.mark.parametrize('device', DEVICES)
def test_no_rois(device):
    basis, _, weight, factors, u, v = make_inputs(2, 3, 2, 2, 5, 6, 5, 0,
                                                  torch.float32, 1)
    inputs = [
        t.to(device).requires_grad_() for t in (basis, weight, factors, u, v)
    ]
    out = factored_blend(inputs[0], torch.zeros(0, 5, device=device),
                         *inputs[1:], 0.25, 1)
    assert out.shape == (0, 5, 5) and out.requires_grad
    out.sum().backward()
    for t in inputs:
        assert t.grad is not None and torch.all(t.grad == 0)


def test_uniform_attention_is_mean_projection():
    basis, rois, weight, factors, u, v = make_inputs(1, 4, 3, 2, 8, 8, 6, 4,
                                                     torch.float32, 2)
    proj = factored_project(basis, rois, weight, 0.25, 0, 6)
    out = factored_blend(basis, rois, weight, torch.zeros_like(factors), u, v,
                         0.25, 0)
    torch.testing.assert_close(out, proj.mean(1))


def test_result_does_not_depend_on_threads():
    inputs = [
        t.requires_grad_()
        for t in make_inputs(2, 4, 3, 2, 10, 9, 7, 9, torch.float32, 3)
    ]
    basis, rois, weight, factors, u, v = inputs
    rois.requires_grad_(False)
    num = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            for t in inputs:
                t.grad = None
            out = factored_blend(basis, rois, weight, factors, u, v, 0.25, 1)
            out.backward(torch.ones_like(out))
            results.append([out.detach()] +
                           [t.grad for t in (basis, weight, factors, u, v)])
    finally:
        torch.set_num_threads(num)
    # grad_U / grad_V are summed per thread chunk: equal to rounding.
    for other in results[1:]:
        for i, (x, y) in enumerate(zip(results[0], other)):
            if i < 4:
                assert torch.equal(x, y)
            else:
                torch.testing.assert_close(x, y)


def test_supported():
    tensors = make_inputs(1, 2, 2, 2, 4, 4, 3, 2, torch.float32, 0)
    assert factored_blend_supported(*tensors)
    assert factored_blend_supported(*[t.double() for t in tensors])
    assert not factored_blend_supported(*[t.half() for t in tensors])
    assert not factored_blend_supported(tensors[0].double(), *tensors[1:])


def _good_args():
    return dict(
        basis=torch.randn(2, 3, 8, 8),
        rois=torch.tensor([[1., 0., 0., 16., 16.]]),
        weight=torch.randn(1, 2, 3),
        factors=torch.randn(1, 2, 4),
        u=torch.randn(2, 5, 4),
        v=torch.randn(2, 4, 5),
        spatial_scale=0.25,
        sampling_ratio=1)


@pytest.mark.parametrize('change, error, match', [
    (dict(weight=torch.randn(1, 2, 4)), ValueError, 'weight'),
    (dict(weight=torch.randn(2, 2, 3)), ValueError, 'weight'),
    (dict(factors=torch.randn(1, 3, 4)), ValueError, 'factors'),
    (dict(u=torch.randn(2, 5, 3)), ValueError, 'U'),
    (dict(v=torch.randn(2, 4, 6)), ValueError, 'V'),
    (dict(v=torch.randn(2, 4, 5).double()), ValueError, 'V'),
    (dict(rois=torch.zeros(1, 6)), ValueError, 'rois'),
    (dict(basis=torch.randn(3, 8, 8)), ValueError, r'\(N, C, H, W\)'),
    (dict(sampling_ratio=-1), ValueError, 'sampling_ratio'),
    (dict(u=None), ValueError, 'U'),
])
def test_bad_arguments(change, error, match):
    args = _good_args()
    args.update(change)
    with pytest.raises(error, match=match):
        factored_blend(**args)


@pytest.mark.parametrize('roi, match', [
    ([0., 10., 0., 5., 8.], 'negative size'),
    ([2., 0., 0., 5., 8.], 'batch index'),
])
def test_bad_rois_raise_on_cpu(roi, match):
    args = _good_args()
    args['rois'] = torch.tensor([roi])
    with pytest.raises(RuntimeError, match=match):
        factored_blend(**args)
