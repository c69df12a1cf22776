# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask R-101-FPN, 3x schedule (270k iterations) on COCO 2017.

Mirrors AdelaiDet ``configs/BlendMask/R_101_3x.yaml``: the R-50 3x config
(:mod:`blendmask_r50_fpn_3x_coco`) with a ResNet-101 backbone (MSRA caffe
weights, ``detectron2://ImageNetPretrained/MSRA/R-101.pkl`` =
``open-mmlab://detectron2/resnet101_caffe``).

Published result (AdelaiDet ``configs/BlendMask/README.md``, COCO
val2017): box AP 44.8, mask AP 39.5 (blendmask spec section 15.1).

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/blendmask/blendmask_r101_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .blendmask_r50_fpn_3x_coco import *

model.backbone.update(
    dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron2/resnet101_caffe')))
