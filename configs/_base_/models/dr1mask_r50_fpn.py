# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask (instance segmentation), ResNet-50 (caffe) + FPN P3-P7, COCO.

The DR1Mask paper (section 4, dr1mask spec section 7) keeps "all
hyperparameters the same with BlendMask", so this model is the BlendMask
R-50 model of :mod:`blendmask_r50_fpn` with DR1Mask's heads:

- unchanged from BlendMask: the detectron2 caffe ResNet-50 (BGR, mean
  ``[103.530, 116.280, 123.675]``, std 1, frozen BN, stem + res2 frozen,
  MSRA weights), the 256-channel FPN P3-P7 (P6 / P7 from P5), the FCOS of
  :class:`BlendMaskFCOSHead` (its defaults, inherited by
  :class:`DR1MaskFCOSHead`) and the test settings (candidates
  ``cls * ctr > 0.05``, 1000 per level, NMS 0.6, 100 per image);
- inputs padded to a multiple of 4, not 32 (spec section 6): every level
  has size ``ceil(H / s)`` and DR1Basis combines them with aligned x2
  upsampling;
- :class:`DR1MaskFCOSHead` (spec section 2): the top layer on the box
  tower gives the contexts ``[A^l, B^l]`` (2C channels) and the instance
  embeddings (``embed_dim``); no NMS-merged embeddings (``merge_embeds``
  is for the panoptic model);
- :class:`DR1MaskHead` (spec sections 3-4): :class:`DR1Basis` of width
  ``C = 32`` over the 5 levels (SyncBN, as BlendMask's basis module in
  multi-GPU training), the factored-attention instance module
  (:class:`FactoredAttention`, ``K = 4`` attention channels of rank
  ``d = 4``: ``embed_dim = C * K + K * d = 144``; 56 x 56 RoIAlign at
  stride 4, sampling ratio 1) and the auxiliary thing-semantic head on the
  basis (81 classes, BN, loss weight 0.3).

SyncBN synchronises over the GPUs of a distributed launch (``mim train
... --gpus 8 --launcher pytorch``); mmengine's runner turns it into BN in a
non-distributed run.
"""
from mmengine.config import read_base

from mmdr1.models import (DR1Basis, DR1Mask, DR1MaskFCOSHead, DR1MaskHead,
                          FactoredAttention)

with read_base():
    from .blendmask_r50_fpn import *

# BlendMask's K = 4 (num_bases) is also DR1Mask's number of attention
# channels; attn_size (M = 14) only matters for the full-attention ablation.
basis_channels = 32  # C, instance model (paper Table 6 / section 4)
attn_rank = 4  # d of the factored attention (spec section 4, choice)
embed_dim = basis_channels * num_bases + num_bases * attn_rank  # 144

model.update(dict(type=DR1Mask))
model.data_preprocessor.update(dict(pad_size_divisor=4))  # spec section 6
# The FCOS part stays BlendMask's; the top layer predicts contexts and
# embeddings instead of the 4 x 14 x 14 attentions.
model.bbox_head.update(
    dict(
        type=DR1MaskFCOSHead,
        basis_channels=basis_channels,
        embed_dim=embed_dim,
        context_from='box_tower',
        with_context=True,
        merge_embeds=None))
model.bbox_head.pop('num_bases')
model.bbox_head.pop('attn_size')
model['mask_head'] = dict(
    type=DR1MaskHead,
    basis=dict(
        type=DR1Basis,
        in_channels=256,
        channels=basis_channels,
        num_levels=5,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    instance_module=dict(
        type=FactoredAttention,
        in_channels=basis_channels,
        num_bases=num_bases,
        rank=attn_rank,
        bottom_resolution=56,
        spatial_scale=0.25,
        sampling_ratio=1),
    num_things_classes=num_things_classes,
    with_sem_head=True,
    sem_channels=128,
    sem_loss_weight=0.3,
    sem_norm_cfg=dict(type='BN', requires_grad=True),
    loss_weight=1.0)
