# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the DR1Mask factored attention module (dr1mask spec section 4)."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import roi_align
from mmdet.registry import MODELS

from mmdr1.models.layers.blender import Blender
from mmdr1.models.layers.factored_attention import FactoredAttention


def random_rois(num, num_imgs, img_h, img_w, generator, dtype=torch.float32):
    inds = torch.arange(num) % num_imgs
    x = torch.rand(num, 2, generator=generator) * img_w
    y = torch.rand(num, 2, generator=generator) * img_h
    return torch.stack([
        inds.to(torch.float32),
        x.min(1).values,
        y.min(1).values,
        x.max(1).values + 1,
        y.max(1).values + 1
    ],
                       dim=1).to(dtype)


def randomize(module, generator):
    """Random U and V (the default init is random too, but be explicit)."""
    with torch.no_grad():
        module.U.copy_(torch.randn(module.U.shape, generator=generator))
        module.V.copy_(torch.randn(module.V.shape, generator=generator))
    return module


def manual_reference(module, basis, rois, embeds):
    """Per-instance loop: explicit Q = U diag(s) V, softmax over k."""
    c, k, d = module.in_channels, module.num_bases, module.rank
    res = module.bottom_resolution
    outs = []
    for p in range(rois.size(0)):
        crop = roi_align(basis, rois[p:p + 1], (res, res), 0.25, 1, 'avg',
                         True)[0]  # (C, R, R)
        w = embeds[p, :c * k].reshape(k, c)
        s = embeds[p, c * k:].reshape(k, d)
        q = torch.stack([
            module.U[j] @ torch.diag(s[j]) @ module.V[j] for j in range(k)
        ])  # (K, R, R)
        attn = torch.softmax(q, dim=0)
        r = torch.stack([
            sum(w[j, i] * crop[i] for i in range(c)) for j in range(k)
        ])  # (K, R, R)
        outs.append((attn * r).sum(0))
    return torch.stack(outs)


def test_shapes_and_embed_dim():
    module = FactoredAttention()
    assert (module.in_channels, module.num_bases, module.rank,
            module.bottom_resolution) == (32, 4, 4, 56)
    assert module.embed_dim == 32 * 4 + 4 * 4 == 144
    assert module.U.shape == (4, 56, 4) and module.V.shape == (4, 4, 56)
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(2, 32, 9, 11, generator=g)
    rois = random_rois(3, 2, 36, 44, g)
    embeds = torch.randn(3, 144, generator=g)
    assert module(basis, rois, embeds).shape == (3, 56, 56)
    assert module.reconstruct_attention(embeds).shape == (3, 4, 56, 56)
    small = FactoredAttention(
        in_channels=5, num_bases=3, rank=2, bottom_resolution=7)
    assert small.embed_dim == 5 * 3 + 3 * 2
    out = small(
        torch.randn(1, 5, 6, 6), torch.tensor([[0., 1., 2., 20., 18.]]),
        torch.randn(1, 21))
    assert out.shape == (1, 7, 7)


def test_matches_manual_reference():
    g = torch.Generator().manual_seed(1)
    c, k, d, r = 6, 3, 2, 8
    module = randomize(
        FactoredAttention(
            in_channels=c, num_bases=k, rank=d, bottom_resolution=r), g)
    basis = torch.randn(2, c, 7, 9, generator=g)
    rois = random_rois(4, 2, 28, 36, g)
    embeds = torch.randn(4, module.embed_dim, generator=g)
    out = module(basis, rois, embeds)
    expected = manual_reference(module, basis, rois, embeds)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_reconstruct_attention():
    g = torch.Generator().manual_seed(2)
    module = randomize(
        FactoredAttention(
            in_channels=3, num_bases=3, rank=2, bottom_resolution=5), g)
    embeds = torch.randn(2, module.embed_dim, generator=g)
    attn = module.reconstruct_attention(embeds)
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 5, 5))
    s = embeds[:, 9:].reshape(2, 3, 2)
    for p in range(2):
        for j in range(3):
            q = sum(s[p, j, i] * torch.outer(module.U[j, :, i], module.V[j, i])
                    for i in range(2))
            torch.testing.assert_close(
                module.attention_logits(embeds)[p, j], q)
    w, s2 = module.split_embeds(embeds)
    assert w.shape == (2, 3, 3) and s2.shape == (2, 3, 2)
    torch.testing.assert_close(s2, s)
    with pytest.raises(ValueError, match=r'embeds must have shape \(P, 15\)'):
        module.reconstruct_attention(torch.randn(2, 14))


