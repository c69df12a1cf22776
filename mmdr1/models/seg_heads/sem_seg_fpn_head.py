# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic-FPN semantic head as panoptic BlendMask's reference uses it.

Blendmask spec section 12.1: detectron2's ``SemSegFPNHead`` on P2-P5
(128 channels, GN, 53 stuff + 1 "things" channel, loss weight 0.5, ignore
255). mmdet's :class:`PanopticFPNHead` already has the same layers
(``ConvUpsample`` = detectron2's conv-GN-ReLU / bilinear x2 stacks, summed,
1x1 predictor); this subclass adds the reference's details as arguments:
the "things" channel first, the loss on logits upsampled to the input
resolution, the predictor's MSRA init and the reference's loss name.
"""
from typing import Dict, List, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.seg_heads import PanopticFPNHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType
from torch import Tensor


@MODELS.register_module()
class SemSegFPNHead(PanopticFPNHead):
    """Semantic FPN head of panoptic BlendMask (spec section 12.1).

    Channels: ``num_stuff_classes + 1``. With ``things_first=True``
    (detectron2) channel 0 is "things" and channel ``1 + j`` is stuff class
    ``j``; with False, mmdet's order (stuff ``j`` at ``j``, things last).
    The order only matters for the weights (a converted reference
    checkpoint keeps detectron2's order, spec section 13): :meth:`predict`
    always returns mmdet's order, so mmdet's panoptic fusion heads work
    unchanged.

    Ground truth is mmdet's panoptic ``gt_sem_seg`` (thing classes
    ``0..T-1``, stuff classes ``T..T+S-1``, 255 ignored, padding 255 by the
    data preprocessor's ``pad_seg``).

    Loss (``loss_at_input_res=True``, detectron2): the stride-4 logits are
    bilinearly upsampled (``align_corners=False``) to the padded input
    size and compared with the full-resolution ground truth. mmdet's
    :class:`PanopticFPNHead` instead nearest-downsamples the ground truth to
    stride 4 (``loss_at_input_res=False``). The reference's cross entropy
    averages over the non-ignored pixels: ``CrossEntropyLoss`` with
    ``ignore_index=255, avg_non_ignore=True``.

    Args:
        num_things_classes (int): Thing classes. Defaults to 80.
        num_stuff_classes (int): Stuff classes. Defaults to 53.
        in_channels (int): FPN channels. Defaults to 256.
        inner_channels (int): ``SEM_SEG_HEAD.CONVS_DIM``. Defaults to 128.
        start_level (int): First FPN level used (0 = P2). Defaults to 0.
        end_level (int): Last FPN level used, exclusive. Defaults to 4.
        norm_cfg (dict): Norm of the convs. Defaults to GN(32).
        things_first (bool): "things" channel at index 0 (detectron2).
            Defaults to True.
        loss_at_input_res (bool): Loss on upsampled logits (detectron2).
            Defaults to True.
        predictor_init (str): ``'msra'`` (detectron2's ``c2_msra_fill``:
            Kaiming normal, fan-out, bias 0) or ``'normal'`` (mmdet:
            N(0, 0.01), bias 0). Defaults to ``'msra'``.
        loss_name (str): Key of the loss. Defaults to ``'loss_sem_seg'``
            (spec section 10).
        loss_seg (dict): Loss config. Defaults to cross entropy, ignore
            255, averaged over non-ignored pixels, weight 0.5
            (``Base-Panoptic.yaml``).
        **kwargs: Passed to :class:`PanopticFPNHead` (``conv_cfg``,
            ``init_cfg``).
    """

    def __init__(self,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 in_channels: int = 256,
                 inner_channels: int = 128,
                 start_level: int = 0,
                 end_level: int = 4,
                 norm_cfg: ConfigType = dict(
                     type='GN', num_groups=32, requires_grad=True),
                 things_first: bool = True,
                 loss_at_input_res: bool = True,
                 predictor_init: str = 'msra',
                 loss_name: str = 'loss_sem_seg',
                 loss_seg: ConfigType = dict(
                     type='CrossEntropyLoss',
                     ignore_index=255,
                     avg_non_ignore=True,
                     loss_weight=0.5),
                 **kwargs) -> None:
        if predictor_init not in ('msra', 'normal'):
            raise ValueError("SemSegFPNHead: predictor_init must be 'msra' "
                             f"or 'normal', got {predictor_init!r}")
        super().__init__(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            in_channels=in_channels,
            inner_channels=inner_channels,
            start_level=start_level,
            end_level=end_level,
            norm_cfg=norm_cfg,
            loss_seg=loss_seg,
            **kwargs)
        self.things_first = things_first
        self.loss_at_input_res = loss_at_input_res
        self.predictor_init = predictor_init
        self.loss_name = loss_name
        self.ignore_index = getattr(self.loss_seg, 'ignore_index', 255)

    def init_weights(self) -> None:
        """Init the convs as mmdet, the predictor as ``predictor_init``."""
        super().init_weights()
        if self.predictor_init == 'msra':
            nn.init.kaiming_normal_(
                self.conv_logits.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(self.conv_logits.bias)

    def _set_things_to_void(self, gt_semantic_seg: Tensor) -> Tensor:
        """Map panoptic labels to the head's channels.

        Thing labels ``0..T-1`` become the "things" channel (0 when
        ``things_first``, else ``S``); stuff ``T + j`` becomes ``1 + j``
        (else ``j``); anything else (255) is kept.

        Args:
            gt_semantic_seg (Tensor): Panoptic semantic labels, any shape.

        Returns:
            Tensor: Channel indices (int), same shape.
        """
        if not self.things_first:
            return super()._set_things_to_void(gt_semantic_seg)
        gt = gt_semantic_seg.int()
        num_t, num_s = self.num_things_classes, self.num_stuff_classes
        things = (gt >= 0) & (gt < num_t)
        stuff = (gt >= num_t) & (gt < num_t + num_s)
        out = torch.where(stuff, gt - num_t + 1, gt)
        return torch.where(things, torch.zeros_like(gt), out)

    def to_mmdet_order(self, seg_preds: Tensor) -> Tensor:
        """Reorder channels (dim 1 or 0 for 3-d input) to stuff..., things.

        Args:
            seg_preds (Tensor): (N, S + 1, H, W) or (S + 1, H, W) logits.

        Returns:
            Tensor: The same logits with the "things" channel last.
        """
        if not self.things_first:
            return seg_preds
        dim = 1 if seg_preds.dim() == 4 else 0
        things, stuff = seg_preds.split([1, self.num_stuff_classes], dim=dim)
        return torch.cat([stuff, things], dim=dim)

    def loss(self, x: Union[Tensor, Tuple[Tensor]],
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Cross entropy against the panoptic ``gt_sem_seg``.

        Args:
            x (tuple[Tensor]): FPN features from ``start_level`` on, level
                ``l`` of shape (B, in_channels, H_l, W_l).
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_sem_seg`` (1, H, W), padded to the batch input shape.

        Returns:
            dict[str, Tensor]: ``{loss_name: loss}``.
        """
        if not self.loss_at_input_res:
            losses = super().loss(x, batch_data_samples)
            return {self.loss_name: losses['loss_seg']}
        seg_preds = self(x)['seg_preds']
        gts = []
        for sample in batch_data_samples:
            if 'gt_sem_seg' not in sample:
                raise KeyError(
                    'SemSegFPNHead needs data_sample.gt_sem_seg (load it '
                    'with LoadPanopticAnnotations and pad it with the data '
                    'preprocessor: pad_seg=True, seg_pad_value=255)')
            gts.append(
                sample.gt_sem_seg.sem_seg.reshape(
                    sample.gt_sem_seg.sem_seg.shape[-2:]))
        shapes = {tuple(g.shape) for g in gts}
        if len(shapes) != 1:
            raise ValueError(
                'SemSegFPNHead: gt_sem_seg maps of one batch differ in size '
                f'{sorted(shapes)}; set pad_seg=True in the data '
                'preprocessor')
        gt = self._set_things_to_void(torch.stack(gts)).long()
        seg_preds = F.interpolate(
            seg_preds,
            size=gt.shape[-2:],
            mode='bilinear',
            align_corners=False)
        loss = self.loss_seg(
            seg_preds.permute(0, 2, 3, 1).reshape(-1, self.num_classes),
            gt.reshape(-1))
        return {self.loss_name: loss}

    def predict(self,
                x: Union[Tensor, Tuple[Tensor]],
                batch_img_metas: List[dict],
                rescale: bool = False) -> List[Tensor]:
        """Logits per image in mmdet's channel order (things last).

        As :meth:`BaseSemanticHead.predict` (detectron2's
        ``sem_seg_postprocess``): upsampled to the batch input shape,
        cropped to ``img_shape`` and resized to ``ori_shape`` when
        ``rescale``.

        Args:
            x (tuple[Tensor]): FPN features.
            batch_img_metas (list[dict]): Image metas.
            rescale (bool): Resize to ``ori_shape``. Defaults to False.

        Returns:
            list[Tensor]: (S + 1, H, W) logits per image.
        """
        preds = super().predict(x, batch_img_metas, rescale)
        return [self.to_mmdet_order(p) for p in preds]
