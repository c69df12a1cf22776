# Copyright (c) mmdr1 contributors. All rights reserved.
from .aligned_upsample import AlignedUpsample, aligned_upsample_ref
from .base_roi_mask import BaseRoIMask
from .blender import Blender
from .dr1conv import DR1Conv
from .factored_attention import FactoredAttention
from .vector_mask import VectorMask

__all__ = [
    'AlignedUpsample', 'aligned_upsample_ref', 'Blender', 'BaseRoIMask',
    'DR1Conv', 'FactoredAttention', 'VectorMask'
]
