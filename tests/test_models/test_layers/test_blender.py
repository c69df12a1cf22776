# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the BlendMask Blender layer (blendmask spec sections 8-9)."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import roi_align
from mmdet.registry import MODELS

from mmdr1.models.layers import Blender


def blend_ref(bases, rois, attns, num_bases, attn_size, res, scale, ratio,
              mode):
    """Independent per-RoI computation of the blender output."""
    outs = []
    for p in range(rois.size(0)):
        roi = rois[p:p + 1]
        crop = roi_align(bases, roi, (res, res), scale, ratio, 'avg',
                         True)[0]  # (K, R, R)
        attn = attns[p].reshape(1, num_bases, attn_size, attn_size)
        if mode == 'bilinear':
            attn = F.interpolate(
                attn, (res, res), mode='bilinear', align_corners=False)
        else:
            attn = F.interpolate(attn, (res, res), mode='nearest')
        weights = torch.softmax(attn[0], dim=0)
        out = torch.zeros(res, res, dtype=bases.dtype)
        for k in range(num_bases):
            out = out + crop[k] * weights[k]
        outs.append(out)
    return torch.stack(outs)


def random_rois(num, num_imgs, img_h, img_w, generator, dtype=torch.float32):
    inds = torch.randint(0, num_imgs, (num, ), generator=generator)
    x = torch.rand(num, 2, generator=generator) * img_w
    y = torch.rand(num, 2, generator=generator) * img_h
    return torch.stack([
        inds.to(dtype),
        x.min(1).values.to(dtype),
        y.min(1).values.to(dtype),
        x.max(1).values.to(dtype) + 1,
        y.max(1).values.to(dtype) + 1
    ],
                       dim=1)


@pytest.mark.parametrize('mode', ['bilinear', 'nearest'])
@pytest.mark.parametrize('size', [(16, 20), (13, 17)])
def test_matches_independent_computation(mode, size):
    g = torch.Generator().manual_seed(0)
    h, w = size
    k, m, r = 4, 14, 56
    bases = torch.randn(2, k, h, w, generator=g)
    rois = random_rois(7, 2, 4 * h, 4 * w, g)
    attns = torch.randn(7, k * m * m, generator=g)
    blender = Blender(num_bases=k, attn_size=m, top_interp=mode)
    out = blender(bases, rois, attns)
    assert out.shape == (7, r, r)
    expected = blend_ref(bases, rois, attns, k, m, r, 0.25, 1, mode)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_nearest_differs_from_bilinear():
    g = torch.Generator().manual_seed(1)
    bases = torch.randn(1, 4, 16, 16, generator=g)
    rois = torch.tensor([[0., 4., 4., 50., 60.]])
    attns = torch.randn(1, 4 * 14 * 14, generator=g)
    bil = Blender(top_interp='bilinear')(bases, rois, attns)
    nea = Blender(top_interp='nearest')(bases, rois, attns)
    assert not torch.allclose(bil, nea)
    # constant attention per basis: both modes agree
    attns = torch.randn(1, 4, 1, 1, generator=g).expand(1, 4, 14, 14)
    attns = attns.reshape(1, -1)
    bil = Blender(top_interp='bilinear')(bases, rois, attns)
    nea = Blender(top_interp='nearest')(bases, rois, attns)
    torch.testing.assert_close(bil, nea)


def test_constant_bases_hand_checked():
    # Basis k is the constant c_k and attention of basis k the constant
    # a_k: the output is sum_k softmax(a)_k * c_k everywhere.
    c = torch.tensor([1., -2., 3., 0.5])
    a = torch.tensor([0.3, -1., 2., 0.])
    bases = c.view(1, 4, 1, 1).expand(1, 4, 12, 12).contiguous()
    attns = a.view(1, 4, 1, 1).expand(2, 4, 14, 14).reshape(2, -1)
    rois = torch.tensor([[0., 2., 3., 30., 40.], [0., 10., 10., 20., 18.]])
    out = Blender()(bases, rois, attns)
    expected = (torch.softmax(a, 0) * c).sum()
    torch.testing.assert_close(out, expected.expand(2, 56, 56))


def test_single_basis_is_pooled_basis():
    g = torch.Generator().manual_seed(2)
    bases = torch.randn(1, 1, 10, 11, generator=g)
    rois = torch.tensor([[0., 1., 2., 35., 30.]])
    attns = torch.randn(1, 5 * 5, generator=g)
    blender = Blender(num_bases=1, attn_size=5, bottom_resolution=8)
    out = blender(bases, rois, attns)
    pooled = roi_align(bases, rois, (8, 8), 0.25, 1, 'avg', True)[:, 0]
    torch.testing.assert_close(out, pooled)


