# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of BoxFillFusionHead (spatialflow spec section 5.3)."""
import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from mmdr1.models import BoxFillFusionHead

register_all_modules(init_default_scope=False)

T, S = 3, 2
VOID = T + S
OTHER = S  # the "things"/"other" stuff channel (last)


def make_head(**kwargs):
    return BoxFillFusionHead(
        num_things_classes=T, num_stuff_classes=S, **kwargs)


def instances(boxes, scores, labels, masks):
    return InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=masks.bool())


def logits_from(sem):
    """One-hot logits (S + 1, H, W) from a channel map."""
    return torch.nn.functional.one_hot(sem.long(), S + 1).permute(2, 0,
                                                                  1).float()


def fuse(head, res, seg):
    out = head.predict([res], [seg])
    assert len(out) == 1
    pan = out[0].sem_seg
    assert pan.shape == (1, ) + tuple(seg.shape[-2:])
    assert pan.dtype == torch.int32
    return pan[0].long()


def check_ids(pan):
    """Every id valid; instance numbers are 1..K without gaps."""
    ids = torch.unique(pan).tolist()
    inst = sorted(i // INSTANCE_OFFSET for i in ids if i >= INSTANCE_OFFSET)
    for i in ids:
        if i >= INSTANCE_OFFSET:
            assert i % INSTANCE_OFFSET < T
        else:
            assert T <= i <= VOID
    assert inst == list(range(1, len(inst) + 1))
    return ids


def test_defaults_and_config():
    head = BoxFillFusionHead()
    assert head.num_things_classes == 80 and head.num_stuff_classes == 53
    assert head.test_cfg == dict(
        instance_score_thr=0.37,
        overlap_thr=0.37,
        stuff_area_limit=4900,
        use_bbox_fill=True,
        bbox_overlap_thr=0.5,
        bbox_score_thr=None)
    assert head.loss() == {}
    # test_cfg (the detector's test_cfg.panoptic) overrides the arguments
    built = MODELS.build(
        dict(
            type='BoxFillFusionHead',
            overlap_thr=0.2,
            stuff_area_limit=10,
            test_cfg=dict(stuff_area_limit=20, use_bbox_fill=False)))
    assert built.test_cfg.overlap_thr == 0.2
    assert built.test_cfg.stuff_area_limit == 20
    assert built.test_cfg.use_bbox_fill is False
    with pytest.raises(KeyError, match='unknown test_cfg'):
        BoxFillFusionHead(test_cfg=dict(mask_overlap=0.5))


def test_things_overlap_and_stuff():
    h, w = 10, 20
    masks = torch.zeros((4, h, w), dtype=torch.bool)
    masks[0, 0:4, 0:10] = True  # A .9
    masks[1, 0:4, 5:15] = True  # B .8: 50 % covered by A -> skipped
    masks[2, 6:10, 0:10] = True  # C .3 < 0.37 -> dropped
    masks[3, 2:6, 8:18] = True  # D .6: 4 / 40 covered -> kept
    res = instances([[0, 0, 0, 0]] * 4, [0.9, 0.8, 0.3, 0.6], [0, 1, 2, 1],
                    masks)
    sem = torch.full((h, w), OTHER)
    sem[6:, :10] = 0
    sem[6:, 10:] = 1
    head = make_head(stuff_area_limit=30, use_bbox_fill=False)
    pan = fuse(head, res, logits_from(sem))
    check_ids(pan)
    a, d = pan[0, 0].item(), pan[5, 15].item()
    assert a == 0 + INSTANCE_OFFSET and d == 1 + 2 * INSTANCE_OFFSET
    assert (pan == a).sum() == 40 and (pan == d).sum() == 36  # A keeps 2x2
    assert (pan[6:, :10] == T).all() and (pan[6:, 10:] == T + 1).all()
    # 'other' pixels no mask covers stay void
    assert (pan == VOID).sum() == h * w - 40 - 36 - 80
    # the stuff area limit voids both classes (40 pixels each)
    pan = fuse(make_head(stuff_area_limit=41), res, logits_from(sem))
    assert not ((pan == T) | (pan == T + 1)).any()
    pan = fuse(make_head(stuff_area_limit=40), res, logits_from(sem))
    assert (pan == T).sum() == 40 and (pan == T + 1).sum() == 40


def test_stuff_area_limit_default_and_unassigned_part_only():
    h, w = 80, 100
    sem = torch.full((h, w), OTHER)
    sem[:70, :70] = 0  # 4900 pixels: kept
    sem[:, 70:] = 1  # 2400 pixels: void
    no_inst = instances([], [], [], torch.zeros((0, h, w)))
    pan = fuse(make_head(), no_inst, logits_from(sem))
    assert (pan == T).sum() == 4900 and (pan == VOID).sum() == h * w - 4900
    # an instance covering one pixel of stuff 0 drops it below 4900
    masks = torch.zeros((1, h, w), dtype=torch.bool)
    masks[0, 0, 0] = True
    res = instances([[0, 0, 1, 1]], [0.5], [2], masks)
    pan = fuse(make_head(use_bbox_fill=False), res, logits_from(sem))
    assert pan[0, 0] == 2 + INSTANCE_OFFSET
    assert not (pan == T).any()


def test_no_instances_and_no_stuff():
    h, w = 6, 7
    seg = torch.zeros((S + 1, h, w))
    seg[1] = 1.
    no_inst = instances([], [], [], torch.zeros((0, h, w)))
    pan = fuse(make_head(stuff_area_limit=1), no_inst, seg)
    assert (pan == T + 1).all()
    # no stuff: everything 'other' -> only things and box fill
    masks = torch.zeros((1, h, w), dtype=torch.bool)
    masks[0, 1:3, 1:3] = True
    res = instances([[1, 1, 5, 5]], [0.9], [1], masks)
    pan = fuse(make_head(), res, logits_from(torch.full((h, w), OTHER)))
    assert set(check_ids(pan)) == {1 + INSTANCE_OFFSET, VOID}
    assert (pan[1:5, 1:5] == 1 + INSTANCE_OFFSET).all()  # mask + box fill
    assert (pan == VOID).sum() == h * w - 16
    pan = fuse(
        make_head(use_bbox_fill=False), res,
        logits_from(torch.full((h, w), OTHER)))
    assert (pan == 1 + INSTANCE_OFFSET).sum() == 4


def test_box_fill_reuses_accepted_id_and_creates_new_for_rejected():
    h, w = 20, 30
    masks = torch.zeros((3, h, w), dtype=torch.bool)
    masks[0, 2:8, 2:8] = True  # A: accepted
    masks[1, 2:8, 3:9] = True  # B: 30/36 covered by A -> rejected
    # C: empty mask, box in free space -> new segment from the box
    res = instances([[2, 2, 12, 10], [3, 2, 9, 8], [20.7, 10.2, 26.9, 15.5]],
                    [0.9, 0.8, 0.7], [0, 1, 2], masks)
    sem = torch.full((h, w), OTHER)
    pan = fuse(make_head(), res, logits_from(sem))
    ids = check_ids(pan)
    a = 0 + INSTANCE_OFFSET
    # A's box [2:10, 2:12]: its unassigned 80 - 36 = 44 px >= 50 % -> A's id
    assert (pan[2:10, 2:12] == a).all() and (pan == a).sum() == 80
    # B's box is entirely A's now: skipped, B never appears
    assert not any(i % INSTANCE_OFFSET == 1
                   for i in ids if i >= INSTANCE_OFFSET)
    # C: box truncated to [10:15, 20:26] -> the 2nd instance, label 2
    c = 2 + 2 * INSTANCE_OFFSET
    assert (pan[10:15, 20:26] == c).all() and (pan == c).sum() == 30
    assert set(ids) == {a, c, VOID}


def test_box_fill_thresholds():
    h, w = 10, 10
    sem = torch.full((h, w), OTHER)
    sem[:, :5] = 0  # stuff 0: 50 pixels
    empty = torch.zeros((1, h, w), dtype=torch.bool)
    head = make_head(stuff_area_limit=1)
    # box [0:4, 3:7]: 8 of 16 pixels unassigned = 0.5 >= 0.5 -> filled
    res = instances([[3, 0, 7, 4]], [0.5], [1], empty)
    pan = fuse(head, res, logits_from(sem))
    assert (pan == 1 + INSTANCE_OFFSET).sum() == 8
    assert (pan[0:4, 5:7] == 1 + INSTANCE_OFFSET).all()
    assert (pan[:, :5] == T).all()  # stuff is never overwritten
    # box [0:4, 2:7]: 8 / 20 < 0.5 -> skipped
    res = instances([[2, 0, 7, 4]], [0.5], [1], empty)
    assert not (fuse(head, res, logits_from(sem)) >= INSTANCE_OFFSET).any()
    # a stricter bbox_overlap_thr skips the 0.5 box
    res = instances([[3, 0, 7, 4]], [0.5], [1], empty)
    pan = fuse(
        make_head(stuff_area_limit=1, bbox_overlap_thr=0.6), res,
        logits_from(sem))
    assert not (pan >= INSTANCE_OFFSET).any()
    # score below the threshold: no box fill; bbox_score_thr lowers it
    res = instances([[6, 0, 9, 4]], [0.3], [1], empty)
    assert not (fuse(head, res, logits_from(sem)) >= INSTANCE_OFFSET).any()
    pan = fuse(
        make_head(stuff_area_limit=1, bbox_score_thr=0.2), res,
        logits_from(sem))
    assert (pan == 1 + INSTANCE_OFFSET).sum() == 12


def test_zero_area_box_is_skipped():
    h, w = 10, 10
    sem = torch.full((h, w), OTHER)
    masks = torch.zeros((3, h, w), dtype=torch.bool)
    # int truncation: x in [3.2, 3.9) -> empty; then a box outside the image
    res = instances([[3.2, 1, 3.9, 9], [12, 12, 15, 15], [0, 0, 2, 2]],
                    [0.9, 0.8, 0.7], [0, 1, 2], masks)
    pan = fuse(make_head(), res, logits_from(sem))
    assert set(check_ids(pan)) == {2 + INSTANCE_OFFSET, VOID}
    assert (pan == 2 + INSTANCE_OFFSET).sum() == 4


def reference_combine(boxes, scores, labels, masks, sem, conf, overlap,
                      area_limit, box_thr):
    """The reference combine_to_panoptic (spec 5.3) in NumPy.

    Returns the segment-id map (0 = unassigned) and {id: (isthing, cat)}.
    """
    pan = np.zeros(sem.shape, dtype=np.int64)
    info, used, next_id = {}, None, 1
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    order = [i for i in order if scores[i] >= conf]
    seg_of = {}
    for i in order:
        mask = masks[i]
        area = mask.sum()
        if area == 0:
            continue
        if used is None:
            inter, used = 0, mask.copy()
        else:
            inter = (used & mask).sum()
        if inter / area > overlap:
            continue
        used = used | mask
        if inter != 0:
            mask = mask & (pan == 0)
        pan[mask] = next_id
        info[next_id] = (True, labels[i])
        seg_of[i] = next_id
        next_id += 1
    for j in np.unique(sem):
        if j == OTHER:
            continue
        left = (sem == j) & (pan == 0)
        if left.sum() < area_limit:
            continue
        pan[left] = next_id
        info[next_id] = (False, j)
        next_id += 1
    for i in order:
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        region = np.zeros(sem.shape, dtype=bool)
        region[y1:y2, x1:x2] = True
        left = region & (pan == 0)
        with np.errstate(invalid='ignore', divide='ignore'):
            ratio = left.sum() / region.sum()
        if ratio < box_thr:
            continue
        seg = seg_of.get(i)
        if seg is None:
            seg = next_id
            info[seg] = (True, labels[i])
            next_id += 1
        pan[left] = seg
    return pan, info


def segments_of_reference(pan, info):
    return sorted((bool(info[s][0]), int(info[s][1]), (pan == s).tobytes())
                  for s in np.unique(pan) if s != 0)


def segments_of_ours(pan):
    out = []
    for v in torch.unique(pan).tolist():
        if v == VOID:
            continue
        isthing = v >= INSTANCE_OFFSET
        cat = v % INSTANCE_OFFSET if isthing else v - T
        out.append((isthing, cat, (pan == v).numpy().tobytes()))
    return sorted(out)


@pytest.mark.parametrize('seed', range(6))
def test_random_cases_match_reference(seed):
    rng = np.random.default_rng(seed)
    h, w, n = 24, 32, 10
    boxes, masks = [], np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        x1, y1 = rng.uniform(0, w - 2), rng.uniform(0, h - 2)
        x2, y2 = rng.uniform(x1, w), rng.uniform(y1, h)
        boxes.append([x1, y1, x2, y2])
        ix1, iy1, ix2, iy2 = int(x1), int(y1), int(np.ceil(x2)), int(
            np.ceil(y2))
        masks[i, iy1:iy2, ix1:ix2] = rng.random((iy2 - iy1, ix2 - ix1)) < 0.4
    masks[n - 1] = False
    scores = rng.random(n)
    labels = rng.integers(0, T, n)
    # mostly 'other', so that box fill has unassigned pixels to paint
    blocks = np.where(
        rng.random((h // 4, w // 4)) < 0.6, OTHER,
        rng.integers(0, S, (h // 4, w // 4)))
    sem = np.kron(blocks, np.ones((4, 4), dtype=np.int64))
    thr = dict(conf=0.3, overlap=0.37, area_limit=20, box_thr=0.5)
    ref_pan, info = reference_combine(boxes, scores.tolist(), labels.tolist(),
                                      masks, sem, **thr)
    res = instances(boxes, scores.tolist(), labels.tolist(),
                    torch.from_numpy(masks))
    head = make_head(
        instance_score_thr=thr['conf'],
        overlap_thr=thr['overlap'],
        stuff_area_limit=thr['area_limit'],
        bbox_overlap_thr=thr['box_thr'])
    pan = fuse(head, res, logits_from(torch.from_numpy(sem)))
    check_ids(pan)
    assert segments_of_ours(pan) == segments_of_reference(ref_pan, info)
