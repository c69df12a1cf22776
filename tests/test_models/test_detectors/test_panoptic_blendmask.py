# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of PanopticBlendMask (blendmask spec section 12)."""
import copy

import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.registry import DefaultScope

from mmdr1.models import PanopticBlendMask
from mmdr1.testing import demo_panoptic_sample

register_all_modules(init_default_scope=False)

T, S = 3, 2
GN = dict(type='GN', num_groups=8, requires_grad=True)

MODEL_CFG = dict(
    type='PanopticBlendMask',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[103.53, 116.28, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=32,
        pad_mask=True,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        type='FPN',
        in_channels=[16, 32, 64, 128],
        out_channels=32,
        start_level=0,
        add_extra_convs='on_output',
        num_outs=6,
        relu_before_extra_convs=True),
    bbox_head=dict(
        type='BlendMaskFCOSHead',
        num_classes=T,
        in_channels=32,
        feat_channels=32,
        stacked_convs=1,
        attn_size=4,
        norm_cfg=GN),
    mask_head=dict(
        type='BlendMaskHead',
        thing_sem_field='gt_thing_sem_seg',
        basis=dict(
            type='ProtoNetBasis',
            in_channels=32,
            convs_dim=16,
            num_convs=1,
            num_things_classes=T,
            norm_cfg=GN),
        blender=dict(type='Blender', attn_size=4, bottom_resolution=8)),
    semantic_head=dict(
        type='SemSegFPNHead',
        num_things_classes=T,
        num_stuff_classes=S,
        in_channels=32,
        inner_channels=16,
        norm_cfg=GN),
    panoptic_fusion_head=dict(
        type='ScoreThrHeuristicFusionHead',
        num_things_classes=T,
        num_stuff_classes=S),
    test_cfg=dict(
        nms_pre=100,
        score_thr=0.0,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=10,
        panoptic=dict(score_thr=0.0, mask_overlap=0.4, stuff_area_limit=16)))


def build_model(**changes):
    cfg = copy.deepcopy(MODEL_CFG)
    cfg.update(changes)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def make_data(shapes=((96, 128), (80, 100)), things=(3, 0)):
    inputs, samples = [], []
    for i, ((h, w), n) in enumerate(zip(shapes, things)):
        img, sample = demo_panoptic_sample(h, w, n, T, seed=i)
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_build_and_levels():
    model = build_model()
    assert isinstance(model, PanopticBlendMask)
    assert model.instance_start_level == 1
    assert model.panoptic_fusion_head.test_cfg.stuff_area_limit == 16
    bad = build_model(instance_start_level=0)
    data = bad.data_preprocessor(make_data(), True)
    with pytest.raises(ValueError, match='strides'):
        bad(**data, mode='loss')


def test_loss_and_backward():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(), True)
    losses = model(**data, mode='loss')
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness', 'loss_mask',
                'loss_basis_sem', 'loss_sem_seg'):
        assert key in losses and torch.isfinite(losses[key]).all(), key
    assert losses['loss_sem_seg'].item() > 0
    sum(losses.values()).backward()
    # the semantic loss reaches P2's lateral conv, which only it uses
    grad = model.neck.lateral_convs[0].conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.semantic_head.conv_logits.weight.grad.abs().sum() > 0


def test_loss_without_things():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(things=(0, 0)), True)
    losses = model(**data, mode='loss')
    assert losses['loss_mask'].item() == 0
    assert all(torch.isfinite(v).all() for v in losses.values())
    sum(losses.values()).backward()


def test_panoptic_labels_as_thing_target_raise():
    # Leaving thing_sem_field at 'gt_sem_seg' would train the basis on the
    # panoptic labels (255 etc.): a clear error instead.
    cfg = copy.deepcopy(MODEL_CFG['mask_head'])
    cfg['thing_sem_field'] = 'gt_sem_seg'
    model = build_model(mask_head=cfg)
    model.train()
    data = model.data_preprocessor(make_data(), True)
    with pytest.raises(ValueError, match='thing_sem_field'):
        model(**data, mode='loss')


@pytest.mark.parametrize('shapes', [((96, 128), (80, 100)), ((61, 77), )])
def test_predict_panoptic_output(shapes):
    model = build_model()
    model.eval()
    data = make_data(shapes=shapes, things=(2, 0)[:len(shapes)])
    data = model.data_preprocessor(data, False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == len(shapes)
    for sample, (h, w) in zip(results, shapes):
        pan = sample.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, h, w)
        values = torch.unique(pan)
        labels = values % INSTANCE_OFFSET
        things = values >= INSTANCE_OFFSET
        assert (labels[things] < T).all()
        assert ((labels[~things] >= T) & (labels[~things] <= T + S)).all()
        inst = sample.pred_instances
        assert inst.masks.shape[-2:] == (h, w)
        assert inst.masks.dtype == torch.bool
        # every instance segment lies inside a predicted instance mask
        for v in values[things].tolist():
            seg = pan[0] == v
            assert (seg & inst.masks.any(0)).sum() == seg.sum()


def test_tensor_mode():
    model = build_model()
    data = model.data_preprocessor(make_data(), False)
    fcos, basis, sem = model(**data, mode='tensor')
    assert len(fcos[0]) == 5
    assert basis[0].shape[1] == 4
    assert sem.shape[:2] == (2, S + 1)
    assert sem.shape[-2:] == (96 // 4, 128 // 4)
