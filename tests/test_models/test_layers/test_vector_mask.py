# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the DR1Mask vector instance module (dr1mask spec section 4)."""
import pytest
import torch
from mmcv.ops import roi_align
from mmdet.registry import MODELS

from mmdr1.models.layers.factored_attention import FactoredAttention
from mmdr1.models.layers.vector_mask import BaseRoIMask, VectorMask


def random_rois(num, num_imgs, img_h, img_w, generator):
    inds = torch.arange(num) % num_imgs
    x = torch.rand(num, 2, generator=generator) * img_w
    y = torch.rand(num, 2, generator=generator) * img_h
    return torch.stack([
        inds.float(),
        x.min(1).values,
        y.min(1).values,
        x.max(1).values + 1,
        y.max(1).values + 1
    ],
                       dim=1)


def test_shapes_and_interface():
    module = VectorMask()
    assert isinstance(module, BaseRoIMask)
    assert (module.in_channels, module.embed_dim,
            module.bottom_resolution) == (32, 32, 56)
    assert len(list(module.parameters())) == 0
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(2, 32, 9, 11, generator=g)
    out = module(basis, random_rois(3, 2, 36, 44, g),
                 torch.randn(3, 32, generator=g))
    assert out.shape == (3, 56, 56)


def test_matches_manual_computation():
    g = torch.Generator().manual_seed(1)
    c, r = 5, 7
    module = VectorMask(in_channels=c, bottom_resolution=r)
    basis = torch.randn(2, c, 8, 6, generator=g)
    rois = random_rois(4, 2, 32, 24, g)
    embeds = torch.randn(4, c, generator=g)
    out = module(basis, rois, embeds)
    for p in range(4):
        crop = roi_align(basis, rois[p:p + 1], (r, r), 0.25, 1, 'avg', True)[0]
        expected = sum(embeds[p, i] * crop[i] for i in range(c))
        torch.testing.assert_close(out[p], expected, rtol=1e-5, atol=1e-5)


def test_equals_factored_attention_with_one_base():
    # Softmax over a single attention channel is 1 whatever s, U and V are:
    # FactoredAttention(K=1) with w = e is the vector module.
    g = torch.Generator().manual_seed(2)
    c, d, r = 6, 3, 8
    vector = VectorMask(in_channels=c, bottom_resolution=r)
    factored = FactoredAttention(
        in_channels=c, num_bases=1, rank=d, bottom_resolution=r)
    assert factored.embed_dim == c + d
    basis = torch.randn(2, c, 7, 9, generator=g)
    rois = random_rois(3, 2, 28, 36, g)
    e = torch.randn(3, c, generator=g)
    s = 10 * torch.randn(3, d, generator=g)
    out_v = vector(basis, rois, e)
    out_f = factored(basis, rois, torch.cat([e, s], dim=1))
    torch.testing.assert_close(out_v, out_f, rtol=1e-5, atol=1e-5)


def test_gradients_flow():
    g = torch.Generator().manual_seed(3)
    module = VectorMask(in_channels=4, bottom_resolution=6)
    basis = torch.randn(2, 4, 6, 7, generator=g, requires_grad=True)
    embeds = torch.randn(3, 4, generator=g, requires_grad=True)
    out = module(basis, random_rois(3, 2, 24, 28, g), embeds)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    for t in (basis, embeds):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(4)
    module = VectorMask(in_channels=2, bottom_resolution=3)
    basis = torch.randn(
        1, 2, 4, 5, generator=g, dtype=torch.float64).requires_grad_()
    rois = torch.tensor([[0., 1.3, 2.1, 17.2, 13.9]], dtype=torch.float64)
    embeds = torch.randn(
        1, 2, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda b, e: module(b, rois, e),
                                    (basis, embeds))


def test_empty_rois_forward_backward():
    module = VectorMask(in_channels=8)
    basis = torch.randn(2, 8, 6, 7, requires_grad=True)
    embeds = torch.randn(0, 8, requires_grad=True)
    out = module(basis, torch.zeros(0, 5), embeds)
    assert out.shape == (0, 56, 56) and out.requires_grad
    out.sum().backward()
    assert basis.grad is not None and torch.all(basis.grad == 0)
    assert embeds.grad is not None and embeds.grad.shape == (0, 8)


def test_build_from_registry():
    module = MODELS.build(dict(type='VectorMask'))
    assert isinstance(module, VectorMask)
    assert module.pooler.aligned and module.spatial_scale == 0.25
    assert module.sampling_ratio == 1
    module = MODELS.build(
        dict(type='VectorMask', in_channels=64, bottom_resolution=28))
    assert module.embed_dim == 64 and module.bottom_resolution == 28


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=0), 'in_channels'),
    (dict(bottom_resolution=2.5), 'bottom_resolution'),
    (dict(spatial_scale=-1.), 'spatial_scale'),
    (dict(sampling_ratio=True), 'sampling_ratio'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VectorMask(**kwargs)


@pytest.mark.parametrize('which, bad, match', [
    (0, torch.randn(2, 3, 8, 8), r'basis must have shape \(N, 4, H, W\)'),
    (1, torch.zeros(1, 4), r'rois must have shape \(P, 5\)'),
    (1, torch.tensor([[-1., 0., 0., 16., 16.]]), 'batch'),
    (2, torch.randn(1, 5), r'embeds must have shape \(P, 4\) = \(P, C\)'),
    (2, torch.randn(3, 4), r'with P = 1 RoIs'),
    (2, torch.randint(0, 2, (1, 4)), 'embeds must be floating point'),
    (2, torch.randn(1, 4, dtype=torch.float64), 'embeds dtype'),
])
def test_bad_inputs(which, bad, match):
    args = [
        torch.randn(2, 4, 8, 8),
        torch.tensor([[0., 0., 0., 16., 16.]]),
        torch.randn(1, 4)
    ]
    args[which] = bad
    with pytest.raises(ValueError, match=match):
        VectorMask(in_channels=4, bottom_resolution=6)(*args)
