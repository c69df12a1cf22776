# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of BlendMask and BlendMaskHead (blendmask spec sections 8, 9)."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData

from mmdr1.models import BlendMask, BlendMaskHead

register_all_modules(init_default_scope=False)

ATTN_SIZE = 4
RES = 8

MODEL_CFG = dict(
    type='BlendMask',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[103.53, 116.28, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_mask=True,
        pad_size_divisor=32),
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
        start_level=1,
        add_extra_convs='on_output',
        num_outs=5,
        relu_before_extra_convs=True),
    bbox_head=dict(
        type='BlendMaskFCOSHead',
        num_classes=3,
        in_channels=32,
        feat_channels=32,
        stacked_convs=1,
        attn_size=ATTN_SIZE,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)),
    mask_head=dict(
        type='BlendMaskHead',
        basis=dict(
            type='ProtoNetBasis',
            in_channels=32,
            convs_dim=16,
            num_convs=1,
            num_things_classes=3,
            norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)),
        blender=dict(
            type='Blender', attn_size=ATTN_SIZE, bottom_resolution=RES)),
    test_cfg=dict(
        nms_pre=100,
        score_thr=0.0,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=10))


def build_model():
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(copy.deepcopy(MODEL_CFG))
    model.init_weights()
    return model


def make_data(num_items=(3, 0)):
    packed = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 96, 128), (3, 80, 100)],
        num_items=list(num_items),
        num_classes=3,
        with_mask=True)
    return packed


def test_build():
    model = build_model()
    assert isinstance(model, BlendMask)
    assert isinstance(model.mask_head, BlendMaskHead)
    assert model.mask_head.blender.bottom_resolution == RES


def test_loss_and_backward():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(), True)
    losses = model(**data, mode='loss')
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness', 'loss_mask',
                'loss_basis_sem'):
        assert key in losses, key
        assert torch.isfinite(losses[key]).all(), key
    assert losses['loss_mask'].item() > 0
    total = sum(v for v in losses.values())
    total.backward()
    top = model.bbox_head.top_layer.weight.grad
    assert top is not None and top.abs().sum() > 0
    tower = model.mask_head.basis.tower[-1].weight.grad
    assert tower is not None and tower.abs().sum() > 0


def test_loss_all_empty_gt():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data((0, 0)), True)
    losses = model(**data, mode='loss')
    assert losses['loss_mask'].item() == 0
    for value in losses.values():
        assert torch.isfinite(value).all()
    sum(v for v in losses.values()).backward()
    assert model.mask_head.basis.tower[-1].weight.grad is not None


def test_predict():
    model = build_model()
    model.eval()
    data = model.data_preprocessor(make_data(), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2
    for sample in results:
        pred = sample.pred_instances
        h, w = sample.ori_shape
        assert len(pred) > 0
        assert pred.masks.dtype == torch.bool
        assert pred.masks.shape == (len(pred.bboxes), h, w)
        assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
        boxes = pred.bboxes
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= h).all()


def test_tensor_mode():
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(), True)
    outs = model(**data, mode='tensor')
    bases, sem_logits = outs[-1]
    assert bases.shape[:2] == (2, 4)
    assert sem_logits.shape[1] == 4


def make_head():
    return MODELS.build(MODEL_CFG['mask_head'])


def test_mask_loss_value():
    """One positive, known bases/attention: loss = BCE (ctr cancels)."""
    head = make_head()
    head.loss_weight = 2.0
    # Constant bases: every pooled value equals the base value, and the
    # softmax over K of a constant attention is uniform -> logit = mean.
    bases = torch.tensor([0.5, 1.0, 1.5, 2.0
                          ]).view(1, 4, 1,
                                  1).expand(1, 4, 16,
                                            16).contiguous().requires_grad_()
    top = torch.zeros((1, 4 * ATTN_SIZE * ATTN_SIZE), requires_grad=True)
    masks = np.zeros((1, 64, 64), dtype=np.uint8)
    masks[0, 8:40, 8:24] = 1  # left half of the box below
    gt = InstanceData(
        bboxes=torch.tensor([[8., 8., 40., 40.]]),
        labels=torch.tensor([1]),
        masks=BitmapMasks(masks, 64, 64))
    pos = InstanceData(
        pos_assigned_gt_inds=torch.tensor([0]),
        top_feats=top,
        centerness_targets=torch.tensor([0.3]))
    losses = head.loss_by_feat(bases, [gt], [dict()], [pos])
    logit = torch.tensor(1.25)
    expected = 0.5 * F.binary_cross_entropy_with_logits(
        logit, torch.tensor(1.)) + 0.5 * F.binary_cross_entropy_with_logits(
            logit, torch.tensor(0.))
    assert math.isclose(
        losses['loss_mask'].item(), 2.0 * expected.item(), rel_tol=1e-5)
    losses['loss_mask'].backward()
    assert bases.grad.abs().sum() > 0


