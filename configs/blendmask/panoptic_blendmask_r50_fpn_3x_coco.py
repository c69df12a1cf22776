# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic BlendMask R-50-FPN, 3x schedule (270k iterations), COCO 2017.

Mirrors AdelaiDet ``configs/BlendMask/Panoptic/R_50_3x.yaml``: the
panoptic R-50 1x config (:mod:`panoptic_blendmask_r50_fpn_1x_coco`) with
270k iterations and the learning rate steps at 210k and 250k.

Published result (AdelaiDet ``configs/BlendMask/README.md``, COCO val
panoptic): PQ 42.5, PQ^Th 49.5, PQ^St 32.0 (blendmask spec section 15.2).

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/blendmask/panoptic_blendmask_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .panoptic_blendmask_r50_fpn_1x_coco import *

max_iters = 270000
train_cfg.update(dict(max_iters=max_iters, val_interval=max_iters))
param_scheduler[1].update(dict(end=max_iters, milestones=[210000, 250000]))
default_hooks.update(dict(checkpoint=dict(interval=30000)))
