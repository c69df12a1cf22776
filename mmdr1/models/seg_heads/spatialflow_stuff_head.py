# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow's stuff head (spatialflow spec section 4).

A Panoptic-FPN-like semantic head that reads the final features of the
stuff sub-network of :class:`SpatialFlowHead` at P3-P5 (strides 8, 16, 32),
not raw FPN features. mmdet's :class:`PanopticFPNHead` cannot be reused
because its ``ConvUpsample`` hard-codes ``align_corners=False`` and its
output stays at stride 4, while the reference upsamples with
``align_corners=True`` and computes the loss at the full padded input
resolution.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.seg_heads.base_semantic_head import BaseSemanticHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import ModuleList
from torch import Tensor

_ALIGNED_MODES = ('linear', 'bilinear', 'bicubic', 'trilinear')


def _upsample(scale_factor: int, mode: str,
              align_corners: Optional[bool]) -> nn.Upsample:
    """``nn.Upsample``; ``align_corners`` only for the interpolating modes."""
    if mode in _ALIGNED_MODES:
        return nn.Upsample(
            scale_factor=scale_factor, mode=mode, align_corners=align_corners)
    return nn.Upsample(scale_factor=scale_factor, mode=mode)


@MODELS.register_module()
class SpatialFlowStuffHead(BaseSemanticHead):
    """Stuff head of SpatialFlow (spec sections 4.1-4.3).

    Structure (spec 4.1), for the level of stride ``s`` in ``feat_strides``:
    ``log2(s / out_stride)`` blocks (at least one), each a 3x3
    ``ConvModule`` (no bias, ``norm_cfg``, ReLU; ``in_channels`` inputs for
    the first block, ``feat_channels`` after) followed by a x2
    ``nn.Upsample`` (bilinear, ``align_corners=True``). The blocks of a level
    form an ``nn.Sequential`` with the reference's indices (convs at even
    indices, upsamplings at odd ones), so
    ``lateral_convs.{level}.{2k}.conv/gn`` are the reference's names. The
    levels are summed at ``out_stride``, then ``conv_logits`` (1x1, bias)
    and a x``out_stride`` upsampling give logits at the full padded input
    resolution. Init: Kaiming normal (fan-out, ReLU, bias 0) for every conv
    including the 1x1, GN weight 1 / bias 0.

    Classes: ``num_stuff_classes + 1`` channels in mmdet's
    :class:`PanopticFPNHead` order: stuff class ``j`` at channel ``j`` and
    the single "things"/"other" class LAST (channel ``num_stuff_classes``).
    The reference puts "other" (COCO category 183) at index 36 of its 54
    sorted ids; ``tools/model_converters/spatialflow_to_mmdr1.py`` permutes
    the rows of ``conv_logits`` accordingly (spec sections 4.2 and 8).

    Ground truth is mmdet's panoptic ``gt_sem_seg`` (things ``0..T-1``,
    stuff ``T..T+S-1``, 255 ignored; crowd things are things, like the
    reference's 183). Thing labels map to the last channel, stuff ``T + j``
    to ``j``, anything else to ``ignore_index``. Maps smaller than the
    logits (no ``pad_seg`` in the data preprocessor) are padded at the
    bottom/right with ``ignore_index``, as ``pad_seg=True,
    seg_pad_value=255`` does.

    Loss (spec 4.3), default: cross entropy at full resolution averaged over
    the non-ignored pixels of the whole batch (``loss_seg`` with
    ``avg_non_ignore=True``), weight 0.25; padding is ignored.

    ``reference_loss_quirks=True`` reproduces the reference exactly: the
    per-pixel CE (ignore pixels give 0) is summed over the valid region
    ``R0`` (``img_shape``) of IMAGE 0 in every image of the batch and
    divided by ``|R0|``, i.e. ``loss_weight * sum_b mean_{p in R0}
    CE_b(p)``: N times the batch mean (the reference's (N, 1, H, W) x
    (N, H, W) broadcast), ignore pixels counted in the denominator, and the
    padding of every image (pixels outside its own ``img_shape``) labelled
    class 0 (COCO "banner") instead of ignored.

    Args:
        num_things_classes (int): Thing classes T. Defaults to 80.
        num_stuff_classes (int): Stuff classes S (without "other").
            Defaults to 53.
        in_channels (int): Channels of the stuff sub-network features.
            Defaults to 256.
        feat_channels (int): Channels of the lateral blocks. Defaults to
            128.
        feat_strides (Sequence[int]): Strides of the input levels.
            Defaults to (8, 16, 32).
        out_stride (int): Stride at which the levels are summed. Defaults
            to 4.
        conv_cfg (dict, optional): Conv config of the lateral blocks.
        norm_cfg (dict): Norm of the lateral blocks. Defaults to GN(32).
        upsample_mode (str): ``nn.Upsample`` mode of every upsampling.
            Defaults to ``'bilinear'``.
        align_corners (bool): ``align_corners`` of the interpolating modes.
            Defaults to True (reference).
        rescale_cfg (dict): ``F.interpolate`` kwargs used by
            :meth:`predict` to resize the cropped logits to ``ori_shape``.
            Defaults to ``dict(mode='nearest')``: the reference takes the
            argmax at input resolution and nearest-resizes it (spec 5.1),
            and ``argmax`` commutes with nearest resizing. Its multi-scale
            test uses ``dict(mode='bilinear', align_corners=True)`` (5.2).
        reference_loss_quirks (bool): Reproduce the reference's loss
            (see above). Defaults to False.
        loss_seg (dict): Loss config. Defaults to ``CrossEntropyLoss``,
            ``ignore_index=255``, ``avg_non_ignore=True``, weight 0.25.
            With ``reference_loss_quirks`` only its ``loss_weight`` and
            ``ignore_index`` are used.
        init_cfg (dict or list[dict], optional): Initialization config.
            None means :attr:`DEFAULT_INIT_CFG`, the reference's init.
    """

    #: Reference init (spec 4.1): mmcv ``kaiming_init`` defaults on every
    #: conv, GN weight 1 / bias 0.
    DEFAULT_INIT_CFG = [
        dict(
            type='Kaiming',
            layer='Conv2d',
            mode='fan_out',
            nonlinearity='relu',
            distribution='normal',
            bias=0),
        dict(type='Constant', layer='GroupNorm', val=1, bias=0)
    ]

    def __init__(self,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 in_channels: int = 256,
                 feat_channels: int = 128,
                 feat_strides: Sequence[int] = (8, 16, 32),
                 out_stride: int = 4,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='GN', num_groups=32, requires_grad=True),
                 upsample_mode: str = 'bilinear',
                 align_corners: bool = True,
                 rescale_cfg: ConfigType = dict(mode='nearest'),
                 reference_loss_quirks: bool = False,
                 loss_seg: ConfigType = dict(
                     type='CrossEntropyLoss',
                     ignore_index=255,
                     avg_non_ignore=True,
                     loss_weight=0.25),
                 init_cfg: OptMultiConfig = None) -> None:
        if init_cfg is None:
            init_cfg = copy.deepcopy(self.DEFAULT_INIT_CFG)
        super().__init__(
            num_classes=num_stuff_classes + 1,
            seg_rescale_factor=1.0,
            loss_seg=loss_seg,
            init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.feat_strides = tuple(feat_strides)
        self.out_stride = out_stride
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners if (upsample_mode
                                               in _ALIGNED_MODES) else None
        self.rescale_cfg = dict(rescale_cfg)
        self.reference_loss_quirks = reference_loss_quirks
        ignore_index = getattr(self.loss_seg, 'ignore_index', None)
        self.ignore_index = 255 if ignore_index is None else ignore_index

        self.num_upsamples = []
        for stride in self.feat_strides:
            num_up = math.log2(stride / out_stride)
            if num_up < 0 or num_up != int(num_up):
                raise ValueError(
                    'SpatialFlowStuffHead: every feat_stride must be '
                    f'out_stride * 2**k, got {self.feat_strides} and '
                    f'out_stride {out_stride}')
            self.num_upsamples.append(int(num_up))

        self.lateral_convs = ModuleList()
        for num_up in self.num_upsamples:
            blocks = []
            for k in range(max(num_up, 1)):
                blocks.append(
                    ConvModule(
                        in_channels if k == 0 else feat_channels,
                        feat_channels,
                        3,
                        padding=1,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg))
                if k < num_up:
                    blocks.append(
                        _upsample(2, upsample_mode, self.align_corners))
            self.lateral_convs.append(nn.Sequential(*blocks))
        self.conv_logits = nn.Conv2d(feat_channels, self.num_classes, 1)
        self.upsample = _upsample(out_stride, upsample_mode,
                                  self.align_corners)

    def forward(self, x: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Logits at the full padded input resolution.

        Args:
            x (Sequence[Tensor]): Final stuff sub-network features, one per
                ``feat_strides`` entry, level ``l`` of shape
                (N, in_channels, H / s_l, W / s_l), (H, W) the padded input.

        Returns:
            dict[str, Tensor]: ``seg_preds`` (N, S + 1, H, W) logits and
            ``seg_feats`` (N, feat_channels, H / out_stride,
            W / out_stride), the summed lateral features.
        """
        if len(x) != len(self.lateral_convs):
            raise ValueError(
                f'SpatialFlowStuffHead expects {len(self.lateral_convs)} '
                f'feature maps (strides {self.feat_strides}), got {len(x)}')
        feats = [layer(f) for layer, f in zip(self.lateral_convs, x)]
        # int(): under tracing (e.g. FLOP counting) sizes are tensors
        shapes = {tuple(int(s) for s in f.shape[-2:]) for f in feats}
        if len(shapes) != 1:
            raise ValueError(
                'SpatialFlowStuffHead: upsampled levels differ in size '
                f'{sorted(shapes)}; pad the input to a multiple of the '
                'largest stride (pad_size_divisor=32)')
        seg_feats = feats[0]
        for f in feats[1:]:
            seg_feats = seg_feats + f
        seg_preds = self.upsample(self.conv_logits(seg_feats))
        return dict(seg_preds=seg_preds, seg_feats=seg_feats)

    def _set_things_to_void(self, gt_semantic_seg: Tensor) -> Tensor:
        """Map panoptic labels to the head's channels (mmdet's order).

        Things ``0..T-1`` become channel ``S`` (last), stuff ``T + j``
        becomes ``j``, anything else ``ignore_index``.

        Args:
            gt_semantic_seg (Tensor): Panoptic semantic labels, any shape.

        Returns:
            Tensor: Channel indices (long), same shape.
        """
        gt = gt_semantic_seg.long()
        num_t, num_s = self.num_things_classes, self.num_stuff_classes
        things = (gt >= 0) & (gt < num_t)
        stuff = (gt >= num_t) & (gt < num_t + num_s)
        out = torch.full_like(gt, self.ignore_index)
        out = torch.where(stuff, gt - num_t, out)
        return torch.where(things, torch.full_like(gt, num_s), out)

    def _stack_gts(self, batch_data_samples: SampleList,
                   size: Tuple[int, int]) -> Tensor:
        """Stack the ``gt_sem_seg`` maps, padded to ``size`` with ignore.

        Args:
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_sem_seg.sem_seg`` (1, h, w).
            size (tuple[int, int]): The logits' (H, W).

        Returns:
            Tensor: (N, H, W) channel labels (long).
        """
        gts = []
        for sample in batch_data_samples:
            if 'gt_sem_seg' not in sample:
                raise KeyError(
                    'SpatialFlowStuffHead needs data_sample.gt_sem_seg (load '
                    'it with LoadPanopticAnnotations; the data preprocessor '
                    'should pad it: pad_seg=True, seg_pad_value=255)')
            gt = sample.gt_sem_seg.sem_seg
            gt = gt.reshape(gt.shape[-2:])
            h, w = gt.shape
            if h > size[0] or w > size[1]:
                raise ValueError(
                    f'SpatialFlowStuffHead: gt_sem_seg of shape {(h, w)} is '
                    f'larger than the logits {tuple(size)}')
            gt = self._set_things_to_void(gt)
            gts.append(
                F.pad(
                    gt, (0, size[1] - w, 0, size[0] - h),
                    value=self.ignore_index))
        return torch.stack(gts)

    def _quirk_loss(self, seg_preds: Tensor, gt: Tensor,
                    batch_data_samples: SampleList) -> Tensor:
        """The reference's stuff loss (spec 4.3), without the broadcast.

        ``sum_a sum_b sum_p CE_b(p) w_a(p) / max(N |R0|, 1)`` with
        ``w_a = 1[p in R0]`` for every ``a`` equals
        ``N sum_b sum_{p in R0} CE_b(p) / max(N |R0|, 1)``.

        Args:
            seg_preds (Tensor): (N, C, H, W) logits.
            gt (Tensor): (N, H, W) labels, padding already ignore.
            batch_data_samples (list[:obj:`DetDataSample`]): For
                ``img_shape``.

        Returns:
            Tensor: The scalar loss (weighted).
        """
        gt = gt.clone()
        for i, sample in enumerate(batch_data_samples):
            h, w = sample.metainfo['img_shape'][:2]
            gt[i, h:, :] = 0  # padding is class 0 ('banner') in the reference
            gt[i, :, w:] = 0
        ce = F.cross_entropy(
            seg_preds.float(),
            gt,
            reduction='none',
            ignore_index=self.ignore_index)
        h0, w0 = batch_data_samples[0].metainfo['img_shape'][:2]
        num = gt.shape[0]
        region = ce[:, :h0, :w0]
        avg = max(num * region[0].numel(), 1)
        return self.loss_seg.loss_weight * num * region.sum() / avg

    def loss(self, x: Sequence[Tensor],
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Cross entropy at full resolution (spec 4.3).

        Args:
            x (Sequence[Tensor]): Stuff features, see :meth:`forward`.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_sem_seg`` (1, h, w) and ``img_shape`` in the metainfo.

        Returns:
            dict[str, Tensor]: ``loss_stuff``.
        """
        seg_preds = self(x)['seg_preds']
        gt = self._stack_gts(batch_data_samples, seg_preds.shape[-2:])
        if self.reference_loss_quirks:
            loss = self._quirk_loss(seg_preds, gt, batch_data_samples)
        else:
            loss = self.loss_seg(
                seg_preds.permute(0, 2, 3, 1).reshape(-1, self.num_classes),
                gt.reshape(-1))
        return dict(loss_stuff=loss)

    def predict(self,
                x: Sequence[Tensor],
                batch_img_metas: List[dict],
                rescale: bool = False) -> List[Tensor]:
        """Logits per image (things/"other" channel last).

        The logits (already at the padded input size; otherwise resized to
        ``batch_input_shape`` with the head's upsampling) are cropped to
        ``img_shape`` and, when ``rescale``, resized to ``ori_shape`` with
        ``rescale_cfg`` (spec 5.1).

        Args:
            x (Sequence[Tensor]): Stuff features, see :meth:`forward`.
            batch_img_metas (list[dict]): ``batch_input_shape``,
                ``img_shape`` and ``ori_shape`` per image.
            rescale (bool): Resize to ``ori_shape``. Defaults to False.

        Returns:
            list[Tensor]: (S + 1, h, w) logits per image, (h, w) being
            ``ori_shape`` when ``rescale`` else ``img_shape``.
        """
        seg_preds = self.forward(x)['seg_preds']
        size = tuple(batch_img_metas[0].get('batch_input_shape',
                                            seg_preds.shape[-2:]))
        if tuple(seg_preds.shape[-2:]) != size:
            seg_preds = F.interpolate(
                seg_preds,
                size=size,
                mode=self.upsample_mode,
                align_corners=self.align_corners)
        results = []
        for i, meta in enumerate(batch_img_metas):
            h, w = meta['img_shape'][:2]
            pred = seg_preds[i, :, :h, :w]
            if rescale:
                pred = F.interpolate(
                    pred[None],
                    size=tuple(meta['ori_shape'][:2]),
                    **self.rescale_cfg)[0]
            results.append(pred)
        return results
