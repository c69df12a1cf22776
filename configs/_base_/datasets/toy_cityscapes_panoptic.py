# Copyright (c) mmdr1 contributors. All rights reserved.
"""Toy Cityscapes panoptic set: the Cityscapes recipe at 1/8 scale.

Generate the toy set in the official Cityscapes layout and convert it like
the real data, from the repository root::

    python tools/dataset_converters/make_toy_cityscapes.py
    python tools/dataset_converters/cityscapes.py data/toy_cityscapes

(256 x 128 images, see :func:`mmdr1.datasets.make_toy_cityscapes`). The
pipelines are those of ``cityscapes_panoptic.py`` scaled by 1/8: random
rescale of 256 x 128 by 0.5 to 2.0, 64 x 128 (h x w) crops, flip; test at
256 x 128. The test split is the validation split.
"""
from mmcv.transforms import LoadImageFromFile, RandomResize
from mmdet.datasets import AspectRatioBatchSampler
from mmdet.datasets.transforms import (FilterAnnotations,
                                       LoadPanopticAnnotations, PackDetInputs,
                                       RandomCrop, RandomFlip, Resize)
from mmengine.dataset import DefaultSampler

from mmdr1.datasets import CityscapesPanopticDataset
from mmdr1.evaluation import SafeCocoPanopticMetric

dataset_type = CityscapesPanopticDataset
data_root = 'data/toy_cityscapes/'
backend_args = None

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    dict(
        type=RandomResize,
        scale=(256, 128),
        ratio_range=(0.5, 2.0),
        resize_type=Resize,
        keep_ratio=True),
    dict(
        type=RandomCrop,
        crop_size=(128, 64),
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    # a box cut by the crop border can keep no mask pixel (recomputed box
    # of zero size): drop those, keep the crops without things
    dict(
        type=FilterAnnotations, min_gt_bbox_wh=(1e-2, 1e-2), keep_empty=False),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(256, 128), keep_ratio=True),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    batch_sampler=dict(type=AspectRatioBatchSampler),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/cityscapes_panoptic_train.json',
        data_prefix=dict(
            img='leftImg8bit/train/',
            seg='annotations/cityscapes_panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=8),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/cityscapes_panoptic_val.json',
        data_prefix=dict(
            img='leftImg8bit/val/',
            seg='annotations/cityscapes_panoptic_val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=SafeCocoPanopticMetric,
    ann_file=data_root + 'annotations/cityscapes_panoptic_val.json',
    seg_prefix=data_root + 'annotations/cityscapes_panoptic_val/',
    backend_args=backend_args)
test_evaluator = val_evaluator
