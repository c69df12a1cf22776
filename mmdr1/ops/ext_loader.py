# Copyright (c) mmdr1 contributors. All rights reserved.
"""Loader of mmdr1's compiled extension ``mmdr1._ext``.

mmcv's own ``mmcv.utils.ext_loader.load_ext`` is hard-wired to the ``mmcv.``
package, so mmdr1 has this small equivalent (mmdet_stack spec section 4.1).
The extension is imported lazily, on the first use of an op, so that
:mod:`mmdr1.ops` imports even when it has not been built.
"""
import functools
import importlib
from types import ModuleType
from typing import Callable, Sequence, Tuple

import torch
from torch import Tensor

#: Import name of the compiled extension built by ``setup.py``.
EXT_NAME = 'mmdr1._ext'

#: dtypes the compiled kernels handle, per device type (every mmdr1 op).
SUPPORTED_DTYPES = {
    'cpu': (torch.float32, torch.float64),
    'cuda': (torch.float16, torch.float32, torch.float64),
}
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


def ext_getter(funcs: Sequence[str]) -> Callable[[], ModuleType]:
    """A function that loads (once) and returns the extension.

    Args:
        funcs (Sequence[str]): Names of the functions the op needs.

    Returns:
        Callable[[], ModuleType]: Calls :func:`load_ext` on its first
        successful use and returns the cached module afterwards; raises
        how to build the extension while it is not built.
    """
    funcs = tuple(funcs)

    @functools.lru_cache(maxsize=None)
    def get_ext() -> ModuleType:
        return load_ext(funcs)

    return get_ext


def ops_supported(tensors: Tuple, ext_funcs: Sequence[str]) -> bool:
    """Whether compiled kernels providing ``ext_funcs`` accept ``tensors``.

    True when all are tensors on one device with one dtype listed in
    :data:`SUPPORTED_DTYPES` for that device type, and the extension is
    built with ``ext_funcs`` (and with CUDA kernels for CUDA tensors).

    Args:
        tensors (tuple[Tensor]): The inputs that would be passed.
        ext_funcs (Sequence[str]): Extension functions the op needs.

    Returns:
        bool: Whether the compiled op can run on them.
    """
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        return False
    device, dtype = tensors[0].device, tensors[0].dtype
    if any(t.device != device or t.dtype != dtype for t in tensors):
        return False
    if dtype not in SUPPORTED_DTYPES.get(device.type, ()):
        return False
    try:
        ext = load_ext(ext_funcs)
    except (ImportError, RuntimeError):
        return False
    return device.type == 'cpu' or bool(ext.compiled_with_cuda())


def check_op_device(name: str, x: Tensor, ext: ModuleType) -> None:
    """Raise unless the compiled kernels handle ``x``'s device and dtype.

    Args:
        name (str): Op name; the messages point to ``{name}_ref``.
        x (Tensor): The input.
        ext (ModuleType): The loaded extension.

    Raises:
        RuntimeError: No kernel for the device (or no CUDA kernels built).
        TypeError: Unsupported dtype on that device.
    """
    dtypes = SUPPORTED_DTYPES.get(x.device.type)
    if dtypes is None:
        raise RuntimeError(f'mmdr1 {name} has no kernel for device '
                           f'{x.device}; use {name}_ref instead')
    if x.dtype not in dtypes:
        raise TypeError(f'mmdr1 {name} on {x.device.type} supports '
                        f'{[str(d) for d in dtypes]}, got {x.dtype}')
    if x.device.type == 'cuda' and not ext.compiled_with_cuda():
        raise RuntimeError(
            f'mmdr1._ext was built without CUDA kernels, but the input is on '
            f'{x.device}: rebuild it where torch sees CUDA (or with '
            f'FORCE_CUDA=1), or use {name}_ref')
