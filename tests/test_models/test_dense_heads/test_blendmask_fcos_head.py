# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of BlendMaskFCOSHead (blendmask spec sections 5, 7 and 14)."""
import math

import pytest
import torch
from mmdet.models.dense_heads import FCOSHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdr1.models.dense_heads import BlendMaskFCOSHead, smoothed_giou_loss

STRIDES = (8, 16, 32, 64, 128)
ATTN = 4 * 14 * 14


def make_head(**kwargs):
    cfg = dict(
        num_classes=3,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=8))
    cfg.update(kwargs)
    return BlendMaskFCOSHead(**cfg)


def feat_sizes(h, w):
    sizes = []
    for _ in STRIDES:
        sizes.append((h, w))
        h, w = (h + 1) // 2, (w + 1) // 2
    return sizes


def make_feats(batch, h, w):
    return tuple(torch.randn(batch, 32, fh, fw) for fh, fw in feat_sizes(h, w))


def make_gts():
    gt0 = InstanceData(
        bboxes=torch.tensor([[4., 6., 40., 50.], [30., 20., 62., 60.],
                             [10., 10., 20., 18.]]),
        labels=torch.tensor([2, 0, 1]))
    gt1 = InstanceData(
        bboxes=torch.tensor([[0., 0., 63., 63.]]), labels=torch.tensor([1]))
    return [gt0, gt1]


def img_metas(batch, shape=(64, 64)):
    return [
        dict(img_shape=shape, pad_shape=shape, scale_factor=(1., 1.))
        for _ in range(batch)
    ]


@pytest.mark.parametrize('h,w', [(8, 8), (9, 7), (5, 11)])
def test_forward_shapes(h, w):
    head = make_head()
    feats = make_feats(2, h, w)
    for training in (True, False):
        head.train(training)
        with torch.no_grad():
            outs = head(feats)
        assert len(outs) == 4
        for lvl, (fh, fw) in enumerate(feat_sizes(h, w)):
            assert outs[0][lvl].shape == (2, 3, fh, fw)
            assert outs[1][lvl].shape == (2, 4, fh, fw)
            assert outs[2][lvl].shape == (2, 1, fh, fw)
            assert outs[3][lvl].shape == (2, ATTN, fh, fw)


def test_attention_size_args():
    head = make_head(num_bases=2, attn_size=5)
    outs = head(make_feats(1, 8, 8))
    assert all(t.shape[1] == 50 for t in outs[3])
    assert head.top_layer.in_channels == 32
    assert head.top_layer.kernel_size == (3, 3)
    assert head.top_layer.padding == (1, 1)


def test_scales_option():
    head = make_head()
    assert not [n for n, _ in head.named_parameters() if 'scales' in n]
    head = make_head(use_scale=True)
    names = [n for n, _ in head.named_parameters() if 'scales' in n]
    assert len(names) == len(STRIDES)


def test_shared_tower():
    # 550 / RT configs (spec 11.3): 3 shared convs, no branch convs; the
    # top layer and all predictors see the shared tower's output.
    torch.manual_seed(0)
    head = make_head(num_share_convs=3, stacked_convs=0)
    assert len(head.share_convs) == 3 and len(head.cls_convs) == 0
    names = [n for n, _ in head.named_parameters()]
    assert 'share_convs.2.conv.weight' in names
    assert 'share_convs.2.gn.weight' in names
    head.init_weights()
    assert abs(head.share_convs[0].conv.weight.std().item() - 0.01) < 2e-3
    feats = make_feats(1, 8, 8)
    outs = head(feats)
    shared = feats[0]
    for layer in head.share_convs:
        shared = layer(shared)
    assert torch.allclose(outs[3][0], head.top_layer(shared), atol=1e-6)
    assert torch.allclose(outs[0][0], head.conv_cls(shared), atol=1e-6)
    # Shared tower followed by branch towers also works.
    head = make_head(num_share_convs=1, stacked_convs=1)
    assert all(o[0].shape[-2:] == (8, 8) for o in head(feats))


