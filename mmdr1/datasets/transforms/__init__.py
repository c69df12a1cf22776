# Copyright (c) mmdr1 contributors. All rights reserved.
from .formatting import PackDetInputsWithThingSem
from .thing_semantic import GenerateThingSemanticSeg

__all__ = ['GenerateThingSemanticSeg', 'PackDetInputsWithThingSem']
