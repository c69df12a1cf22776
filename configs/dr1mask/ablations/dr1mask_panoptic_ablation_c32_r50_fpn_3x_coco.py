# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic ablation: basis width C = 32 (paper Table 6).

:mod:`dr1mask_panoptic_r50_fpn_3x_coco` with DR1Basis, the vector
embeddings and the unified panoptic layer 32 channels wide instead of 64.

Paper numbers (Table 6, COCO val panoptic, R-50, 3x, PQ / PQ^Th / PQ^St):
C = 32 41.8 / 49.1 / 30.7 vs. C = 64 (the parent) 42.9 / 49.5 / 32.9 and
C = 128 42.8 / 49.5 / 32.8.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_panoptic_ablation_c32_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""  # noqa: E501
from mmengine.config import read_base

with read_base():
    from ..dr1mask_panoptic_r50_fpn_3x_coco import *

basis_channels = embed_dim = 32
model.bbox_head.update(
    dict(basis_channels=basis_channels, embed_dim=embed_dim))
model.mask_head.basis.update(dict(channels=basis_channels))
model.mask_head.instance_module.update(dict(in_channels=basis_channels))
model.panoptic_head.update(dict(in_channels=basis_channels))