def test_shared_tower_bad_args():
    with pytest.raises(ValueError, match='num_share_convs'):
        make_head(num_share_convs=-1)
    with pytest.raises(ValueError, match='in_channels'):
        make_head(num_share_convs=2, feat_channels=16)
    with pytest.raises(ValueError, match='in_channels'):
        make_head(stacked_convs=0, feat_channels=16)


def test_defaults_match_reference():
    head = make_head()
    assert tuple(head.strides) == STRIDES
    assert head.norm_on_bbox and head.centerness_on_reg
    assert head.center_sampling and head.center_sample_radius == 1.5
    assert head.conv_bias is True
    assert head.test_cfg['nms']['iou_threshold'] == 0.6
    assert head.test_cfg['score_thr'] == 0.05
    assert head.test_cfg['nms_pre'] == 1000
    assert head.test_cfg['max_per_img'] == 100
    assert head.score_sqrt and head.thresh_with_ctr
    assert head.giou_smoothing and not head.clip_boxes
    assert head.num_share_convs == 0 and len(head.share_convs) == 0


def test_top_layer_init():
    torch.manual_seed(0)
    head = make_head()
    head.init_weights()
    w = head.top_layer.weight
    assert abs(w.std().item() - 0.01) < 1e-3
    assert abs(w.mean().item()) < 1e-3
    assert torch.all(head.top_layer.bias == 0)
    cls_bias = head.conv_cls.bias
    assert torch.allclose(cls_bias, torch.full_like(cls_bias, -math.log(99)))


def test_build_by_name():
    head = MODELS.build(
        dict(
            type='BlendMaskFCOSHead',
            num_classes=3,
            in_channels=32,
            feat_channels=32,
            stacked_convs=2,
            norm_cfg=dict(type='GN', num_groups=8)))
    assert isinstance(head, BlendMaskFCOSHead)
    assert isinstance(head, FCOSHead)


def test_targets_match_fcos_head():
    head = make_head()
    ref = FCOSHead(
        num_classes=3,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        strides=STRIDES,
        center_sampling=True,
        norm_on_bbox=True,
        norm_cfg=dict(type='GN', num_groups=8))
    points = head.prior_generator.grid_priors(feat_sizes(8, 8), device='cpu')
    gts = make_gts()
    labels, bbox_targets, gt_inds = head.get_targets(points, gts)
    ref_labels, ref_targets = ref.get_targets(points, gts)
    for lvl in range(len(STRIDES)):
        assert torch.equal(labels[lvl], ref_labels[lvl])
        assert torch.equal(bbox_targets[lvl], ref_targets[lvl])
        assert torch.equal(gt_inds[lvl] >= 0, labels[lvl] < 3)


def test_loss_and_positive_infos():
    torch.manual_seed(0)
    head = make_head()
    feats = make_feats(2, 8, 8)
    outs = head(feats)
    gts = make_gts()
    losses = head.loss_by_feat(*outs, gts, img_metas(2))
    for name in ('loss_cls', 'loss_bbox', 'loss_centerness'):
        assert torch.isfinite(losses[name])
        assert losses[name] > 0
    infos = head.get_positive_infos()
    assert len(infos) == 2

    points = head.prior_generator.grid_priors(feat_sizes(8, 8), device='cpu')
    labels, _, _ = head.get_targets(points, gts)
    num_pos = sum(int((lab < 3).sum()) for lab in labels)
    assert sum(len(info) for info in infos) == num_pos
    for info, gt in zip(infos, gts):
        assert len(info) > 0
        inds = info.pos_assigned_gt_inds
        assert inds.min() >= 0 and inds.max() < len(gt)
        assert torch.equal(info.labels, gt.labels[inds])
        ctr = info.centerness_targets
        assert torch.all(ctr > 0) and torch.all(ctr <= 1)
        assert info.top_feats.shape == (len(info), ATTN)
        assert info.top_feats.requires_grad
        # ltrb targets point back to the assigned GT box
        s = info.strides[:, None]
        box = torch.cat([
            info.points - info.bbox_targets[:, :2] * s,
            info.points + info.bbox_targets[:, 2:] * s
        ], 1)
        assert torch.allclose(box, gt.bboxes[inds], atol=1e-4)
    # top_feats are the forward's attention vectors at those locations
    info = infos[1]
    strides = torch.tensor(STRIDES, dtype=torch.float)
    for i in range(len(info)):
        lvl = int((strides == info.strides[i]).nonzero())
        x, y = ((info.points[i] - info.strides[i] / 2) /
                info.strides[i]).round().long().tolist()
        assert torch.allclose(info.top_feats[i], outs[3][lvl][1, :, y, x])


