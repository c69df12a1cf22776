# Copyright (c) mmdr1 contributors. All rights reserved.
"""COCO 2017 instance segmentation with BlendMask's reference data settings.

As AdelaiDet's ``Base-BlendMask.yaml`` on detectron2's defaults (blendmask
spec sections 6.4, 11.3 and 11.6):

- train: short side chosen at random from 640..800 (step 32), long side
  at most 1333 (detectron2 ``ResizeShortestEdge``, sampling "choice"),
  horizontal flip 0.5; test: short side 800, long side at most 1333;
- polygon masks (``poly2mask=False``);
- images without instance annotations are dropped, but there is **no**
  ``min_size=32`` filter (mmdet's COCO config has one; detectron2 not);
- the thing-semantic map of the basis module's auxiliary loss (0 =
  background, ``label + 1`` = thing, crowd regions included, later
  annotations over earlier ones) is rasterised from the annotations by
  ``GenerateThingSemanticSeg(source='annotations')`` right after loading,
  instead of the reference's precomputed ``thing_train2017/*.npz``, and
  then resized / flipped with nearest interpolation like the reference's
  label files; it is packed as ``data_sample.gt_sem_seg``. It is not
  padded by the data preprocessor (no ``pad_seg``): ``BlendMaskHead`` pads
  it with 0;
- evaluation: COCO bbox and segm AP on val2017.

Expected layout: ``data/coco/{train2017,val2017}/`` and
``data/coco/annotations/instances_{train,val}2017.json``.
"""
from mmcv.transforms import LoadImageFromFile, RandomChoiceResize
from mmdet.datasets import AspectRatioBatchSampler, CocoDataset
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmdet.evaluation import CocoMetric
from mmengine.dataset import DefaultSampler

from mmdr1.datasets.transforms import GenerateThingSemanticSeg

dataset_type = CocoDataset
data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(
        type=LoadAnnotations, with_bbox=True, with_mask=True, poly2mask=False),
    # The reference's thing-semantic map (crowd included), rasterised from
    # the raw annotations at the original size; the geometric transforms
    # below resize / flip it (nearest) as gt_seg_map.
    dict(
        type=GenerateThingSemanticSeg,
        seg_key='gt_seg_map',
        source='annotations'),
    # detectron2 MIN_SIZE_TRAIN (640, 672, ..., 800), MAX_SIZE_TRAIN 1333.
    dict(
        type=RandomChoiceResize,
        scales=[(1333, s) for s in range(640, 801, 32)],
        resize_type=Resize,
        keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
    # If you don't have a gt annotation, delete the pipeline
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# 16 images per iteration = 8 GPUs x 2 images per GPU (IMS_PER_BATCH 16).
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    batch_sampler=dict(type=AspectRatioBatchSampler),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
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
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=CocoMetric,
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
