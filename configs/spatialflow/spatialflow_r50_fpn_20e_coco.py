# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow R-50-FPN, 20 epochs, COCO panoptic 2017.

The reference's ``configs/spatialflow/spatialflow_r50_fpn_20e_coco.py``
(``chensnathan/SpatialFlow``; spatialflow spec sections 2-6):

- model: :mod:`configs._base_.models.spatialflow_r50_fpn` (RetinaNet R-50
  with SpatialFlow's four sub-networks and all flows, thing head, stuff
  head, box-fill fusion with 0.37 / 0.37 / 4900 / 0.5);
- data: COCO panoptic 2017, train and test at 1333 x 800 (keep ratio),
  flip 0.5; images without thing annotations and images smaller than 32 px
  are not trained on (spec 6.1); evaluation: ``CocoPanopticMetric`` (PQ,
  SQ, RQ, All / Things / Stuff);
- schedule: :mod:`configs._base_.schedules.schedule_20e` (SGD lr 0.005 for
  batch 8, warm-up 500 iterations, steps at epochs 16 and 19).

Published (reference README, COCO val2017, spec 7.1): PQ 41.8, SQ 78.7,
RQ 50.9; PQ^Th 48.3, PQ^St 31.9. The paper (Table XI, ResNet-50, 800 px)
reports PQ 40.9 (PQ^Th 46.8, PQ^St 31.9).

Train on 4 GPUs x 2 images (the reference's batch of 8)::

    mim train mmdr1 configs/spatialflow/spatialflow_r50_fpn_20e_coco.py \\
        --gpus 4 --launcher pytorch
"""
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.coco_panoptic import *
    from .._base_.default_runtime import *
    from .._base_.models.spatialflow_r50_fpn import *
    from .._base_.schedules.schedule_20e import *

# 2 images per GPU (4 GPUs -> 8 images, auto_scale_lr.base_batch_size).
train_dataloader.update(dict(batch_size=2, num_workers=2))
# mmdet's NumClassCheckHook does not apply to panoptic datasets.
custom_hooks = []
