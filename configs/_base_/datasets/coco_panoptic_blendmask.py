# Copyright (c) mmdr1 contributors. All rights reserved.
"""COCO 2017 panoptic segmentation for panoptic BlendMask.

AdelaiDet's ``Panoptic/Base-Panoptic.yaml`` trains on detectron2's
``coco_2017_{train,val}_panoptic_separated`` (instance annotations plus
the stuff maps of ``prepare_panoptic_fpn.py``, blendmask spec section
12.1). Here both come from mmdet's ``CocoPanopticDataset``
(``annotations/panoptic_{train,val}2017.json`` and the panoptic PNGs):
``LoadPanopticAnnotations`` gives the thing instances (bitmap masks) and
the semantic map (stuff labels, 255 = unlabelled).

Reference data settings (spec sections 11.3 and 11.6), as the instance
configs: train short side chosen from 640..800 (step 32), long side at most
1333, flip 0.5; test 800 / 1333; images without thing instances dropped,
no ``min_size`` filter. ``GenerateThingSemanticSeg(source='panoptic')``
takes the basis module's thing-semantic target (0 = background,
``label + 1`` = thing) from the thing pixels of the panoptic map, crowd
segments included as in the reference's npz (spec 6.4), into
``gt_thing_sem_seg``, which ``PackDetInputsWithThingSem`` packs as
``data_sample.gt_thing_sem_seg`` next to the stuff map ``gt_sem_seg``
(padded with 255 by the data preprocessor; the thing map is padded with 0
by ``BlendMaskHead``). Evaluation: PQ on val2017
(``CocoPanopticMetric``).

Expected layout: ``data/coco/{train2017,val2017}/``,
``data/coco/annotations/panoptic_{train,val}2017.json`` and
``data/coco/annotations/panoptic_{train,val}2017/*.png``.
"""
from mmcv.transforms import LoadImageFromFile, RandomChoiceResize
from mmdet.datasets import AspectRatioBatchSampler, CocoPanopticDataset
from mmdet.datasets.transforms import (LoadPanopticAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmengine.dataset import DefaultSampler

from mmdr1.datasets.transforms import (GenerateThingSemanticSeg,
                                       PackDetInputsWithThingSem)
from mmdr1.evaluation import SafeCocoPanopticMetric

dataset_type = CocoPanopticDataset
data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    # detectron2 MIN_SIZE_TRAIN (640, 672, ..., 800), MAX_SIZE_TRAIN 1333.
    dict(
        type=RandomChoiceResize,
        scales=[(1333, s) for s in range(640, 801, 32)],
        resize_type=Resize,
        keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    # After every geometric transform: the map follows the final masks.
    # thing pixels of the panoptic map (crowd included) -> 0 / label + 1
    dict(
        type=GenerateThingSemanticSeg,
        seg_key='gt_thing_sem_seg',
        source='panoptic',
        num_things_classes=80),
    dict(type=PackDetInputsWithThingSem)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
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
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(
            img='train2017/', seg='annotations/panoptic_train2017/'),
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
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=SafeCocoPanopticMetric,
    ann_file=data_root + 'annotations/panoptic_val2017.json',
    seg_prefix=data_root + 'annotations/panoptic_val2017/',
    backend_args=backend_args)
test_evaluator = val_evaluator
