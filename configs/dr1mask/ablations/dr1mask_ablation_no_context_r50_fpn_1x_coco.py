# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask ablation: no context, the plain decoder (paper Tables 1 and 3).

:mod:`dr1mask_vector_r50_fpn_1x_coco` without the contexts: the top layer
predicts the embeddings only and every DR1Conv of DR1Basis is a static
3x3 conv, i.e. a plain FPN-style decoder.

Paper numbers (COCO val2017 mask AP, R-50, 1x, vector embeddings): 34.7
(Table 1 "baseline", Table 3 "none") vs. 35.2 with A and B.

Train on 8 GPUs x 2 images::

    mim train mmdr1 \\
        configs/dr1mask/ablations/dr1mask_ablation_no_context_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""  # noqa: E501
from mmengine.config import read_base

with read_base():
    from .dr1mask_vector_r50_fpn_1x_coco import *

model.bbox_head.update(dict(with_context=False))
