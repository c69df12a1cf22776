# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow, ResNet-50 + FPN (P3-P7), COCO panoptic classes.

The reference's ``configs/_base_/models/spatialflow_r50_fpn.py``
(``chensnathan/SpatialFlow``, mmdet 2.3; spatialflow spec sections 2-5):

- RetinaNet base (spec 2.1): ResNet-50 (``torchvision://resnet50``,
  pytorch style, stem and stage 1 frozen, BN statistics frozen), FPN on
  C3-C5 with P6 from C5 (``add_extra_convs='on_input'``) and P7 from P6,
  256 channels; 9 anchors per location (octave base scale 4, 3 scales per
  octave, ratios 0.5 / 1 / 2), deltas with means 0 / stds 1, MaxIoU 0.5 /
  0.4, focal loss (gamma 2, alpha 0.25) and L1 loss, both weight 1.
- :class:`SpatialFlowHead` (spec 2.2, 2.3): cls and reg towers of 4 convs
  on P3-P7, a stuff tower of 4 and a thing tower of 1 conv on P3-P5, no
  norm, and all four flows (reg -> cls, reg -> stuff, reg -> thing, stuff
  -> thing).
- :class:`SpatialFlowThingHead` (spec 3): RoIAlign 14x14 on the thing
  tower outputs (strides 8 / 16 / 32, ``finest_scale`` 56), Mask R-CNN's
  4-conv FCN mask head with 80 class-specific 28x28 outputs. Training RoIs
  (``train_cfg.thing_proposal``): the detached detections (top 1000 per
  level, score > 0.05, class-aware NMS 0.4, 100 per image) plus the GT
  boxes, positives of MaxIoU 0.5 / 0.5 / min 0.5 (``train_cfg.thing``).
- :class:`SpatialFlowStuffHead` (spec 4): 53 stuff classes + "other" (all
  things) on the stuff tower outputs at P3-P5, 128 channels, GN(32),
  bilinear ``align_corners=True`` upsampling, cross entropy at the full
  padded input resolution, 255 ignored, the standard per-pixel mean over
  non-ignored pixels with the reference's weight 0.25 (the paper's lambda,
  best in its sweep). Note: the reference's own loss (spec 4.3) sums the
  per-image means over the images of a GPU and trains padding as class 0,
  i.e. an effective weight of 0.25 x 2 = 0.5 at 2 images per GPU;
  ``reference_loss_quirks=True`` reproduces that loss exactly, and
  ``loss_weight=0.5`` its effective weight without the padding quirk.
- Test (spec 5.1, 5.3): score > 0.05, class-aware NMS 0.4, 100 detections,
  masks at 0.5; :class:`BoxFillFusionHead` keeps instances with score >=
  0.37 and overlap <= 0.37, stuff regions of >= 4900 px, then fills boxes
  whose region is >= 50 % unassigned (``test_cfg.panoptic``).
- Images: RGB, ImageNet mean / std, padded to a multiple of 32; masks padded
  with 0 and the panoptic label map with 255 (ignored).
"""
from mmcv.ops import RoIAlign
from mmdet.models import (FPN, CrossEntropyLoss, DetDataPreprocessor,
                          FCNMaskHead, FocalLoss, L1Loss, ResNet,
                          SingleRoIExtractor)
from mmdet.models.task_modules import (AnchorGenerator, DeltaXYWHBBoxCoder,
                                       MaxIoUAssigner, PseudoSampler)

# yapf: disable
from mmdr1.models import (BoxFillFusionHead, SpatialFlow, SpatialFlowHead,
                          SpatialFlowStuffHead, SpatialFlowThingHead)

# yapf: enable
num_things_classes = 80
num_stuff_classes = 53

model = dict(
    type=SpatialFlow,
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
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        # ImageNet weights of 'torchvision://resnet50' (mmengine's URL for
        # it), given by URL so that torchvision itself is not needed.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/'
            'resnet50-0676ba61.pth')),
    neck=dict(
        type=FPN,
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        type=SpatialFlowHead,
        num_classes=num_things_classes,
        in_channels=256,
        feat_channels=256,
        stacked_convs=4,
        stacked_stuff_convs=4,
        stacked_thing_convs=1,
        num_seg_levels=3,  # stuff and thing towers on P3-P5
        with_reg_cls_flow=True,
        with_reg_stuff_flow=True,
        with_reg_thing_flow=True,
        with_semantic_flow=True,
        dcn_cls_convs_idx=None,
        dcn_stuff_convs_idx=None,
        dcn_thing_convs_idx=None,
        conv_cfg=None,
        norm_cfg=None,
        anchor_generator=dict(
            type=AnchorGenerator,
            octave_base_scale=4,
            scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type=DeltaXYWHBBoxCoder,
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type=FocalLoss,
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type=L1Loss, loss_weight=1.0)),
    thing_head=dict(
        type=SpatialFlowThingHead,
        roi_extractor=dict(
            type=SingleRoIExtractor,
            roi_layer=dict(
                type=RoIAlign, output_size=14, sampling_ratio=0, aligned=True),
            out_channels=256,
            featmap_strides=[8, 16, 32],
            finest_scale=56),
        mask_head=dict(
            type=FCNMaskHead,
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=num_things_classes,
            class_agnostic=False,
            loss_mask=dict(
                type=CrossEntropyLoss, use_mask=True, loss_weight=1.0)),
        add_gt_as_proposals=True),
    stuff_head=dict(
        type=SpatialFlowStuffHead,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        in_channels=256,
        feat_channels=128,
        feat_strides=(8, 16, 32),
        out_stride=4,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        upsample_mode='bilinear',
        align_corners=True,
        rescale_cfg=dict(mode='nearest'),
        reference_loss_quirks=False,
        loss_seg=dict(
            type=CrossEntropyLoss,
            ignore_index=255,
            avg_non_ignore=True,
            loss_weight=0.25)),
    panoptic_fusion_head=dict(
        type=BoxFillFusionHead,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    train_cfg=dict(
        # RetinaNet (given to bbox_head)
        assigner=dict(
            type=MaxIoUAssigner,
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type=PseudoSampler),  # focal loss: no sampling
        allowed_border=-1,
        pos_weight=-1,
        debug=False,
        # detections that become the thing head's training RoIs (spec 3.2)
        thing_proposal=dict(
            nms_pre=1000,
            min_bbox_size=0,
            score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.4),
            max_per_img=100),
        # the thing head's assigner (GTs are prepended as proposals)
        thing=dict(
            assigner=dict(
                type=MaxIoUAssigner,
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                ignore_iof_thr=-1),
            mask_size=28)),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.4),
        max_per_img=100,
        thing=dict(mask_thr_binary=0.5),
        # BoxFillFusionHead (the reference's confidence_thr, overlap_thr,
        # stuff_area_limit, using_bbox, bbox_overlap_thr)
        panoptic=dict(
            instance_score_thr=0.37,
            overlap_thr=0.37,
            stuff_area_limit=4900,
            use_bbox_fill=True,
            bbox_overlap_thr=0.5)))
