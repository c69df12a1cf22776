# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask R-50-FPN, 3x schedule (270k iterations) on COCO 2017 instances.

The R-50 1x config (:mod:`dr1mask_r50_fpn_1x_coco`) trained 3x longer as
the DR1Mask paper's main results (section 4.2, dr1mask spec section 7):
270k iterations with the learning rate divided by 10 at 180k and 240k (the
paper's text; AdelaiDet's BlendMask 3x configs use 210k and 250k instead,
see :mod:`blendmask_r50_fpn_3x_coco`).

Paper result (Table 8, COCO test-dev, R-50): mask AP 38.3 (AP50 59.6,
AP75 41.2) at 69 ms per image (1080Ti, batch 1, post-processing
included), vs. BlendMask 38.1 at 73 ms and Mask R-CNN 37.5 at 74 ms.

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/dr1mask/dr1mask_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .dr1mask_r50_fpn_1x_coco import *

max_iters = 270000
train_cfg.update(dict(max_iters=max_iters, val_interval=max_iters))
param_scheduler[1].update(dict(end=max_iters, milestones=[180000, 240000]))
default_hooks.update(dict(checkpoint=dict(interval=30000)))
