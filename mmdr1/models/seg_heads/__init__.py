# Copyright (c) mmdr1 contributors. All rights reserved.
from .protonet_basis import ProtoNetBasis
from .score_thr_fusion_head import ScoreThrHeuristicFusionHead
from .sem_seg_fpn_head import SemSegFPNHead
from .unified_panoptic_head import UnifiedPanopticHead

__all__ = [
    'ProtoNetBasis', 'ScoreThrHeuristicFusionHead', 'SemSegFPNHead',
    'UnifiedPanopticHead'
]