def test_mask_loss_weighting_two_positives():
    head = make_head()
    bases = torch.randn(2, 4, 16, 16)
    masks = np.zeros((2, 64, 64), dtype=np.uint8)
    masks[0, 10:30, 10:30] = 1
    masks[1, 5:50, 20:60] = 1
    gt = InstanceData(
        bboxes=torch.tensor([[10., 10., 30., 30.], [20., 5., 60., 50.]]),
        labels=torch.tensor([0, 2]),
        masks=BitmapMasks(masks, 64, 64))
    empty_gt = InstanceData(
        bboxes=torch.zeros((0, 4)),
        labels=torch.zeros((0, ), dtype=torch.long),
        masks=BitmapMasks(np.zeros((0, 64, 64), np.uint8), 64, 64))
    top = torch.randn(2, 4 * ATTN_SIZE * ATTN_SIZE)
    ctr = torch.tensor([0.2, 0.8])
    pos0 = InstanceData(
        pos_assigned_gt_inds=torch.tensor([1, 0]),
        top_feats=top,
        centerness_targets=ctr)
    pos1 = InstanceData(
        pos_assigned_gt_inds=torch.zeros((0, ), dtype=torch.long),
        top_feats=torch.zeros((0, top.size(1))),
        centerness_targets=torch.zeros((0, )))
    # image 1 (no positives) first to check the batch index of the RoIs
    loss = head.loss_by_feat(bases, [empty_gt, gt], [{}, {}],
                             [pos1, pos0])['loss_mask']
    rois = torch.tensor([[1., 20., 5., 60., 50.], [1., 10., 10., 30., 30.]])
    logits = head.blender(bases, rois, top)
    targets = gt.masks.crop_and_resize(gt.bboxes[[1, 0]].numpy(), (RES, RES),
                                       np.array([1, 0])).to_tensor(
                                           torch.float32, 'cpu')
    bce = F.binary_cross_entropy_with_logits(
        logits, targets, reduction='none').mean((1, 2))
    expected = (bce * ctr).sum() / ctr.sum()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_sem_targets_from_instances():
    masks = np.zeros((2, 20, 30), dtype=np.uint8)
    masks[0, 0:10, 0:10] = 1
    masks[1, 5:15, 5:15] = 1
    gt = InstanceData(
        bboxes=torch.zeros((2, 4)),
        labels=torch.tensor([0, 2]),
        masks=BitmapMasks(masks, 20, 30))
    sample = DetDataSample()
    sample.gt_instances = gt
    metas = [dict(batch_input_shape=(32, 32))]
    t = BlendMaskHead.get_sem_targets([sample], [gt], metas, 'cpu')
    assert t.shape == (1, 32, 32)
    assert t[0, 0, 0] == 1 and t[0, 7, 7] == 3 and t[0, 14, 14] == 3
    assert t[0, 0, 20] == 0 and t[0, 25, 25] == 0


