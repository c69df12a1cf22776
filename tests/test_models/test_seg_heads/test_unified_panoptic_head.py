# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of UnifiedPanopticHead (dr1mask spec section 5, paper Eq. 9)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import batched_nms
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData

from mmdr1.models.layers.aligned_upsample import AlignedUpsample
from mmdr1.models.seg_heads.unified_panoptic_head import UnifiedPanopticHead

T, S, C = 3, 2, 4
IGN = 255


def make_head(**kwargs):
    cfg = dict(in_channels=C, num_things_classes=T, num_stuff_classes=S)
    cfg.update(kwargs)
    return UnifiedPanopticHead(**cfg)


def test_init_and_registry():
    head = MODELS.build(
        dict(
            type='UnifiedPanopticHead',
            in_channels=8,
            num_things_classes=T,
            num_stuff_classes=S))
    assert isinstance(head, UnifiedPanopticHead)
    assert head.conv_stuff.weight.shape == (S, 8, 1, 1)
    assert torch.all(head.conv_stuff.bias == 0)
    assert head.conv_stuff.weight.abs().max() < 0.1
    default = UnifiedPanopticHead()
    assert default.conv_stuff.out_channels == 53
    assert default.conv_stuff.in_channels == 64
    with pytest.raises(ValueError):
        make_head(upsample='nearest')


def test_forward():
    torch.manual_seed(0)
    head = make_head()
    basis = torch.randn(2, C, 5, 6)
    rows = [torch.randn(3, C), torch.randn(0, C)]
    logits = head(basis, rows)
    assert [tuple(x.shape) for x in logits] == [(S + 3, 5, 6), (S, 5, 6)]
    stuff = head.conv_stuff(basis)
    for i in range(2):
        torch.testing.assert_close(logits[i][:S], stuff[i])
        inst = (rows[i] @ basis[i].reshape(C, -1)).reshape(-1, 5, 6)
        torch.testing.assert_close(logits[i][S:], inst)
    with pytest.raises(ValueError):
        head(basis, rows[:1])
    with pytest.raises(ValueError):
        head(basis, [torch.randn(2, C + 1), torch.randn(0, C)])


def test_instance_rows():
    torch.manual_seed(0)
    embeds = torch.randn(7, C)
    inds = torch.tensor([0, 2, 2, 0, 3, 2, 0])
    rows, valid = UnifiedPanopticHead.instance_rows(embeds, inds, 5)
    assert rows.shape == (5, C)
    assert valid.tolist() == [True, False, True, True, False]
    for i in range(5):
        sel = [p for p in range(7) if int(inds[p]) == i]
        ref = embeds[sel].mean(0) if sel else torch.zeros(C)
        torch.testing.assert_close(rows[i], ref)
    rows, valid = UnifiedPanopticHead.instance_rows(
        torch.zeros(0, C), torch.zeros(0, dtype=torch.long), 0)
    assert rows.shape == (0, C) and valid.shape == (0, )
    rows, valid = UnifiedPanopticHead.instance_rows(
        torch.zeros(0, C), torch.zeros(0, dtype=torch.long), 2)
    assert torch.all(rows == 0) and rows.shape == (2, C)
    assert not valid.any()


def test_merge_nms_rows():
    torch.manual_seed(0)
    boxes = torch.tensor([
        [0., 0., 10., 10.],  # 0: kept, class 0
        [6., 0., 16., 10.],  # 1: kept (IoU 0.25 with 0), class 0
        [3., 0., 13., 10.],  # 2: IoU 0.54 with 0 and 1 -> absorbed by 0
        [0., 0., 10., 10.],  # 3: same box as 0 but class 1: kept
        [0., 1., 10., 11.],  # 4: IoU 0.82 with 3 -> absorbed by 3
    ])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = torch.tensor([0, 0, 0, 1, 1])
    embeds = torch.randn(5, C)
    iou_thr = 0.5
    _, keep = batched_nms(boxes, scores, labels,
                          dict(type='nms', iou_threshold=iou_thr))
    assert keep.tolist() == [0, 1, 3]
    rows = UnifiedPanopticHead.merge_nms_rows(boxes, scores, labels, embeds,
                                              keep, iou_thr)
    ref = torch.stack([(embeds[0] + embeds[2]) / 2, embeds[1],
                       (embeds[3] + embeds[4]) / 2])
    torch.testing.assert_close(rows, ref)
    own = UnifiedPanopticHead.merge_nms_rows(
        boxes, scores, labels, embeds, keep, iou_thr, mode='own')
    torch.testing.assert_close(own, embeds[keep])
    # max_per_img drops detection 3: candidate 4 matches no kept box
    rows = UnifiedPanopticHead.merge_nms_rows(boxes, scores, labels, embeds,
                                              keep[:2], iou_thr)
    torch.testing.assert_close(rows, ref[:2])
    empty = UnifiedPanopticHead.merge_nms_rows(boxes, scores, labels, embeds,
                                               keep[:0], iou_thr)
    assert empty.shape == (0, C)
    with pytest.raises(ValueError):
        UnifiedPanopticHead.merge_nms_rows(
            boxes, scores, labels, embeds, keep, iou_thr, mode='max')


