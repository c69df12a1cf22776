# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask R18-FPN trained from scratch on the toy instance set.

A CPU check of the DR1Mask instance model (DR1Mask paper section 3.2,
dr1mask spec sections 2-4): the model of ``dr1mask_panoptic_r18_toy.py``
without the unified panoptic head, on the data, schedule and budget of
``configs/blendmask/blendmask_r18_toy.py`` (3 thing classes, 256 px
images, 1000 iterations of 2 images), evaluated with COCO bbox and segm AP:

- randomly initialised ResNet-18 (GN everywhere, nothing frozen), 128-channel
  FPN P3-P7, inputs padded to a multiple of 4 (spec section 6);
- :class:`DR1MaskFCOSHead`: contexts [A, B] and 144-number embeddings from
  the box tower (spec section 2);
- :class:`DR1MaskHead`: :class:`DR1Basis` (width C = 32) and the factored
  attention instance module (K = 4, d = 4: ``embed_dim = 32 * 4 + 4 * 4 =
  144``) with BlendMask's mask loss, plus the auxiliary thing-semantic
  loss, whose target the head paints from the GT masks (the toy instance
  pipeline packs no thing map)::

    python tools/dataset_converters/make_toy_panoptic.py
    mim train mmdr1 configs/dr1mask/dr1mask_r18_toy.py
"""
from mmdet.models import FPN, DetDataPreprocessor, ResNet
from mmengine.config import read_base

from mmdr1.models import (DR1Basis, DR1Mask, DR1MaskFCOSHead, DR1MaskHead,
                          FactoredAttention)

with read_base():
    from .._base_.datasets.toy_instance_dataset import *
    from .._base_.schedules.schedule_toy_1000it import *

# ToyInstanceDataset.METAINFO: the 3 thing classes of the toy set.
num_things_classes = 3
basis_channels = 32  # C
num_bases = 4  # K
attn_rank = 4  # d
embed_dim = basis_channels * num_bases + num_bases * attn_rank  # 144
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)
head_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
basis_norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)

model = dict(
    type=DR1Mask,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=4,  # spec section 6
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
        type=DR1MaskFCOSHead,
        num_classes=num_things_classes,
        in_channels=128,
        feat_channels=128,
        stacked_convs=2,
        basis_channels=basis_channels,
        embed_dim=embed_dim,
        strides=(8, 16, 32, 64, 128),
        # 256 px images: half the FCOS ranges (as the BlendMask toys).
        regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 256), (256, 1e8)),
        norm_cfg=head_norm_cfg),
    mask_head=dict(
        type=DR1MaskHead,
        basis=dict(
            type=DR1Basis,
            in_channels=128,
            channels=basis_channels,
            num_levels=5,
            norm_cfg=basis_norm_cfg),
        instance_module=dict(
            type=FactoredAttention,
            in_channels=basis_channels,
            num_bases=num_bases,
            rank=attn_rank),
        num_things_classes=num_things_classes,
        sem_channels=64,
        sem_norm_cfg=norm_cfg),
    test_cfg=dict(
        nms_pre=1000,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100))

# Schedule as the BlendMask toys: 1000 iterations of 2 images, linear
# warmup then cosine decay; evaluation and checkpoint at the end.
train_dataloader.update(dict(batch_size=2))
