# Copyright (c) mmdr1 contributors. All rights reserved.
"""20-epoch schedule of SpatialFlow: SGD lr 0.005 for batch 8, steps 16, 19.

The reference's ``schedule_20e`` with its COCO settings (spatialflow spec
section 6.1): SGD lr 0.005 (4 GPUs x 2 images = 8 images per iteration),
momentum 0.9, weight decay 1e-4, no gradient clipping; linear warm-up over
the first 500 iterations from 0.001 x lr; lr x 0.1 after epochs 16 and 19;
20 epochs, validation every epoch.
"""
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper
from mmengine.runner import EpochBasedTrainLoop, TestLoop, ValLoop
from torch.optim import SGD

train_cfg = dict(type=EpochBasedTrainLoop, max_epochs=20, val_interval=1)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)

param_scheduler = [
    dict(type=LinearLR, start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type=MultiStepLR,
        begin=0,
        end=20,
        by_epoch=True,
        milestones=[16, 19],
        gamma=0.1)
]

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=SGD, lr=0.005, momentum=0.9, weight_decay=0.0001))

# `base_batch_size` = 4 GPUs x 2 images per GPU (the reference's setting);
# `--auto-scale-lr` scales lr 0.005 linearly from there.
auto_scale_lr = dict(enable=False, base_batch_size=8)
