# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic ablation: factored attention (paper Table 7).

:mod:`dr1mask_panoptic_r50_fpn_3x_coco` with the instance masks predicted by
:class:`FactoredAttention` (K = 4 attention channels of rank d = 4) instead
of the vector module. The panoptic rows stay C-dim vectors: the FCOS top
layer predicts ``[e_inst, e_row]``, the factored embedding (C * K + K * d =
272 numbers for C = 64) followed by a separate 64-dim row
(``DR1MaskPanoptic(row_embed='separate')``). The paper does not say how a
factored embedding becomes a row; what Table 7 measures is the position-
sensitive mask loss shaping the basis that the one-layer head shares.

Paper numbers (Table 7, COCO val panoptic, R-50, PQ / PQ^Th / PQ^St):
Vector (the parent) 40.0 / 46.8 / 29.9, Factored 39.0 / 46.8 / 27.3.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_panoptic_ablation_factored_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""  # noqa: E501
from mmengine.config import read_base

from mmdr1.models import FactoredAttention

with read_base():
    from ..dr1mask_panoptic_r50_fpn_3x_coco import *

num_bases = 4  # K
attn_rank = 4  # d
inst_embed_dim = basis_channels * num_bases + num_bases * attn_rank  # 272
embed_dim = inst_embed_dim + basis_channels  # [e_inst, e_row]: 336

model.update(dict(row_embed='separate'))
model.bbox_head.update(dict(embed_dim=embed_dim))
model.mask_head['instance_module'] = dict(
    type=FactoredAttention,
    in_channels=basis_channels,
    num_bases=num_bases,
    rank=attn_rank,
    bottom_resolution=56,
    spatial_scale=0.25,
    sampling_ratio=1)
