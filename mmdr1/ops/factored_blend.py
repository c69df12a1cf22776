# Copyright (c) mmdr1 contributors. All rights reserved.
"""Fused DR1Mask factored attention (dr1mask spec section 4 item 3).

For RoI ``p`` = ``[n, x1, y1, x2, y2]`` with projection weights ``w_p``
(K, C) and attention factors ``s_p`` (K, d), and the shared ``U`` (K, R, d)
and ``V`` (K, d, R)::

    crop = RoIAlign(basis[n], box)           # (C, R, R), avg, aligned=True
    r = w_p @ crop                           # (K, R, R)   (paper Eq. 7)
    Q^k = U^k diag(s_p^k) V^k                # (K, R, R)   (paper Eq. 8)
    out[p] = (softmax(Q, dim=K) * r).sum(K)  # (R, R) mask logits

:func:`factored_blend_ref` is that computation in PyTorch (mmcv RoIAlign,
``bmm``, ``einsum``, softmax, product, sum), as
:class:`~mmdr1.models.layers.FactoredAttention` computes it.
:func:`factored_blend` computes the same with two compiled kernels:

- :func:`factored_project` (``r``): RoIAlign and the per-RoI 1x1
  projection in one pass, so the (P, C, R, R) crop - the largest tensor of
  the module, C / K = 8 times ``r`` - is never stored, neither in the
  forward nor in the backward (which recomputes the crop rows, accumulates
  ``grad_w`` and scatters the crop gradient plane by plane, without atomics
  on CPU).
- :func:`factored_softmax_blend` (``out`` from ``r``, ``s``, ``U``,
  ``V``): forms ``Q`` row by row from ``U diag(s)`` (d multiply-adds per
  logit), takes the softmax over K, the product and the sum, and stores
  only the output and the per-pixel ``logsumexp_k(Q)`` (P, R, R); the
  backward recomputes ``Q`` and the softmax and returns the gradients of
  ``r``, ``s``, ``U`` and ``V``. Neither ``Q`` nor the softmax (both
  (P, K, R, R)) is stored.

``r`` (P, K, R, R) is the one tensor kept between the two kernels (the
softmax blend needs it in its backward, and recomputing it would repeat the
crop, the costly part).

Why this split: median times in ms (forward / forward + backward) of the
module's computation on the development machine's CPU (2 cores shared with
other jobs, so absolute numbers are noisy), P = 100 RoIs of 16 px to half
the image, basis 2 x 32 x 200 x 336, R = 56, K = d = 4, gradients of all
inputs, the four variants timed round-robin:

========================================================  =========  =========
split                                                     1 thread   2 threads
========================================================  =========  =========
A. reference: mmcv RoIAlign, bmm, einsum, softmax, sum    151 / 443  181 / 617
B. mmcv RoIAlign + bmm, fused softmax blend               155 / 461  116 / 505
C2. fused crop + projection, PyTorch Q, softmax, sum       69 / 131   98 / 268
C. fused crop + projection, fused softmax blend (chosen)   73 / 128   49 / 154
========================================================  =========  =========

- mmcv's CPU RoIAlign of the 32-channel basis alone takes 113 ms forward and
  432 ms forward + backward (it runs on one thread, and its backward
  scatters every (P, C, R, R) element), so any kernel that starts from the
  cropped basis (B) cannot beat the reference by much. The fused crop +
  projection parallelises over RoIs (forward) and basis planes (backward),
  never stores the crop and touches each sample once per pass; the
  projection costs it K multiply-adds per cropped element, while PyTorch's
  ``bmm`` (~3 ms) would need the stored crop.
- Fusing ``Q``, the softmax, the product and the sum (C vs C2) costs about
  the same on one thread (ATen's AVX2 exp and einsum against a kernel built
  for the baseline x86-64 instruction set) and is 2x faster on two threads;
  it also drops the (P, K, R, R) ``Q``, softmax and product tensors, and
  forming ``Q`` in the kernel (d multiply-adds per logit) is cheaper than
  reading a stored one.
- So C is used: both parts as kernels, with only ``r`` (P, K, R, R, C / K =
  8 times smaller than the crop) stored between them.

This module only needs torch; the extension is loaded on first use.
"""

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from . import ext_loader
from .blend import check_output_size, check_roi_op_args
from .ext_loader import check_op_device, ops_supported

