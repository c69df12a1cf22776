# Copyright (c) mmdr1 contributors. All rights reserved.
"""Common base of the RoI mask modules (blender, vector, factored attention).

dr1mask spec section 4: every instance prediction module crops the basis
with the instance box (RoIAlign) and combines the crops under a
per-instance embedding; BlendMask's blender (blendmask spec section 8) is
the full-attention case.
"""
from typing import Optional, Union

from mmcv.ops import RoIAlign
from mmengine.model import BaseModule
from torch import Tensor


def _check_positive_int(name: str, value: int) -> None:
    """Raise ValueError unless ``value`` is an int >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')


class BaseRoIMask(BaseModule):
    """Common interface of the DR1Mask instance prediction modules.

    Every module (dr1mask spec section 4) crops the ``C``-channel basis with
    each instance box using RoIAlign (output ``R x R``, ``aligned=True``,
    average pooling, the same mmcv op as the BlendMask
    :class:`~mmdr1.models.layers.Blender`) and combines the cropped channels
    into one mask logit map guided by a per-instance embedding of length
    :attr:`embed_dim`:

    ``forward(basis (N, C, H, W), rois (P, 5), embeds (P, embed_dim))
    -> (P, R, R)`` mask logits.

    Subclasses implement :attr:`embed_dim` and :meth:`_combine` and may
    override :attr:`_embed_layout` (used in error messages).

    Args:
        in_channels (int): Number of basis channels ``C`` expected.
        bottom_resolution (int): Side ``R`` of the cropped basis and of the
            output masks.
        spatial_scale (float): Scale from input-image pixels to the basis
            grid (1 / stride of the basis).
        sampling_ratio (int): RoIAlign samples per bin side (0 means
            adaptive).
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    _embed_layout = 'embed_dim'
    #: Argument names used in error messages.
    _basis_name = 'basis'
    _embed_name = 'embeds'

    def __init__(self,
                 in_channels: int,
                 bottom_resolution: int,
                 spatial_scale: float,
                 sampling_ratio: int,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check_positive_int('in_channels', in_channels)
        _check_positive_int('bottom_resolution', bottom_resolution)
        if not spatial_scale > 0:
            raise ValueError(
                f'spatial_scale must be > 0, got {spatial_scale!r}')
        if isinstance(sampling_ratio, bool) or \
                not isinstance(sampling_ratio, int) or sampling_ratio < 0:
            raise ValueError('sampling_ratio must be an int >= 0, got '
                             f'{sampling_ratio!r}')
        self._in_channels = in_channels
        self.bottom_resolution = bottom_resolution
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.pooler = RoIAlign(
            output_size=bottom_resolution,
            spatial_scale=self.spatial_scale,
            sampling_ratio=sampling_ratio,
            pool_mode='avg',
            aligned=True)

    @property
    def in_channels(self) -> int:
        """int: Number of basis channels ``C`` the module expects."""
        return self._in_channels

    @property
    def embed_dim(self) -> int:
        """int: Length of one per-instance embedding."""
        raise NotImplementedError

    def _check_embeds(self,
                      embeds: Tensor,
                      num_rois: Optional[int] = None) -> None:
        """Raise ValueError unless ``embeds`` is (num_rois, embed_dim).

        ``num_rois=None`` accepts any number of rows.
        """
        name = self._embed_name
        if not isinstance(embeds, Tensor):
            raise ValueError(
                f'{name} must be a Tensor, got {type(embeds).__name__}')
        if not embeds.is_floating_point():
            raise ValueError(
                f'{name} must be floating point, got {embeds.dtype}')
        d = self.embed_dim
        if embeds.dim() != 2 or embeds.size(1) != d or (
                num_rois is not None and embeds.size(0) != num_rois):
            rois_msg = '' if num_rois is None else \
                f' with P = {num_rois} RoIs'
            raise ValueError(
                f'{name} must have shape (P, {d}) = (P, {self._embed_layout})'
                f'{rois_msg}, got {tuple(embeds.shape)}')

    def _check_inputs(self, basis: Tensor, rois: Tensor,
                      embeds: Tensor) -> None:
        """Raise ValueError on inputs of the wrong shape, dtype or device."""
        basis_name = self._basis_name
        for name, t in ((basis_name, basis), ('rois', rois)):
            if not isinstance(t, Tensor):
                raise ValueError(
                    f'{name} must be a Tensor, got {type(t).__name__}')
            if not t.is_floating_point():
                raise ValueError(
                    f'{name} must be floating point, got {t.dtype}')
        c = self.in_channels
        if basis.dim() != 4 or basis.size(1) != c:
            raise ValueError(f'{basis_name} must have shape (N, {c}, H, W), '
                             f'got {tuple(basis.shape)}')
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError('rois must have shape (P, 5) as [batch_index, '
                             f'x1, y1, x2, y2], got {tuple(rois.shape)}')
        self._check_embeds(embeds, rois.size(0))
        for name, t in (('rois', rois), (self._embed_name, embeds)):
            if t.dtype != basis.dtype:
                raise ValueError(f'{name} dtype {t.dtype} does not match '
                                 f'{basis_name} dtype {basis.dtype}')
            if t.device != basis.device:
                raise ValueError(f'{name} device {t.device} does not match '
                                 f'{basis_name} device {basis.device}')
        if rois.size(0) > 0:
            batch_inds = rois[:, 0].detach()
            if bool(((batch_inds < 0) | (batch_inds >= basis.size(0))
                     | (batch_inds != batch_inds.round())).any()):
                raise ValueError('rois[:, 0] must hold integer batch '
                                 f'indices in [0, {basis.size(0)})')

    def _empty_output(self, basis: Tensor, embeds: Tensor) -> Tensor:
        """(0, R, R) output still connected to the graph (zero gradients).

        Includes the module's own parameters, so that all of them take part
        in the graph even for a batch without instances.
        """
        res = self.bottom_resolution
        out = embeds.new_zeros((0, res, res)) + (
            basis.sum() * 0 + embeds.sum() * 0)
        for param in self.parameters():
            out = out + param.sum().to(out.dtype) * 0
        return out

    def _combine(self, crops: Tensor, embeds: Tensor) -> Tensor:
        """Combine crops (P, C, R, R) with embeds (P, D) into (P, R, R)."""
        raise NotImplementedError

    def forward(self, basis: Tensor, rois: Tensor, embeds: Tensor) -> Tensor:
        """Crop the basis with every RoI and combine it into mask logits.

        Args:
            basis (Tensor): Basis features of shape (N, C, H, W), on a grid
                of ``1 / spatial_scale`` input pixels.
            rois (Tensor): RoIs of shape (P, 5) as ``[batch_index, x1, y1,
                x2, y2]`` in input-image pixels.
            embeds (Tensor): Instance embeddings of shape (P, embed_dim).

        Returns:
            Tensor: Mask logits of shape (P, R, R), R = bottom_resolution.
        """
        self._check_inputs(basis, rois, embeds)
        if rois.size(0) == 0:
            return self._empty_output(basis, embeds)
        crops = self.pooler(basis, rois)  # (P, C, R, R)
        return self._combine(crops, embeds)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'bottom_resolution={self.bottom_resolution}, '
                f'spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}')
