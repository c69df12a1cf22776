# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask-RT R-50-FPN, SyncBN backbone, shared FCOS tower, 4x schedule.

Mirrors AdelaiDet ``configs/BlendMask/RT_R_50_4x_syncbn_shtw.yaml`` (on
``Base-RT.yaml``, blendmask spec section 11.3): the R-50 1x config
(:mod:`blendmask_r50_fpn_1x_coco`) with

- a ResNet-50 trained entirely, with SyncBN (``RESNETS.NORM`` SyncBN,
  ``FREEZE_AT`` -1: no frozen stage, BN statistics updated);
- FPN P3-P5 only (``TOP_LEVELS`` 0);
- FCOS on strides 8 / 16 / 32, sizes of interest 64 / 128, a tower of 3 GN
  convs shared by the class and box branches (``NUM_SHARE_CONVS`` 3,
  ``NUM_CLS_CONVS`` = ``NUM_BOX_CONVS`` = 0);
- ProtoNet basis with 2 tower convs;
- train short side 256..608 (step 32), long side at most 900; test 512 /
  736;
- 360k iterations, learning rate steps at 300k and 340k.

Published result (AdelaiDet ``configs/BlendMask/README.md``, COCO
val2017): box AP 39.3, mask AP 35.1, 31 FPS on a 1080Ti (blendmask spec
section 15.1).

Train on 8 GPUs x 2 images (SyncBN needs the distributed launch)::

    mim train mmdr1 \\
        configs/blendmask/blendmask_rt_r50_fpn_4x_syncbn_shtw_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmcv.transforms import LoadImageFromFile, RandomChoiceResize
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmengine.config import read_base

from mmdr1.datasets.transforms import GenerateThingSemanticSeg

with read_base():
    from .blendmask_r50_fpn_1x_coco import *

model.backbone.update(
    dict(
        frozen_stages=-1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False))
model.neck.update(dict(num_outs=3))  # P3-P5
model.bbox_head.update(
    dict(
        stacked_convs=0,
        num_share_convs=3,
        strides=(8, 16, 32),
        regress_ranges=((-1, 64), (64, 128), (128, 1e8))))
model.mask_head.basis.update(dict(num_convs=2))

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
    # MIN_SIZE_TRAIN (256, 288, ..., 608), MAX_SIZE_TRAIN 900.
    dict(
        type=RandomChoiceResize,
        scales=[(900, s) for s in range(256, 609, 32)],
        resize_type=Resize,
        keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(736, 512), keep_ratio=True),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader.dataset.pipeline = train_pipeline
val_dataloader.dataset.pipeline = test_pipeline
test_dataloader.dataset.pipeline = test_pipeline

max_iters = 360000
train_cfg.update(dict(max_iters=max_iters, val_interval=max_iters))
param_scheduler[1].update(dict(end=max_iters, milestones=[300000, 340000]))
default_hooks.update(dict(checkpoint=dict(interval=40000)))
