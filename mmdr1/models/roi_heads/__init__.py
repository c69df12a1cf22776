# Copyright (c) mmdr1 contributors. All rights reserved.
from .spatialflow_thing_head import SpatialFlowThingHead

__all__ = ['SpatialFlowThingHead']
