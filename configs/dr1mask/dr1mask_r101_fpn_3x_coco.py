# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask R-101-FPN, 3x schedule (270k iterations) on COCO 2017 instances.

The R-50 3x config (:mod:`dr1mask_r50_fpn_3x_coco`, steps at 180k and 240k
as the paper's text) with a ResNet-101 backbone (MSRA caffe weights,
``open-mmlab://detectron2/resnet101_caffe``).

Paper result (Table 8, COCO test-dev, R-101): mask AP 39.8 (AP50 61.6,
AP75 42.9) at 89 ms per image (1080Ti, batch 1, post-processing
included).

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/dr1mask/dr1mask_r101_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .dr1mask_r50_fpn_3x_coco import *

model.backbone.update(
    dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron2/resnet101_caffe')))
