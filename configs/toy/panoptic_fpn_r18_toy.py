# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic FPN R18-FPN trained from scratch on the toy panoptic set.

The CPU smoke-test job of mmdr1: stock mmdet Panoptic FPN with a randomly
initialised ResNet-18 (GN everywhere, nothing frozen) and slim heads, sized
to train on the default toy set (160 x 256 px images) in about 8 minutes on
two CPU cores::

    python tools/dataset_converters/make_toy_panoptic.py
    mim train mmdr1 configs/toy/panoptic_fpn_r18_toy.py
"""
from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from mmengine.runner import IterBasedTrainLoop
from torch.optim import SGD

with read_base():
    from .._base_.datasets.toy_panoptic_dataset import *
    from .._base_.default_runtime import *
    from .._base_.models.panoptic_fpn_r50_fpn import *
    from .._base_.schedules.schedule_1x import *

# ToyPanopticDataset.METAINFO: 3 thing classes, then 3 stuff classes.
num_things_classes = 3
num_stuff_classes = 3
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)

model.update(
    dict(
        backbone=dict(
            depth=18,
            frozen_stages=-1,
            norm_cfg=norm_cfg,
            norm_eval=False,
            init_cfg=None),
        neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
        # 256 px images: anchors of 16-256 px (mmdet's scale 8 is for
        # ~800 px images).
        rpn_head=dict(
            in_channels=128,
            feat_channels=128,
            anchor_generator=dict(scales=[4])),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=128),
            bbox_head=dict(
                in_channels=128,
                fc_out_channels=256,
                num_classes=num_things_classes),
            mask_roi_extractor=dict(out_channels=128),
            mask_head=dict(
                num_convs=2,
                in_channels=128,
                conv_out_channels=128,
                num_classes=num_things_classes)),
        semantic_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            in_channels=128,
            inner_channels=64,
            norm_cfg=norm_cfg),
        panoptic_fusion_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes),
        train_cfg=dict(
            rpn_proposal=dict(nms_pre=1000, max_per_img=300),
            rcnn=dict(sampler=dict(num=128))),
        test_cfg=dict(
            rpn=dict(nms_pre=500, max_per_img=100),
            rcnn=dict(score_thr=0.5),
            panoptic=dict(stuff_area_limit=256))))

# Schedule for ~8 minutes of training on 2 CPU cores (~0.8 s per
# iteration): 560 iterations of 2 images (7 epochs of the default toy set),
# linear warmup then cosine decay; evaluation and checkpoint at the end.
train_dataloader.update(dict(batch_size=2))
max_iters = 560
warmup_iters = 100
train_cfg = dict(
    type=IterBasedTrainLoop, max_iters=max_iters, val_interval=max_iters)
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
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=SGD, lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=2)

default_hooks.update(
    dict(
        logger=dict(interval=20),
        checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1)))
log_processor.update(dict(window_size=20, by_epoch=False))
custom_hooks = []
# Fixed seed: the smoke-test job gives (nearly) the same PQ on every run.
randomness = dict(seed=0)
