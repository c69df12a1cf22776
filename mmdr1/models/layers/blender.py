# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask blender: merges RoI-pooled bases with per-instance attentions.

BlendMask paper (Chen et al., CVPR 2020) section 3.3 "Blender module";
blendmask spec sections 8 (training) and 9 (inference).
"""
from typing import Optional, Union

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from mmdr1.ops import blend, blend_supported
from .base_roi_mask import BaseRoIMask, _check_positive_int

_TOP_INTERP_MODES = ('bilinear', 'nearest')


@MODELS.register_module()
class Blender(BaseRoIMask):
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
    section 9 and section 14 item 5).

    With ``use_fused=True`` (the default) and ``top_interp='bilinear'``,
    :meth:`forward` computes steps 1-3 with the compiled kernel
    :func:`mmdr1.ops.blend` whenever it is built and supports the inputs'
    device and dtype (:meth:`uses_fused`): the same result to float
    rounding, without the (P, K, R, R) intermediates. Otherwise it runs the
    pure PyTorch path above, which is the reference.

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
        use_fused (bool): Use the compiled fused blender when it can run
            (see above). Defaults to True.
        init_cfg (dict, optional): Initialization config. The layer has no
            parameters. Defaults to None.
    """

    _embed_layout = 'K * M * M'
    _basis_name = 'bases'
    _embed_name = 'attns'

    def __init__(self,
                 num_bases: int = 4,
                 attn_size: int = 14,
                 bottom_resolution: int = 56,
                 spatial_scale: float = 0.25,
                 sampling_ratio: int = 1,
                 top_interp: str = 'bilinear',
                 use_fused: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        _check_positive_int('num_bases', num_bases)
        _check_positive_int('attn_size', attn_size)
        if top_interp not in _TOP_INTERP_MODES:
            raise ValueError(f'top_interp must be one of {_TOP_INTERP_MODES}'
                             f', got {top_interp!r}')
        super().__init__(
            in_channels=num_bases,
            bottom_resolution=bottom_resolution,
            spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio,
            init_cfg=init_cfg)
        self.num_bases = num_bases
        self.attn_size = attn_size
        self.top_interp = top_interp
        self.use_fused = bool(use_fused)

    @property
    def embed_dim(self) -> int:
        """int: Length of one per-instance attention, ``K * M * M``."""
        return self.num_bases * self.attn_size**2

    def _combine(self, crops: Tensor, attns: Tensor) -> Tensor:
        """Upsample, normalise and apply the attentions (steps 2 and 3).

        Args:
            crops (Tensor): Pooled bases (P, K, R, R).
            attns (Tensor): Attentions (P, K * M * M).

        Returns:
            Tensor: Mask logits (P, R, R).
        """
        res = self.bottom_resolution
        coeffs = attns.reshape(-1, self.num_bases, self.attn_size,
                               self.attn_size)
        if self.top_interp == 'bilinear':
            coeffs = F.interpolate(
                coeffs, size=(res, res), mode='bilinear', align_corners=False)
        else:
            coeffs = F.interpolate(coeffs, size=(res, res), mode='nearest')
        coeffs = coeffs.softmax(dim=1)
        return (crops * coeffs).sum(dim=1)

    def uses_fused(self, bases: Tensor, rois: Tensor, attns: Tensor) -> bool:
        """Whether :meth:`forward` would use the compiled fused blender.

        True when ``use_fused`` is set, ``top_interp`` is ``'bilinear'``
        and :func:`mmdr1.ops.blend_supported` accepts the inputs (extension
        built, kernels for their device, a supported common dtype).
        """
        return (self.use_fused and self.top_interp == 'bilinear'
                and blend_supported(bases, rois, attns))

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
            With P = 0 an empty tensor still connected to the graph.
        """
        if not self.uses_fused(bases, rois, attns):
            return super().forward(bases, rois, attns)
        self._check_inputs(bases, rois, attns)
        if rois.size(0) == 0:
            return self._empty_output(bases, attns)
        coeffs = attns.reshape(-1, self.num_bases, self.attn_size,
                               self.attn_size)
        return blend(bases, rois, coeffs, self.spatial_scale,
                     self.sampling_ratio, self.bottom_resolution)

    def extra_repr(self) -> str:
        return (f'num_bases={self.num_bases}, attn_size={self.attn_size}, '
                f'bottom_resolution={self.bottom_resolution}, '
                f'spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, '
                f"top_interp='{self.top_interp}', "
                f'use_fused={self.use_fused}')


__all__ = ['Blender']