def make_sample(sem, masks, labels):
    sample = DetDataSample()
    sample.gt_sem_seg = PixelData(sem_seg=torch.as_tensor(sem)[None])
    h, w = sem.shape
    sample.gt_instances = InstanceData(
        masks=BitmapMasks(np.asarray(masks, dtype=np.uint8), h, w),
        labels=torch.as_tensor(labels, dtype=torch.long))
    return sample


def panoptic_sample():
    """8x8 image: 2 stuff classes, 3 instances, crowd and void."""
    sem = np.full((8, 8), IGN, dtype=np.int64)
    sem[0:2] = T  # stuff 0
    sem[2:4] = T + 1  # stuff 1
    sem[4:6, 0:4] = 0  # instance 0
    sem[4:6, 4:8] = 1  # instance 1
    sem[6] = 2  # crowd (thing pixels without an instance mask)
    sem[7, 0:2] = 0  # instance 2 (invalid: no row)
    masks = np.zeros((3, 8, 8), dtype=np.uint8)
    masks[0, 4:6, 0:4] = 1
    masks[1, 4:6, 3:8] = 1  # overlaps instance 0 at column 3: 1 wins
    masks[2, 7, 0:2] = 1
    return make_sample(sem, masks, [0, 1, 0])


def test_get_targets():
    head = make_head()
    stuff_only = np.full((8, 8), T + 1, dtype=np.int64)
    stuff_only[0, 0] = IGN
    stuff_only[1, 1] = T
    samples = [
        panoptic_sample(),
        make_sample(stuff_only, np.zeros((0, 8, 8)), []),
    ]
    valid = [torch.tensor([True, True, False]), None]
    targets = head.get_targets(samples, valid, (8, 12))
    assert targets.shape == (2, 8, 12) and targets.dtype == torch.long

    ref = torch.full((8, 12), IGN, dtype=torch.long)
    ref[0:2, :8] = 0
    ref[2:4, :8] = 1
    ref[4:6, 0:3] = S + 0
    ref[4:6, 3:8] = S + 1
    assert torch.equal(targets[0], ref)

    ref = torch.full((8, 12), IGN, dtype=torch.long)
    ref[:, :8] = 1
    ref[0, 0] = IGN
    ref[1, 1] = 0
    assert torch.equal(targets[1], ref)

    # all valid (valid_list None): instance 2 gets its channel
    targets = head.get_targets(samples[:1], None, (8, 8))
    assert torch.all(targets[0, 7, 0:2] == S + 2)
    with pytest.raises(ValueError):
        head.get_targets(samples[:1], [torch.ones(2, dtype=torch.bool)],
                         (8, 8))


def manual_loss(head, basis, rows, targets, mode):
    total, count = 0., 0
    for i, r in enumerate(rows):
        logit = torch.cat([
            head.conv_stuff(basis[i:i + 1])[0],
            torch.einsum('kc,chw->khw', r, basis[i])
        ])[None]
        size = targets.shape[-2:]
        if mode == 'aligned':
            up = AlignedUpsample(4)(logit)[:, :, :size[0], :size[1]]
        else:
            up = F.interpolate(
                logit, size=size, mode='bilinear', align_corners=False)
        total = total + F.cross_entropy(
            up, targets[i:i + 1], ignore_index=IGN, reduction='sum')
        count += int((targets[i] != IGN).sum())
    return total / count


