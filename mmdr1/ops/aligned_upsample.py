# Copyright (c) mmdr1 contributors. All rights reserved.
"""Compiled aligned upsampling (dr1mask spec section 6, paper section 3.3).

DR1Mask pads images to a multiple of 4 only (paper Table 5), so feature maps
have odd sizes and upsampled maps must stay aligned with the finer level. The
aligned upsampling by an integer factor ``f`` places output pixel ``y`` at
input coordinate ``clamp((y - f // 2) / f, 0, h - 1)`` and interpolates
linearly (the same along x): for ``f = 2`` output pixel ``2i + 1`` equals
input pixel ``i``, i.e. output pixel ``i`` is centred like a stride-2 3x3
convolution with padding 1 samples its input. This is CondInst's
``aligned_bilinear`` construction; the pure PyTorch reference is
:func:`mmdr1.models.layers.aligned_upsample_ref`.

This module only needs torch; the extension is loaded on first use.
"""
from numbers import Integral
from typing import Tuple

from torch import Tensor
from torch.autograd import Function

from . import ext_loader
# SUPPORTED_DTYPES: re-exported, the dtypes this op accepts
from .ext_loader import SUPPORTED_DTYPES  # noqa: F401
from .ext_loader import check_op_device, ops_supported

EXT_FUNCS = ('aligned_upsample_forward', 'aligned_upsample_backward',
             'compiled_with_cuda')

_get_ext = ext_loader.ext_getter(EXT_FUNCS)


def check_aligned_upsample_args(x: Tensor, factor: int) -> int:
    """Validate the arguments of aligned upsampling.

    Shared by the compiled op and the PyTorch reference.

    Args:
        x (Tensor): Input of shape (N, C, H, W), floating point, H, W > 0.
        factor (int): Upsampling factor, an integer >= 1.

    Returns:
        int: ``factor`` as a Python int.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor or ``factor`` is
            not an integer.
        ValueError: If ``x`` is not 4-D, is spatially empty, or
            ``factor < 1``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(
            f'aligned_upsample expects a torch.Tensor, got {type(x)}')
    if x.dim() != 4:
        raise ValueError('aligned_upsample expects an (N, C, H, W) tensor, '
                         f'got shape {tuple(x.shape)}')
    if x.size(2) == 0 or x.size(3) == 0:
        raise ValueError('aligned_upsample needs H > 0 and W > 0, got shape '
                         f'{tuple(x.shape)}')
    if not x.is_floating_point():
        raise TypeError('aligned_upsample expects a floating-point tensor, '
                        f'got {x.dtype}')
    if isinstance(factor, bool) or not isinstance(factor, Integral):
        raise TypeError('aligned_upsample factor must be an int, got '
                        f'{factor!r} ({type(factor).__name__})')
    if factor < 1:
        raise ValueError(f'aligned_upsample factor must be >= 1, got {factor}')
    return int(factor)


def aligned_upsample_supported(x: Tensor) -> bool:
    """Whether the compiled op can run on ``x``.

    True when the extension is built, has kernels for ``x.device`` (CPU
    always; CUDA when built with CUDA) and supports ``x.dtype`` (see
    :data:`SUPPORTED_DTYPES`).

    Args:
        x (Tensor): The tensor that would be upsampled.

    Returns:
        bool: Whether :func:`aligned_upsample` accepts ``x``'s device and
        dtype.
    """
    return ops_supported((x, ), EXT_FUNCS)


class AlignedUpsampleFunction(Function):
    """Autograd function of the compiled aligned upsampling."""

    @staticmethod
    def forward(ctx, x: Tensor, factor: int) -> Tensor:
        ctx.factor = factor
        ctx.input_size = (x.size(2), x.size(3))
        return _get_ext().aligned_upsample_forward(x.contiguous(), factor)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tuple[Tensor, None]:
        height, width = ctx.input_size
        grad_input = _AlignedUpsampleBackward.apply(grad_output, ctx.factor,
                                                    height, width)
        return grad_input, None


class _AlignedUpsampleBackward(Function):
    """Backward of :class:`AlignedUpsampleFunction` as a function itself.

    The op is linear, so the gradient of its backward is the forward again;
    this makes the op twice differentiable.
    """

    @staticmethod
    def forward(ctx, grad_output: Tensor, factor: int, height: int,
                width: int) -> Tensor:
        ctx.factor = factor
        return _get_ext().aligned_upsample_backward(grad_output.contiguous(),
                                                    factor, height, width)

    @staticmethod
    def backward(ctx,
                 grad_grad_input: Tensor) -> Tuple[Tensor, None, None, None]:
        return (AlignedUpsampleFunction.apply(grad_grad_input,
                                              ctx.factor), None, None, None)


def aligned_upsample(x: Tensor, factor: int = 2) -> Tensor:
    """Aligned upsampling by an integer factor with the compiled kernels.

    Output pixel ``y`` samples input coordinate
    ``clamp((y - factor // 2) / factor, 0, H - 1)`` with linear interpolation
    (and likewise along x); ``factor = 1`` is the identity. Equals
    :func:`mmdr1.models.layers.aligned_upsample_ref` (dr1mask spec section 6).

    Args:
        x (Tensor): Input of shape (N, C, H, W); float32/float64 on CPU,
            float16/float32/float64 on CUDA. Need not be contiguous.
        factor (int): Upsampling factor, >= 1. Defaults to 2.

    Returns:
        Tensor: Upsampled tensor of shape (N, C, factor * H, factor * W),
        contiguous, same dtype and device as ``x``.
    """
    factor = check_aligned_upsample_args(x, factor)
    check_op_device('aligned_upsample', x, _get_ext())
    return AlignedUpsampleFunction.apply(x, factor)
