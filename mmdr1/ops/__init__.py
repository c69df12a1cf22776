# Copyright (c) mmdr1 contributors. All rights reserved.
"""mmdr1's compiled ops (built into ``mmdr1._ext`` by ``setup.py``).

Importing this package needs only torch (not mmdet); the extension itself is
loaded lazily, on first use, and a missing build raises an error that says
how to build it.
"""
from .aligned_upsample import (AlignedUpsampleFunction, aligned_upsample,
                               aligned_upsample_supported)
from .blend import BlendFunction, blend, blend_ref, blend_supported
from .ext_loader import ext_available, load_ext
from .factored_blend import (FactoredProjectFunction,
                             FactoredSoftmaxBlendFunction, factored_blend,
                             factored_blend_ref, factored_blend_supported,
                             factored_project, factored_softmax_blend)

__all__ = [
    'AlignedUpsampleFunction', 'aligned_upsample',
    'aligned_upsample_supported', 'BlendFunction', 'blend', 'blend_ref',
    'blend_supported', 'FactoredProjectFunction',
    'FactoredSoftmaxBlendFunction', 'factored_blend', 'factored_blend_ref',
    'factored_blend_supported', 'factored_project', 'factored_softmax_blend',
    'ext_available', 'load_ext'
]
