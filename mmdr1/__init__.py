# Copyright (c) mmdr1 contributors. All rights reserved.
"""mmdr1: DR1Mask, BlendMask and SpatialFlow as an MMDetection 3.x plugin.

``import mmdr1`` registers every mmdr1 component into mmdet's registries
(``mmdet.registry.MODELS``, ``DATASETS``, ``TRANSFORMS``, ``METRICS``,
``TASK_UTILS``, ``HOOKS``), so stock mmdet configs can use them by name with
``custom_imports=dict(imports=['mmdr1'])``. It also lets mmengine checkpoints
load on torch >= 2.6 (see :mod:`mmdr1.utils.checkpoint`).

The compiled ops live in :mod:`mmdr1.ops`, which imports without mmdet.
"""
from .utils.checkpoint import allow_mmengine_checkpoints
from .version import __version__, version_info

allow_mmengine_checkpoints()

from . import datasets, models  # noqa: E402  (registers the components)

__all__ = ['__version__', 'version_info', 'datasets', 'models']
