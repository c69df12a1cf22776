# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask ablation: full (BlendMask) attention, paper Table 4.

:mod:`dr1mask_r50_fpn_1x_coco` with BlendMask's blender as the instance
module: K = 4 attention maps of M x M = 14 x 14 per instance
(``embed_dim = K * M * M = 784``), upsampled to 56 x 56. The blender needs
K basis channels; :class:`DR1MaskHead` adds a static 1x1 projection
C = 32 -> 4 in front of it automatically.

Paper numbers (Table 4, COCO val2017 mask AP, R-50, 1x): full attention
36.2 AP at 72.0 ms vs. factored 36.3 AP at 69.2 ms (the parent) and
vector 35.2 AP at 68.7 ms (:mod:`dr1mask_vector_r50_fpn_1x_coco`).

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_full_attn_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

from mmdr1.models import Blender

with read_base():
    from ..dr1mask_r50_fpn_1x_coco import *

embed_dim = num_bases * attn_size * attn_size  # 784
model.bbox_head.update(dict(embed_dim=embed_dim))
model.mask_head['instance_module'] = dict(
    type=Blender,
    num_bases=num_bases,
    attn_size=attn_size,
    bottom_resolution=56,
    spatial_scale=0.25,
    sampling_ratio=1)
