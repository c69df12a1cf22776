# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask mask head: DR1Basis + an instance prediction module.

DR1Mask paper sections 3.2.2-3.2.3 and dr1mask spec sections 3 and 4. The
mask loss and the inference (pooling on unclipped boxes, pasting into
clipped boxes) are BlendMask's (spec section 4, last paragraph), so this
head subclasses :class:`BlendMaskHead`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, InstanceList, OptConfigType
from torch import Tensor

from .blendmask_mask_head import BlendMaskHead


@MODELS.register_module()
class DR1MaskHead(BlendMaskHead):
    """DR1Basis, instance prediction module and auxiliary semantic head.

    - ``basis`` (:class:`DR1Basis`) turns the FPN levels and the contexts
      ``[A^l, B^l]`` of :class:`DR1MaskFCOSHead` into the C-channel basis at
      stride 4 (cropped to a quarter of the padded input, which is a
      multiple of 4, spec section 6).
    - ``instance_module`` crops the basis with the instance box and combines
      it under the instance embedding: :class:`FactoredAttention`
      (default), :class:`VectorMask` or :class:`Blender` (spec section 4).
      When the module expects fewer channels than the basis has (e.g. the
      blender with K=4 on a C=32 basis), a static 1x1 conv ``proj`` maps the
      basis to them first ("or after a projection", spec section 4 item 2).
    - the auxiliary thing-semantic head (spec section 3, choice: on the
      basis): conv3x3-BN-ReLU x2 (``sem_channels``) and a 1x1 conv to
      ``num_things_classes + 1``; cross entropy over all pixels against the
      thing map nearest-downsampled to the basis, background 0, no ignore,
      weight ``sem_loss_weight`` (0.3, as BlendMask). Only in training.

    Mask loss and inference: :class:`BlendMaskHead` (centerness-weighted
    BCE on the assigned GT boxes; masks pooled on unclipped boxes and
    pasted into clipped ones), with the embeddings as ``top_feats``.

    Args:
        basis (dict): :class:`DR1Basis` config.
        instance_module (dict): Instance prediction module config.
        num_things_classes (int): Thing classes of the semantic head.
            Defaults to 80.
        with_sem_head (bool): Build the auxiliary semantic head. Defaults
            to True.
        sem_channels (int): Channels of its convs. Defaults to 128.
        sem_loss_weight (float): Defaults to 0.3.
        sem_norm_cfg (dict): Its norm. Defaults to BN.
        **kwargs: :class:`BlendMaskHead` arguments (``loss_weight``,
            ``mask_thr``, ``thing_sem_field``, ``init_cfg``...).
    """

    def __init__(self,
                 basis: ConfigType = dict(type='DR1Basis'),
                 instance_module: ConfigType = dict(type='FactoredAttention'),
                 num_things_classes: int = 80,
                 with_sem_head: bool = True,
                 sem_channels: int = 128,
                 sem_loss_weight: float = 0.3,
                 sem_norm_cfg: OptConfigType = dict(
                     type='BN', requires_grad=True),
                 **kwargs) -> None:
        super().__init__(basis=basis, blender=instance_module, **kwargs)
        channels = self.basis.channels
        needed = self.blender.in_channels
        self.proj = None
        if needed != channels:
            self.proj = nn.Conv2d(channels, needed, 1)
        self.num_things_classes = num_things_classes
        self.sem_loss_weight = sem_loss_weight
        self.sem_head = None
        if with_sem_head:
            self.sem_head = nn.Sequential(
                ConvModule(
                    channels,
                    sem_channels,
                    3,
                    padding=1,
                    norm_cfg=sem_norm_cfg),
                ConvModule(
                    sem_channels,
                    sem_channels,
                    3,
                    padding=1,
                    norm_cfg=sem_norm_cfg),
                nn.Conv2d(sem_channels, num_things_classes + 1, 1))

    @property
    def instance_module(self) -> nn.Module:
        """The instance prediction module (stored as ``blender``)."""
        return self.blender

    def forward(self,
                x: Union[List[Tensor], Tuple[Tensor, ...]],
                contexts: Optional[Sequence[Tensor]] = None,
                output_size: Optional[Tuple[int, int]] = None,
                positive_infos: Optional[InstanceList] = None,
                return_raw: bool = False) -> Tuple[Optional[Tensor], ...]:
        """Basis (projected for the instance module) and semantic logits.

        Args:
            x (tuple[Tensor]): FPN levels P3..., (B, C_fpn, H_l, W_l); P2
                first when the basis has ``fine_level``.
            contexts (list[Tensor], optional): Per level (B, 2C, H_l, W_l).
            output_size (tuple[int], optional): Basis size, a quarter of
                the padded input. Defaults to twice P3's size.
            positive_infos: Ignored (accepted from the detector flow).
            return_raw (bool): Also return the C-channel basis before the
                projection (the unified panoptic layer's input).

        Returns:
            tuple[Tensor, Tensor | None]: ``bases`` (B, C', H/4, W/4) for
            the instance module and ``sem_logits`` (B, T + 1, H/4, W/4) in
            training (else None); plus the raw basis (B, C, H/4, W/4) when
            ``return_raw``.
        """
        num_levels = self.basis.num_levels + int(
            getattr(self.basis, 'fine_level', False))
        basis = self.basis(
            tuple(x[:num_levels]),
            None if contexts is None else tuple(contexts[:num_levels]),
            output_size=output_size)
        sem_logits = None
        if self.training and self.sem_head is not None:
            sem_logits = self.sem_head(basis)
        bases = basis if self.proj is None else self.proj(basis)
        if return_raw:
            return bases, sem_logits, basis
        return bases, sem_logits

    def sem_loss(self, sem_logits: Tensor,
                 sem_targets: Tensor) -> Dict[str, Tensor]:
        """Thing-semantic cross entropy at the basis resolution.

        Args:
            sem_logits (Tensor): (B, T + 1, h, w).
            sem_targets (Tensor): (B, H, W) at the batch input shape.

        Returns:
            dict[str, Tensor]: ``{'loss_basis_sem': loss}``.
        """
        targets = F.interpolate(
            sem_targets[:, None].float(),
            size=sem_logits.shape[-2:],
            mode='nearest')[:, 0].long()
        loss = F.cross_entropy(sem_logits, targets) * self.sem_loss_weight
        return dict(loss_basis_sem=loss)

    def predict(self,
                x: Union[List[Tensor], Tuple[Tensor, ...]],
                batch_data_samples: SampleList,
                rescale: bool = False,
                results_list: Optional[InstanceList] = None,
                contexts: Optional[Sequence[Tensor]] = None,
                output_size: Optional[Tuple[int, int]] = None,
                **kwargs) -> InstanceList:
        """Masks of the detections (see :class:`BlendMaskHead`).

        Args:
            x (tuple[Tensor]): FPN levels.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples.
            rescale (bool): Paste at ``ori_shape``.
            results_list (list[:obj:`InstanceData`]): Detections with
                unclipped ``bboxes`` in the input frame and ``top_feats``.
            contexts (list[Tensor], optional): Per-level contexts.
            output_size (tuple[int], optional): Basis size.

        Returns:
            list[:obj:`InstanceData`]: ``bboxes``, ``scores``, ``labels``,
            bool ``masks`` (and ``merged_top_feats`` when given).
        """
        metas = [s.metainfo for s in batch_data_samples]
        bases, sem_logits = self(x, contexts, output_size)
        return self.predict_by_feat(
            bases,
            sem_logits,
            batch_img_metas=metas,
            results_list=results_list,
            rescale=rescale)
