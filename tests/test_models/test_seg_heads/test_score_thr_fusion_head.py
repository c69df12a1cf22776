# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of ScoreThrHeuristicFusionHead (blendmask spec section 12.3)."""
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from mmdr1.models import ScoreThrHeuristicFusionHead

register_all_modules(init_default_scope=False)

T, S = 3, 2


def d2_combine(scores,
               labels,
               masks,
               sem_things_first,
               overlap=0.4,
               stuff_area=4096,
               score_thr=0.45):
    """detectron2's combine_semantic_and_instance_outputs, as in spec 12.3.

    ``sem_things_first`` is the argmax map of logits with "things" at 0 and
    stuff ``j`` at ``1 + j``. Returns a list of (pixel mask, isthing, cat).
    """
    pan = torch.zeros(masks.shape[-2:], dtype=torch.long)
    segments = []
    for i in torch.argsort(-scores).tolist():
        if scores[i] < score_thr:
            break
        mask = masks[i].clone()
        area = int(mask.sum())
        if area == 0:
            continue
        inter = int((mask & (pan > 0)).sum())
        if inter / area > overlap:
            continue
        if inter > 0:
            mask &= pan == 0
        segments.append((mask, True, int(labels[i])))
        pan[mask] = len(segments)
    for lab in torch.unique(sem_things_first).tolist():
        if lab == 0:
            continue
        mask = (sem_things_first == lab) & (pan == 0)
        if int(mask.sum()) < stuff_area:
            continue
        segments.append((mask, False, lab - 1))
        pan[mask] = len(segments)
    return segments


def mmdet_segments(pan):
    """Segments of an mmdet panoptic map (void = T + S dropped)."""
    segments = []
    for value in torch.unique(pan).tolist():
        if value == T + S:
            continue
        mask = pan == value
        if value >= INSTANCE_OFFSET:
            segments.append((mask, True, value % INSTANCE_OFFSET))
        else:
            segments.append((mask, False, value - T))
    return segments


def make_head(**cfg):
    return ScoreThrHeuristicFusionHead(
        num_things_classes=T, num_stuff_classes=S, test_cfg=cfg)


def test_defaults_are_the_reference():
    head = ScoreThrHeuristicFusionHead()
    assert head.test_cfg.score_thr == 0.45
    assert head.test_cfg.mask_overlap == 0.4
    assert head.test_cfg.stuff_area_limit == 4096
    assert head.num_things_classes == 80 and head.num_stuff_classes == 53
    with pytest.raises(KeyError, match='unknown test_cfg'):
        ScoreThrHeuristicFusionHead(test_cfg=dict(overlap=0.4))
    built = MODELS.build(
        dict(type='ScoreThrHeuristicFusionHead', test_cfg=dict(score_thr=.3)))
    assert built.test_cfg.score_thr == 0.3
    assert built.test_cfg.mask_overlap == 0.4


def test_hand_made_case():
    h, w = 10, 20
    masks = torch.zeros((4, h, w), dtype=torch.bool)
    masks[0, 0:4, 0:10] = True  # A, score .9
    masks[1, 0:4, 5:15] = True  # B overlaps A by 50% -> skipped
    masks[2, 6:10, 0:10] = True  # C below the score threshold
    masks[3, 2:6, 8:18] = True  # D overlaps A by 2*2/40 = 10% -> kept
    res = InstanceData(
        bboxes=torch.zeros((4, 4)),
        scores=torch.tensor([0.9, 0.8, 0.44, 0.6]),
        labels=torch.tensor([0, 1, 2, 1]),
        masks=masks)
    seg = torch.zeros((S + 1, h, w))  # mmdet order: stuff0, stuff1, things
    seg[0, :, :10] = 5.
    seg[1, :, 10:] = 5.
    head = make_head(stuff_area_limit=30)
    pan = head.predict([res], [seg])[0].sem_seg[0]
    assert pan.shape == (h, w)
    a = pan[0, 0].item()
    assert a >= INSTANCE_OFFSET and a % INSTANCE_OFFSET == 0
    d = pan[4, 15].item()
    assert d >= INSTANCE_OFFSET and d % INSTANCE_OFFSET == 1 and d != a
    assert pan[3, 9].item() == a  # A keeps the overlap
    assert (pan == a).sum() == 40 and (pan == d).sum() == 36
    # C was dropped: its pixels are stuff 0 (label T + 0)
    assert (pan[6:, :8] == T).all()
    assert (pan[7:, 12:] == T + 1).all()
    # stuff below the area limit becomes void
    head = make_head(stuff_area_limit=10**6)
    pan = head.predict([res], [seg])[0].sem_seg[0]
    assert ((pan == T) | (pan == T + 1)).sum() == 0
    assert (pan == T + S).sum() == h * w - 76


@pytest.mark.parametrize('seed', range(5))
def test_random_cases_match_detectron2(seed):
    g = torch.Generator().manual_seed(seed)
    h, w, n = 24, 30, 8
    masks = torch.zeros((n, h, w), dtype=torch.bool)
    for i in range(n):
        y, x = torch.randint(0, h - 4, (1, ), generator=g).item(), \
            torch.randint(0, w - 4, (1, ), generator=g).item()
        dy, dx = torch.randint(2, 12, (2, ), generator=g).tolist()
        masks[i, y:y + dy, x:x + dx] = True
    masks[n - 1] = False  # an empty mask
    scores = torch.rand(n, generator=g)
    labels = torch.randint(0, T, (n, ), generator=g)
    logits_tf = torch.randn((S + 1, h, w), generator=g)  # things first
    sem_tf = logits_tf.argmax(0)
    seg_mmdet = torch.cat([logits_tf[1:], logits_tf[:1]])
    res = InstanceData(
        bboxes=torch.zeros((n, 4)), scores=scores, labels=labels, masks=masks)
    head = make_head(stuff_area_limit=40)
    pan = head.predict([res], [seg_mmdet])[0].sem_seg[0]
    ours = mmdet_segments(pan)
    ref = d2_combine(scores, labels, masks, sem_tf, stuff_area=40)
    key = lambda s: (s[1], s[2], s[0].nonzero()[0].tolist())  # noqa: E731
    assert len(ours) == len(ref)
    for a, b in zip(sorted(ours, key=key), sorted(ref, key=key)):
        assert a[1:] == b[1:]
        assert torch.equal(a[0], b[0])


def test_no_instances():
    res = InstanceData(
        bboxes=torch.zeros((0, 4)),
        scores=torch.zeros((0, )),
        labels=torch.zeros((0, ), dtype=torch.long),
        masks=torch.zeros((0, 6, 7), dtype=torch.bool))
    seg = torch.zeros((S + 1, 6, 7))
    seg[1] = 1.
    pan = make_head(stuff_area_limit=1).predict([res], [seg])[0].sem_seg
    assert pan.shape == (1, 6, 7) and (pan == T + 1).all()