def test_loss_empty_gt():
    head = make_head()
    outs = head(make_feats(1, 8, 8))
    empty = InstanceData(
        bboxes=torch.zeros((0, 4)),
        labels=torch.zeros((0, ), dtype=torch.long))
    losses = head.loss_by_feat(*outs, [empty], img_metas(1))
    assert losses['loss_cls'] > 0
    assert losses['loss_bbox'] == 0
    assert losses['loss_centerness'] == 0
    infos = head.get_positive_infos()
    assert len(infos) == 1 and len(infos[0]) == 0
    assert infos[0].top_feats.shape == (0, ATTN)


def test_loss_through_base_head():
    head = make_head(giou_smoothing=False)
    samples = []
    for gt in make_gts():
        sample = DetDataSample(metainfo=img_metas(1)[0])
        sample.gt_instances = gt
        samples.append(sample)
    losses = head.loss(make_feats(2, 8, 8), samples)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    assert all(torch.isfinite(v) for v in losses.values())


def test_smoothed_giou_hand_computed():
    # pred x in [-1, 1], y in [-1, 1]; target x in [0, 2], y in [0, 2]:
    # A_p = 4, A_t = 4, I = 1, U = 7, C = 9
    # iou = (1 + 1) / (7 + 1) = 0.25, giou = 0.25 - (9 - 7) / 9
    pred = torch.tensor([[1., 1., 1., 1.], [1., 1., 1., 1.]])
    target = torch.tensor([[0., 0., 2., 2.], [2., 2., 2., 2.]])
    loss = smoothed_giou_loss(pred, target)
    # second: nested, I = 4, U = 16, C = 16 -> iou = 5 / 17, giou = iou
    expected = torch.tensor([1 - (0.25 - 2 / 9), 1 - 5 / 17])
    assert torch.allclose(loss, expected)


def test_loss_bbox_uses_smoothed_giou():
    head = make_head()
    outs = head(make_feats(1, 8, 8))
    gts = make_gts()[1:]
    losses = head.loss_by_feat(*outs, gts, img_metas(1))
    info = head.get_positive_infos()[0]
    points = head.prior_generator.grid_priors(feat_sizes(8, 8), device='cpu')
    flat = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, 4) for b in outs[1]])
    offsets = [0]
    for p in points:
        offsets.append(offsets[-1] + len(p))
    strides = list(STRIDES)
    idx = []
    for p, s in zip(info.points, info.strides.tolist()):
        lvl = strides.index(int(s))
        x, y = ((p - s / 2) / s).round().long().tolist()
        w = feat_sizes(8, 8)[lvl][1]
        idx.append(offsets[lvl] + y * w + x)
    pred = flat[idx]
    ctr = info.centerness_targets
    expected = (smoothed_giou_loss(pred, info.bbox_targets) *
                ctr).sum() / ctr.sum()
    assert torch.allclose(losses['loss_bbox'], expected)


def logit(p):
    return math.log(p / (1 - p))


