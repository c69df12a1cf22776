# Copyright (c) mmdr1 contributors. All rights reserved.
"""RetinaNet with the reg -> cls spatial flow, R-50-FPN, 1x, COCO detection.

The paper's detection-only experiment (section V "Detection Results",
Table XII; spatialflow spec 2.3): stock mmdet ``RetinaNet`` whose head is
:class:`SpatialFlowHead` without stuff and thing sub-networks
(``stacked_stuff_convs=0``, ``stacked_thing_convs=0``), so the only flow
is the reg -> cls flow at each of the 4 tower stages (a 3x3 conv of the
reg feature added to the input of the cls conv of the same stage).
Everything else is mmdet 3.3's ``retinanet_r50_fpn_1x_coco``: ResNet-50
(``torchvision://resnet50``), FPN P3-P7 (P6 from C5), 9 anchors, focal +
L1 losses, NMS 0.5, COCO 2017 detection at 1333 x 800 with flip 0.5, SGD
lr 0.01 for 8 GPUs x 2 images, 12 epochs with steps at 8 and 11.

Published (paper Table XII, COCO box AP; backbone / schedule not stated
there, R-50 1x assumed): RetinaNet 35.6 (AP50 55.5, AP75 37.7) -> with
flows 36.7 (AP50 57.1, AP75 39.4). The reference repository has no config
for it. mmdet 3.3's plain ``retinanet_r50_fpn_1x_coco`` reports 36.5.

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/spatialflow/retinanet_flow_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import AspectRatioBatchSampler, CocoDataset
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmdet.evaluation import CocoMetric
from mmdet.models import (FPN, DetDataPreprocessor, FocalLoss, L1Loss, ResNet,
                          RetinaNet)
from mmdet.models.task_modules import (AnchorGenerator, DeltaXYWHBBoxCoder,
                                       MaxIoUAssigner, PseudoSampler)
from mmengine.config import read_base
from mmengine.dataset import DefaultSampler
from torch.optim import SGD

from mmdr1.models import SpatialFlowHead

with read_base():
    from .._base_.default_runtime import *
    from .._base_.schedules.schedule_1x import *

model = dict(
    type=RetinaNet,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type=ResNet,
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        # 'torchvision://resnet50', by URL (no torchvision needed)
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
        num_classes=80,
        in_channels=256,
        feat_channels=256,
        stacked_convs=4,
        # RetinaNet with flows: no stuff / thing sub-networks, so only the
        # reg -> cls flow exists.
        stacked_stuff_convs=0,
        stacked_thing_convs=0,
        with_reg_cls_flow=True,
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
    train_cfg=dict(
        assigner=dict(
            type=MaxIoUAssigner,
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type=PseudoSampler),  # focal loss: no sampling
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))

# COCO 2017 detection (values as mmdet 3.3's ``coco_detection``).
dataset_type = CocoDataset
data_root = 'data/coco/'
backend_args = None
train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
    dict(type=LoadAnnotations, with_bbox=True),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    batch_sampler=dict(type=AspectRatioBatchSampler),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type=CocoMetric,
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

# RetinaNet's lr: 0.01 for 8 GPUs x 2 images (schedule_1x has 0.02).
optim_wrapper.update(
    dict(optimizer=dict(type=SGD, lr=0.01, momentum=0.9, weight_decay=0.0001)))
