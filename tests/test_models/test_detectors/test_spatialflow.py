# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of SpatialFlow and its TTA (spatialflow spec sections 3, 4.4, 5)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

import mmdr1.models.roi_heads  # noqa: F401  (registers the thing head)
from mmdr1.models.detectors import SpatialFlow
from mmdr1.models.test_time_augs import SpatialFlowTTAModel
from mmdr1.testing import demo_panoptic_sample

register_all_modules(init_default_scope=False)

T, S = 3, 2
C = 16


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Small convolutions on one thread (see ``tests/conftest.py``)."""
    yield


MODEL_CFG = dict(
    type='SpatialFlow',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=8,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        type='FPN',
        in_channels=[16, 32, 64],
        out_channels=C,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        type='SpatialFlowHead',
        num_classes=T,
        in_channels=C,
        feat_channels=C,
        stacked_convs=2,
        stacked_stuff_convs=2,
        stacked_thing_convs=1,
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    thing_head=dict(
        type='SpatialFlowThingHead',
        roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=C,
            featmap_strides=[8, 16, 32],
            finest_scale=56),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=1,
            in_channels=C,
            conv_out_channels=C,
            num_classes=T)),
    stuff_head=dict(
        type='SpatialFlowStuffHead',
        num_things_classes=T,
        num_stuff_classes=S,
        in_channels=C,
        feat_channels=8,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)),
    panoptic_fusion_head=dict(
        type='BoxFillFusionHead', num_things_classes=T, num_stuff_classes=S),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False,
        thing_proposal=dict(
            nms_pre=1000,
            min_bbox_size=0,
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.4),
            max_per_img=7),
        thing=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                ignore_iof_thr=-1),
            mask_size=28)),
    test_cfg=dict(
        nms_pre=100,
        min_bbox_size=0,
        score_thr=0.0,
        nms=dict(type='nms', iou_threshold=0.4),
        max_per_img=10,
        thing=dict(mask_thr_binary=0.5),
        panoptic=dict(instance_score_thr=0.0, stuff_area_limit=16)))


def build_model(**changes):
    cfg = copy.deepcopy(MODEL_CFG)
    cfg.update(changes)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    return model


def make_data(shapes=((96, 128), (80, 100)), things=(3, 0)):
    inputs, samples = [], []
    for i, ((h, w), n) in enumerate(zip(shapes, things)):
        img, sample = demo_panoptic_sample(h, w, n, T, seed=i, min_size=12)
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_build_and_cfg_routing():
    model = build_model()
    assert isinstance(model, SpatialFlow)
    assert model.thing_proposal_cfg.max_per_img == 7
    assert model.thing_head.assigner.min_pos_iou == 0.5
    assert model.thing_head.test_cfg.mask_thr_binary == 0.5
    assert model.panoptic_fusion_head.test_cfg.stuff_area_limit == 16
    assert model.with_stuff and model.with_panoptic
    with pytest.raises(ValueError, match='stuff_head'):
        build_model(stuff_head=None)


def test_loss_and_backward():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(), True)
    seen = {}
    loss_fn = model.thing_head.loss

    def spy(thing_feats, proposals, samples):
        seen['proposals'] = proposals
        return loss_fn(thing_feats, proposals, samples)

    model.thing_head.loss = spy
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_mask', 'loss_stuff'}
    for key in ('loss_mask', 'loss_stuff'):
        assert torch.isfinite(losses[key]) and losses[key].item() > 0, key
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    total.backward()
    head = model.bbox_head
    for module in (head.thing_convs[0], head.stuff_convs[0],
                   head.semantic_flow_convs[0], head.thing_flow_convs[0],
                   model.thing_head.mask_head.conv_logits,
                   model.stuff_head.conv_logits):
        grad = getattr(module, 'conv', module).weight.grad
        assert grad is not None and grad.abs().sum() > 0
    # the training RoIs: detached detections, network-input frame,
    # train_cfg.thing_proposal (max 7 per image)
    props = seen['proposals']
    assert len(props) == 2
    for res, sample in zip(props, data['data_samples']):
        assert 0 < len(res) <= 7
        assert not res.bboxes.requires_grad
        h, w = sample.metainfo['img_shape']
        assert (res.bboxes[:, 2] <= w).all() and (res.bboxes[:, 3] <= h).all()


def test_loss_empty_gt():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(things=(0, 0)), True)
    losses = model(**data, mode='loss')
    assert losses['loss_mask'].item() == 0
    assert losses['loss_stuff'].item() > 0
    sum(sum(v) if isinstance(v, list) else v
        for v in losses.values()).backward()


def test_instance_only_model():
    model = build_model(stuff_head=None, panoptic_fusion_head=None)
    assert not model.with_stuff
    model.train()
    data = model.data_preprocessor(make_data(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_mask'}
    model.eval()
    data = model.data_preprocessor(make_data(), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert 'pred_panoptic_seg' not in results[0]
    assert results[0].pred_instances.masks.shape[-2:] == (96, 128)


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
        inst = sample.pred_instances
        assert 0 < len(inst) <= 10
        assert inst.masks.shape == (len(inst), h, w)
        assert inst.masks.dtype == torch.bool
        pan = sample.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, h, w)
        values = torch.unique(pan)
        labels = values % INSTANCE_OFFSET
        things = values >= INSTANCE_OFFSET
        assert (labels[things] < T).all()
        assert ((labels[~things] >= T) & (labels[~things] <= T + S)).all()


def test_predict_no_detection():
    model = build_model()
    model.test_cfg['score_thr'] = 1.1  # bbox_head shares this test_cfg
    model.eval()
    data = model.data_preprocessor(make_data(shapes=((61, 77), )), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    inst = results[0].pred_instances
    assert len(inst) == 0 and inst.masks.shape == (0, 61, 77)
    pan = results[0].pred_panoptic_seg.sem_seg
    assert pan.shape == (1, 61, 77) and (pan < INSTANCE_OFFSET).all()


def test_tensor_mode():
    model = build_model()
    data = model.data_preprocessor(make_data(), False)
    outs = model(**data, mode='tensor')
    cls_scores, bbox_preds, stuff_feats, thing_feats, seg_logits = outs
    assert len(cls_scores) == len(bbox_preds) == 5
    assert len(stuff_feats) == len(thing_feats) == 3
    assert thing_feats[0].shape == (2, C, 96 // 8, 128 // 8)
    assert seg_logits.shape == (2, S + 1, 96, 128)
    inst_only = build_model(stuff_head=None, panoptic_fusion_head=None)
    assert len(inst_only(**data, mode='tensor')) == 4


# ----------------------------------------------------------------- TTA
def _view(img, sample, scale=1.0, flip=False):
    """One TTA view of a (3, H, W) uint8 image: resize then flip."""
    h, w = img.shape[-2:]
    nh, nw = round(h * scale), round(w * scale)
    out = img
    if (nh, nw) != (h, w):
        out = F.interpolate(
            img[None].float(),
            size=(nh, nw),
            mode='bilinear',
            align_corners=False)[0].round().clamp(0, 255).byte()
    if flip:
        out = out.flip(-1)
    view = sample.clone()
    view.set_metainfo(
        dict(
            img_shape=(nh, nw),
            ori_shape=(h, w),
            scale_factor=(nw / w, nh / h),
            flip=flip,
            flip_direction='horizontal' if flip else None))
    return out, view


def make_tta_data(views, shapes=((61, 77), (80, 100))):
    """TestTimeAug batch: per key, a list over views of per-image lists."""
    base = make_data(shapes=shapes, things=(2, 1)[:len(shapes)])
    data = dict(inputs=[], data_samples=[])
    for scale, flip in views:
        made = [
            _view(img, s, scale, flip)
            for img, s in zip(base['inputs'], base['data_samples'])
        ]
        data['inputs'].append([m[0] for m in made])
        data['data_samples'].append([m[1] for m in made])
    return data


def build_tta(model):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(
            dict(
                type='SpatialFlowTTAModel',
                module=model,
                tta_cfg=dict(
                    nms=dict(type='nms', iou_threshold=0.4), max_per_img=10)))


def test_tta_single_view_equals_predict():
    model = build_model()
    model.eval()
    tta = build_tta(model)
    assert isinstance(tta, SpatialFlowTTAModel)
    data = make_tta_data([(1.0, False)])
    with torch.no_grad():
        merged = tta.test_step(copy.deepcopy(data))
        plain = model.test_step(
            dict(
                inputs=data['inputs'][0],
                data_samples=data['data_samples'][0]))
    for a, b in zip(merged, plain):
        ia, ib = a.pred_instances, b.pred_instances
        assert len(ia) == len(ib) > 0
        torch.testing.assert_close(ia.bboxes, ib.bboxes)
        torch.testing.assert_close(ia.scores, ib.scores)
        assert torch.equal(ia.labels, ib.labels)
        assert torch.equal(ia.masks, ib.masks)
        assert torch.equal(a.pred_panoptic_seg.sem_seg,
                           b.pred_panoptic_seg.sem_seg)


def test_tta_duplicate_views_and_flip():
    model = build_model()
    model.eval()
    tta = build_tta(model)
    with torch.no_grad():
        single = tta.test_step(make_tta_data([(1.0, False)]))
        double = tta.test_step(make_tta_data([(1.0, False), (1.0, False)]))
        flipped = tta.test_step(make_tta_data([(1.0, True)]))
    # identical views: duplicates suppressed, averages unchanged
    for a, b in zip(single, double):
        torch.testing.assert_close(a.pred_instances.bboxes,
                                   b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.masks, b.pred_instances.masks)
    # a flipped-only view is mapped back to the original frame: its
    # boxes / masks are the mirror of the model's on the flipped image
    data = make_tta_data([(1.0, True)])
    with torch.no_grad():
        on_flipped = model.test_step(
            dict(
                inputs=data['inputs'][0],
                data_samples=data['data_samples'][0]))
    for res, ref in zip(flipped, on_flipped):
        w = res.metainfo['ori_shape'][1]
        boxes = ref.pred_instances.bboxes.clone()
        boxes[:, [0, 2]] = w - ref.pred_instances.bboxes[:, [2, 0]]
        torch.testing.assert_close(
            res.pred_instances.bboxes, boxes, atol=1e-3, rtol=1e-4)
        mirrored = ref.pred_instances.masks.flip(-1)
        agree = (res.pred_instances.masks == mirrored).float().mean()
        assert agree > 0.99


def test_tta_multi_scale_flip_shapes():
    model = build_model()
    model.eval()
    tta = build_tta(model)
    views = [(1.0, False), (1.0, True), (0.75, False), (0.75, True)]
    with torch.no_grad():
        results = tta.test_step(make_tta_data(views))
    assert len(results) == 2
    for res, (h, w) in zip(results, ((61, 77), (80, 100))):
        inst = res.pred_instances
        assert 0 < len(inst) <= 10
        assert inst.masks.shape == (len(inst), h, w)
        assert (inst.bboxes[:, 2] <= w + 1e-3).all()
        assert res.pred_panoptic_seg.sem_seg.shape == (1, h, w)
    # no detection at all
    model.bbox_head.test_cfg['score_thr'] = 1.1
    with torch.no_grad():
        results = tta.test_step(make_tta_data(views[:2]))
    assert results[0].pred_instances.masks.shape == (0, 61, 77)
    assert results[0].pred_panoptic_seg.sem_seg.shape == (1, 61, 77)
