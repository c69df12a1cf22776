# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic R-50-FPN on Cityscapes panoptic (8 things + 11 stuff).

The COCO panoptic model of :mod:`dr1mask_panoptic_r50_fpn_3x_coco` (C = 64
DR1Basis, vector embeddings, the one-layer unified panoptic head with the
instance loss) with 8 thing classes and 11 static stuff rows (dr1mask spec
section 5: "11 on Cityscapes"), on the Cityscapes data of
``configs/_base_/datasets/cityscapes_panoptic.py``: random rescale of
2048 x 1024 by 0.5-2.0, 512 x 1024 crops, flip; test at 2048 x 1024. The
basis' thing-semantic target comes from the panoptic PNGs
(``GenerateThingSemanticSeg(source='panoptic')``), as on COCO.

The paper gives no Cityscapes recipe (it reports COCO only), so the
schedule and the stuff area are our choices, named here:

- 65k iterations of 16 crops (8 GPUs x 2), SGD lr 0.01 with BlendMask's
  warm-up and x0.1 steps at 50k and 60k (about 350 epochs of the 2975
  training images, in the range of the usual Cityscapes panoptic recipes);
  ImageNet-initialised like the COCO model (set ``load_from`` to a COCO
  DR1Mask panoptic checkpoint to fine-tune instead; the stuff and class
  layers then differ and are re-initialised);
- stuff regions below 2048 px (of the 2048 x 1024 image) become void, the
  value Panoptic-DeepLab uses on Cityscapes (COCO's 4096 is for ~800 px
  images).

Prepare the data as README "Data preparation" says, then::

    mim train mmdr1 configs/dr1mask/dr1mask_panoptic_r50_fpn_cityscapes.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

from mmdr1.datasets.transforms import (GenerateThingSemanticSeg,
                                       PackDetInputsWithThingSem)

# Order matters (the Cityscapes data replace the COCO data): no isort.
# isort: off
with read_base():
    from .dr1mask_panoptic_r50_fpn_3x_coco import *
    from .._base_.datasets.cityscapes_panoptic import *  # replaces COCO
# isort: on

num_things_classes = 8
num_stuff_classes = 11

model.bbox_head.update(dict(num_classes=num_things_classes))
model.mask_head.update(dict(num_things_classes=num_things_classes))
model.panoptic_head.update(
    dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        stuff_area_limit=2048))

# the basis' thing-semantic target from the panoptic map, packed next to
# the panoptic labels (as coco_panoptic_blendmask.py does for COCO)
train_pipeline = train_pipeline[:-1] + [
    dict(
        type=GenerateThingSemanticSeg,
        seg_key='gt_thing_sem_seg',
        source='panoptic',
        num_things_classes=num_things_classes),
    dict(type=PackDetInputsWithThingSem)
]
train_dataloader.dataset.pipeline = train_pipeline

max_iters = 65000
train_cfg.update(dict(max_iters=max_iters, val_interval=max_iters))
param_scheduler[1].update(dict(end=max_iters, milestones=[50000, 60000]))
default_hooks.update(dict(checkpoint=dict(by_epoch=False, interval=5000)))
