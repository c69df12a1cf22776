# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of SemSegFPNHead (blendmask spec section 12.1)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.seg_heads import PanopticFPNHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.structures import PixelData

from mmdr1.models import SemSegFPNHead

register_all_modules(init_default_scope=False)

T, S = 3, 2  # thing / stuff classes
GN = dict(type='GN', num_groups=4, requires_grad=True)


def make_head(**kwargs):
    cfg = dict(
        num_things_classes=T,
        num_stuff_classes=S,
        in_channels=8,
        inner_channels=8,
        norm_cfg=GN)
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = SemSegFPNHead(**cfg)
    head.init_weights()
    return head


def make_feats(h=8, w=16, batch=2):
    # P2..P5 of a (4h, 4w) input padded to a multiple of 32.
    return tuple(
        torch.randn(batch, 8, math.ceil(h / 2**i), math.ceil(w / 2**i))
        for i in range(4))


def make_samples(h, w, batch=2):
    torch.manual_seed(1)
    samples = []
    for _ in range(batch):
        sem = torch.randint(0, T + S, (1, h, w))
        sem[:, :3, :5] = 255
        s = DetDataSample()
        s.gt_sem_seg = PixelData(sem_seg=sem)
        samples.append(s)
    return samples


def test_things_first_label_mapping():
    head = make_head()
    gt = torch.tensor([0, 1, 2, 3, 4, 255])
    assert head._set_things_to_void(gt).tolist() == [0, 0, 0, 1, 2, 255]
    head = make_head(things_first=False)
    assert head._set_things_to_void(gt).tolist() == [2, 2, 2, 0, 1, 255]


def test_structure_matches_reference_and_converter_names():
    head = make_head()
    # levels p2..p5 get 1, 1, 2, 3 conv(+GN) blocks (spec 12.1)
    assert [len(layer.conv) for layer in head.conv_upsample_layers] == \
        [1, 1, 2, 3]
    names = set(dict(head.named_parameters()))
    assert 'conv_upsample_layers.3.conv.2.conv.weight' in names
    assert 'conv_upsample_layers.3.conv.2.gn.weight' in names
    assert 'conv_upsample_layers.0.conv.0.conv.bias' not in names
    assert head.conv_logits.out_channels == S + 1
    assert head.loss_seg.loss_weight == 0.5
    assert head.loss_seg.ignore_index == 255


def test_msra_predictor_init():
    head = SemSegFPNHead(in_channels=256)  # 54 outputs as COCO
    head.init_weights()
    std = head.conv_logits.weight.std().item()
    assert abs(std - math.sqrt(2 / 54)) < 0.02
    assert torch.all(head.conv_logits.bias == 0)
    head = SemSegFPNHead(in_channels=256, predictor_init='normal')
    head.init_weights()
    assert abs(head.conv_logits.weight.std().item() - 0.01) < 2e-3
    with pytest.raises(ValueError, match='predictor_init'):
        SemSegFPNHead(predictor_init='xavier')


@pytest.mark.parametrize('h,w', [(8, 16), (16, 24)])
def test_loss_matches_detectron2_formula(h, w):
    head = make_head()
    feats = make_feats(h, w)
    samples = make_samples(4 * h, 4 * w)
    loss = head.loss(feats, samples)
    assert set(loss) == {'loss_sem_seg'}
    logits = head(feats)['seg_preds']
    up = F.interpolate(
        logits, size=(4 * h, 4 * w), mode='bilinear', align_corners=False)
    gt = torch.stack([s.gt_sem_seg.sem_seg[0] for s in samples])
    gt = head._set_things_to_void(gt).long()
    expected = 0.5 * F.cross_entropy(up, gt, ignore_index=255)
    assert torch.allclose(loss['loss_sem_seg'], expected, rtol=1e-5)
    loss['loss_sem_seg'].backward()
    assert head.conv_logits.weight.grad.abs().sum() > 0


def test_loss_mmdet_mode_equals_panoptic_fpn_head():
    kwargs = dict(
        num_things_classes=T,
        num_stuff_classes=S,
        in_channels=8,
        inner_channels=8,
        norm_cfg=GN,
        loss_seg=dict(
            type='CrossEntropyLoss', ignore_index=255, loss_weight=1.0))
    ours = make_head(
        things_first=False,
        loss_at_input_res=False,
        loss_name='loss_seg',
        loss_seg=kwargs['loss_seg'])
    ref = PanopticFPNHead(**kwargs)
    ref.load_state_dict(ours.state_dict())
    feats = make_feats()
    samples = make_samples(32, 64)
    assert torch.allclose(
        ours.loss(feats, samples)['loss_seg'],
        ref.loss(feats, samples)['loss_seg'])


def test_all_ignored_loss_is_zero():
    head = make_head()
    samples = make_samples(32, 64)
    for s in samples:
        s.gt_sem_seg.sem_seg[:] = 255
    loss = head.loss(make_feats(), samples)['loss_sem_seg']
    assert torch.isfinite(loss) and loss.item() == 0


def test_loss_needs_padded_gt():
    head = make_head()
    samples = make_samples(32, 64)
    samples[1].gt_sem_seg = PixelData(
        sem_seg=torch.zeros((1, 30, 40), dtype=torch.long))
    with pytest.raises(ValueError, match='pad_seg'):
        head.loss(make_feats(), samples)
    del samples[1].gt_sem_seg
    with pytest.raises(KeyError, match='gt_sem_seg'):
        head.loss(make_feats(), samples)


def test_predict_in_mmdet_order_and_rescaled():
    head = make_head()
    head.eval()
    feats = make_feats(8, 16)
    metas = [
        dict(
            batch_input_shape=(32, 64), img_shape=(30, 45),
            ori_shape=(15, 22)),
        dict(
            batch_input_shape=(32, 64), img_shape=(32, 40), ori_shape=(64, 80))
    ]
    with torch.no_grad():
        preds = head.predict(feats, metas, rescale=True)
        raw = head(feats)['seg_preds']
    assert preds[0].shape == (S + 1, 15, 22)
    assert preds[1].shape == (S + 1, 64, 80)
    with torch.no_grad():
        plain = head.predict(feats, metas, rescale=False)
    up = F.interpolate(raw, (32, 64), mode='bilinear', align_corners=False)
    # channel 0 ("things" in the head) is last in the output
    assert torch.allclose(plain[0][S], up[0, 0], atol=1e-6)
    assert torch.allclose(plain[0][:S], up[0, 1:], atol=1e-6)


def test_build_by_name():
    head = MODELS.build(dict(type='SemSegFPNHead', in_channels=16))
    assert isinstance(head, SemSegFPNHead)
    assert head.num_classes == 54 and head.things_first