EXT_FUNCS = ('factored_project_forward', 'factored_project_backward',
             'factored_blend_forward', 'factored_blend_backward',
             'compiled_with_cuda')

_get_ext = ext_loader.ext_getter(EXT_FUNCS)


def factored_blend_supported(*tensors: Tensor) -> bool:
    """Whether the compiled factored-attention ops can run on ``tensors``.

    Args:
        *tensors (Tensor): The tensors that would be passed (basis, rois,
            weight, factors, U, V).

    Returns:
        bool: True when the extension is built with kernels for their
        device (CPU always; CUDA when built with CUDA) and their common
        dtype (float32/float64 on CPU, also float16 on CUDA).
    """
    return ops_supported(tensors, EXT_FUNCS)


class FactoredProjectFunction(Function):
    """Autograd function of :func:`factored_project`."""

    @staticmethod
    def forward(ctx, basis: Tensor, rois: Tensor, weight: Tensor,
                spatial_scale: float, sampling_ratio: int,
                output_size: int) -> Tensor:
        ctx.spatial_scale = float(spatial_scale)
        ctx.sampling_ratio = int(sampling_ratio)
        ctx.save_for_backward(basis, rois, weight)
        return _get_ext().factored_project_forward(basis, rois, weight,
                                                   ctx.spatial_scale,
                                                   ctx.sampling_ratio,
                                                   int(output_size))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple:
        basis, rois, weight = ctx.saved_tensors
        grad_basis, grad_weight = _get_ext().factored_project_backward(
            grad_output.contiguous(), basis, rois, weight, ctx.spatial_scale,
            ctx.sampling_ratio)
        needs = ctx.needs_input_grad
        return (grad_basis if needs[0] else None, None,
                grad_weight if needs[2] else None, None, None, None)


class FactoredSoftmaxBlendFunction(Function):
    """Autograd function of :func:`factored_softmax_blend`."""

    @staticmethod
    def forward(ctx, proj: Tensor, factors: Tensor, u: Tensor, v: Tensor,
                need_grad: bool) -> Tensor:
        out, lse = _get_ext().factored_blend_forward(proj, factors, u, v,
                                                     need_grad)
        if need_grad:
            ctx.save_for_backward(proj, factors, u, v, lse)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple:
        proj, factors, u, v, lse = ctx.saved_tensors
        grads = _get_ext().factored_blend_backward(grad_output.contiguous(),
                                                   proj, factors, u, v, lse)
        return tuple(
            g if need else None
            for g, need in zip(grads, ctx.needs_input_grad)) + (None, )


def _check_tensor(name: str, arg: str, t: Tensor, shape: tuple,
                  like: Tensor) -> None:
    """Raise unless ``t`` is a tensor of ``shape`` (None = any size) with
    the dtype and device of ``like``."""
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise TypeError(f'{name}: {arg} must be a floating-point Tensor')
    if t.dim() != len(shape) or any(
            s is not None and t.size(i) != s for i, s in enumerate(shape)):
        expected = ', '.join('*' if s is None else str(s) for s in shape)
        raise ValueError(f'{name}: {arg} must have shape ({expected}), got '
                         f'{tuple(t.shape)}')
    if t.dtype != like.dtype or t.device != like.device:
        raise ValueError(f'{name}: {arg} ({t.dtype}, {t.device}) must match '
                         f'({like.dtype}, {like.device})')


