# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask-550 R-50-FPN, 1x schedule (90k iterations) on COCO 2017.

Mirrors AdelaiDet ``configs/BlendMask/550_R_50_1x.yaml`` (on
``Base-550.yaml``, blendmask spec section 11.3): the R-50 1x config
(:mod:`blendmask_r50_fpn_1x_coco`) with

- FPN P3-P6 (``TOP_LEVELS`` 1: P6 only, from P5);
- FCOS on strides 8-64, sizes of interest 64 / 128 / 256, a tower of 3 GN
  convs shared by the class and box branches (``NUM_SHARE_CONVS`` 3,
  ``NUM_CLS_CONVS`` = ``NUM_BOX_CONVS`` = 0); the top layer sees the shared
  tower's output;
- ProtoNet basis with 2 tower convs;
- train short side 440..550 (step 22), long side at most 916; test 550 /
  916.

No published numbers for this config (spec section 15.1); the 3x version
(:mod:`blendmask_550_r50_fpn_3x_coco`) reports box AP 38.7, mask AP 34.5.

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/blendmask/blendmask_550_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmcv.transforms import LoadImageFromFile, RandomChoiceResize
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmengine.config import read_base

from mmdr1.datasets.transforms import GenerateThingSemanticSeg

with read_base():
    from .blendmask_r50_fpn_1x_coco import *

model.neck.update(dict(num_outs=4))  # P3-P6
model.bbox_head.update(
    dict(
        stacked_convs=0,
        num_share_convs=3,
        strides=(8, 16, 32, 64),
        regress_ranges=((-1, 64), (64, 128), (128, 256), (256, 1e8))))
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
    # MIN_SIZE_TRAIN (440, 462, ..., 550), MAX_SIZE_TRAIN 916.
    dict(
        type=RandomChoiceResize,
        scales=[(916, s) for s in range(440, 551, 22)],
        resize_type=Resize,
        keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(916, 550), keep_ratio=True),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader.dataset.pipeline = train_pipeline
val_dataloader.dataset.pipeline = test_pipeline
test_dataloader.dataset.pipeline = test_pipeline
