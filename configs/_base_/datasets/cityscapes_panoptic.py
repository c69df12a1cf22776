# Copyright (c) mmdr1 contributors. All rights reserved.
"""Cityscapes panoptic segmentation (fine annotations, 8 things + 11 stuff).

Prepare the data from the official download (``leftImg8bit_trainvaltest.zip``
and ``gtFine_trainvaltest.zip`` unpacked into ``data/cityscapes/``)::

    python tools/dataset_converters/cityscapes.py data/cityscapes --nproc 8

which writes ``data/cityscapes/annotations/cityscapes_panoptic_{train,val}
.json`` and the panoptic PNGs ``cityscapes_panoptic_{train,val}/`` (see
:class:`mmdr1.datasets.CityscapesPanopticDataset`).

The usual Cityscapes panoptic recipe: train on random rescales of the
2048 x 1024 images by 0.5 to 2.0 (keeping the ratio), 512 x 1024 (h x w)
crops, horizontal flip; test at 2048 x 1024. ``LoadPanopticAnnotations``
gives the thing masks and the semantic map (things ``0..7``, stuff
``8..18``, 255 unlabelled); mmdet's ``PanopticFPNHead`` merges the things
into one class itself. Crops without things are kept
(``allow_negative_crop``), boxes are recomputed from the cropped masks and
instances left without pixels are dropped (``FilterAnnotations``, as
mmdet's large-scale-jitter recipe).
Evaluation: PQ / SQ / RQ on val (``CocoPanopticMetric``; the converter
names the ground-truth PNGs after the images, which is where the metric
looks for them).
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
data_root = 'data/cityscapes/'
backend_args = None

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    dict(
        type=RandomResize,
        scale=(2048, 1024),
        ratio_range=(0.5, 2.0),
        resize_type=Resize,
        keep_ratio=True),
    # crop_size is (w, h) for crop_type='absolute'
    dict(
        type=RandomCrop,
        crop_size=(1024, 512),
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
    dict(type=Resize, scale=(2048, 1024), keep_ratio=True),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
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
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
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
