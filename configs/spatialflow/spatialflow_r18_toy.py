# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow R18-FPN trained from scratch on the toy panoptic set.

A CPU check of SpatialFlow (spatialflow spec sections 2-5) with the same
data, schedule and budget as the other panoptic toys
(``panoptic_blendmask_r18_toy.py``, ``dr1mask_panoptic_r18_toy.py``): the
default toy set (256 px images, 3 thing and 3 stuff classes), 1000
iterations of 2 images, then PQ on the toy val split:

- randomly initialised ResNet-18 (GN everywhere, nothing frozen),
  128-channel FPN P3-P7 (P6 from C5, as RetinaNet);
- :class:`SpatialFlowHead` with all four flows and 128 channels, slimmer
  towers than COCO's 4 / 4 / 1: 2 cls / reg stages, 2 stuff stages and 1
  thing stage; anchors of half the COCO size (octave base scale 2: 16 to
  ~400 px instead of 32 to ~800 px) for objects of 5-130 px;
- GN(32) in the head's tower convs (never in the flows), unlike the
  reference's norm-free towers (COCO configs): trained from scratch for
  1000 iterations, the norm-free head hardly trains its classifier
  (``loss_cls`` 1.11 -> 0.87, max val scores ~0.1-0.4, below the fusion's
  0.37), which gave PQ 47.5 with Things PQ 2.4; with GN ``loss_cls`` goes
  1.08 -> 0.22 on the same seed and data;
- thing head: RoIAlign 14 on the thing features, ``finest_scale`` 28
  (halved like the anchors), 2-conv 128-channel FCN mask head, 3 classes;
- stuff head: 3 stuff classes + "other", 64 channels, GN(16), loss weight
  0.5: the reference's effective weight at 2 images per batch (the COCO
  configs keep its nominal 0.25, see the base model config);
- fusion: the COCO thresholds (0.37 / 0.37, box fill 0.5) with the stuff
  area limit scaled by the image area, 4900 x 256^2 / (800 x 1333) = 301
  -> 300 px;
- ``tta_model`` / ``tta_pipeline``: the DCN config's multi-scale + flip
  test shrunk to the toy (short side 256 and 320, each flipped and not),
  for ``tools/test.py --tta``.

Toy val (seed 0, 2 CPU cores, ~10 minutes when the machine is otherwise
idle): PQ 73.8 (Things 55.5, Stuff 92.0); with ``--tta`` PQ 75.8 (Things
58.4, Stuff 93.1).

Run::

    python tools/dataset_converters/make_toy_panoptic.py
    mim train mmdr1 configs/spatialflow/spatialflow_r18_toy.py
"""
from mmcv.transforms import LoadImageFromFile, TestTimeAug
from mmdet.datasets.transforms import (LoadPanopticAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.toy_panoptic_dataset import *
    from .._base_.models.spatialflow_r50_fpn import *
    from .._base_.schedules.schedule_toy_1000it import *

# ToyPanopticDataset.METAINFO: 3 thing classes, then 3 stuff classes.
num_things_classes = 3
num_stuff_classes = 3
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)
head_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)

model.update(
    dict(
        backbone=dict(
            depth=18,
            frozen_stages=-1,
            norm_cfg=norm_cfg,
            norm_eval=False,
            init_cfg=None),
        neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
        bbox_head=dict(
            num_classes=num_things_classes,
            in_channels=128,
            feat_channels=128,
            stacked_convs=2,
            stacked_stuff_convs=2,
            stacked_thing_convs=1,
            # GN in the tower convs (not in the flows): from scratch and in
            # 1000 iterations the reference's norm-free towers hardly train
            # the classifier (see the docstring)
            norm_cfg=head_norm_cfg,
            # 256 px images: half the COCO anchor sizes
            anchor_generator=dict(octave_base_scale=2)),
        thing_head=dict(
            roi_extractor=dict(out_channels=128, finest_scale=28),
            mask_head=dict(
                num_convs=2,
                in_channels=128,
                conv_out_channels=128,
                num_classes=num_things_classes)),
        stuff_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            in_channels=128,
            feat_channels=64,
            norm_cfg=norm_cfg,
            loss_seg=dict(loss_weight=0.5)),
        panoptic_fusion_head=dict(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes),
        # 4900 px at ~800 x 1333 -> 300 px at 256 x 256
        test_cfg=dict(panoptic=dict(stuff_area_limit=300))))

train_dataloader.update(dict(batch_size=2))

# ``tools/test.py --tta`` (``mmdr1.utils.cli.enable_tta``) wraps the model
# in this TTA model (by registered name here; an imported class works too).
tta_model = dict(
    type='SpatialFlowTTAModel',
    tta_cfg=dict(
        nms=dict(type='nms', iou_threshold=0.4),
        max_per_img=100,
        stuff_resize_cfg=dict(mode='bilinear', align_corners=True)))
tta_scales = [(256, 256), (320, 320)]
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
