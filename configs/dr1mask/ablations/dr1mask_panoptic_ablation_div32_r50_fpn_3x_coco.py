# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic ablation: size divisibility 32 (paper Table 5).

:mod:`dr1mask_panoptic_r50_fpn_3x_coco` with inputs padded to a multiple
of 32 (so every level is exactly half the previous one) and plain bilinear
x2 / x4 upsampling (``align_corners=False``) in DR1Basis and the unified
panoptic layer, instead of divisibility 4 with aligned upsampling.

Paper numbers (Table 5, COCO val panoptic, R-50, PQ / PQ^Th / PQ^St):
divisibility 32 39.5 / 46.5 / 28.8 vs. 4 with aligned upsampling 40.0 /
46.8 / 29.9 (128: 39.9 / 46.5 / 30.0). The paper's Table 5 models follow
its 1x ablation setting (40.0 PQ, vs. 42.9 for the 3x parent), so compare
the difference, not the absolute numbers.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_panoptic_ablation_div32_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""  # noqa: E501
from mmengine.config import read_base

with read_base():
    from ..dr1mask_panoptic_r50_fpn_3x_coco import *

model.data_preprocessor.update(dict(pad_size_divisor=32))
model.mask_head.basis.update(dict(upsample='bilinear'))
model.panoptic_head.update(dict(upsample='bilinear'))
