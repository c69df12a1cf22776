# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic BlendMask R-101-FPN, 3x schedule (270k iterations), COCO 2017.

Mirrors AdelaiDet ``configs/BlendMask/Panoptic/R_101_3x.yaml``: the
panoptic R-50 3x config (:mod:`panoptic_blendmask_r50_fpn_3x_coco`) with a
ResNet-101 backbone (MSRA caffe weights,
``open-mmlab://detectron2/resnet101_caffe``).

Published result (AdelaiDet ``configs/BlendMask/README.md``, COCO val
panoptic): PQ 44.3, PQ^Th 51.6, PQ^St 33.2 (blendmask spec section 15.2).

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/blendmask/panoptic_blendmask_r101_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .panoptic_blendmask_r50_fpn_3x_coco import *

model.backbone.update(
    dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron2/resnet101_caffe')))