def test_batch_index_routing():
    g = torch.Generator().manual_seed(3)
    bases = torch.randn(2, 4, 16, 16, generator=g)
    box = [4., 4., 40., 48.]
    rois = torch.tensor([[1.] + box, [0.] + box])
    attns = torch.randn(1, 4 * 14 * 14, generator=g).expand(2, -1)
    blender = Blender()
    out = blender(bases, rois, attns)
    only1 = blender(bases[1:], torch.tensor([[0.] + box]), attns[:1])
    only0 = blender(bases[:1], torch.tensor([[0.] + box]), attns[:1])
    torch.testing.assert_close(out[0:1], only1)
    torch.testing.assert_close(out[1:2], only0)
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize('k_sel', [0, 1, 2, 3])
def test_attention_layout_selects_basis(k_sel):
    # A huge attention on basis k_sel (layout (K, M, M)) selects it.
    g = torch.Generator().manual_seed(4)
    bases = torch.randn(1, 4, 16, 16, generator=g)
    rois = torch.tensor([[0., 3., 5., 55., 41.]])
    attns = torch.zeros(1, 4, 14, 14)
    attns[:, k_sel] = 100.
    out = Blender()(bases, rois, attns.reshape(1, -1))
    pooled = roi_align(bases, rois, (56, 56), 0.25, 1, 'avg', True)
    torch.testing.assert_close(out, pooled[:, k_sel])


def test_attention_spatial_layout():
    # Basis 1 wins on the left half of the attention map, basis 0 on the
    # right half: rows are y, columns are x.
    bases = torch.zeros(1, 2, 8, 8)
    bases[:, 1] = 1.
    rois = torch.tensor([[0., 0., 0., 32., 32.]])
    attns = torch.zeros(1, 2, 4, 4)
    attns[0, 1, :, :2] = 50.
    attns[0, 0, :, 2:] = 50.
    out = Blender(
        num_bases=2, attn_size=4, bottom_resolution=8,
        top_interp='nearest')(bases, rois, attns.reshape(1, -1))
    expected = torch.zeros(1, 8, 8)
    expected[:, :, :4] = 1.
    torch.testing.assert_close(out, expected)


