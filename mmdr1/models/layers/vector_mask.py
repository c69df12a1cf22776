# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask vector instance prediction module (YOLACT-style).

DR1Mask paper section 3.2.3 "Instance Prediction Module"; dr1mask spec
section 4 item 1.
"""
from typing import Optional, Union

from mmdet.registry import MODELS
from torch import Tensor

from .base_roi_mask import BaseRoIMask


@MODELS.register_module()
class VectorMask(BaseRoIMask):
    """Vector instance prediction module (YOLACT-style linear combination).

    DR1Mask paper section 3.2.3 ("YOLACT simply performs a channel-wise
    weighted sum with a vector embedding"), dr1mask spec section 4 item 1,
    YOLACT (Bolya et al., ICCV 2019). For every RoI ``p`` with box ``b_p`` on
    image ``n_p``:

    1. ``crop_p = RoIAlign(basis[n_p], b_p)`` of shape (C, R, R)
       (``aligned=True``, average pooling).
    2. ``mask_p = sum_c e_p[c] * crop_p[c]``: the mask logits.

    ``embed_dim == C``. The module has no parameters. It equals
    :class:`~mmdr1.models.layers.factored_attention.FactoredAttention` with
    ``num_bases=1`` (softmax over one channel is 1) and projection weight
    ``w = e``. It is the default of the panoptic model (spec section 5).

    Args:
        in_channels (int): Number of basis channels ``C``. Defaults to 32.
        bottom_resolution (int): Side ``R`` of the cropped basis and of the
            output masks. Defaults to 56.
        spatial_scale (float): Scale from input-image pixels to the basis
            grid (1 / stride of the basis). Defaults to 0.25.
        sampling_ratio (int): RoIAlign samples per bin side (0 means
            adaptive). Defaults to 1.
        init_cfg (dict or list[dict], optional): Initialization config. The
            module has no parameters. Defaults to None.
    """

    _embed_layout = 'C'

    def __init__(self,
                 in_channels: int = 32,
                 bottom_resolution: int = 56,
                 spatial_scale: float = 0.25,
                 sampling_ratio: int = 1,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(
            in_channels=in_channels,
            bottom_resolution=bottom_resolution,
            spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio,
            init_cfg=init_cfg)

    @property
    def embed_dim(self) -> int:
        """int: Length of one embedding, ``C``."""
        return self.in_channels

    def _combine(self, crops: Tensor, embeds: Tensor) -> Tensor:
        """Weighted sum of the crops (P, C, R, R) -> (P, R, R)."""
        num_rois, res = crops.size(0), self.bottom_resolution
        out = embeds.unsqueeze(1).bmm(crops.flatten(2))  # (P, 1, R * R)
        return out.view(num_rois, res, res)


__all__ = ['BaseRoIMask', 'VectorMask']