@pytest.mark.parametrize('mode', ['aligned', 'bilinear'])
def test_loss(mode):
    torch.manual_seed(0)
    head = make_head(upsample=mode, loss_weight=2.0)
    basis = torch.randn(2, C, 3, 3, requires_grad=True)
    rows = [torch.randn(2, C, requires_grad=True), torch.randn(0, C)]
    targets = torch.randint(0, S + 2, (2, 10, 11))
    targets[1] = torch.randint(0, S, (10, 11))
    targets[:, 0] = IGN
    targets[0, :, -1] = IGN
    loss = head.loss(basis, rows, targets)['loss_panoptic']
    ref = manual_loss(head, basis, rows, targets, mode)
    torch.testing.assert_close(loss, 2.0 * ref)
    loss.backward()
    assert head.conv_stuff.weight.grad.abs().sum() > 0
    assert rows[0].grad.abs().sum() > 0
    assert basis.grad.abs().sum() > 0

    # targets outside the S + n_i channels
    bad = targets.clone()
    bad[1, 5, 5] = S
    with pytest.raises(ValueError):
        head.loss(basis, rows, bad)


def test_loss_all_ignored():
    head = make_head()
    basis = torch.randn(2, C, 2, 2, requires_grad=True)
    rows = [torch.randn(1, C), torch.randn(0, C)]
    targets = torch.full((2, 8, 8), IGN, dtype=torch.long)
    loss = head.loss(basis, rows, targets)['loss_panoptic']
    assert torch.isfinite(loss) and float(loss.detach()) == 0
    assert loss.requires_grad
    loss.backward()
    assert torch.isfinite(basis.grad).all()


def identity_head(num_inst, **kwargs):
    """Head whose logits equal the basis channels (C = S + num_inst)."""
    chans = S + num_inst
    head = UnifiedPanopticHead(
        in_channels=chans, num_things_classes=T, num_stuff_classes=S, **kwargs)
    with torch.no_grad():
        head.conv_stuff.weight.copy_(torch.eye(chans)[:S, :, None, None])
        head.conv_stuff.bias.zero_()
    return head, torch.eye(chans)[S:]


def reference_ids(argmax, labels, area_limit):
    """The id convention, written with Python loops."""
    pan = torch.full_like(argmax, -1)
    next_id = 1
    for k, label in enumerate(labels):
        mask = argmax == S + k
        if mask.any():
            pan[mask] = label + next_id * INSTANCE_OFFSET
            next_id += 1
    for j in range(S):
        mask = argmax == j
        pan[mask] = T + j if int(mask.sum()) >= area_limit else T + S
    return pan


def assert_valid_panoptic(pan):
    for v in torch.unique(pan).tolist():
        if v >= INSTANCE_OFFSET:
            assert v % INSTANCE_OFFSET < T
        else:
            assert T <= v <= T + S


def test_predict():
    # instances: 0 (label 2) owns nothing, 1 (label 0), 2 (label 1)
    head, rows = identity_head(3, stuff_area_limit=64)
    coarse = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [3, 3, 1, 4],
                           [3, 3, 1, 4]])
    basis = 10. * F.one_hot(coarse, S + 3).permute(2, 0, 1)[None].float()
    basis = torch.cat([basis, torch.zeros(1, S + 3, 4, 4)])
    labels = torch.tensor([2, 0, 1])
    dets = [
        InstanceData(labels=labels, scores=torch.tensor([.9, .8, .7])),
        InstanceData(
            labels=torch.zeros(0, dtype=torch.long), scores=torch.zeros(0))
    ]
    metas = [
        dict(
            batch_input_shape=(16, 16), img_shape=(16, 16),
            ori_shape=(16, 16)),
        dict(
            batch_input_shape=(16, 16), img_shape=(16, 16), ori_shape=(16, 16))
    ]
    results = head.predict(basis, [rows, rows[:0]], dets, metas)
    assert len(results) == 2 and isinstance(results[0], PixelData)
    pan = results[0].sem_seg
    assert pan.shape == (1, 16, 16) and pan.dtype == torch.int32
    pan = pan[0]
    assert int(pan[2, 2]) == T  # stuff 0
    assert int(pan[13, 1]) == 0 + 1 * INSTANCE_OFFSET  # instance 1
    assert int(pan[13, 14]) == 1 + 2 * INSTANCE_OFFSET  # instance 2
    assert int(pan[13, 9]) == T + S  # stuff 1 is small: void
    assert set(torch.unique(pan).tolist()) == {
        T, T + S, INSTANCE_OFFSET, 1 + 2 * INSTANCE_OFFSET
    }
    areas = results[0].instance_areas
    assert areas[0] == 0 and areas[1] > 0 and areas[2] > 0
    assert sum(areas) == int((pan >= INSTANCE_OFFSET).sum())
    argmax = AlignedUpsample(4)(basis[:1])[0].argmax(0)
    ref = reference_ids(argmax, labels.tolist(), 64)
    assert torch.equal(pan.long(), ref)
    # the second image (no instances, all-zero logits: stuff 0 everywhere)
    assert torch.all(results[1].sem_seg == T)
    assert results[1].instance_areas == []


