# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic ablation: no context A, B (paper Table 2).

:mod:`dr1mask_panoptic_r50_fpn_3x_coco` without the contexts: the top
layer predicts the embeddings only and DR1Basis is a plain FPN-style
decoder (every DR1Conv a static 3x3 conv).

Paper numbers (Table 2, COCO val panoptic, R-50, PQ / PQ^Th / PQ^St): w/o
A, B 38.7 / 45.9 / 28.0 vs. w/ A, B 40.0 / 46.8 / 29.9. The paper's
Table 2 models follow its 1x ablation setting (40.0 PQ, vs. 42.9 for the
3x parent), so compare the difference, not the absolute numbers.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_panoptic_ablation_no_context_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""  # noqa: E501
from mmengine.config import read_base

with read_base():
    from ..dr1mask_panoptic_r50_fpn_3x_coco import *

model.bbox_head.update(dict(with_context=False))