def test_equals_blender_full_attention():
    # Spec section 4: the factored attention equals the full attention of
    # the BlendMask blender built from the reconstructed Q (M = R, so the
    # bilinear resize is the identity) on the 1x1-projected basis.
    g = torch.Generator().manual_seed(3)
    c, k, d, r = 5, 3, 2, 6
    module = randomize(
        FactoredAttention(
            in_channels=c, num_bases=k, rank=d, bottom_resolution=r), g)
    blender = Blender(num_bases=k, attn_size=r, bottom_resolution=r)
    assert blender.in_channels == k and blender.embed_dim == k * r * r
    q_any = torch.randn(2, k, r, r, generator=g)
    torch.testing.assert_close(
        F.interpolate(q_any, (r, r), mode='bilinear', align_corners=False),
        q_any,
        rtol=0,
        atol=0)
    basis = torch.randn(2, c, 8, 7, generator=g)
    rois = random_rois(4, 2, 32, 28, g)
    embeds = torch.randn(4, module.embed_dim, generator=g)
    out = module(basis, rois, embeds)
    w, _ = module.split_embeds(embeds)
    q = module.attention_logits(embeds)
    for p in range(4):
        n = int(rois[p, 0])
        # RoIAlign is linear per channel: crop(w * basis) == w * crop(basis)
        projected = torch.einsum('kc,chw->khw', w[p], basis[n])[None]
        roi = rois[p:p + 1].clone()
        roi[:, 0] = 0
        full = blender(projected, roi, q[p].reshape(1, -1))
        torch.testing.assert_close(full, out[p:p + 1], rtol=1e-5, atol=1e-5)


def test_uniform_attention_at_zero_factors():
    # s = 0 (the top layer's init) gives uniform attention: the mean of r.
    g = torch.Generator().manual_seed(4)
    module = FactoredAttention(
        in_channels=4, num_bases=2, rank=3, bottom_resolution=6)
    embeds = torch.randn(2, module.embed_dim, generator=g)
    embeds[:, 8:] = 0
    attn = module.reconstruct_attention(embeds)
    torch.testing.assert_close(attn, torch.full_like(attn, 0.5))
    basis = torch.randn(1, 4, 5, 5, generator=g)
    rois = torch.tensor([[0., 1., 1., 15., 19.], [0., 0., 3., 8., 9.]])
    out = module(basis, rois, embeds)
    crop = roi_align(basis, rois, (6, 6), 0.25, 1, 'avg', True)
    r = torch.einsum('pkc,pchw->pkhw', embeds[:, :8].reshape(2, 2, 4), crop)
    torch.testing.assert_close(out, r.mean(1))


def test_init_scale():
    module = FactoredAttention()
    assert module.init_std == pytest.approx(4**-0.25)
    module.U.data.zero_()
    module.init_weights()
    assert module.U.std().item() == pytest.approx(4**-0.25, rel=0.1)
    assert module.V.std().item() == pytest.approx(4**-0.25, rel=0.1)
    # unit-variance factors give O(1) attention logits
    torch.manual_seed(0)
    q = module.attention_logits(torch.randn(64, module.embed_dim))
    assert 0.7 < q.std().item() < 1.4
    assert FactoredAttention(init_std=0.5).init_std == 0.5


