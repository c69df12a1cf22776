# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask ablation: post factors B only (paper Table 1, "w/ B").

:mod:`dr1mask_vector_r50_fpn_1x_coco` with the pre factors A of every
DR1Conv switched off (``use_pre=False``: A = 1, the first C context
channels are ignored): ``Y = (W * X) . B``.

Paper numbers (Table 1, COCO val2017 mask AP, R-50, 1x, vector
embeddings): w/ B 34.9 vs. baseline 34.7 and w/ A and B 35.2.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_ablation_only_b_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .dr1mask_vector_r50_fpn_1x_coco import *

model.mask_head.basis.update(dict(use_pre=False))
