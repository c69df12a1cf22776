# Copyright (c) mmdr1 contributors. All rights reserved.
from .blendmask import BlendMask

__all__ = ['BlendMask']
