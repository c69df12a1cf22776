# Copyright (c) mmdr1 contributors. All rights reserved.
from .blendmask_fcos_head import BlendMaskFCOSHead, smoothed_giou_loss
from .blendmask_mask_head import BlendMaskHead

__all__ = ['BlendMaskFCOSHead', 'BlendMaskHead', 'smoothed_giou_loss']
