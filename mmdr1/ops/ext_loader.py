# Copyright (c) mmdr1 contributors. All rights reserved.
"""Loader of mmdr1's compiled extension ``mmdr1._ext``.

mmcv's own ``mmcv.utils.ext_loader.load_ext`` is hard-wired to the ``mmcv.``
package, so mmdr1 has this small equivalent (mmdet_stack spec section 4.1).
The extension is imported lazily, on the first use of an op, so that
:mod:`mmdr1.ops` imports even when it has not been built.
"""
import importlib
from types import ModuleType
from typing import Sequence

#: Import name of the compiled extension built by ``setup.py``.
EXT_NAME = 'mmdr1._ext'

BUILD_HINT = ('run `pip install --no-build-isolation .` in the mmdr1 '
              'checkout, or `python setup.py build_ext --inplace` for '
              'development; see README')


def load_ext(funcs: Sequence[str]) -> ModuleType:
    """Import the compiled extension and check that it provides ``funcs``.

    Args:
        funcs (Sequence[str]): Names of the functions the caller needs.

    Returns:
        ModuleType: The extension module.

    Raises:
        ImportError: If the extension is not built or cannot be loaded.
        RuntimeError: If it was built from older sources that lack one of
            ``funcs``.
    """
    try:
        ext = importlib.import_module(EXT_NAME)
    except ImportError as e:
        raise ImportError(
            f'mmdr1 compiled ops are not available: cannot import '
            f'{EXT_NAME} ({e}). To build them, {BUILD_HINT}.') from e
    missing = [f for f in funcs if not hasattr(ext, f)]
    if missing:
        raise RuntimeError(
            f'{EXT_NAME} ({getattr(ext, "__file__", "?")}) lacks {missing}: '
            f'it was built from older sources. To rebuild it, {BUILD_HINT}.')
    return ext


def ext_available(funcs: Sequence[str] = ()) -> bool:
    """Whether the compiled extension is built (and provides ``funcs``).

    Args:
        funcs (Sequence[str]): Function names that must be present.
            Defaults to ``()`` (only check that the extension imports).

    Returns:
        bool: ``True`` if :func:`load_ext` would succeed.
    """
    try:
        load_ext(funcs)
    except (ImportError, RuntimeError):
        return False
    return True
