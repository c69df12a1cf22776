# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of PackDetInputsWithThingSem."""
import numpy as np
import pytest
import torch
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules

from mmdr1.datasets.transforms import (GenerateThingSemanticSeg,
                                       PackDetInputsWithThingSem)

register_all_modules(init_default_scope=False)


def make_results():
    h, w = 6, 8
    masks = np.zeros((2, h, w), dtype=np.uint8)
    masks[0, 0:3, 0:4] = 1
    masks[1, 2:5, 3:7] = 1
    panoptic = np.full((h, w), 4, dtype=np.int32)  # a stuff class
    panoptic[0, 0] = 255
    return dict(
        img=np.zeros((h, w, 3), dtype=np.uint8),
        img_shape=(h, w),
        ori_shape=(h, w),
        scale_factor=(1., 1.),
        gt_bboxes=HorizontalBoxes(
            np.array([[0, 0, 4, 3], [3, 2, 7, 5]], dtype=np.float32)),
        gt_bboxes_labels=np.array([2, 0], dtype=np.int64),
        gt_ignore_flags=np.array([False, True]),
        gt_masks=BitmapMasks(masks, h, w),
        gt_seg_map=panoptic)


def test_packs_both_maps():
    results = GenerateThingSemanticSeg(seg_key='gt_thing_sem_seg')(
        make_results())
    packed = TRANSFORMS.build(dict(type='PackDetInputsWithThingSem'))(results)
    sample = packed['data_samples']
    assert sample.gt_sem_seg.sem_seg.shape == (1, 6, 8)
    assert sample.gt_sem_seg.sem_seg[0, 0, 0] == 255
    thing = sample.gt_thing_sem_seg.sem_seg
    assert thing.shape == (1, 6, 8) and thing.dtype == torch.uint8
    assert thing[0, 0, 0] == 3 and thing[0, 4, 6] == 1
    assert thing[0, 5, 0] == 0
    # the crowd instance is painted but not a gt instance
    assert len(sample.gt_instances) == 1
    assert len(sample.ignored_instances) == 1


def test_without_map_and_custom_field():
    packed = PackDetInputsWithThingSem()(make_results())
    assert 'gt_thing_sem_seg' not in packed['data_samples']
    results = make_results()
    results['my_map'] = np.ones((6, 8), dtype=np.uint8)
    t = PackDetInputsWithThingSem(thing_sem_key='my_map', field='thing_map')
    assert 'thing_map' in repr(t)
    assert t(results)['data_samples'].thing_map.sem_seg.sum() == 48
    with pytest.raises(ValueError, match='standard'):
        PackDetInputsWithThingSem(field='gt_sem_seg')
