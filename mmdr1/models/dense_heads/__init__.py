# Copyright (c) mmdr1 contributors. All rights reserved.
from .blendmask_fcos_head import BlendMaskFCOSHead, smoothed_giou_loss
from .blendmask_mask_head import BlendMaskHead
from .dr1mask_fcos_head import DR1MaskFCOSHead
from .dr1mask_mask_head import DR1MaskHead
from .spatialflow_head import DeformFlowConvModule, SpatialFlowHead

__all__ = [
    'BlendMaskFCOSHead', 'BlendMaskHead', 'DeformFlowConvModule',
    'DR1MaskFCOSHead', 'DR1MaskHead', 'SpatialFlowHead', 'smoothed_giou_loss'
]