def test_batch_index_routing():
    g = torch.Generator().manual_seed(5)
    module = FactoredAttention(
        in_channels=4, num_bases=2, rank=2, bottom_resolution=8)
    basis = torch.randn(2, 4, 10, 10, generator=g)
    box = [4., 4., 30., 36.]
    rois = torch.tensor([[1.] + box, [0.] + box])
    embeds = torch.randn(1, module.embed_dim, generator=g).expand(2, -1)
    out = module(basis, rois, embeds)
    only1 = module(basis[1:], torch.tensor([[0.] + box]), embeds[:1])
    only0 = module(basis[:1], torch.tensor([[0.] + box]), embeds[:1])
    torch.testing.assert_close(out[0:1], only1)
    torch.testing.assert_close(out[1:2], only0)
    assert not torch.allclose(out[0], out[1])


def test_gradients_flow():
    g = torch.Generator().manual_seed(6)
    module = FactoredAttention(
        in_channels=6, num_bases=3, rank=2, bottom_resolution=10)
    basis = torch.randn(2, 6, 8, 9, generator=g, requires_grad=True)
    rois = random_rois(3, 2, 32, 36, g)
    embeds = torch.randn(3, module.embed_dim, generator=g, requires_grad=True)
    out = module(basis, rois, embeds)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    for t in (basis, embeds, module.U, module.V):
        assert t.grad is not None and torch.isfinite(t.grad).all()
        assert t.grad.abs().sum() > 0


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(7)
    module = FactoredAttention(
        in_channels=2, num_bases=2, rank=2, bottom_resolution=4).double()
    basis = torch.randn(
        2, 2, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    rois = torch.tensor(
        [[1., 1.3, 2.1, 17.2, 15.9], [0., 0.5, 0.7, 9.4, 19.1]],
        dtype=torch.float64)
    embeds = torch.randn(
        2, module.embed_dim, generator=g,
        dtype=torch.float64).requires_grad_()
    u = module.U.detach().clone().requires_grad_()
    v = module.V.detach().clone().requires_grad_()

    def functional(b, e, u_, v_):
        return torch.func.functional_call(module, {
            'U': u_,
            'V': v_
        }, (b, rois, e))

    assert torch.autograd.gradcheck(functional, (basis, embeds, u, v))


def test_empty_rois_forward_backward():
    module = FactoredAttention(in_channels=8)
    basis = torch.randn(2, 8, 6, 7, requires_grad=True)
    embeds = torch.randn(0, module.embed_dim, requires_grad=True)
    out = module(basis, torch.zeros(0, 5), embeds)
    assert out.shape == (0, 56, 56)
    assert out.requires_grad
    out.sum().backward()
    assert basis.grad is not None and torch.all(basis.grad == 0)
    assert embeds.grad is not None and embeds.grad.shape == embeds.shape
    for param in (module.U, module.V):
        assert param.grad is not None and torch.all(param.grad == 0)


def test_build_from_registry():
    module = MODELS.build(dict(type='FactoredAttention'))
    assert isinstance(module, FactoredAttention)
    assert module.pooler.aligned and module.spatial_scale == 0.25
    assert module.sampling_ratio == 1
    module = MODELS.build(
        dict(
            type='FactoredAttention',
            in_channels=64,
            num_bases=2,
            rank=3,
            bottom_resolution=28))
    assert module.embed_dim == 64 * 2 + 2 * 3
    assert module.U.shape == (2, 28, 3)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=0), 'in_channels'),
    (dict(num_bases=2.0), 'num_bases'),
    (dict(rank=-1), 'rank'),
    (dict(bottom_resolution=True), 'bottom_resolution'),
    (dict(spatial_scale=0.), 'spatial_scale'),
    (dict(sampling_ratio=-1), 'sampling_ratio'),
    (dict(init_std=0.), 'init_std'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FactoredAttention(**kwargs)


def _good():
    return (torch.randn(2, 4, 8, 8), torch.tensor([[0., 0., 0., 16., 16.]]),
            torch.randn(1, 4 * 2 + 2 * 3))


@pytest.mark.parametrize('which, bad, match', [
    (0, torch.randn(4, 8, 8), r'basis must have shape \(N, 4, H, W\)'),
    (0, torch.randn(2, 3, 8, 8), r'basis must have shape \(N, 4, H, W\)'),
    (0, torch.randint(0, 3, (2, 4, 8, 8)), 'basis must be floating point'),
    (1, torch.zeros(1, 4), r'rois must have shape \(P, 5\)'),
    (1, torch.tensor([[2., 0., 0., 16., 16.]]), 'batch'),
    (1, torch.tensor([[0.5, 0., 0., 16., 16.]]), 'batch'),
    (1, torch.tensor([[0., 0., 0., 16., 16.]],
                     dtype=torch.float64), 'rois dtype'),
    (2, torch.randn(1, 13), r'embeds must have shape \(P, 14\) = '
     r'\(P, C \* K \+ K \* d\) with P = 1'),
    (2, torch.randn(2, 14), r'embeds must have shape \(P, 14\)'),
    (2, torch.randn(14), r'embeds must have shape \(P, 14\)'),
    (2, torch.randn(1, 14, dtype=torch.float64), 'embeds dtype'),
    (2, [0.] * 14, 'embeds must be a Tensor'),
])
def test_bad_inputs(which, bad, match):
    module = FactoredAttention(
        in_channels=4, num_bases=2, rank=3, bottom_resolution=6)
    args = list(_good())
    args[which] = bad
    with pytest.raises(ValueError, match=match):
        module(*args)


def _fused_built():
    from mmdr1.ops import factored_blend_supported
    x = torch.zeros(1)
    return factored_blend_supported(x, x, x)


requires_fused = pytest.mark.skipif(
    not _fused_built(),
    reason='mmdr1._ext is not built (python setup.py build_ext --inplace)')


@requires_fused
@pytest.mark.parametrize('ratio', [0, 1])
def test_use_fused_matches_pytorch_path(ratio):
    g = torch.Generator().manual_seed(9)
    fused = randomize(
        FactoredAttention(
            in_channels=6,
            num_bases=3,
            rank=2,
            bottom_resolution=10,
            sampling_ratio=ratio), g)
    ref = FactoredAttention(
        in_channels=6,
        num_bases=3,
        rank=2,
        bottom_resolution=10,
        sampling_ratio=ratio,
        use_fused=False)
    ref.load_state_dict(fused.state_dict())
    basis = torch.randn(2, 6, 8, 9, generator=g)
    rois = random_rois(5, 2, 32, 36, g)
    rois[1, 3:] = rois[1, 1:3] + 0.25  # tiny box
    rois[2, 3:] = rois[2, 1:3]  # empty box
    rois[3, 1:] = torch.tensor([-20., -10., 30., 60.])  # partly outside
    embeds = torch.randn(5, fused.embed_dim, generator=g)
    assert fused.uses_fused(basis, rois, embeds)
    assert not ref.uses_fused(basis, rois, embeds)
    outs, grads = [], []
    for module in (fused, ref):
        module.zero_grad()
        b, e = basis.clone().requires_grad_(), embeds.clone().requires_grad_()
        out = module(b, rois, e)
        out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
        outs.append(out)
        grads.append((b.grad, e.grad, module.U.grad, module.V.grad))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


@requires_fused
def test_use_fused_empty_rois_and_repr():
    module = FactoredAttention(in_channels=8)
    basis = torch.randn(2, 8, 6, 7, requires_grad=True)
    embeds = torch.randn(0, module.embed_dim, requires_grad=True)
    assert module.uses_fused(basis, torch.zeros(0, 5), embeds)
    out = module(basis, torch.zeros(0, 5), embeds)
    assert out.shape == (0, 56, 56)
    out.sum().backward()
    assert torch.all(basis.grad == 0) and torch.all(module.U.grad == 0)
    assert 'use_fused=True' in repr(module)
    assert not FactoredAttention(use_fused=False).uses_fused(
        basis, torch.zeros(0, 5), embeds)
