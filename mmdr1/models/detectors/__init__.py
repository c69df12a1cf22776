# Copyright (c) mmdr1 contributors. All rights reserved.
from .blendmask import BlendMask
from .dr1mask import DR1Mask
from .dr1mask_panoptic import DR1MaskPanoptic
from .panoptic_blendmask import PanopticBlendMask
from .spatialflow import SpatialFlow

__all__ = [
    'BlendMask', 'DR1Mask', 'DR1MaskPanoptic', 'PanopticBlendMask',
    'SpatialFlow'
]
