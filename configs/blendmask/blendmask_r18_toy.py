# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask R18-FPN trained from scratch on the toy instance set.

A CPU check of the BlendMask implementation of mmdr1: a randomly
initialised ResNet-18 (GN everywhere, nothing frozen), a 128-channel FPN
(p3-p7), a slim :class:`BlendMaskFCOSHead` and a :class:`BlendMaskHead`
(``ProtoNetBasis`` bases + ``Blender``, 4 bases, 14 x 14 attentions, 56 x 56
masks), sized to train on the 3 thing classes of the default toy set
(256 px images) in about 8 minutes on two CPU cores, then evaluated with
COCO bbox and segm AP::

    python tools/dataset_converters/make_toy_panoptic.py
    mim train mmdr1 configs/blendmask/blendmask_r18_toy.py

(or ``PYTHONPATH=. python tools/train.py
configs/blendmask/blendmask_r18_toy.py`` from the repository root).
"""
from mmdet.models import FPN, DetDataPreprocessor, ResNet
from mmengine.config import read_base

from mmdr1.models import (Blender, BlendMask, BlendMaskFCOSHead, BlendMaskHead,
                          ProtoNetBasis)

with read_base():
    from .._base_.datasets.toy_instance_dataset import *
    from .._base_.schedules.schedule_toy_1000it import *

# ToyInstanceDataset.METAINFO: the 3 thing classes of the toy set.
num_things_classes = 3
num_bases = 4
attn_size = 14
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)
head_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)

model = dict(
    type=BlendMask,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0),
    backbone=dict(
        type=ResNet,
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type=FPN,
        in_channels=[64, 128, 256, 512],
        out_channels=128,
        start_level=1,
        add_extra_convs='on_output',
        num_outs=5,
        relu_before_extra_convs=True),
    bbox_head=dict(
        type=BlendMaskFCOSHead,
        num_classes=num_things_classes,
        in_channels=128,
        feat_channels=128,
        stacked_convs=2,
        num_bases=num_bases,
        attn_size=attn_size,
        strides=(8, 16, 32, 64, 128),
        # 256 px images with objects of up to ~130 px: half the FCOS
        # ranges (those are for ~800 px images) spread them over p3-p5.
        regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 256), (256, 1e8)),
        norm_cfg=head_norm_cfg),
    mask_head=dict(
        type=BlendMaskHead,
        basis=dict(
            type=ProtoNetBasis,
            in_channels=128,
            convs_dim=64,
            num_convs=2,
            num_bases=num_bases,
            num_things_classes=num_things_classes,
            norm_cfg=norm_cfg),
        blender=dict(
            type=Blender,
            num_bases=num_bases,
            attn_size=attn_size,
            bottom_resolution=56)),
    test_cfg=dict(
        nms_pre=1000,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100))

# Schedule for ~8 minutes of training on 2 CPU cores (~0.45 s per
# iteration): 1000 iterations of 2 images (12.5 epochs of the default toy
# set), linear warmup then cosine decay; evaluation and checkpoint at the
# end.
train_dataloader.update(dict(batch_size=2))
