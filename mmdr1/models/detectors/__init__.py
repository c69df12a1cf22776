# Copyright (c) mmdr1 contributors. All rights reserved.
from .blendmask import BlendMask
from .panoptic_blendmask import PanopticBlendMask

__all__ = ['BlendMask', 'PanopticBlendMask']
