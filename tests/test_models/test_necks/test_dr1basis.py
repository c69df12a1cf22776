# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of DR1Basis (dr1mask spec section 3, paper section 3.2.2)."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from mmdr1.models.layers import AlignedUpsample
from mmdr1.models.necks.dr1basis import DR1Basis

IN_CH = 8
C = 4


def ceil_div(a, b):
    return -(-a // b)


def make_feats(img_h, img_w, num_levels=5, batch=2, channels=IN_CH):
    """FPN-like maps of an image padded to 4: sizes ceil(H / 2^(l+3))."""
    return [
        torch.randn(batch, channels, ceil_div(img_h, 8 * 2**i),
                    ceil_div(img_w, 8 * 2**i)) for i in range(num_levels)
    ]


def make_contexts(feats, channels=C):
    return [
        torch.randn(f.shape[0], 2 * channels, *f.shape[-2:]) for f in feats
    ]


def small_basis(**kwargs):
    cfg = dict(in_channels=IN_CH, channels=C)
    cfg.update(kwargs)
    torch.manual_seed(0)
    module = DR1Basis(**cfg)
    module.eval()
    return module


@pytest.mark.parametrize('img_h,img_w', [(64, 96), (68, 100), (36, 52)])
def test_output_shapes(img_h, img_w):
    module = small_basis()
    feats = make_feats(img_h, img_w)
    contexts = make_contexts(feats)
    h3, w3 = feats[0].shape[-2:]
    with torch.no_grad():
        assert module(feats).shape == (2, C, 2 * h3, 2 * w3)
        assert module(feats, contexts).shape == (2, C, 2 * h3, 2 * w3)
        out = module(feats, contexts, output_size=(img_h // 4, img_w // 4))
    assert out.shape == (2, C, img_h // 4, img_w // 4)
    module = small_basis(output_size=(img_h // 4, img_w // 4))
    with torch.no_grad():
        assert module(feats).shape == (2, C, img_h // 4, img_w // 4)


def test_no_contexts_is_identity_factors_and_plain_decoder():
    feats = make_feats(68, 100)
    zeros = [torch.zeros_like(c) for c in make_contexts(feats)]
    module = small_basis()
    plain = small_basis(use_pre=False, use_post=False)
    plain.load_state_dict(module.state_dict())
    with torch.no_grad():
        out = module(feats)
        torch.testing.assert_close(module(feats, zeros), out)
        torch.testing.assert_close(plain(feats), out)
        # the contexts are ignored when both factors are switched off
        torch.testing.assert_close(plain(feats, make_contexts(feats)), out)


def test_contexts_change_output_and_get_gradients():
    feats = make_feats(36, 52)
    contexts = [c.requires_grad_(True) for c in make_contexts(feats)]
    module = small_basis()
    module.train()
    out = module(feats, contexts)
    with torch.no_grad():
        assert not torch.allclose(out, module(feats))
    (out * torch.randn_like(out)).sum().backward()
    for lvl in range(5):
        assert contexts[lvl].grad.abs().sum() > 0
        assert module.reduce_convs[lvl].conv.weight.grad.abs().sum() > 0
        assert module.dr1_convs[lvl].conv.weight.grad.abs().sum() > 0
    assert module.final_conv.conv.weight.grad.abs().sum() > 0


def test_top_level_reaches_output():
    feats = make_feats(68, 100)
    contexts = make_contexts(feats)
    module = small_basis()
    with torch.no_grad():
        out = module(feats, contexts)
        feats[-1] = feats[-1] + torch.randn_like(feats[-1])
        assert not torch.allclose(module(feats, contexts), out)


def test_bilinear_upsample_divisible_by_32():
    module = small_basis(upsample='bilinear', final_conv=False)
    assert module.aligned_up is None
    feats = make_feats(64, 64)
    with torch.no_grad():
        out = module(feats, make_contexts(feats))
    assert out.shape == (2, C, 16, 16)


@pytest.mark.parametrize('upsample', ['aligned', 'bilinear'])
def test_manual_two_levels(upsample):
    module = small_basis(num_levels=2, factor_mode='direct', upsample=upsample)
    feats = make_feats(36, 52, num_levels=2)  # P3 5x7, P4 3x4
    contexts = make_contexts(feats)
    out_size = (9, 13)

    def up(x, size):
        if upsample == 'aligned':
            return AlignedUpsample(2, impl='ref')(x, size)
        x = F.interpolate(
            x, scale_factor=2, mode='bilinear', align_corners=False)
        return x[:, :, :size[0], :size[1]]

    def dr1(lvl, x):
        conv = module.dr1_convs[lvl]
        a, b = contexts[lvl][:, :C], contexts[lvl][:, C:]
        y = F.conv2d(x * a, conv.conv.weight, conv.conv.bias, padding=1)
        return conv.activate(conv.norm(y * b))

    with torch.no_grad():
        f4 = dr1(1, module.reduce_convs[1](feats[1]))
        f3 = dr1(
            0, module.reduce_convs[0](feats[0]) + up(f4, feats[0].shape[-2:]))
        expected = module.final_conv(up(f3, out_size))
        out = module(feats, contexts, output_size=out_size)
    torch.testing.assert_close(out, expected)


def test_bad_inputs():
    module = small_basis()
    feats = make_feats(36, 52)
    contexts = make_contexts(feats)
    with pytest.raises(ValueError, match='expects 5 FPN levels'):
        module(feats[:4])
    with pytest.raises(ValueError, match='expects 5 context maps'):
        module(feats, contexts[:4])
    bad = list(contexts)
    bad[2] = bad[2][:, :C]
    with pytest.raises(ValueError, match='context of level 2'):
        module(feats, bad)
    with pytest.raises(ValueError, match='FPN level 1 must have shape'):
        module([feats[0], feats[1][:, :4]] + feats[2:])
    with pytest.raises(ValueError, match='finest first'):
        module(feats[::-1])
    with pytest.raises(ValueError, match='cannot crop'):
        module(feats, output_size=(30, 30))
    with pytest.raises(ValueError, match='upsample'):
        DR1Basis(upsample='nearest')
    with pytest.raises(ValueError, match='factor_mode'):
        DR1Basis(factor_mode='exp')


def test_build_from_registry():
    module = MODELS.build(
        dict(
            type='DR1Basis',
            in_channels=IN_CH,
            channels=C,
            num_levels=3,
            final_conv=False,
            use_pre=False))
    assert isinstance(module, DR1Basis)
    assert module.final_conv is None and len(module.dr1_convs) == 3
    assert not module.dr1_convs[0].use_pre and module.dr1_convs[0].use_post
    assert 'num_levels=3' in repr(module)
    assert 'dr1_convs.2.conv.weight' in module.state_dict()
    feats = make_feats(36, 52, num_levels=3)
    with torch.no_grad():
        assert module(feats, make_contexts(feats)).shape == (2, C, 10, 14)


@pytest.mark.parametrize('img_h,img_w', [(36, 52), (68, 100)])
def test_fine_level(img_h, img_w):
    """``fine_level``: basis = FinalConv(Up2(F^3) + Reduce^2(P2))."""
    module = small_basis(fine_level=True)
    assert small_basis().fine_reduce is None  # off by default (the paper)
    feats = make_feats(img_h, img_w)
    p2 = torch.randn(2, IN_CH, ceil_div(img_h, 4), ceil_div(img_w, 4))
    contexts = make_contexts(feats)
    with torch.no_grad():
        out = module([p2] + feats, contexts)
        assert out.shape == (2, C) + p2.shape[-2:]
        # the same modules without the fine level give Up2(F^3) (before
        # the final conv): the fine level adds exactly Reduce^2(P2)
        final = module.final_conv
        module.final_conv = None
        module.fine_level = False
        coarse = module(feats, contexts, output_size=p2.shape[-2:])
        module.fine_level = True
        fine = module([p2] + feats, contexts)
        module.final_conv = final
        torch.testing.assert_close(fine, coarse + module.fine_reduce(p2))
        torch.testing.assert_close(final(fine), out)
    # P2 reaches the output with gradients
    p2.requires_grad_(True)
    module([p2] + feats, contexts).sum().backward()
    assert p2.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='P2 first'):
        module(feats, contexts)
    with pytest.raises(ValueError, match='fine level'):
        module([p2[..., :-1]] + feats, contexts)
