# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of SpatialFlowThingHead (spatialflow spec sections 3.1, 3.2, 5.1)."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from mmdr1.models.roi_heads import SpatialFlowThingHead

register_all_modules(init_default_scope=False)

C = 8
K = 3
H, W = 64, 96


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Small convolutions on one thread (see ``tests/conftest.py``)."""
    yield


def make_head(**kwargs):
    cfg = dict(
        roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(
                type='RoIAlign',
                output_size=14,
                sampling_ratio=0,
                aligned=True),
            out_channels=C,
            featmap_strides=[8, 16, 32],
            finest_scale=56),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=1,
            in_channels=C,
            conv_out_channels=C,
            num_classes=K,
            loss_mask=dict(
                type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)))
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = SpatialFlowThingHead(**cfg)
    head.init_weights()
    return head


def make_feats(batch=2):
    torch.manual_seed(1)
    return tuple(
        torch.randn(batch, C, H // s, W // s, requires_grad=True)
        for s in (8, 16, 32))


def make_sample(boxes,
                labels,
                crowd_boxes=(),
                shape=(H, W),
                scale_factor=(1., 1.)):
    h, w = shape
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    masks = np.zeros((len(boxes), h, w), np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        m[y1 + 2:y2 - 2, x1 + 2:x2 - 2] = 1
    sample = DetDataSample(
        metainfo=dict(
            img_shape=shape,
            ori_shape=(round(h / scale_factor[1]), round(w / scale_factor[0])),
            scale_factor=scale_factor,
            batch_input_shape=shape))
    sample.gt_instances = InstanceData(
        bboxes=torch.from_numpy(boxes),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=BitmapMasks(masks, h, w))
    crowd = np.array(crowd_boxes, np.float32).reshape(-1, 4)
    sample.ignored_instances = InstanceData(
        bboxes=torch.from_numpy(crowd),
        labels=torch.zeros(len(crowd), dtype=torch.long),
        masks=BitmapMasks(np.zeros((len(crowd), h, w), np.uint8), h, w))
    return sample


def dets(boxes, labels=None, scores=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = len(boxes)
    return InstanceData(
        bboxes=boxes,
        labels=torch.tensor(labels if labels is not None else [0] * n),
        scores=torch.tensor(scores if scores is not None else [0.9] * n))


GT = [[4., 6., 40., 50.], [30., 20., 90., 60.]]


def test_defaults_follow_spec():
    head = SpatialFlowThingHead()
    ext = head.roi_extractor
    assert ext.finest_scale == 56
    assert ext.featmap_strides == [8, 16, 32]
    layer = ext.roi_layers[0]
    assert layer.output_size == (14, 14)
    assert layer.sampling_ratio == 0 and layer.aligned
    mh = head.mask_head
    assert len(mh.convs) == 4 and mh.num_classes == 80
    assert not mh.class_agnostic and mh.upsample_method == 'deconv'
    assert head.train_cfg.mask_size == 28
    a = head.assigner
    assert (a.pos_iou_thr, a.neg_iou_thr, a.min_pos_iou) == (0.5, 0.5, 0.5)
    assert head.test_cfg.mask_thr_binary == 0.5
    assert head.add_gt_as_proposals
    # level mapping: sqrt(area) < 112 -> P3, 112-224 -> P4, >= 224 -> P5
    rois = torch.tensor([[0, 0, 0, 100, 100], [0, 0, 0, 150, 150],
                         [0, 0, 0, 300, 300]]).float()
    assert ext.map_roi_levels(rois, 3).tolist() == [0, 1, 2]


def test_sampling_gt_prepended_all_positives():
    head = make_head()
    sample = make_sample(GT, [1, 2])
    props = dets([
        [5., 6., 40., 52.],  # IoU ~0.9 with GT 0
        [30., 20., 60., 60.],  # IoU 0.5 with GT 1 -> positive
        [60., 0., 95., 10.],  # background
    ])
    res = head._sample(props, sample.gt_instances)
    # GTs first (each its own positive), then the positive detections
    assert res.pos_inds.tolist() == [0, 1, 2, 3]
    assert res.pos_assigned_gt_inds.tolist() == [0, 1, 0, 1]
    assert res.pos_gt_labels.tolist() == [1, 2, 1, 2]
    assert res.pos_is_gt.tolist() == [1, 1, 0, 0]
    assert res.neg_inds.numel() == 0
    torch.testing.assert_close(res.pos_priors[:2], torch.tensor(GT))
    no_gt = make_head(add_gt_as_proposals=False)._sample(
        props, sample.gt_instances)
    assert no_gt.pos_inds.tolist() == [0, 1]
    assert no_gt.pos_is_gt.tolist() == [0, 0]


@pytest.mark.parametrize('add_gt', [True, False])
def test_loss_and_backward(add_gt):
    head = make_head(add_gt_as_proposals=add_gt)
    feats = make_feats()
    samples = [make_sample(GT, [1, 2]), make_sample(GT[:1], [0])]
    props = [dets([[5., 6., 40., 52.]]), dets([[4., 6., 41., 50.]])]
    losses = head.loss(feats, props, samples)
    assert set(losses) == {'loss_mask'}
    assert losses['loss_mask'].item() > 0
    losses['loss_mask'].backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0
               for f in feats[:1])
    assert head.mask_head.conv_logits.weight.grad.abs().sum() > 0


def test_loss_no_detections():
    head = make_head()
    feats = make_feats()
    samples = [make_sample(GT, [1, 2]), make_sample(GT[:1], [0])]
    empty = [dets([]), dets([])]
    loss = head.loss(feats, empty, samples)['loss_mask']
    assert loss.item() > 0  # GT boxes only
    # without GT proposals and without detections: zero, still a graph
    loss = make_head(add_gt_as_proposals=False).loss(feats, empty,
                                                     samples)['loss_mask']
    assert loss.item() == 0
    loss.backward()


@pytest.mark.parametrize('crowd', [(), ([10., 10., 50., 50.], )])
def test_loss_empty_gt_and_crowd_only(crowd):
    head = make_head()
    feats = make_feats()
    samples = [make_sample([], [], crowd), make_sample([], [], crowd)]
    props = [dets([[10., 10., 50., 50.]]), dets([])]
    loss = head.loss(feats, props, samples)['loss_mask']
    assert loss.item() == 0  # crowds are not targets
    loss.backward()


def test_mask_targets_are_fcn_targets():
    head = make_head()
    sample = make_sample(GT, [1, 2])
    res = head._sample(dets([]), sample.gt_instances)
    targets = head.mask_head.get_targets([res], [sample.gt_instances],
                                         head.train_cfg)
    assert targets.shape == (2, 28, 28)
    assert 0 < targets.mean() < 1


def test_predict_masks_at_original_size():
    head = make_head()
    feats = make_feats()
    # image 0 resized by 0.5 from (128, 192); image 1 with no detection
    metas = [
        dict(
            img_shape=(H, W),
            ori_shape=(2 * H, 2 * W),
            scale_factor=(0.5, 0.5),
            batch_input_shape=(H, W)),
        dict(
            img_shape=(H - 3, W - 5),
            ori_shape=(H - 3, W - 5),
            scale_factor=(1., 1.),
            batch_input_shape=(H, W))
    ]
    results = [dets(GT, [1, 2], [0.9, 0.8]), dets([])]
    out = head.predict(feats, results, metas, rescale=True)
    assert out[0].masks.shape == (2, 2 * H, 2 * W)
    assert out[0].masks.dtype == torch.bool
    torch.testing.assert_close(out[0].bboxes, torch.tensor(GT) * 2)
    assert out[1].masks.shape == (0, H - 3, W - 5)
    # masks lie inside their boxes
    for mask, (x1, y1, x2, y2) in zip(out[0].masks, out[0].bboxes.int()):
        outside = mask.clone()
        outside[y1:y2 + 1, x1:x2 + 1] = False
        assert not outside.any()
    # all-empty batch
    out = head.predict(feats, [dets([]), dets([])], metas, rescale=True)
    assert out[0].masks.shape == (0, 2 * H, 2 * W)
    # probabilities for TTA
    probs = head.predict_mask_probs(
        feats, [torch.tensor(GT), torch.zeros((0, 4))])
    assert probs[0].shape == (2, K, 28, 28) and probs[1].shape[0] == 0
    assert ((probs[0] >= 0) & (probs[0] <= 1)).all()