def _check_project_args(name: str, basis: Tensor, rois: Tensor, weight: Tensor,
                        spatial_scale: float, sampling_ratio: int,
                        output_size: int) -> None:
    check_roi_op_args(name, basis, rois, spatial_scale, sampling_ratio)
    _check_tensor(name, 'weight', weight, (rois.size(0), None, basis.size(1)),
                  basis)
    if weight.size(1) == 0:
        raise ValueError(f'{name}: weight needs K > 0 rows')
    check_output_size(name, output_size)


def _check_blend_args(name: str, proj: Tensor, factors: Tensor, u: Tensor,
                      v: Tensor) -> None:
    if not isinstance(proj, Tensor) or not proj.is_floating_point():
        raise TypeError(f'{name}: proj must be a floating-point Tensor')
    if proj.dim() != 4 or proj.size(2) != proj.size(3) or \
            proj.size(1) == 0 or proj.size(2) == 0:
        raise ValueError(f'{name}: proj must be (P, K, R, R), got '
                         f'{tuple(proj.shape)}')
    p, k, r = proj.shape[:3]
    _check_tensor(name, 'factors', factors, (p, k, None), proj)
    d = factors.size(2)
    if d == 0:
        raise ValueError(f'{name}: factors need d > 0')
    _check_tensor(name, 'U', u, (k, r, d), proj)
    _check_tensor(name, 'V', v, (k, d, r), proj)


def factored_project(basis: Tensor, rois: Tensor, weight: Tensor,
                     spatial_scale: float, sampling_ratio: int,
                     output_size: int) -> Tensor:
    """RoIAlign crop and per-RoI 1x1 projection in one compiled pass.

    ``out[p] = weight[p] @ RoIAlign(basis[n_p], box_p)``, RoIAlign as mmcv's
    (average, ``aligned=True``), without storing the (P, C, R, R) crop.

    Args:
        basis (Tensor): Basis (N, C, H, W).
        rois (Tensor): RoIs (P, 5) as ``[batch_index, x1, y1, x2, y2]``;
            integer batch indices in [0, N), boxes not inverted. No
            gradient flows to ``rois``.
        weight (Tensor): Per-RoI projection weights (P, K, C).
        spatial_scale (float): Input pixels to the basis grid.
        sampling_ratio (int): RoIAlign samples per bin side, 0 = adaptive.
        output_size (int): Side ``R`` of the crop.

    Returns:
        Tensor: Projected crops (P, K, R, R).
    """
    _check_project_args('factored_project', basis, rois, weight, spatial_scale,
                        sampling_ratio, output_size)
    check_op_device('factored_project', basis, _get_ext())
    return FactoredProjectFunction.apply(basis.contiguous(), rois.contiguous(),
                                         weight.contiguous(),
                                         float(spatial_scale),
                                         int(sampling_ratio), int(output_size))


def factored_softmax_blend(proj: Tensor, factors: Tensor, u: Tensor,
                           v: Tensor) -> Tensor:
    """Softmax-over-K blend of ``proj`` with ``Q = U diag(s) V`` (compiled).

    ``out[p] = sum_k softmax_k(Q_p)[k] * proj[p, k]`` with ``Q_p^k = U^k
    diag(factors[p, k]) V^k``, without storing ``Q`` or the softmax.

    Args:
        proj (Tensor): Projected crops (P, K, R, R).
        factors (Tensor): Attention factors (P, K, d).
        u (Tensor): ``U`` (K, R, d).
        v (Tensor): ``V`` (K, d, R).

    Returns:
        Tensor: Mask logits (P, R, R).
    """
    _check_blend_args('factored_softmax_blend', proj, factors, u, v)
    check_op_device('factored_softmax_blend', proj, _get_ext())
    need_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (proj, factors, u, v))
    return FactoredSoftmaxBlendFunction.apply(proj.contiguous(),
                                              factors.contiguous(),
                                              u.contiguous(), v.contiguous(),
                                              need_grad)