def test_predict_by_feat_rescale_and_empty():
    head = make_head()
    head.eval()
    bases = torch.randn(2, 4, 16, 24)
    attn = 4 * ATTN_SIZE * ATTN_SIZE
    det = InstanceData(
        bboxes=torch.tensor([[-10., 4., 30., 40.], [50., 20., 120., 70.],
                             [100., 10., 130., 20.]]),
        scores=torch.tensor([0.9, 0.5, 0.3]),
        labels=torch.tensor([0, 1, 2]),
        top_feats=torch.randn(3, attn))
    empty = InstanceData(
        bboxes=torch.zeros((0, 4)),
        scores=torch.zeros((0, )),
        labels=torch.zeros((0, ), dtype=torch.long),
        top_feats=torch.zeros((0, attn)))
    metas = [
        dict(img_shape=(64, 96), ori_shape=(32, 48), scale_factor=(2., 2.)),
        dict(img_shape=(60, 90), ori_shape=(30, 45), scale_factor=(2., 2.))
    ]
    out = head.predict_by_feat(
        bases, None, metas, results_list=[det, empty], rescale=True)
    # the third box lies outside the 96-wide image once clipped -> dropped
    assert len(out[0]) == 2
    assert out[0].masks.shape == (2, 32, 48)
    assert out[0].masks.dtype == torch.bool
    assert torch.allclose(out[0].bboxes[0], torch.tensor([0., 2., 15., 20.]))
    # nothing outside the clipped box
    assert not out[0].masks[0, :, 16:].any()
    assert out[1].masks.shape == (0, 30, 45)
    assert out[1].masks.dtype == torch.bool
    # pooled on the unclipped box: same probs as the blender directly
    out_in = head.predict_by_feat(
        bases, None, metas, results_list=[det[:1], empty], rescale=False)
    assert out_in[0].masks.shape == (1, 64, 96)
    probs = head.blender(bases[:1], torch.tensor([[0., -10., 4., 30., 40.]]),
                         det.top_feats[:1]).sigmoid()
    pasted, _ = _do_paste_mask(
        probs[:, None],
        torch.tensor([[0., 4., 30., 40.]]),
        64,
        96,
        skip_empty=False)
    assert torch.equal(out_in[0].masks, pasted >= 0.5)
    assert torch.allclose(out_in[0].bboxes, torch.tensor([[0., 4., 30., 40.]]))


def test_sem_targets_from_gt_sem_seg():
    gt = InstanceData(
        bboxes=torch.zeros((0, 4)),
        labels=torch.zeros((0, ), dtype=torch.long),
        masks=BitmapMasks(np.zeros((0, 20, 30), np.uint8), 20, 30))
    sample = DetDataSample()
    sample.gt_instances = gt
    sem = torch.zeros((1, 20, 30), dtype=torch.uint8)
    sem[0, 2:4, 3:5] = 2
    sample.gt_sem_seg = PixelData(sem_seg=sem)
    metas = [dict(batch_input_shape=(32, 32))]
    t = BlendMaskHead.get_sem_targets([sample], [gt], metas, 'cpu')
    assert t.shape == (1, 32, 32) and t.dtype == torch.long
    assert t.sum() == 2 * 4 and t[0, 2, 3] == 2


def test_sem_targets_from_other_field_and_range_check():
    gt = InstanceData(
        bboxes=torch.zeros((0, 4)),
        labels=torch.zeros((0, ), dtype=torch.long),
        masks=BitmapMasks(np.zeros((0, 20, 30), np.uint8), 20, 30))
    sample = DetDataSample()
    sample.gt_instances = gt
    sample.gt_sem_seg = PixelData(
        sem_seg=torch.full((1, 20, 30), 255, dtype=torch.uint8))
    thing = torch.zeros((1, 20, 30), dtype=torch.uint8)
    thing[0, :2, :2] = 3
    sample.gt_thing_sem_seg = PixelData(sem_seg=thing)
    metas = [dict(batch_input_shape=(32, 32))]
    t = BlendMaskHead.get_sem_targets([sample], [gt],
                                      metas,
                                      'cpu',
                                      field='gt_thing_sem_seg')
    assert t.sum() == 3 * 4
    # a model reading panoptic labels as thing targets raises clearly
    model = build_model()
    model.train()
    data = model.data_preprocessor(make_data(), True)
    for s in data['data_samples']:
        h, w = s.img_shape
        s.gt_sem_seg = PixelData(
            sem_seg=torch.full((1, h, w), 255, dtype=torch.uint8))
    with pytest.raises(ValueError, match='thing_sem_field'):
        model(**data, mode='loss')
    model.mask_head.thing_sem_field = 'gt_thing_sem_seg'
    losses = model(**data, mode='loss')  # field absent: painted from GT
    assert torch.isfinite(losses['loss_basis_sem'])
