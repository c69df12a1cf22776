# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask R-50-FPN, 1x schedule (90k iterations) on COCO 2017 instances.

DR1Mask paper (Chen et al., arXiv 2011.09796) section 4, the setting of its
ablations: the BlendMask R-50 setup of :mod:`blendmask_r50_fpn_1x_coco`
(same backbone, FPN, FCOS, data and solver) with DR1Mask's heads
(:mod:`.._base_.models.dr1mask_r50_fpn`): contexts and embeddings from the
FCOS box tower, DR1Basis of width C = 32, factored attention (K = 4,
d = 4, 144-number embeddings), inputs padded to a multiple of 4;

- data: COCO 2017 instances, train short side 640..800 (step 32), long
  side at most 1333, flip 0.5; test 800 / 1333; the thing-semantic map of
  the auxiliary basis loss rasterised from the annotations;
- solver: SGD lr 0.01 for 16 images per iteration (8 GPUs x 2), momentum
  0.9, weight decay 1e-4 (none on norm layers), linear warm-up over 1000
  iterations from 0.001, x0.1 at 60k and 80k, 90k iterations, no gradient
  clipping (dr1mask spec section 7).

Paper numbers for this setting (Table 4, "factored", COCO val2017, R-50,
1x): mask AP 36.3 at 69.2 ms per image (1080Ti). The paper's headline
results use the 3x schedule (:mod:`dr1mask_r50_fpn_3x_coco`).

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/dr1mask/dr1mask_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.coco_instance_blendmask import *
    from .._base_.default_runtime import *
    from .._base_.models.dr1mask_r50_fpn import *
    from .._base_.schedules.schedule_blendmask_1x import *

# Iteration-based checkpoints and logs (detectron2 counts iterations).
default_hooks.update(dict(checkpoint=dict(by_epoch=False, interval=10000)))
log_processor.update(dict(by_epoch=False))
