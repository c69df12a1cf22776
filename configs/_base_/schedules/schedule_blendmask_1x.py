# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask's reference 1x solver: 90k iterations of 16 images.

detectron2's default solver as AdelaiDet's ``Base-BlendMask.yaml`` uses it
(blendmask spec sections 11.2 and 11.5):

- SGD, ``BASE_LR`` 0.01 for 16 images per iteration, momentum 0.9;
- weight decay 1e-4 on every parameter except the norm layers' weights
  and biases (``WEIGHT_DECAY_NORM`` 0); biases get the normal decay and
  learning rate (``WEIGHT_DECAY_BIAS`` 1e-4, ``BIAS_LR_FACTOR`` 1);
- linear warmup over 1000 iterations from factor 0.001, then x0.1 steps at
  60k and 80k iterations, 90k iterations in all (``WarmupMultiStepLR``);
- no gradient clipping, no mixed precision.

The 3x / 4x configs set ``max_iters`` and the milestones themselves
(``train_cfg``, ``param_scheduler[1]``). Evaluation runs once, after the
last iteration (detectron2's ``TEST.EVAL_PERIOD`` 0).
"""
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import SGD

max_iters = 90000
train_cfg = dict(
    type=IterBasedTrainLoop, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)

param_scheduler = [
    dict(type=LinearLR, start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type=MultiStepLR,
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[60000, 80000],
        gamma=0.1)
]

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=SGD, lr=0.01, momentum=0.9, weight_decay=0.0001),
    # No weight decay on norm layers (detectron2 WEIGHT_DECAY_NORM 0.0);
    # bias decay and bias lr multipliers stay 1 as in detectron2.
    paramwise_cfg=dict(norm_decay_mult=0.))

# `base_batch_size` = 8 GPUs x 2 images per GPU.
auto_scale_lr = dict(enable=False, base_batch_size=16)