@pytest.mark.parametrize('mode', ['aligned', 'bilinear'])
def test_predict_rescale(mode):
    torch.manual_seed(0)
    head, rows = identity_head(3, stuff_area_limit=20, upsample=mode)
    basis = torch.randn(1, S + 3, 4, 4) * 3
    labels = [1, 2, 0]
    dets = [InstanceData(labels=torch.tensor(labels), scores=torch.ones(3))]
    meta = dict(
        batch_input_shape=(16, 16), img_shape=(14, 15), ori_shape=(28, 30))
    pan = head.predict(basis, [rows], dets, [meta])[0].sem_seg
    assert pan.shape == (1, 28, 30)
    assert_valid_panoptic(pan)
    if mode == 'aligned':
        seg = AlignedUpsample(4)(basis)
    else:
        seg = F.interpolate(
            basis, size=(16, 16), mode='bilinear', align_corners=False)
    seg = F.interpolate(
        seg[:, :, :14, :15],
        size=(28, 30),
        mode='bilinear',
        align_corners=False)
    ref = reference_ids(seg[0].argmax(0), labels, 20)
    assert torch.equal(pan[0].long(), ref)
    # rescale=False: the padded input size, as BaseSemanticHead.predict
    pan = head.predict(basis, [rows], dets, [meta], rescale=False)[0]
    assert pan.sem_seg.shape == (1, 16, 16)
    assert_valid_panoptic(pan.sem_seg)
    with pytest.raises(ValueError):
        head.predict(basis, [rows], [dets[0][:2]], [meta])


def test_restrict_to_boxes():
    head = UnifiedPanopticHead(
        in_channels=4,
        num_things_classes=2,
        num_stuff_classes=1,
        upsample='bilinear',
        stuff_area_limit=0,
        restrict_to_boxes=True)
    logits = torch.zeros((1, 3, 8, 8))
    logits[0, 1] = 5.  # instance 0 wins everywhere unrestricted
    logits[0, 2] = 1.
    boxes = torch.tensor([[0., 0., 4., 4.], [0., 0., 8., 8.]])
    out = UnifiedPanopticHead.box_restrict(logits, boxes, 1)
    am = out[0].argmax(0)
    assert (am[:4, :4] == 1).all() and (am[4:, :] == 2).all()
    assert (am[:, 4:] == 2).all()
    assert torch.equal(out[0, 0], logits[0, 0])
    # the loss sees the restricted logits
    basis = torch.randn(1, 4, 2, 2, requires_grad=True)
    rows = [torch.randn(2, 4)]
    target = torch.full((1, 8, 8), 255, dtype=torch.long)
    target[0, 6, 6] = 1  # instance 0 outside its box: huge loss
    loss = head.loss(basis, rows, target, inst_boxes=[boxes])['loss_panoptic']
    assert loss.item() > 1e3
    assert head.loss(basis, rows, target)['loss_panoptic'].item() < 100


def test_choice_args_checked():
    for name in ('instance_overlap', 'thing_void_thr'):
        with pytest.raises(ValueError, match=name):
            make_head(**{name: 1.5})
        assert getattr(make_head(), name) is None  # the paper's layer


def test_overlap_filter_hand_made():
    # S = 1 (logit 0 everywhere), four instances on an 8 x 8 map
    logits = torch.full((5, 8, 8), -1.)
    logits[0] = 0.
    logits[1, :, :4] = 1.  # inst 0, score .5: inside inst 1's mask
    logits[2, :, :5] = 2.  # inst 1, score .9
    logits[3, :, 6:] = 1.  # inst 2, score .3: on its own
    # inst 3 (score .95) beats stuff nowhere: empty standalone mask
    scores = torch.tensor([.5, .9, .3, .95])
    keep = UnifiedPanopticHead.overlap_filter(logits, scores, 1, 0.5)
    assert keep.tolist() == [False, True, True, False]
    keep = UnifiedPanopticHead.overlap_filter(logits, scores, 1, 1.0)
    assert keep.tolist() == [True, True, True, False]
    # no stuff channel: every pixel is in every standalone mask
    keep = UnifiedPanopticHead.overlap_filter(logits[1:], scores, 0, 0.5)
    assert keep.tolist() == [False, False, False, True]


