# Copyright (c) mmdr1 contributors. All rights reserved.
"""FCOS head with DR1Mask's top layer: contexts [A, B] and embeddings.

DR1Mask paper section 3.2.1 (Eq. 5) and dr1mask spec section 2. The FCOS
part is :class:`BlendMaskFCOSHead` unchanged (DR1Mask is built on the
BlendMask/FCOS setup, spec section 7).
"""
from typing import List, Optional, Tuple

import torch.nn as nn
from mmcv.ops import batched_nms
from mmdet.models.utils import multi_apply
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.model import normal_init
from mmengine.structures import InstanceData
from torch import Tensor

from .blendmask_fcos_head import BlendMaskFCOSHead


@MODELS.register_module()
class DR1MaskFCOSHead(BlendMaskFCOSHead):
    """FCOS head whose top layer gives the conditional pyramid and embeddings.

    One 3x3 convolution (``top_layer``, N(0, 0.01) init, bias 0, shared by
    all levels) on the box-tower output ``T^l`` of every level gives
    ``[Ctx^l, E^l]`` (spec section 2)::

        Ctx^l = [A^l, B^l]   (2 * basis_channels channels, for DR1Basis)
        E^l                  (embed_dim channels, the instance embedding)

    ``context_from`` selects where the context comes from (paper Table 3):
    ``'box_tower'`` (default: one conv gives both), ``'cls_tower'`` or
    ``'fpn'`` (then a second 3x3 conv ``context_layer`` on the class tower
    output or on the FPN map gives the context, and ``top_layer`` gives the
    embedding only). ``with_context=False`` gives no context (the plain
    decoder of paper Table 1).

    :meth:`forward` returns the four FCOS outputs with the embeddings in the
    place of BlendMask's attentions (so losses, positives and decoding are
    :class:`BlendMaskFCOSHead`'s: ``top_feats`` are the embeddings) and
    caches the per-level contexts for :meth:`get_contexts`.

    At inference, with ``merge_embeds`` set, each kept detection also gets
    ``merged_top_feats``: the mean embedding of the candidates it absorbed in
    NMS (``'mean'``) or its own (``'own'``), the dynamic row of the unified
    panoptic layer (spec section 5).

    Args:
        num_classes (int): Thing classes.
        in_channels (int): FPN channels.
        basis_channels (int): DR1Basis width ``C``: the context has ``2C``
            channels. Defaults to 32.
        embed_dim (int): Length of the instance embedding (the instance
            prediction module's ``embed_dim``). Defaults to 144 (factored
            attention, C=32, K=4, d=4).
        context_from (str): ``'box_tower'``, ``'cls_tower'`` or ``'fpn'``.
            Defaults to ``'box_tower'``.
        with_context (bool): Predict contexts. Defaults to True.
        merge_embeds (str, optional): ``'mean'``, ``'own'`` or None (no
            ``merged_top_feats``). Defaults to None.
        **kwargs: :class:`BlendMaskFCOSHead` arguments.
    """

    CONTEXT_FROM = ('box_tower', 'cls_tower', 'fpn')

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 basis_channels: int = 32,
                 embed_dim: int = 144,
                 context_from: str = 'box_tower',
                 with_context: bool = True,
                 merge_embeds: Optional[str] = None,
                 **kwargs) -> None:
        if context_from not in self.CONTEXT_FROM:
            raise ValueError(f'DR1MaskFCOSHead: context_from must be one of '
                             f'{self.CONTEXT_FROM}, got {context_from!r}')
        if merge_embeds not in (None, 'mean', 'own'):
            raise ValueError("DR1MaskFCOSHead: merge_embeds must be None, "
                             f"'mean' or 'own', got {merge_embeds!r}")
        self.basis_channels = basis_channels
        self.embed_dim = embed_dim
        self.context_from = context_from
        self.with_context = with_context
        self.merge_embeds = merge_embeds
        self._contexts: Optional[List[Tensor]] = None
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs)

    def _init_layers(self) -> None:
        """FCOS layers; top layer (and context layer) of spec section 2."""
        super()._init_layers()
        self.attn_len = self.embed_dim  # the embeddings replace attentions
        ctx = 2 * self.basis_channels if self.with_context else 0
        joint = self.context_from == 'box_tower'
        self.top_layer = nn.Conv2d(
            self.feat_channels,
            self.embed_dim + (ctx if joint else 0),
            3,
            stride=1,
            padding=1)
        self.context_layer = None
        if ctx and not joint:
            in_ch = (
                self.in_channels
                if self.context_from == 'fpn' else self.feat_channels)
            self.context_layer = nn.Conv2d(in_ch, ctx, 3, stride=1, padding=1)

    def init_weights(self) -> None:
        """FCOS init; top / context layers N(0, 0.01), bias 0 (spec 2)."""
        super().init_weights()
        if self.context_layer is not None:
            normal_init(self.context_layer, mean=0, std=0.01, bias=0)

    def forward(
        self, x: Tuple[Tensor, ...]
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """Forward all levels and cache the contexts.

        Args:
            x (tuple[Tensor]): FPN features, (N, in_channels, H_l, W_l).

        Returns:
            tuple[list[Tensor]]: ``cls_scores`` (N, C, H_l, W_l),
            ``bbox_preds`` (N, 4, H_l, W_l), ``centernesses``
            (N, 1, H_l, W_l), ``embeds`` (N, embed_dim, H_l, W_l).
        """
        cls, bbox, ctr, embeds, contexts = multi_apply(self.forward_single, x,
                                                       self.scales,
                                                       self.strides)
        self._contexts = list(contexts) if self.with_context else None
        return cls, bbox, ctr, embeds

    def forward_single(self, x: Tensor, scale: nn.Module,
                       stride: int) -> Tuple[Tensor, ...]:
        """Forward one level.

        Returns:
            tuple[Tensor]: cls score, bbox pred, centerness, embedding
            (N, embed_dim, H, W) and context (N, 2 * basis_channels, H, W)
            or None.
        """
        cls_score, bbox_pred, centerness, cls_feat, reg_feat = \
            self._forward_towers(x, scale, stride)
        top = self.top_layer(reg_feat)
        context = None
        if self.with_context and self.context_from == 'box_tower':
            context, top = top.split([2 * self.basis_channels, self.embed_dim],
                                     dim=1)
        elif self.context_layer is not None:
            src = x if self.context_from == 'fpn' else cls_feat
            context = self.context_layer(src)
        return cls_score, bbox_pred, centerness, top, context

    def get_contexts(self) -> Optional[List[Tensor]]:
        """Per-level contexts of the last :meth:`forward`.

        Returns:
            list[Tensor] | None: ``(N, 2 * basis_channels, H_l, W_l)`` per
            level (``[:C]`` = A, ``[C:]`` = B), or None without contexts.
        """
        return self._contexts

    def _bbox_post_process(self,
                           results: InstanceData,
                           cfg: ConfigDict,
                           rescale: bool = False,
                           with_nms: bool = True,
                           img_meta: Optional[dict] = None) -> InstanceData:
        """mmdet's post-processing, plus the NMS-merged embeddings.

        Returns:
            :obj:`InstanceData`: As :class:`BlendMaskFCOSHead`; with
            ``merge_embeds`` also ``merged_top_feats`` (n, embed_dim).
        """
        if self.merge_embeds is None or not with_nms:
            return super()._bbox_post_process(
                results, cfg, rescale, with_nms=with_nms, img_meta=img_meta)
        pre = super()._bbox_post_process(
            results, cfg, rescale, with_nms=False, img_meta=img_meta)
        if pre.bboxes.numel() == 0:
            pre.merged_top_feats = pre.top_feats
            return pre
        det, keep = batched_nms(pre.bboxes, pre.scores, pre.labels, cfg.nms)
        keep = keep[:cfg.max_per_img]
        out = pre[keep]
        out.scores = det[:len(keep), -1]
        from ..seg_heads.unified_panoptic_head import UnifiedPanopticHead
        out.merged_top_feats = UnifiedPanopticHead.merge_nms_rows(
            pre.bboxes,
            pre.scores,
            pre.labels,
            pre.top_feats,
            keep,
            cfg.nms.iou_threshold,
            mode=self.merge_embeds)
        return out
