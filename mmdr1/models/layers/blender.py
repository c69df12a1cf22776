# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask blender: merges RoI-pooled bases with per-instance attentions.

BlendMask paper (Chen et al., CVPR 2020) section 3.3 "Blender module";
blendmask spec sections 8 (training) and 9 (inference).
"""
from typing import Optional, Union

import torch.nn.functional as F
from mmcv.ops import RoIAlign
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

_TOP_INTERP_MODES = ('bilinear', 'nearest')


@MODELS.register_module()
class Blender(BaseModule):
    """BlendMask blender (pure PyTorch).

    For every RoI ``p`` with box ``b_p`` on image ``n_p`` (BlendMask paper
    section 3.3, blendmask spec sections 8 and 9):

    1. ``r_p = RoIAlign(bases[n_p], b_p)``: the ``K`` bases cropped and
       resized to ``R x R`` (``aligned=True``, i.e. detectron2's
       ``ROIAlignV2``, average pooling).
    2. ``a_p = attns[p].view(K, M, M)`` is resized to ``R x R`` with
       ``F.interpolate`` (``align_corners=False`` for bilinear, as the
       reference's default) and normalised with a softmax over ``K``.
    3. ``m_p = sum_k r_p[k] * a_p[k]``: the mask logits.

    The caller chooses the boxes: GT boxes in training (spec section 8 and
    section 14 item 7), unclipped predicted boxes at inference (spec
    section 9 and section 14 item 5). A later fused kernel keeps this
    interface.

    Args:
        num_bases (int): Number of bases ``K``. Defaults to 4.
        attn_size (int): Side ``M`` of each attention map. Defaults to 14.
        bottom_resolution (int): Side ``R`` of the pooled bases and of the
            output masks. Defaults to 56.
        spatial_scale (float): Scale from input-image pixels to the bases'
            grid (1 / stride of the bases). Defaults to 0.25.
        sampling_ratio (int): RoIAlign samples per bin side (0 means
            adaptive). Defaults to 1.
        top_interp (str): Attention resize mode, ``'bilinear'`` or
            ``'nearest'``. Defaults to ``'bilinear'``.
        init_cfg (dict, optional): Initialization config. The layer has no
            parameters. Defaults to None.
    """

    def __init__(self,
                 num_bases: int = 4,
                 attn_size: int = 14,
                 bottom_resolution: int = 56,
                 spatial_scale: float = 0.25,
                 sampling_ratio: int = 1,
                 top_interp: str = 'bilinear',
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('num_bases', num_bases), ('attn_size', attn_size),
                            ('bottom_resolution', bottom_resolution)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}')
        if not spatial_scale > 0:
            raise ValueError(
                f'spatial_scale must be > 0, got {spatial_scale!r}')
        if isinstance(sampling_ratio, bool) or \
                not isinstance(sampling_ratio, int) or sampling_ratio < 0:
            raise ValueError('sampling_ratio must be an int >= 0, got '
                             f'{sampling_ratio!r}')
        if top_interp not in _TOP_INTERP_MODES:
            raise ValueError(f'top_interp must be one of {_TOP_INTERP_MODES}'
                             f', got {top_interp!r}')
        self.num_bases = num_bases
        self.attn_size = attn_size
        self.bottom_resolution = bottom_resolution
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.top_interp = top_interp
        self.pooler = RoIAlign(
            output_size=bottom_resolution,
            spatial_scale=self.spatial_scale,
            sampling_ratio=sampling_ratio,
            pool_mode='avg',
            aligned=True)

    @property
    def in_channels(self) -> int:
        """int: Number of basis channels expected, ``K`` (= num_bases)."""
        return self.num_bases

    @property
    def embed_dim(self) -> int:
        """int: Length of one per-instance attention, ``K * M * M``."""
        return self.num_bases * self.attn_size**2

    def _check_inputs(self, bases: Tensor, rois: Tensor,
                      attns: Tensor) -> None:
        """Raise ValueError on inputs of the wrong shape, dtype or device."""
        for name, t in (('bases', bases), ('rois', rois), ('attns', attns)):
            if not isinstance(t, Tensor):
                raise ValueError(
                    f'{name} must be a Tensor, got {type(t).__name__}')
            if not t.is_floating_point():
                raise ValueError(
                    f'{name} must be floating point, got {t.dtype}')
        k, m = self.num_bases, self.attn_size
        if bases.dim() != 4 or bases.size(1) != k:
            raise ValueError(f'bases must have shape (N, {k}, H, W), got '
                             f'{tuple(bases.shape)}')
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError('rois must have shape (P, 5) as [batch_index, '
                             f'x1, y1, x2, y2], got {tuple(rois.shape)}')
        if attns.dim() != 2 or attns.size(0) != rois.size(0) \
                or attns.size(1) != k * m * m:
            raise ValueError(
                f'attns must have shape (P, {k * m * m}) = (P, K * M * M) '
                f'with P = {rois.size(0)} RoIs, got {tuple(attns.shape)}')
        for name, t in (('rois', rois), ('attns', attns)):
            if t.dtype != bases.dtype:
                raise ValueError(f'{name} dtype {t.dtype} does not match '
                                 f'bases dtype {bases.dtype}')
            if t.device != bases.device:
                raise ValueError(f'{name} device {t.device} does not match '
                                 f'bases device {bases.device}')
        if rois.size(0) > 0:
            batch_inds = rois[:, 0].detach()
            if bool(((batch_inds < 0) | (batch_inds >= bases.size(0))
                     | (batch_inds != batch_inds.round())).any()):
                raise ValueError('rois[:, 0] must hold integer batch '
                                 f'indices in [0, {bases.size(0)})')

    def forward(self, bases: Tensor, rois: Tensor, attns: Tensor) -> Tensor:
        """Blend the pooled bases of each RoI with its attention.

        Args:
            bases (Tensor): Bases of shape (N, K, H, W), on a grid of
                ``1 / spatial_scale`` input pixels.
            rois (Tensor): RoIs of shape (P, 5) as ``[batch_index, x1, y1,
                x2, y2]`` in input-image pixels.
            attns (Tensor): Attentions of shape (P, K * M * M), each row laid
                out as (K, M, M).

        Returns:
            Tensor: Mask logits of shape (P, R, R), R = bottom_resolution.
        """
        self._check_inputs(bases, rois, attns)
        num_rois = rois.size(0)
        res = self.bottom_resolution
        if num_rois == 0:
            # Empty output still connected to the graph, so that
            # ``backward`` yields (zero) gradients for bases and attns.
            return attns.new_zeros((0, res, res)) + (
                bases.sum() * 0 + attns.sum() * 0)
        pooled = self.pooler(bases, rois)  # (P, K, R, R)
        coeffs = attns.reshape(num_rois, self.num_bases, self.attn_size,
                               self.attn_size)
        if self.top_interp == 'bilinear':
            coeffs = F.interpolate(
                coeffs, size=(res, res), mode='bilinear', align_corners=False)
        else:
            coeffs = F.interpolate(coeffs, size=(res, res), mode='nearest')
        coeffs = coeffs.softmax(dim=1)
        return (pooled * coeffs).sum(dim=1)

    def extra_repr(self) -> str:
        return (f'num_bases={self.num_bases}, attn_size={self.attn_size}, '
                f'bottom_resolution={self.bottom_resolution}, '
                f'spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, '
                f"top_interp='{self.top_interp}'")


__all__ = ['Blender']
