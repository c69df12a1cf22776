# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic BlendMask R-50-FPN, 1x schedule (90k iterations), COCO 2017.

Mirrors AdelaiDet ``configs/BlendMask/Panoptic/R_50_1x.yaml`` (on
``Panoptic/Base-Panoptic.yaml``, blendmask spec sections 11.3 and 12): the
R-50 BlendMask of :mod:`blendmask_r50_fpn_1x_coco` with

- ResNet C2-C5 and an FPN that also makes P2 (P2-P7): the instance branch
  (FCOS + top layer, basis, blender) runs on P3-P7 as in the instance
  model, the semantic head on P2-P5;
- :class:`SemSegFPNHead`: detectron2's ``SemSegFPNHead`` (128 channels,
  GN, 53 stuff classes + one "things" channel at index 0, cross entropy
  ignoring 255 with weight 0.5, ``SEM_SEG_HEAD.LOSS_WEIGHT``);
- :class:`ScoreThrHeuristicFusionHead`: detectron2's
  ``combine_semantic_and_instance_outputs`` (instance score >= 0.45,
  overlap 0.4, stuff area >= 4096);
- the basis module's thing-semantic target in ``gt_thing_sem_seg`` (the
  panoptic stuff map uses ``gt_sem_seg``), padded with 0 by the head,
  while the stuff map is padded with 255 by the data preprocessor;
- data: COCO panoptic 2017, train short side 640..800, test 800; the
  reference's 1x solver (90k iterations, steps at 60k and 80k).

No published numbers for this config (spec section 15.2); the 3x version
(:mod:`panoptic_blendmask_r50_fpn_3x_coco`) reports PQ 42.5 (PQ^Th 49.5,
PQ^St 32.0).

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/blendmask/panoptic_blendmask_r50_fpn_1x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmdet.models import CrossEntropyLoss
from mmengine.config import read_base

from mmdr1.models import (PanopticBlendMask, ScoreThrHeuristicFusionHead,
                          SemSegFPNHead)

with read_base():
    from .._base_.datasets.coco_panoptic_blendmask import *
    from .._base_.default_runtime import *
    from .._base_.models.blendmask_r50_fpn import *
    from .._base_.schedules.schedule_blendmask_1x import *

num_stuff_classes = 53

model.update(
    dict(
        type=PanopticBlendMask,
        # neck outputs P2..P7: P3..P7 (index 1 on) go to the instance branch
        instance_start_level=1,
        semantic_head=dict(
            type=SemSegFPNHead,
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            in_channels=256,
            inner_channels=128,
            start_level=0,  # P2
            end_level=4,  # P5 (exclusive end)
            norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
            things_first=True,
            loss_seg=dict(
                type=CrossEntropyLoss,
                ignore_index=255,
                avg_non_ignore=True,
                loss_weight=0.5)),
        panoptic_fusion_head=dict(
            type=ScoreThrHeuristicFusionHead,
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes)))
model.data_preprocessor.update(dict(pad_seg=True, seg_pad_value=255))
model.backbone.update(dict(out_indices=(0, 1, 2, 3)))  # C2-C5
# FPN on C2-C5: P2-P5 plus P6 / P7 from P5.
model.neck.update(
    dict(in_channels=[256, 512, 1024, 2048], start_level=0, num_outs=6))
model.mask_head.update(dict(thing_sem_field='gt_thing_sem_seg'))
# Given to the fusion head (spec 12.3; INSTANCES_CONFIDENCE_THRESH 0.45,
# OVERLAP_THRESH 0.4, STUFF_AREA_LIMIT 4096).
panoptic_test_cfg = dict(
    score_thr=0.45, mask_overlap=0.4, stuff_area_limit=4096)
model.test_cfg.update(dict(panoptic=panoptic_test_cfg))

# Iteration-based checkpoints and logs (detectron2 counts iterations).
default_hooks.update(dict(checkpoint=dict(by_epoch=False, interval=10000)))
log_processor.update(dict(by_epoch=False))
# mmdet's NumClassCheckHook does not apply to panoptic datasets.
custom_hooks = []