def factored_blend(basis: Tensor, rois: Tensor, weight: Tensor,
                   factors: Tensor, u: Tensor, v: Tensor, spatial_scale: float,
                   sampling_ratio: int) -> Tensor:
    """Factored attention with the compiled kernels.

    Equals :func:`factored_blend_ref`; the output side ``R`` is
    ``u.size(1)``. See the module docstring for the kernel split.

    Args:
        basis (Tensor): Basis (N, C, H, W) on a grid of ``1 /
            spatial_scale`` input pixels.
        rois (Tensor): RoIs (P, 5) as ``[batch_index, x1, y1, x2, y2]`` in
            input pixels; integer batch indices in [0, N), boxes not
            inverted (as mmcv's RoIAlign requires; checked on CPU). No
            gradient flows to ``rois``.
        weight (Tensor): Projection weights ``w`` (P, K, C).
        factors (Tensor): Attention factors ``s`` (P, K, d).
        u (Tensor): ``U`` (K, R, d).
        v (Tensor): ``V`` (K, d, R).
        spatial_scale (float): Input pixels to the basis grid.
        sampling_ratio (int): RoIAlign samples per bin side, 0 = adaptive.

    Returns:
        Tensor: Mask logits (P, R, R). ``P = 0`` gives an empty tensor whose
        backward yields zero gradients.

    All tensors share one device and dtype: float32/float64 on CPU,
    float16/float32/float64 on CUDA (see :func:`factored_blend_supported`).
    """
    if not isinstance(u, Tensor) or u.dim() != 3:
        raise ValueError('factored_blend: U must be (K, R, d), got '
                         f'{getattr(u, "shape", type(u))}')
    proj = factored_project(basis, rois, weight, spatial_scale, sampling_ratio,
                            u.size(1))
    return factored_softmax_blend(proj, factors, u, v)


def factored_blend_ref(basis: Tensor, rois: Tensor, weight: Tensor,
                       factors: Tensor, u: Tensor, v: Tensor,
                       spatial_scale: float, sampling_ratio: int) -> Tensor:
    """The factored attention in PyTorch: the reference of
    :func:`factored_blend`.

    mmcv's RoIAlign (average, ``aligned=True``) to R x R (``R =
    u.size(1)``), ``bmm`` with ``weight``, ``Q = einsum(U, s, V)``, softmax
    over K, product and sum over K, as
    :class:`~mmdr1.models.layers.FactoredAttention`. Imports ``mmcv.ops``
    when called.

    Args:
        basis (Tensor): Basis (N, C, H, W).
        rois (Tensor): RoIs (P, 5) as ``[batch_index, x1, y1, x2, y2]``.
        weight (Tensor): Projection weights (P, K, C).
        factors (Tensor): Attention factors (P, K, d).
        u (Tensor): ``U`` (K, R, d).
        v (Tensor): ``V`` (K, d, R).
        spatial_scale (float): Input pixels to the basis grid.
        sampling_ratio (int): RoIAlign samples per bin side, 0 = adaptive.

    Returns:
        Tensor: Mask logits (P, R, R).
    """
    res = u.size(1)
    _check_project_args('factored_blend_ref', basis, rois, weight,
                        spatial_scale, sampling_ratio, res)
    num_rois, num_bases = weight.shape[:2]
    if num_rois == 0:
        return basis.new_zeros(
            (0, res, res)) + sum(t.sum() * 0
                                 for t in (basis, weight, factors, u, v))
    from mmcv.ops import roi_align
    crops = roi_align(basis, rois, (res, res), float(spatial_scale),
                      int(sampling_ratio), 'avg', True)
    proj = weight.bmm(crops.flatten(2)).view(num_rois, num_bases, res, res)
    q = torch.einsum('krd,pkd,kds->pkrs', u, factors, v)
    return (proj * q.softmax(dim=1)).sum(dim=1)
