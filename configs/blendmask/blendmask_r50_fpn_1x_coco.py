# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask R-50-FPN, 1x schedule (90k iterations) on COCO 2017.

Mirrors AdelaiDet ``configs/BlendMask/R_50_1x.yaml`` (on
``Base-BlendMask.yaml``): ResNet-50 (MSRA caffe weights), FPN P3-P7,
FCOS + top layer, ProtoNet bases (4, 3 tower convs) and blender (14 x 14
attentions, 56 x 56 masks); train short side 640..800, test 800; SGD lr
0.01 for 16 images per iteration, 90k iterations, steps at 60k and 80k.

Published result (AdelaiDet ``configs/BlendMask/README.md``, COCO
val2017): box AP 39.9, mask AP 35.8 (blendmask spec section 15.1).

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/blendmask/blendmask_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch

(``mim train mmdr1 configs/blendmask/blendmask_r50_fpn_1x_coco.py`` for a
single process; the batch stays 2 images, so adjust the schedule).
"""
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.coco_instance_blendmask import *
    from .._base_.default_runtime import *
    from .._base_.models.blendmask_r50_fpn import *
    from .._base_.schedules.schedule_blendmask_1x import *

# Iteration-based checkpoints and logs (detectron2 counts iterations).
default_hooks.update(dict(checkpoint=dict(by_epoch=False, interval=10000)))
log_processor.update(dict(by_epoch=False))
