# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask panoptic R-50-FPN, 3x schedule (270k iterations), COCO 2017.

DR1Mask paper section 3.3 and Table 9 (dr1mask spec section 5): the
instance model of :mod:`dr1mask_r50_fpn_3x_coco` (same backbone, FPN
P3-P7, FCOS, DR1Basis, solver and 3x schedule with steps at 180k / 240k as
the paper's text; AdelaiDet's BlendMask 3x uses 210k / 250k) turned into a
panoptic model by one extra 1x1 layer:

- DR1Basis of width C = 64 (paper Table 6) and vector embeddings
  (``embed_dim = C = 64``, :class:`VectorMask`; position-sensitive
  attention hurts the stuff quality, paper Table 7);
- :class:`UnifiedPanopticHead`: 53 static stuff rows plus one dynamic row
  per instance (the mean of its embeddings: of its FCOS positives in
  training, of the detections it absorbed in NMS at inference,
  ``merge_embeds='mean'``) over the basis, softmax cross entropy at the
  input resolution (aligned x4 upsampling), stuff regions below 4096 px
  become void;
- :class:`DR1MaskPanoptic` with ``with_instance_loss=True``: the
  embeddings also drive the vector instance module with BlendMask's mask
  loss and the auxiliary thing-semantic loss, so the model predicts
  ``pred_instances`` next to ``pred_panoptic_seg``;
- data: COCO panoptic 2017 (:mod:`coco_panoptic_blendmask`): panoptic
  labels in ``gt_sem_seg`` (padded with 255 by the data preprocessor), the
  basis' thing-semantic target in ``gt_thing_sem_seg`` (padded with 0 by
  the head); train short side 640..800, test 800; inputs padded to a
  multiple of 4.

Paper result (Table 9, COCO val, R-50): PQ 42.9 (SQ 79.8, RQ 52.0, PQ^Th
49.5, PQ^St 32.9) at 79 ms per image (1080Ti), vs. Panoptic-FPN 41.5 at
89 ms and panoptic BlendMask 42.5 at 96 ms.

Train on 8 GPUs x 2 images::

    mim train mmdr1 configs/dr1mask/dr1mask_panoptic_r50_fpn_3x_coco.py \\
        --gpus 8 --launcher pytorch
"""
from mmengine.config import read_base

from mmdr1.models import DR1MaskPanoptic, UnifiedPanopticHead, VectorMask

with read_base():
    from .._base_.datasets.coco_panoptic_blendmask import *
    from .._base_.default_runtime import *
    from .._base_.models.dr1mask_r50_fpn import *
    from .._base_.schedules.schedule_blendmask_1x import *

num_stuff_classes = 53
basis_channels = 64  # C, panoptic model (paper Table 6)
embed_dim = basis_channels  # vector embeddings (paper Table 7)

model.update(
    dict(
        type=DR1MaskPanoptic,
        panoptic_head=dict(
            type=UnifiedPanopticHead,
            in_channels=basis_channels,
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            upsample='aligned',
            loss_weight=1.0,
            ignore_index=255,
            stuff_area_limit=4096),
        with_instance_loss=True))
model.data_preprocessor.update(dict(pad_seg=True, seg_pad_value=255))
model.bbox_head.update(
    dict(
        basis_channels=basis_channels,
        embed_dim=embed_dim,
        merge_embeds='mean'))
model.mask_head.basis.update(dict(channels=basis_channels))
model.mask_head['instance_module'] = dict(
    type=VectorMask,
    in_channels=basis_channels,
    bottom_resolution=56,
    spatial_scale=0.25,
    sampling_ratio=1)
# panoptic data keep the panoptic labels in gt_sem_seg
model.mask_head.update(dict(thing_sem_field='gt_thing_sem_seg'))

# 3x: 270k iterations, steps at 180k and 240k (paper section 4.2).
max_iters = 270000
train_cfg.update(dict(max_iters=max_iters, val_interval=max_iters))
param_scheduler[1].update(dict(end=max_iters, milestones=[180000, 240000]))

# Iteration-based checkpoints and logs (detectron2 counts iterations).
default_hooks.update(dict(checkpoint=dict(by_epoch=False, interval=30000)))
log_processor.update(dict(by_epoch=False))
# mmdet's NumClassCheckHook does not apply to panoptic datasets.
custom_hooks = []
