# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the ProtoNet basis module (blendmask spec section 6)."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from mmdr1.models.seg_heads import ProtoNetBasis


def make_feats(batch, h3, w3, channels=16):
    """p3, p4, p5 with ResNet-style ceil sizes."""
    sizes = [(h3, w3), ((h3 + 1) // 2, (w3 + 1) // 2),
             ((h3 + 3) // 4, (w3 + 3) // 4)]
    return [torch.randn(batch, channels, h, w) for h, w in sizes]


def small_module(**kwargs):
    cfg = dict(in_channels=16, convs_dim=8, num_bases=4, num_things_classes=5)
    cfg.update(kwargs)
    return ProtoNetBasis(**cfg)


@pytest.mark.parametrize('h3,w3', [(8, 12), (7, 9), (5, 5)])
def test_output_shapes(h3, w3):
    module = small_module()
    feats = make_feats(2, h3, w3)
    module.train()
    bases, sem = module(feats)
    assert bases.shape == (2, 4, 2 * h3, 2 * w3)
    assert sem.shape == (2, 6, h3, w3)
    module.eval()
    with torch.no_grad():
        bases, sem = module(feats)
    assert bases.shape == (2, 4, 2 * h3, 2 * w3)
    assert sem is None


def test_loss_off_and_in_indices():
    module = small_module(loss_on=False, in_indices=(1, 2, 3))
    assert module.seg_head is None
    feats = [torch.randn(1, 16, 14, 14)] + make_feats(1, 7, 7)
    module.train()
    bases, sem = module(feats)
    assert bases.shape == (1, 4, 14, 14)
    assert sem is None


def test_reference_layout_default():
    module = ProtoNetBasis()
    keys = set(module.state_dict().keys())
    for i in range(3):
        assert f'refine.{i}.0.weight' in keys
        assert f'refine.{i}.1.running_mean' in keys
        assert f'tower.{i}.0.weight' in keys
    assert isinstance(module.tower[3], torch.nn.Upsample)
    assert 'tower.4.0.weight' in keys and 'tower.4.1.weight' in keys
    assert module.tower[5].weight.shape == (4, 128, 1, 1)
    assert 'tower.5.bias' in keys
    assert module.refine[0][0].bias is None
    assert module.refine[0][0].weight.shape == (128, 256, 3, 3)
    for i in (0, 1, 3, 4, 6):
        assert f'seg_head.{i}.weight' in keys
    assert module.seg_head[6].weight.shape == (81, 128, 1, 1)
    assert module.seg_head[0].bias is None
    assert type(module.seg_head[1]) is torch.nn.BatchNorm2d
    # kaiming_uniform(a=1) on fan_in: bound = sqrt(3 / fan_in)
    bound = (3.0 / (256 * 9))**0.5
    assert module.refine[0][0].weight.abs().max() <= bound + 1e-6


def test_num_convs_2():
    module = small_module(num_convs=2)
    assert len(module.tower) == 5
    assert isinstance(module.tower[2], torch.nn.Upsample)
    assert module.tower[4].out_channels == 4
    bases, _ = module(make_feats(1, 6, 10))
    assert bases.shape == (1, 4, 12, 20)


def test_loss_value_matches_reference():
    torch.manual_seed(0)
    module = small_module(loss_weight=0.3)
    b, h3, w3 = 2, 5, 7
    logits = torch.randn(b, 6, h3, w3)
    # Target at padded input size (multiple of the stride).
    target = torch.randint(0, 6, (b, h3 * 8, w3 * 8))
    down = target[:, ::8, ::8]  # top-left pixel of every 8x8 cell
    expected = F.cross_entropy(logits, down) * 0.3
    loss = module.loss(logits, target)['loss_basis_sem']
    torch.testing.assert_close(loss, expected)

    # A smaller (unpadded) target is padded with 0 (background).
    small = target[:, :h3 * 8 - 9, :w3 * 8 - 9]
    down = torch.zeros(b, h3, w3, dtype=torch.long)
    down[:, :-1, :-1] = target[:, :(h3 - 1) * 8:8, :(w3 - 1) * 8:8]
    expected = F.cross_entropy(logits, down) * 0.3
    loss = module.loss(logits, small)['loss_basis_sem']
    torch.testing.assert_close(loss, expected)


def test_background_is_a_real_class():
    module = small_module()
    logits = torch.randn(1, 6, 4, 4)
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    loss = module.loss(logits, target)['loss_basis_sem']
    assert torch.isfinite(loss) and loss.item() > 0
    expected = F.cross_entropy(logits, torch.zeros(1, 4, 4).long()) * 0.3
    torch.testing.assert_close(loss, expected)


def test_gradients_flow():
    module = small_module()
    module.train()
    feats = [f.requires_grad_() for f in make_feats(2, 7, 9)]
    bases, sem = module(feats)
    target = torch.randint(0, 6, (2, 56, 72))
    loss = module.loss(sem, target)['loss_basis_sem'] + bases.sum()
    loss.backward()
    for f in feats:
        assert f.grad is not None and f.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None, name


def test_registry_build():
    module = MODELS.build(
        dict(
            type='ProtoNetBasis',
            in_channels=16,
            convs_dim=8,
            num_things_classes=3,
            num_bases=2))
    assert isinstance(module, ProtoNetBasis)
    bases, sem = module(make_feats(2, 4, 4))
    assert bases.shape == (2, 2, 8, 8)
    assert sem.shape == (2, 4, 4, 4)
