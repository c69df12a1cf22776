# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow R-101-FPN, 20 epochs, COCO panoptic 2017.

The reference's ``configs/spatialflow/spatialflow_r101_fpn_20e_coco.py``
(spatialflow spec section 6.1): :mod:`spatialflow_r50_fpn_20e_coco` with a
ResNet-101 backbone (``torchvision://resnet101``); nothing else changes.

Published (reference README, COCO val2017, spec 7.1): PQ 43.4, SQ 79.6,
RQ 52.6; PQ^Th 50.4, PQ^St 32.8. The paper (Table I, COCO test-dev,
ResNet-101-FPN) reports PQ 42.9 (PQ^Th 49.5, PQ^St 33.0).

Train on 4 GPUs x 2 images::

    mim train mmdr1 configs/spatialflow/spatialflow_r101_fpn_20e_coco.py \\
        --gpus 4 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .spatialflow_r50_fpn_20e_coco import *

model.backbone.update(
    dict(
        depth=101,
        # ImageNet weights of 'torchvision://resnet101' (mmengine's URL)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/'
            'resnet101-63fe2227.pth')))
