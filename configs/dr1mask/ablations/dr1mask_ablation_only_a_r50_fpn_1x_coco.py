# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask ablation: pre factors A only (paper Table 1, "w/ A").

:mod:`dr1mask_vector_r50_fpn_1x_coco` with the post factors B of every
DR1Conv switched off (``use_post=False``: B = 1, the last C context
channels are ignored): ``Y = W * (X . A)``.

Paper numbers (Table 1, COCO val2017 mask AP, R-50, 1x, vector
embeddings): w/ A 34.9 vs. baseline 34.7 and w/ A and B 35.2.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_ablation_only_a_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .dr1mask_vector_r50_fpn_1x_coco import *

model.mask_head.basis.update(dict(use_post=False))
