# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic FPN R18-FPN on the toy Cityscapes set (8 things, 11 stuff).

The toy Panoptic FPN of ``panoptic_fpn_r18_toy.py`` (ResNet-18 from
scratch, GN, slim heads) on the Cityscapes route end to end: toy data in the
official Cityscapes layout, the Cityscapes converter, the Cityscapes
pipelines at 1/8 scale (``toy_cityscapes_panoptic.py``) and PQ. A short
schedule (100 iterations, about a minute on two CPU cores): a smoke test of
the data route, not a trained model::

    python tools/dataset_converters/make_toy_cityscapes.py
    python tools/dataset_converters/cityscapes.py data/toy_cityscapes
    mim train mmdr1 configs/toy/panoptic_fpn_r18_toy_cityscapes.py
    mim test mmdr1 configs/toy/panoptic_fpn_r18_toy_cityscapes.py \\
        --checkpoint work_dirs/panoptic_fpn_r18_toy_cityscapes/iter_100.pth
"""
from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR, LinearLR

# isort: off
# The order matters: the dataset settings replace those of the toy config.
with read_base():
    from .panoptic_fpn_r18_toy import *
    from .._base_.datasets.toy_cityscapes_panoptic import *
# isort: on

# CityscapesPanopticDataset.METAINFO: 8 thing classes, then 11 stuff classes.
num_things_classes = 8
num_stuff_classes = 11

model.update(
    dict(
        roi_head=dict(
            bbox_head=dict(num_classes=num_things_classes),
            mask_head=dict(num_classes=num_things_classes)),
        semantic_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes),
        panoptic_fusion_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes),
        # 256 x 128 images: poles and signs are small stuff segments
        test_cfg=dict(panoptic=dict(stuff_area_limit=64))))

max_iters = 100
warmup_iters = 20
train_cfg.update(dict(max_iters=max_iters, val_interval=max_iters))
param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type=CosineAnnealingLR,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=1e-4)
]
default_hooks.update(
    dict(
        logger=dict(interval=10),
        checkpoint=dict(interval=max_iters, max_keep_ckpts=1)))
log_processor.update(dict(window_size=10))
