# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic R-101-FPN, 3x schedule (270k iterations), COCO 2017.

The panoptic R-50 3x config (:mod:`dr1mask_panoptic_r50_fpn_3x_coco`) with
a ResNet-101 backbone (MSRA caffe weights,
``open-mmlab://detectron2/resnet101_caffe``).

Paper result (Table 9, COCO val, R-101): PQ 44.5 (SQ 80.7, RQ 53.8, PQ^Th
51.7, PQ^St 33.5) at 99 ms per image (1080Ti), vs. Panoptic-FPN R-101 43.6
at 111 ms.

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/dr1mask/dr1mask_panoptic_r101_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .dr1mask_panoptic_r50_fpn_3x_coco import *

model.backbone.update(
    dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron2/resnet101_caffe')))
