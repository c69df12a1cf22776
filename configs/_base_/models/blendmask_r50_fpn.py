# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask, ResNet-50 (caffe) + FPN P3-P7, 80 COCO thing classes.

The model of AdelaiDet's ``Base-BlendMask.yaml`` with R-50 (blendmask spec
sections 4-7 and 11):

- backbone: detectron2's MSRA R-50 (``style='caffe'``, stride in the 1x1
  conv), frozen BN everywhere, stem and res2 frozen (``FREEZE_AT`` 2 =
  ``frozen_stages=1``), C3-C5 out; BGR input, mean ``[103.530, 116.280,
  123.675]``, std 1, padded to a multiple of 32;
- FPN: 256 channels on C3-C5, P6 / P7 from P5 (``LastLevelP6P7`` on
  ``p5``, ReLU before P7), detectron2's ``c2_xavier_fill`` init;
- :class:`BlendMaskFCOSHead`: the FCOS of ``MODEL.FCOS`` with BlendMask's
  ``USE_SCALE False`` / ``THRESH_WITH_CTR True`` (the class defaults): 4 +
  4 GN convs, strides 8-128, sizes of interest 64 / 128 / 256 / 512, the
  784-channel (4 x 14 x 14) top layer; test: candidates ``cls * ctr >
  0.05``, 1000 per level, NMS 0.6, 100 per image;
- :class:`BlendMaskHead`: :class:`ProtoNetBasis` (128 channels, 3 tower
  convs, 4 bases, SyncBN as the reference's ``BASIS_MODULE.NORM``, the
  auxiliary thing-semantic head with loss weight 0.3) and
  :class:`Blender` (56 x 56 RoIAlignV2 at stride 4, sampling ratio 1).

SyncBN synchronises over the GPUs of a distributed launch (``mim train
... --gpus 8 --launcher pytorch``); mmengine's runner turns it into BN in a
non-distributed run.
"""
from mmdet.models import FPN, DetDataPreprocessor, ResNet

from mmdr1.models import (Blender, BlendMask, BlendMaskFCOSHead, BlendMaskHead,
                          ProtoNetBasis)

num_things_classes = 80
num_bases = 4
attn_size = 14

model = dict(
    type=BlendMask,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        # detectron2 caffe ResNet: BGR input, PIXEL_STD 1.
        mean=[103.530, 116.280, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0),
    backbone=dict(
        type=ResNet,
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='caffe',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron2/resnet50_caffe')),
    neck=dict(
        type=FPN,
        in_channels=[512, 1024, 2048],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_output',  # P6 from P5, P7 from relu(P6)
        num_outs=5,
        relu_before_extra_convs=True,
        # detectron2's c2_xavier_fill (kaiming_uniform_(a=1), bias 0) on
        # the lateral, output and P6 / P7 convs, instead of mmdet's Xavier.
        init_cfg=dict(
            type='Kaiming',
            layer='Conv2d',
            a=1,
            mode='fan_in',
            nonlinearity='leaky_relu',
            distribution='uniform')),
    bbox_head=dict(
        type=BlendMaskFCOSHead,
        num_classes=num_things_classes,
        in_channels=256,
        feat_channels=256,
        stacked_convs=4,
        num_bases=num_bases,
        attn_size=attn_size,
        strides=(8, 16, 32, 64, 128),
        regress_ranges=((-1, 64), (64, 128), (128, 256), (256, 512), (512,
                                                                      1e8)),
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)),
    mask_head=dict(
        type=BlendMaskHead,
        basis=dict(
            type=ProtoNetBasis,
            in_channels=256,
            convs_dim=128,
            num_convs=3,
            num_bases=num_bases,
            num_things_classes=num_things_classes,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_on=True,
            loss_weight=0.3),
        blender=dict(
            type=Blender,
            num_bases=num_bases,
            attn_size=attn_size,
            bottom_resolution=56,
            spatial_scale=0.25,
            sampling_ratio=1),
        loss_weight=1.0),
    test_cfg=dict(
        nms_pre=1000,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100))
