# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of GenerateThingSemanticSeg (blendmask spec section 6.4)."""
import numpy as np
import pytest
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


def _raw_results(h=20, w=30):
    import pycocotools.mask as mask_utils
    crowd = np.zeros((h, w), np.uint8)
    crowd[10:20, 0:12] = 1
    rle = mask_utils.encode(np.asfortranarray(crowd))  # compressed (bytes)
    uncompressed = dict(size=[h, w], counts=[0, h * w])  # everything
    return dict(
        img=np.zeros((h, w, 3), np.uint8),
        img_shape=(h, w),
        img_path='x.jpg',
        instances=[
            dict(bbox_label=4, mask=[[0., 0., 10., 0., 10., 10., 0., 10.]]),
            dict(bbox_label=7, mask=rle, ignore_flag=1),  # crowd, later
            dict(bbox_label=2, mask=[[5., 5., 8.]]),  # degenerate polygon
        ]), uncompressed


def test_from_annotations_matches_reference_rasterisation():
    import pycocotools.mask as mask_utils
    results, uncompressed = _raw_results()
    t = GenerateThingSemanticSeg(seg_key='gt_seg_map', source='annotations')
    sem = t(dict(results))['gt_seg_map']
    poly = mask_utils.decode(
        mask_utils.merge(
            mask_utils.frPyObjects([[0., 0., 10., 0., 10., 10., 0., 10.]], 20,
                                   30))).astype(bool)
    expected = np.zeros((20, 30), np.uint8)
    expected[poly] = 5
    expected[10:20, 0:12] = 8  # crowd painted, overwriting the polygon
    np.testing.assert_array_equal(sem, expected)
    assert 'annotations' in repr(t)
    results['instances'].append(dict(bbox_label=0, mask=uncompressed))
    assert (t(dict(results))['gt_seg_map'] == 1).all()


def test_from_annotations_then_resize_and_flip():
    from mmdet.datasets.transforms import RandomFlip, Resize
    results, _ = _raw_results()
    results = GenerateThingSemanticSeg(
        seg_key='gt_seg_map', source='annotations')(
            results)
    small = results['gt_seg_map'].copy()
    results = Resize(scale=(60, 40), keep_ratio=True)(results)
    results = RandomFlip(prob=1.0)(results)
    sem = results['gt_seg_map']
    assert sem.shape == (40, 60)
    # nearest x2 then horizontal flip
    expected = small.repeat(2, 0).repeat(2, 1)[:, ::-1]
    np.testing.assert_array_equal(sem, expected)


def test_from_annotations_misuse():
    results, _ = _raw_results()
    results['scale_factor'] = (2., 2.)
    t = GenerateThingSemanticSeg(seg_key='gt_seg_map', source='annotations')
    with pytest.raises(RuntimeError, match='before'):
        t(results)
    results, _ = _raw_results()
    del results['instances'][0]['mask']
    with pytest.raises(KeyError, match='x.jpg'):
        t(results)
    results, _ = _raw_results()
    results['instances'] = []
    assert t(results)['gt_seg_map'].max() == 0


def test_from_panoptic_map():
    pan = np.array([[0, 2, 3, 255], [4, 1, 2, 3]], dtype=np.int64)
    t = GenerateThingSemanticSeg(source='panoptic', num_things_classes=3)
    sem = t(dict(gt_seg_map=pan, img_shape=(2, 4)))['gt_thing_sem_seg']
    np.testing.assert_array_equal(sem, [[1, 3, 0, 0], [0, 2, 3, 0]])
    assert sem.dtype == np.uint8
    with pytest.raises(KeyError, match='LoadPanopticAnnotations'):
        t(dict(img_shape=(2, 4)))
    with pytest.raises(ValueError, match='num_things_classes'):
        GenerateThingSemanticSeg(source='panoptic')
    with pytest.raises(ValueError, match='seg_key'):
        GenerateThingSemanticSeg(
            seg_key='gt_seg_map', source='panoptic', num_things_classes=3)
    with pytest.raises(ValueError, match='source'):
        GenerateThingSemanticSeg(source='npz')
