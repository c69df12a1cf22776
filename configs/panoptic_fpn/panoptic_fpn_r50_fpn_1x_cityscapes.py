# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic FPN R50-FPN on Cityscapes panoptic (8 things + 11 stuff).

mmdet's Panoptic FPN with the Cityscapes panoptic data route of
``configs/_base_/datasets/cityscapes_panoptic.py`` (random rescale of
2048 x 1024 by 0.5-2.0, 512 x 1024 crops, flip; 2048 x 1024 test; PQ with
``CocoPanopticMetric``) and mmdet's 1x schedule (12 epochs of the 2975
training images). A reference point for the Cityscapes configs of the
papers' models, not a tuned recipe. Prepare the data as README "Data
preparation" says, then::

    mim train mmdr1 configs/panoptic_fpn/panoptic_fpn_r50_fpn_1x_cityscapes.py \\
        --gpus 8 --launcher pytorch
"""  # noqa: E501
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.cityscapes_panoptic import *
    from .._base_.default_runtime import *
    from .._base_.models.panoptic_fpn_r50_fpn import *
    from .._base_.schedules.schedule_1x import *

num_things_classes = 8
num_stuff_classes = 11
model.update(
    dict(
        roi_head=dict(
            bbox_head=dict(num_classes=num_things_classes),
            mask_head=dict(num_classes=num_things_classes)),
        semantic_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes),
        panoptic_fusion_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes)))
# mmdet's NumClassCheckHook does not apply to panoptic datasets.
custom_hooks = []