def test_empty_rois_forward_backward():
    bases = torch.randn(2, 4, 13, 17, requires_grad=True)
    rois = torch.zeros(0, 5)
    attns = torch.randn(0, 4 * 14 * 14, requires_grad=True)
    out = Blender()(bases, rois, attns)
    assert out.shape == (0, 56, 56)
    assert out.requires_grad
    out.sum().backward()
    assert bases.grad is not None and torch.all(bases.grad == 0)
    assert attns.grad is not None and attns.grad.shape == attns.shape


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    k, m, r = 2, 3, 4
    bases = torch.randn(
        2, k, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    rois = torch.tensor(
        [[1., 1.3, 2.1, 17.2, 15.9], [0., 0.5, 0.7, 9.4, 19.1]],
        dtype=torch.float64)
    attns = torch.randn(
        2, k * m * m, generator=g, dtype=torch.float64).requires_grad_()
    blender = Blender(num_bases=k, attn_size=m, bottom_resolution=r)
    assert torch.autograd.gradcheck(lambda b, a: blender(b, rois, a),
                                    (bases, attns))


def test_gradients_flow_float32():
    g = torch.Generator().manual_seed(6)
    bases = torch.randn(2, 4, 13, 17, generator=g, requires_grad=True)
    rois = random_rois(5, 2, 52, 68, g)
    attns = torch.randn(5, 4 * 14 * 14, generator=g, requires_grad=True)
    out = Blender()(bases, rois, attns)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    for t in (bases, attns):
        assert torch.isfinite(t.grad).all()
        assert t.grad.abs().sum() > 0


def test_build_from_registry():
    blender = MODELS.build(dict(type='Blender'))
    assert isinstance(blender, Blender)
    assert (blender.num_bases, blender.attn_size,
            blender.bottom_resolution) == (4, 14, 56)
    assert blender.spatial_scale == 0.25 and blender.sampling_ratio == 1
    assert blender.top_interp == 'bilinear'
    assert blender.pooler.aligned
    blender = MODELS.build(
        dict(type='Blender', num_bases=2, attn_size=7, top_interp='nearest'))
    assert blender.num_bases == 2 and blender.top_interp == 'nearest'


@pytest.mark.parametrize('kwargs, match', [
    (dict(top_interp='bicubic'), 'top_interp'),
    (dict(num_bases=0), 'num_bases'),
    (dict(attn_size=2.5), 'attn_size'),
    (dict(bottom_resolution=-1), 'bottom_resolution'),
    (dict(spatial_scale=0.), 'spatial_scale'),
    (dict(sampling_ratio=-1), 'sampling_ratio'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Blender(**kwargs)


def _good():
    return (torch.randn(2, 4, 8,
                        8), torch.tensor([[0., 0., 0., 16.,
                                           16.]]), torch.randn(1, 4 * 14 * 14))


@pytest.mark.parametrize('which, bad, match', [
    (0, torch.randn(4, 8, 8), r'bases must have shape \(N, 4, H, W\)'),
    (0, torch.randn(2, 3, 8, 8), r'bases must have shape \(N, 4, H, W\)'),
    (1, torch.zeros(1, 4), r'rois must have shape \(P, 5\)'),
    (1, torch.zeros(5), r'rois must have shape \(P, 5\)'),
    (2, torch.randn(1, 4 * 13 * 13), r'attns must have shape \(P, 784\)'),
    (2, torch.randn(2, 784), r'attns must have shape \(P, 784\)'),
    (2, torch.randn(1, 784, dtype=torch.float64), 'attns dtype'),
    (1, torch.tensor([[0., 0., 0., 16., 16.]],
                     dtype=torch.float64), 'rois dtype'),
    (0, torch.randint(0, 3, (2, 4, 8, 8)), 'bases must be floating point'),
    (1, torch.tensor([[2., 0., 0., 16., 16.]]), 'batch'),
    (1, torch.tensor([[-1., 0., 0., 16., 16.]]), 'batch'),
    (1, torch.tensor([[0.5, 0., 0., 16., 16.]]), 'batch'),
])
def test_bad_inputs(which, bad, match):
    args = list(_good())
    args[which] = bad
    with pytest.raises(ValueError, match=match):
        Blender()(*args)


def test_interface_properties():
    # Common interface of the instance prediction modules (dr1mask spec
    # section 4): basis channels expected and embedding length.
    blender = Blender()
    assert blender.in_channels == 4
    assert blender.embed_dim == 4 * 14 * 14 == 784
    blender = Blender(num_bases=2, attn_size=7)
    assert blender.in_channels == 2 and blender.embed_dim == 98
    with pytest.raises(AttributeError):
        blender.embed_dim = 3
    with pytest.raises(AttributeError):
        blender.in_channels = 3


def _fused_built():
    from mmdr1.ops import blend_supported
    x = torch.zeros(1)
    return blend_supported(x, x, x)


requires_fused = pytest.mark.skipif(
    not _fused_built(),
    reason='mmdr1._ext is not built (python setup.py build_ext --inplace)')


def _rois_with_edge_cases(g):
    rois = random_rois(6, 2, 52, 68, g)
    rois[1, 3:] = rois[1, 1:3] + 0.25  # tiny box
    rois[2, 3:] = rois[2, 1:3]  # empty box
    rois[3, 1:] = torch.tensor([-30., -20., 40., 90.])  # partly outside
    return rois


@requires_fused
@pytest.mark.parametrize('ratio', [0, 1, 2])
def test_use_fused_matches_pytorch_path(ratio):
    g = torch.Generator().manual_seed(7)
    bases = torch.randn(2, 4, 13, 17, generator=g)
    rois = _rois_with_edge_cases(g)
    attns = torch.randn(6, 4 * 14 * 14, generator=g)
    fused = Blender(sampling_ratio=ratio)
    ref = Blender(sampling_ratio=ratio, use_fused=False)
    assert fused.use_fused and fused.uses_fused(bases, rois, attns)
    assert not ref.uses_fused(bases, rois, attns)
    outs, grads = [], []
    for blender in (fused, ref):
        b, a = bases.clone().requires_grad_(), attns.clone().requires_grad_()
        out = blender(b, rois, a)
        out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
        outs.append(out)
        grads.append((b.grad, a.grad))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@requires_fused
def test_use_fused_gradcheck_and_empty_rois():
    g = torch.Generator().manual_seed(8)
    blender = Blender(num_bases=2, attn_size=3, bottom_resolution=4)
    bases = torch.randn(
        1, 2, 5, 4, generator=g, dtype=torch.float64).requires_grad_()
    rois = torch.tensor([[0., -2., 1., 11., 30.]], dtype=torch.float64)
    attns = torch.randn(
        1, 18, generator=g, dtype=torch.float64).requires_grad_()
    assert blender.uses_fused(bases, rois, attns)
    assert torch.autograd.gradcheck(lambda b, a: blender(b, rois, a),
                                    (bases, attns))
    out = blender(bases, rois[:0], attns[:0])
    assert out.shape == (0, 4, 4) and out.requires_grad
    out.sum().backward()
    assert torch.all(bases.grad == 0)


def test_use_fused_only_for_bilinear_and_configurable():
    bases, rois, attns = _good()
    assert not Blender(top_interp='nearest').uses_fused(bases, rois, attns)
    assert not Blender(use_fused=False).uses_fused(bases, rois, attns)
    # Unsupported dtype (half on CPU): the PyTorch path runs instead.
    assert not Blender().uses_fused(bases.half(), rois.half(), attns.half())
    blender = MODELS.build(dict(type='Blender', use_fused=False))
    assert blender.use_fused is False and 'use_fused=False' in repr(blender)
