# Copyright (c) mmdr1 contributors. All rights reserved.
from .dr1basis import DR1Basis

__all__ = ['DR1Basis']
