# Copyright (c) mmdr1 contributors. All rights reserved.
"""Toy schedule: 1000 iterations on 2 CPU cores, runtime included.

Shared by the BlendMask and DR1Mask toy configs (same budget, so their
results compare): 1000 iterations (12.5 epochs of the default toy set with
2 images per iteration), linear warm-up over 100 iterations from 0.01x,
then cosine decay to 1e-4; SGD lr 0.01, gradient clipping at 35 (training
from scratch); evaluation and one checkpoint at the end; fixed seed 0.
"""
from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import SGD

with read_base():
    from ..default_runtime import *

max_iters = 1000
warmup_iters = 100
train_cfg = dict(
    type=IterBasedTrainLoop, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type=CosineAnnealingLR,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=1e-4)
]
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=SGD, lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=2)

default_hooks.update(
    dict(
        logger=dict(interval=20),
        checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1)))
log_processor.update(dict(window_size=20, by_epoch=False))
custom_hooks = []
randomness = dict(seed=0)
randomness = dict(seed=0)
