# Copyright (c) mmdr1 contributors. All rights reserved.
from .protonet_basis import ProtoNetBasis

__all__ = ['ProtoNetBasis']
