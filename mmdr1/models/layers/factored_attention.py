# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask factored attention instance prediction module.

DR1Mask paper section 3.2.3 "Instance Prediction Module", Eq. 7-8; dr1mask
spec section 4 item 3.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from mmdr1.ops import factored_blend, factored_blend_supported
from .base_roi_mask import BaseRoIMask, _check_positive_int


@MODELS.register_module()
class FactoredAttention(BaseRoIMask):
    """Factored attention: low-rank BlendMask attention over a wide basis.

    DR1Mask paper section 3.2.3, Eq. 7-8; dr1mask spec section 4 item 3.
    The embedding of instance ``p`` is split ``e_p = [w_p, s_p]``:

    - ``w_p``: the first ``C * K`` numbers, laid out (K, C), are the weight
      of a per-instance 1x1 convolution ``C -> K`` (Eq. 7).
    - ``s_p``: the next ``K * d`` numbers, laid out (K, d), are the attention
      factors.

    With learned parameters ``U`` (K, R, d) and ``V`` (K, d, R) shared by all
    instances, for every RoI ``p`` with box ``b_p`` on image ``n_p``:

    1. ``crop_p = RoIAlign(basis[n_p], b_p)`` of shape (C, R, R)
       (``aligned=True``, average pooling, as the BlendMask blender).
    2. ``r_p = w_p @ crop_p`` of shape (K, R, R) (Eq. 7).
    3. ``Q_p^k = U^k diag(s_p^k) V^k`` (R x R, rows are y, columns x) for
       each ``k`` (Eq. 8): the sum of ``d`` outer products of the columns of
       ``U^k`` and the rows of ``V^k`` weighted by ``s_p^k``.
    4. ``mask_p = sum_k softmax_k(Q_p)^k * r_p^k``: the mask logits.

    The softmax over ``k`` follows BlendMask; the paper does not name the
    normalisation, it is the spec's choice. For any ``U``, ``V``, ``s`` the
    result equals BlendMask's full attention built from the reconstructed
    ``Q`` (attention size ``M = R``, so the resize is the identity).

    Cost: ``embed_dim = C * K + K * d`` (144 for C = 32, K = 4, d = 4)
    versus ``K * M * M = 784`` for BlendMask's full attention (K = 4,
    M = 14), which moreover needs ``C == K``. The top layer therefore
    predicts 5x fewer channels and all ``Q`` are formed with one einsum, so
    the module costs about as much as the vector module (paper Table 4).

    With ``use_fused=True`` (the default), :meth:`forward` computes steps
    1-4 with the compiled kernels :func:`mmdr1.ops.factored_blend` whenever
    they are built and support the inputs' device and dtype
    (:meth:`uses_fused`): the same result to float rounding, without
    storing the (P, C, R, R) crop, ``Q`` or the softmax. Otherwise it runs
    the pure PyTorch path above, which is the reference.

    Initialisation: ``U`` and ``V`` are drawn i.i.d. from
    ``N(0, init_std ** 2)`` with ``init_std = d ** -0.25`` by default, so
    that ``Var(Q[y, x]) = sum_j s_j ** 2 * init_std ** 4 = mean_j s_j ** 2``:
    ``Q`` is O(1) when ``s`` is O(1). With the top layer's std-0.01 init
    ``s`` is ~0 at first, so the attention starts uniform (``1 / K``). The
    init is applied at construction and again by :meth:`init_weights`
    (before any ``init_cfg``, which may override it).

    Args:
        in_channels (int): Number of basis channels ``C``. Defaults to 32.
        num_bases (int): Number of attention channels ``K``. Defaults to 4.
        rank (int): Rank ``d`` of each attention map. Defaults to 4.
        bottom_resolution (int): Side ``R`` of the cropped basis, of the
            attention maps and of the output masks. Defaults to 56.
        spatial_scale (float): Scale from input-image pixels to the basis
            grid (1 / stride of the basis). Defaults to 0.25.
        sampling_ratio (int): RoIAlign samples per bin side (0 means
            adaptive). Defaults to 1.
        init_std (float, optional): Std of the normal init of ``U`` and
            ``V``. None means ``rank ** -0.25``. Defaults to None.
        use_fused (bool): Use the compiled fused kernels when they can run
            (see above). Defaults to True.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    _embed_layout = 'C * K + K * d'

    def __init__(self,
                 in_channels: int = 32,
                 num_bases: int = 4,
                 rank: int = 4,
                 bottom_resolution: int = 56,
                 spatial_scale: float = 0.25,
                 sampling_ratio: int = 1,
                 init_std: Optional[float] = None,
                 use_fused: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(
            in_channels=in_channels,
            bottom_resolution=bottom_resolution,
            spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio,
            init_cfg=init_cfg)
        _check_positive_int('num_bases', num_bases)
        _check_positive_int('rank', rank)
        if init_std is None:
            init_std = rank**-0.25
        if isinstance(init_std, bool) or \
                not isinstance(init_std, (int, float)) \
                or not 0 < init_std < math.inf:
            raise ValueError(
                f'init_std must be a finite float > 0, got {init_std!r}')
        self.num_bases = num_bases
        self.rank = rank
        self.init_std = float(init_std)
        self.use_fused = bool(use_fused)
        res = bottom_resolution
        self.U = nn.Parameter(torch.empty(num_bases, res, rank))
        self.V = nn.Parameter(torch.empty(num_bases, rank, res))
        self._reset_parameters()

    @property
    def embed_dim(self) -> int:
        """int: Length of one embedding, ``C * K + K * d``."""
        return self.in_channels * self.num_bases + self.num_bases * self.rank

    def _reset_parameters(self) -> None:
        """Draw ``U`` and ``V`` from ``N(0, init_std ** 2)``."""
        nn.init.normal_(self.U, mean=0., std=self.init_std)
        nn.init.normal_(self.V, mean=0., std=self.init_std)

    def init_weights(self) -> None:
        """Default init of ``U`` and ``V``, then ``init_cfg`` if any."""
        if not self.is_init:
            self._reset_parameters()
        super().init_weights()

    def split_embeds(self, embeds: Tensor) -> Tuple[Tensor, Tensor]:
        """Split embeddings into projection weights and attention factors.

        Args:
            embeds (Tensor): Embeddings of shape (P, C * K + K * d).

        Returns:
            tuple[Tensor, Tensor]: ``w`` of shape (P, K, C) and ``s`` of
            shape (P, K, d) (views of ``embeds``).
        """
        num_rois = embeds.size(0)
        k, c = self.num_bases, self.in_channels
        w = embeds[:, :c * k].reshape(num_rois, k, c)
        s = embeds[:, c * k:].reshape(num_rois, k, self.rank)
        return w, s

    def _logits(self, s: Tensor) -> Tensor:
        """``Q = U diag(s) V`` for all instances: (P, K, d) -> (P, K, R, R).
        """
        u = self.U.to(s.dtype)
        v = self.V.to(s.dtype)
        return torch.einsum('krd,pkd,kds->pkrs', u, s, v)

    def attention_logits(self, embeds: Tensor) -> Tensor:
        """Reconstruct the attention logits ``Q`` (before the softmax).

        Args:
            embeds (Tensor): Embeddings of shape (P, C * K + K * d).

        Returns:
            Tensor: ``Q`` of shape (P, K, R, R), ``Q[p, k] = U^k
            diag(s_p^k) V^k``.
        """
        self._check_embeds(embeds)
        return self._logits(self.split_embeds(embeds)[1])

    def reconstruct_attention(self, embeds: Tensor) -> Tensor:
        """Reconstruct the softmax-normalised attention maps.

        Args:
            embeds (Tensor): Embeddings of shape (P, C * K + K * d).

        Returns:
            Tensor: Attention of shape (P, K, R, R), summing to 1 over K.
        """
        return self.attention_logits(embeds).softmax(dim=1)

    def uses_fused(self, basis: Tensor, rois: Tensor, embeds: Tensor) -> bool:
        """Whether :meth:`forward` would use the compiled fused kernels.

        True when ``use_fused`` is set,
        :func:`mmdr1.ops.factored_blend_supported` accepts the inputs
        (extension built, kernels for their device, a supported common
        dtype) and ``U`` and ``V`` are on their device.
        """
        return (self.use_fused
                and factored_blend_supported(basis, rois, embeds)
                and self.U.device == basis.device
                and self.V.device == basis.device)

    def forward(self, basis: Tensor, rois: Tensor, embeds: Tensor) -> Tensor:
        """Crop the basis with every RoI and apply the factored attention.

        Args:
            basis (Tensor): Basis features of shape (N, C, H, W), on a grid
                of ``1 / spatial_scale`` input pixels.
            rois (Tensor): RoIs of shape (P, 5) as ``[batch_index, x1, y1,
                x2, y2]`` in input-image pixels.
            embeds (Tensor): Embeddings of shape (P, C * K + K * d).

        Returns:
            Tensor: Mask logits of shape (P, R, R), R = bottom_resolution.
            With P = 0 an empty tensor still connected to the graph.
        """
        if not self.uses_fused(basis, rois, embeds):
            return super().forward(basis, rois, embeds)
        self._check_inputs(basis, rois, embeds)
        if rois.size(0) == 0:
            return self._empty_output(basis, embeds)
        w, s = self.split_embeds(embeds)
        return factored_blend(basis, rois, w, s, self.U.to(s.dtype),
                              self.V.to(s.dtype), self.spatial_scale,
                              self.sampling_ratio)

    def _combine(self, crops: Tensor, embeds: Tensor) -> Tensor:
        """Project crops (P, C, R, R) and blend them with the attention."""
        num_rois, res = crops.size(0), self.bottom_resolution
        w, s = self.split_embeds(embeds)
        proj = w.bmm(crops.flatten(2))  # (P, K, R * R)
        proj = proj.view(num_rois, self.num_bases, res, res)
        attn = self._logits(s).softmax(dim=1)  # (P, K, R, R)
        return (proj * attn).sum(dim=1)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'num_bases={self.num_bases}, rank={self.rank}, '
                f'bottom_resolution={self.bottom_resolution}, '
                f'spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, '
                f'init_std={self.init_std}, use_fused={self.use_fused}')


__all__ = ['FactoredAttention']