@pytest.mark.parametrize('overlap', [0.0, 0.3, 0.7])
def test_overlap_filter_is_greedy_by_score(overlap):
    torch.manual_seed(int(overlap * 10))
    logits = torch.randn(S + 6, 12, 10) * 2
    scores = torch.rand(6)
    keep = UnifiedPanopticHead.overlap_filter(logits, scores, S, overlap)
    alone = logits[S:] > logits[:S].max(0).values
    for k in range(6):
        higher = [j for j in range(6) if keep[j] and scores[j] > scores[k]]
        used = torch.zeros_like(alone[0])
        for j in higher:
            used |= alone[j]
        area = int(alone[k].sum())
        ok = area > 0 and int((alone[k] & used).sum()) <= overlap * area
        assert bool(keep[k]) == ok, k


def test_predict_instance_overlap():
    # instance 0 (score .9) and its duplicate 1 (score .5) share rows
    # 4..15; the duplicate has the higher logit on columns 8..15
    head, rows = identity_head(2, stuff_area_limit=0, upsample='bilinear')
    basis = torch.zeros(1, S + 2, 16, 16)
    basis[0, 0] = 1.  # stuff 0 elsewhere
    basis[0, S, 4:] = 3.
    basis[0, S + 1, 4:, 8:] = 4.
    basis[0, S + 1, 4:, :8] = 2.
    dets = [
        InstanceData(
            labels=torch.tensor([0, 0]), scores=torch.tensor([.9, .5]))
    ]
    meta = dict(
        batch_input_shape=(64, 64), img_shape=(64, 64), ori_shape=(64, 64))
    plain = head.predict(basis, [rows], dets, [meta])[0]
    assert all(a > 0 for a in plain.instance_areas)  # the object is split
    head.instance_overlap = 0.5
    out = head.predict(basis, [rows], dets, [meta])[0]
    assert out.instance_areas[1] == 0
    assert out.instance_areas[0] == sum(plain.instance_areas)
    # = the plain argmax without the rejected channel
    up = F.interpolate(basis, size=(64, 64), mode='bilinear')[0, :S + 1]
    ref = reference_ids(up.argmax(0), [0], 0)
    assert torch.equal(out.sem_seg[0].long(), ref)


def test_predict_thing_void():
    head, rows = identity_head(
        1, stuff_area_limit=300, upsample='bilinear', thing_void_thr=0.5)
    basis = torch.zeros(1, S + 1, 8, 8)
    basis[0, 0, :, :4] = 1.  # stuff 0 left (512 px at 32 x 32)
    basis[0, 1, :, 4:] = 1.  # stuff 1 right
    basis[0, S, :2, :2] = 5.  # the instance, top left
    probs = torch.zeros(8, 8)
    probs[:2, :] = 0.9  # rows 0-1: "thing" everywhere
    probs[6:, 4:] = 0.9  # a thing-looking part of stuff 1
    dets = [InstanceData(labels=torch.tensor([2]), scores=torch.ones(1))]
    meta = dict(
        batch_input_shape=(32, 32), img_shape=(32, 32), ori_shape=(32, 32))
    with pytest.raises(ValueError, match='thing_probs'):
        head.predict(basis, [rows], dets, [meta])
    with pytest.raises(ValueError, match='thing_probs'):
        head.predict(basis, [rows], dets, [meta], thing_probs=[probs[:4]])
    pan = head.predict(basis, [rows], dets, [meta], thing_probs=[probs])
    pan = pan[0].sem_seg[0]
    up_p = F.interpolate(probs[None, None], size=(32, 32), mode='bilinear')
    up = F.interpolate(basis, size=(32, 32), mode='bilinear')[0].argmax(0)
    inst = up == S
    void = (up < S) & (up_p[0, 0] > 0.5)
    assert (pan[inst] == 2 + INSTANCE_OFFSET).all()  # instances untouched
    assert (pan[void] == T + S).all()
    assert (pan[~inst & ~void] != T + S).any()
    # stuff 1 lost its voided part: below the area limit -> void too
    left = ~inst & ~void & (up == 0)
    right = ~inst & ~void & (up == 1)
    assert int(left.sum()) >= 300 > int(right.sum())
    assert (pan[left] == T).all() and (pan[right] == T + S).all()
    # thr 1.0 voids nothing: the plain result
    head.thing_void_thr = 1.0
    same = head.predict(basis, [rows], dets, [meta], thing_probs=[probs])
    head.thing_void_thr = None
    plain = head.predict(basis, [rows], dets, [meta])
    assert torch.equal(same[0].sem_seg, plain[0].sem_seg)
