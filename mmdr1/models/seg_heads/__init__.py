# Copyright (c) mmdr1 contributors. All rights reserved.
from .box_fill_fusion_head import BoxFillFusionHead
from .protonet_basis import ProtoNetBasis
from .score_thr_fusion_head import ScoreThrHeuristicFusionHead
from .sem_seg_fpn_head import SemSegFPNHead
from .spatialflow_stuff_head import SpatialFlowStuffHead
from .unified_panoptic_head import UnifiedPanopticHead

__all__ = [
    'BoxFillFusionHead', 'ProtoNetBasis', 'ScoreThrHeuristicFusionHead',
    'SemSegFPNHead', 'SpatialFlowStuffHead', 'UnifiedPanopticHead'
]
