# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic BlendMask R18-FPN trained from scratch on the toy panoptic set.

A CPU check of panoptic BlendMask (blendmask spec section 12): the toy
BlendMask of ``blendmask_r18_toy.py`` (randomly initialised ResNet-18, GN
everywhere, 128-channel FPN, slim FCOS head with attentions, ProtoNet bases
+ blender) with the FPN extended to P2 and a :class:`SemSegFPNHead` on
P2-P5 (3 stuff classes + "things"), combined by
:class:`ScoreThrHeuristicFusionHead` with the reference's instance score
0.45 and overlap 0.4; the stuff area limit is scaled to the 256 px images
(256 instead of 4096 for ~800 px images). Trained on the default toy set
in about 10 minutes on two CPU cores, then evaluated with PQ::

    python tools/dataset_converters/make_toy_panoptic.py
    mim train mmdr1 configs/blendmask/panoptic_blendmask_r18_toy.py
"""
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets.transforms import (LoadPanopticAnnotations, RandomFlip,
                                       Resize)
from mmdet.models import FPN, DetDataPreprocessor, ResNet
from mmengine.config import read_base

# yapf: disable
from mmdr1.datasets.transforms import (GenerateThingSemanticSeg,
                                       PackDetInputsWithThingSem)
from mmdr1.models import (Blender, BlendMaskFCOSHead, BlendMaskHead,
                          PanopticBlendMask, ProtoNetBasis,
                          ScoreThrHeuristicFusionHead, SemSegFPNHead)

# yapf: enable
with read_base():
    from .._base_.datasets.toy_panoptic_dataset import *
    from .._base_.schedules.schedule_toy_1000it import *

# ToyPanopticDataset.METAINFO: 3 thing classes, then 3 stuff classes.
num_things_classes = 3
num_stuff_classes = 3
num_bases = 4
attn_size = 14
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)
head_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)

model = dict(
    type=PanopticBlendMask,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255),
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
    # P2-P7: P2-P5 for the semantic head, P3-P7 for the instance branch.
    neck=dict(
        type=FPN,
        in_channels=[64, 128, 256, 512],
        out_channels=128,
        start_level=0,
        add_extra_convs='on_output',
        num_outs=6,
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
        # 256 px images: half the FCOS ranges (as blendmask_r18_toy.py).
        regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 256), (256, 1e8)),
        norm_cfg=head_norm_cfg),
    mask_head=dict(
        type=BlendMaskHead,
        # panoptic data keep panoptic labels in gt_sem_seg
        thing_sem_field='gt_thing_sem_seg',
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
    semantic_head=dict(
        type=SemSegFPNHead,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        in_channels=128,
        inner_channels=64,
        norm_cfg=norm_cfg),
    panoptic_fusion_head=dict(
        type=ScoreThrHeuristicFusionHead,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    test_cfg=dict(
        nms_pre=1000,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100,
        panoptic=dict(score_thr=0.45, mask_overlap=0.4, stuff_area_limit=256)))

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    dict(type=Resize, scale=(256, 256), keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    # thing pixels of the panoptic map (crowd included) -> 0 / label + 1
    dict(
        type=GenerateThingSemanticSeg,
        seg_key='gt_thing_sem_seg',
        source='panoptic',
        num_things_classes=num_things_classes),
    dict(type=PackDetInputsWithThingSem)
]
train_dataloader.update(dict(batch_size=2))
train_dataloader['dataset']['pipeline'] = train_pipeline
