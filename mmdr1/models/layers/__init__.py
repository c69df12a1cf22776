# Copyright (c) mmdr1 contributors. All rights reserved.
from .aligned_upsample import AlignedUpsample, aligned_upsample_ref
from .blender import Blender

__all__ = ['AlignedUpsample', 'aligned_upsample_ref', 'Blender']