def controlled_outputs(batch=1):
    """Near-zero outputs except three level-0 locations (8x8 at stride 8).

    A: (row 0, col 0), class 1, cls 0.9, ctr 0.5 -> kept, sqrt(0.45).
    B: (row 3, col 3), class 0, cls 0.2, ctr 0.2 -> cls * ctr = 0.04.
    C: (row 7, col 7), point (60, 60), class 2, cls 0.8, ctr 0.9,
       ltrb (10, 10, 20, 20) -> box (50, 50, 80, 80), crosses the image.
    """
    sizes = feat_sizes(8, 8)
    cls = [torch.full((batch, 3, h, w), -20.) for h, w in sizes]
    ctr = [torch.full((batch, 1, h, w), -20.) for h, w in sizes]
    reg = [torch.full((batch, 4, h, w), 4.) for h, w in sizes]
    top = [
        torch.arange(batch * ATTN * h * w,
                     dtype=torch.float).reshape(batch, ATTN, h, w)
        for h, w in sizes
    ]
    cls[0][:, 1, 0, 0] = logit(0.9)
    ctr[0][:, 0, 0, 0] = logit(0.5)
    cls[0][:, 0, 3, 3] = logit(0.2)
    ctr[0][:, 0, 3, 3] = logit(0.2)
    cls[0][:, 2, 7, 7] = logit(0.8)
    ctr[0][:, 0, 7, 7] = logit(0.9)
    reg[0][:, :, 7, 7] = torch.tensor([10., 10., 20., 20.])
    return cls, reg, ctr, top


def predict(head, rescale=False, scale_factor=(1., 1.)):
    head.eval()
    metas = [dict(img_shape=(64, 64), scale_factor=scale_factor)]
    return head.predict_by_feat(
        *controlled_outputs(), batch_img_metas=metas, rescale=rescale)[0]


def test_predict_score_sqrt_and_threshold():
    res = predict(make_head())
    assert len(res) == 2
    order = res.scores.argsort(descending=True)
    res = res[order]
    assert torch.allclose(res.scores,
                          torch.tensor([math.sqrt(0.72),
                                        math.sqrt(0.45)]))
    assert res.labels.tolist() == [2, 1]
    assert torch.allclose(res.bboxes[1], torch.tensor([0., 0., 8., 8.]))
    # top_feats of each detection = attention vector at its location
    top = controlled_outputs()[3][0][0]
    assert res.top_feats.shape == (2, ATTN)
    assert torch.equal(res.top_feats[0], top[:, 7, 7])
    assert torch.equal(res.top_feats[1], top[:, 0, 0])


def test_predict_without_ctr_threshold_and_sqrt():
    res = predict(make_head(thresh_with_ctr=False))
    # B (cls 0.2 > 0.05) now survives, scored sqrt(0.04)
    assert len(res) == 3
    assert torch.isclose(res.scores.min(), torch.tensor(0.2))
    res = predict(make_head(score_sqrt=False))
    assert torch.allclose(res.scores.sort().values, torch.tensor([0.45, 0.72]))


def test_predict_clipping():
    res = predict(make_head())
    box_c = res.bboxes[res.labels == 2][0]
    assert torch.allclose(box_c, torch.tensor([50., 50., 80., 80.]))
    res = predict(make_head(clip_boxes=True))
    box_c = res.bboxes[res.labels == 2][0]
    assert torch.allclose(box_c, torch.tensor([50., 50., 64., 64.]))


def test_predict_rescale():
    res = predict(make_head(), rescale=True, scale_factor=(2., 2.))
    box_c = res.bboxes[res.labels == 2][0]
    assert torch.allclose(box_c, torch.tensor([25., 25., 40., 40.]))


def test_predict_through_base_head():
    head = make_head()
    head.eval()
    sample = DetDataSample(metainfo=img_metas(1)[0])
    with torch.no_grad():
        res = head.predict(make_feats(1, 9, 7), [sample])
    assert len(res) == 1
    assert res[0].top_feats.shape[1] == ATTN
    assert len(res[0].bboxes) == len(res[0].scores) <= 100
