# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic FPN R50-FPN, 1x schedule on COCO panoptic (as mmdet 3.3)."""
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.coco_panoptic import *
    from .._base_.default_runtime import *
    from .._base_.models.panoptic_fpn_r50_fpn import *
    from .._base_.schedules.schedule_1x import *

# mmdet's NumClassCheckHook does not apply to panoptic datasets.
custom_hooks = []
