# Copyright (c) mmdr1 contributors. All rights reserved.
from .aligned_upsample import AlignedUpsample, aligned_upsample_ref
from .blender import Blender
from .dr1conv import DR1Conv
from .factored_attention import FactoredAttention
from .vector_mask import BaseRoIMask, VectorMask

__all__ = [
    'AlignedUpsample', 'aligned_upsample_ref', 'Blender', 'BaseRoIMask',
    'DR1Conv', 'FactoredAttention', 'VectorMask'
]
