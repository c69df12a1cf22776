# Copyright (c) mmdr1 contributors. All rights reserved.
"""Thing classes of the synthetic toy set as a COCO instance dataset.

Generate the toy set first, from the repository root::

    python tools/dataset_converters/make_toy_panoptic.py

which writes ``data/toy_panoptic/`` with the instance annotations
``annotations/instances_{train,val}.json`` (3 thing classes, RLE masks) read
by :class:`mmdr1.datasets.ToyInstanceDataset`. The test split is the
validation split; evaluation is COCO bbox and segm AP.
"""
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import AspectRatioBatchSampler
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmdet.evaluation import CocoMetric
from mmengine.dataset import DefaultSampler

from mmdr1.datasets import ToyInstanceDataset

dataset_type = ToyInstanceDataset
data_root = 'data/toy_panoptic/'
backend_args = None

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(type=Resize, scale=(256, 256), keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(256, 256), keep_ratio=True),
    # Ground truth is loaded after Resize so that it keeps the original
    # image size; CocoMetric reads its own copy from the annotation file.
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
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
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
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
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=CocoMetric,
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
