# Copyright (c) mmdr1 contributors. All rights reserved.
from .blendmask_fcos_head import BlendMaskFCOSHead, smoothed_giou_loss

__all__ = ['BlendMaskFCOSHead', 'smoothed_giou_loss']
