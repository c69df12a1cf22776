# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask ablation parent: vector embeddings (paper Tables 1, 3 and 4).

:mod:`dr1mask_r50_fpn_1x_coco` with the YOLACT-style vector instance module
(:class:`VectorMask`, ``embed_dim = C = 32``) instead of the factored
attention: the model of the paper's Tables 1 and 3 ("w/ A and B", context
from the box tower) and the "Vector" row of Table 4.

Paper numbers (COCO val2017 mask AP, R-50, 1x): 35.2 (Table 1 "w/ A and
B", Table 3 "box tower", Table 4 "Vector" at 68.7 ms).

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_vector_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

from mmdr1.models import VectorMask

with read_base():
    from ..dr1mask_r50_fpn_1x_coco import *

embed_dim = basis_channels  # 32
model.bbox_head.update(dict(embed_dim=embed_dim))
model.mask_head['instance_module'] = dict(
    type=VectorMask,
    in_channels=basis_channels,
    bottom_resolution=56,
    spatial_scale=0.25,
    sampling_ratio=1)
