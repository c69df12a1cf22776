# Copyright (c) mmdr1 contributors. All rights reserved.
from .spatialflow_tta import SpatialFlowTTAModel

__all__ = ['SpatialFlowTTAModel']
