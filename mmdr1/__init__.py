# Copyright (c) mmdr1 contributors. All rights reserved.
"""mmdr1: DR1Mask, BlendMask and SpatialFlow as an MMDetection 3.x plugin.

``import mmdr1`` registers every mmdr1 component into mmdet's registries
(``mmdet.registry.MODELS``, ``DATASETS``, ``TRANSFORMS``, ``METRICS``,
``TASK_UTILS``, ``HOOKS``), so stock mmdet configs can use them by name with
``custom_imports=dict(imports=['mmdr1'])``. It also lets mmengine checkpoints
load on torch >= 2.6 (see :mod:`mmdr1.utils.checkpoint`).

The compiled ops live in :mod:`mmdr1.ops`, which imports without mmdet:
where mmdet is not installed, ``import mmdr1`` registers nothing.
"""
from importlib.util import find_spec

from .version import __version__, version_info


def _mmdet_installed() -> bool:
    """Whether mmdet can be found (without importing it)."""
    try:
        return find_spec('mmdet') is not None
    except (ImportError, ValueError):
        return False


# Without mmdet only the compiled ops (``mmdr1.ops``, torch alone) are usable,
# so that kernels can be built and tested on their own.
if _mmdet_installed():
    from . import datasets, evaluation, models  # noqa: F401 (registers)
    from .utils.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()

__all__ = ['__version__', 'version_info']
