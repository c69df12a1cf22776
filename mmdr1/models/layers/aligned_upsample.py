# Copyright (c) mmdr1 contributors. All rights reserved.
"""Aligned upsampling for maps of padded-to-4 inputs.

DR1Mask pads images to a multiple of 4 instead of 32 (paper section 3.3,
Table 5: 40.0 PQ with divisibility 4 and aligned upsampling vs 39.5 PQ with
32), so feature maps have odd sizes. Upsampling must then keep each coarse
pixel aligned with the fine pixels it was computed from: see dr1mask spec
section 6.
"""
from typing import Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from mmdr1.ops import aligned_upsample, aligned_upsample_supported
from mmdr1.ops.aligned_upsample import check_aligned_upsample_args


def aligned_upsample_ref(x: Tensor, factor: int = 2) -> Tensor:
    """Pure PyTorch aligned upsampling (reference of the compiled op).

    CondInst's ``aligned_bilinear`` construction for an integer factor ``f``
    (dr1mask spec section 6): pad the map by one pixel at the right and
    bottom (replicate), resize it with ``align_corners=True`` to
    ``(f * H + 1, f * W + 1)``, pad ``f // 2`` pixels at the top and left
    (replicate) and keep the first ``f * H`` x ``f * W`` pixels. Output pixel
    ``y`` then samples input coordinate ``clamp((y - f // 2) / f, 0, H - 1)``;
    for ``f = 2`` output pixel ``2i + 1`` equals input pixel ``i``, as a
    stride-2 3x3 convolution with padding 1 samples its input.

    Args:
        x (Tensor): Input of shape (N, C, H, W), floating point.
        factor (int): Upsampling factor, >= 1. Defaults to 2.

    Returns:
        Tensor: Upsampled tensor of shape (N, C, factor * H, factor * W).
    """
    factor = check_aligned_upsample_args(x, factor)
    height, width = x.shape[-2:]
    out_h, out_w = factor * height, factor * width
    x = F.pad(x, (0, 1, 0, 1), mode='replicate')
    x = F.interpolate(
        x, size=(out_h + 1, out_w + 1), mode='bilinear', align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode='replicate')
    return x[:, :, :out_h, :out_w]


@MODELS.register_module()
class AlignedUpsample(nn.Module):
    """Aligned upsampling by an integer factor, cropped to a target size.

    Upsamples as a stride-``factor`` convolution samples its input, so the
    result stays aligned with the finer feature level even for odd sizes
    (dr1mask spec section 6, DR1Mask paper section 3.3 and Table 5).

    Args:
        factor (int): Upsampling factor, >= 1. Defaults to 2.
        impl (str): ``'auto'`` uses the compiled op
            (:func:`mmdr1.ops.aligned_upsample`) when it is built and
            supports the input's device and dtype, else the PyTorch
            reference; ``'ext'`` always uses the compiled op (errors if it
            cannot run); ``'ref'`` always uses the reference
            (:func:`aligned_upsample_ref`). Defaults to ``'auto'``.
    """

    IMPLS = ('auto', 'ext', 'ref')

    def __init__(self, factor: int = 2, impl: str = 'auto') -> None:
        super().__init__()
        if (isinstance(factor, bool) or not isinstance(factor, int)
                or factor < 1):
            raise ValueError(
                f'AlignedUpsample factor must be an int >= 1, got {factor!r}')
        if impl not in self.IMPLS:
            raise ValueError(
                f'AlignedUpsample impl must be one of {self.IMPLS}, got '
                f'{impl!r}')
        self.factor = factor
        self.impl = impl

    def uses_ext(self, x: Tensor) -> bool:
        """Whether :meth:`forward` would use the compiled op for ``x``."""
        if self.impl == 'auto':
            return aligned_upsample_supported(x)
        return self.impl == 'ext'

    def forward(self,
                x: Tensor,
                size: Optional[Sequence[int]] = None) -> Tensor:
        """Upsample ``x`` and optionally crop it to ``size``.

        Args:
            x (Tensor): Input of shape (N, C, H, W).
            size (Sequence[int], optional): Target ``(H_out, W_out)`` with
                ``H_out <= factor * H`` and ``W_out <= factor * W``; the
                upsampled map is cropped at the right and bottom to it.
                Defaults to None (no crop).

        Returns:
            Tensor: Shape (N, C, factor * H, factor * W), or
            (N, C, H_out, W_out) when ``size`` is given.
        """
        if self.uses_ext(x):
            out = aligned_upsample(x, self.factor)
        else:
            out = aligned_upsample_ref(x, self.factor)
        if size is None:
            return out
        if len(size) != 2:
            raise ValueError(
                f'AlignedUpsample size must be (H, W), got {tuple(size)}')
        out_h, out_w = int(size[0]), int(size[1])
        full_h, full_w = out.shape[-2:]
        if not (0 < out_h <= full_h and 0 < out_w <= full_w):
            raise ValueError(
                f'AlignedUpsample cannot crop to size {(out_h, out_w)}: the '
                f'upsampled map is {(full_h, full_w)} (factor {self.factor} '
                f'x input {tuple(x.shape[-2:])}); the target must be positive '
                'and not larger')
        return out[:, :, :out_h, :out_w]

    def extra_repr(self) -> str:
        return f'factor={self.factor}, impl={self.impl!r}'
