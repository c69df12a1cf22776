# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of GenerateThingSemanticSeg (blendmask spec section 6.4)."""
import numpy as np
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from mmdr1.datasets.transforms import GenerateThingSemanticSeg


def make_results():
    h, w = 6, 8
    masks = np.zeros((3, h, w), dtype=np.uint8)
    masks[0, 0:3, 0:4] = 1  # label 2
    masks[1, 2:5, 3:7] = 1  # label 0 (crowd), overlaps instance 0
    masks[2, 5, 7] = 1  # label 79
    return dict(
        img=np.zeros((h, w, 3), dtype=np.uint8),
        img_shape=(h, w),
        gt_masks=BitmapMasks(masks, h, w),
        gt_bboxes_labels=np.array([2, 0, 79], dtype=np.int64),
        gt_ignore_flags=np.array([False, True, False]))


def test_thing_semantic_map():
    results = GenerateThingSemanticSeg()(make_results())
    sem = results['gt_thing_sem_seg']
    expected = np.zeros((6, 8), dtype=np.uint8)
    expected[0:3, 0:4] = 3
    expected[2:5, 3:7] = 1  # crowd included; later overwrites earlier
    expected[5, 7] = 80
    assert sem.dtype == np.uint8
    np.testing.assert_array_equal(sem, expected)


def test_registry_seg_key_and_empty():
    transform = TRANSFORMS.build(
        dict(type='GenerateThingSemanticSeg', seg_key='gt_seg_map'))
    assert 'gt_seg_map' in repr(transform)
    results = make_results()
    results['gt_masks'] = BitmapMasks(np.zeros((0, 6, 8), np.uint8), 6, 8)
    results['gt_bboxes_labels'] = np.zeros((0, ), np.int64)
    sem = transform(results)['gt_seg_map']
    assert sem.shape == (6, 8) and sem.dtype == np.uint8 and sem.max() == 0
    results = dict(img_shape=(4, 5))
    assert transform(results)['gt_seg_map'].shape == (4, 5)


def test_polygon_masks_and_after_flip():
    poly = [[np.array([0., 0., 4., 0., 4., 2., 0., 2.])]]
    results = dict(
        img=np.zeros((4, 6, 3), np.uint8),
        img_shape=(4, 6),
        gt_masks=PolygonMasks(poly, 4, 6),
        gt_bboxes_labels=np.array([5]))
    sem = GenerateThingSemanticSeg()(dict(results))['gt_thing_sem_seg']
    assert sem.shape == (4, 6)
    assert set(np.unique(sem)) == {0, 6}
    # After a geometric transform the map follows the flipped masks.
    bitmap = make_results()
    flipped = dict(bitmap)
    flipped['gt_masks'] = bitmap['gt_masks'].flip('horizontal')
    sem = GenerateThingSemanticSeg()(dict(bitmap))['gt_thing_sem_seg']
    sem_f = GenerateThingSemanticSeg()(flipped)['gt_thing_sem_seg']
    np.testing.assert_array_equal(sem_f, sem[:, ::-1])
