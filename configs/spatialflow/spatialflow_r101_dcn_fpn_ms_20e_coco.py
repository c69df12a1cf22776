# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow R-101-DCN-FPN, multi-scale training, fp16, 20 epochs, COCO.

The reference's
``configs/spatialflow/spatialflow_r101_dcn_fpn_20e_coco_multiscale_fp16.py``
(spatialflow spec sections 2.4, 5.2 and 6.1): :mod:`spatialflow_r101_fpn_
20e_coco` with

- DCNv2 (modulated deformable conv, 1 deform group) in ResNet stages
  C3-C5 (``stage_with_dcn=(False, True, True, True)``);
- deformable sub-networks (spec 2.4): every cls and stuff stage and the
  thing stage are DCNv2 convs whose offsets and modulation come from the
  reg flow (``dcn_cls_convs_idx=(0, 1, 2, 3)``, ``dcn_stuff_convs_idx=(0,
  1, 2, 3)``, ``dcn_thing_convs_idx=(0, )``; the reg tower stays plain);
- multi-scale training: short side uniform in [400, 1400], long side at
  most 1600 (the reference's ``img_scale=[(1600, 400), (1600, 1400)],
  multiscale_mode='range'``, i.e. mmcv's ``RandomResize`` with two
  scales), flip 0.5; 4 dataloader workers per GPU;
- mixed precision with a static loss scale of 512 (the reference's
  ``fp16=dict(loss_scale=512.)``); needs GPUs;
- the reference's multi-scale + flip test (spec 5.2) as ``tta_model`` /
  ``tta_pipeline``, used by ``tools/test.py --tta``: scales (1500, 1000),
  (1800, 1200), (2100, 1400), each with and without horizontal flip (6
  passes); :class:`SpatialFlowTTAModel` concatenates the pre-NMS boxes of
  all passes before one class-aware NMS (0.4, 100 boxes), averages the mask
  probabilities and the stuff logits (bilinear, ``align_corners=True``).
  Without ``--tta`` the test is single-scale 1333 x 800.

Published (reference README, spec 7.1; multi-scale + flip test): COCO
val2017 PQ 48.0, SQ 81.3, RQ 57.5, PQ^Th 55.0, PQ^St 37.6; test-dev PQ
48.5 (PQ^Th 55.5, PQ^St 37.9). The paper (Table II, test-dev) reports PQ
47.9 (PQ^Th 54.5, PQ^St 38.0).

Train on 4 GPUs x 2 images, then test with TTA::

    mim train mmdr1 configs/spatialflow/spatialflow_r101_dcn_fpn_ms_20e_coco.py \\
        --gpus 4 --launcher pytorch
    mim test mmdr1 configs/spatialflow/spatialflow_r101_dcn_fpn_ms_20e_coco.py \\
        --checkpoint work_dirs/spatialflow_r101_dcn_fpn_ms_20e_coco/epoch_20.pth \\
        --gpus 4 --launcher pytorch --tta
"""  # noqa: E501
from mmcv.transforms import LoadImageFromFile, RandomResize, TestTimeAug
from mmdet.datasets.transforms import (LoadPanopticAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmengine.config import read_base
from mmengine.optim import AmpOptimWrapper

with read_base():
    from .spatialflow_r101_fpn_20e_coco import *

model.backbone.update(
    dict(
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True)))
model.bbox_head.update(
    dict(
        dcn_cls_convs_idx=(0, 1, 2, 3),
        dcn_stuff_convs_idx=(0, 1, 2, 3),
        dcn_thing_convs_idx=(0, )))

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadPanopticAnnotations, backend_args=backend_args),
    dict(
        type=RandomResize,
        scale=[(1600, 400), (1600, 1400)],
        resize_type=Resize,
        keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackDetInputs)
]
train_dataloader.update(dict(num_workers=4))
train_dataloader['dataset']['pipeline'] = train_pipeline

# fp16=dict(loss_scale=512.) of mmdet 2.x: static loss scale.
optim_wrapper.update(dict(type=AmpOptimWrapper, loss_scale=512.))

# Multi-scale + flip test (spec 5.2): `tools/test.py --tta`.
tta_scales = [(1500, 1000), (1800, 1200), (2100, 1400)]
# ``tools/test.py --tta`` (``mmdr1.utils.cli.enable_tta``) wraps the model
# in this TTA model (by registered name here; an imported class works too).
tta_model = dict(
    type='SpatialFlowTTAModel',
    tta_cfg=dict(
        nms=dict(type='nms', iou_threshold=0.4),
        max_per_img=100,
        stuff_resize_cfg=dict(mode='bilinear', align_corners=True)))
tta_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(
        type=TestTimeAug,
        transforms=[
            [dict(type=Resize, scale=s, keep_ratio=True) for s in tta_scales],
            [dict(type=RandomFlip, prob=1.),
             dict(type=RandomFlip, prob=0.)],
            [dict(type=LoadPanopticAnnotations, backend_args=backend_args)],
            [
                dict(
                    type=PackDetInputs,
                    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                               'scale_factor', 'flip', 'flip_direction'))
            ]
        ])
]
