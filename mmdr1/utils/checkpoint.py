# Copyright (c) mmdr1 contributors. All rights reserved.
"""Let mmengine checkpoints load under ``torch.load(weights_only=True)``.

Since torch 2.6, :func:`torch.load` defaults to ``weights_only=True``.
mmengine 0.10.7 calls ``torch.load`` without that argument, so resuming or
testing from a checkpoint written by an mmengine ``Runner`` fails with
``UnpicklingError: Weights only load failed ... Unsupported global:
GLOBAL mmengine.logging.history_buffer.HistoryBuffer`` (open-mmlab/mmengine
issue #1655; spec ``mmdet_stack.md`` section 7.3).

Instead of switching the safe loader off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``)
we allow-list exactly the globals found in such checkpoints (the
``message_hub`` entry pickles :class:`HistoryBuffer` objects holding numpy
arrays and numpy scalars):

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* ``builtins.getattr``, but only as a restricted stand-in that resolves the
  four default statistics methods of :class:`HistoryBuffer` (pickle stores
  ``HistoryBuffer.min`` as ``getattr(HistoryBuffer, 'min')``);
* numpy array and scalar reconstruction: ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy._core.multiarray._reconstruct`` and
  ``numpy._core.multiarray.scalar`` (also under their numpy 1.x names
  ``numpy.core.multiarray.*``, so checkpoints written with numpy 1 load
  under numpy 2);
* the concrete numpy dtype classes of booleans and numbers (numpy 2:
  ``numpy.dtypes.Float64DType`` etc.), which the unpickler must be allowed
  to ``BUILD``.
"""
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.utils import digit_version

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# Statistics methods that ``HistoryBuffer`` stores in the pickled
# ``statistics_methods`` dict (see ``HistoryBuffer._set_default_statistics``).
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
# Booleans, signed/unsigned integers, floats and complex numbers.
_NUMERIC_TYPECODES = '?bBhHiIlLqQefdgFDG'

_registered = False


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Restricted ``getattr`` used when unpickling ``HistoryBuffer``.

    Only ``getattr(HistoryBuffer, <statistics method>)`` is resolved; any
    other call is refused, so allow-listing ``builtins.getattr`` does not
    open the weights-only unpickler to arbitrary attribute access.

    Args:
        obj (Any): The object whose attribute is requested.
        name (str): The attribute name.

    Returns:
        Callable: The requested ``HistoryBuffer`` method.

    Raises:
        pickle.UnpicklingError: If the request is not for a
            ``HistoryBuffer`` statistics method.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        'mmdr1 only allows getattr(HistoryBuffer, '
        f'{_HISTORY_BUFFER_METHODS}) in weights-only checkpoints, got '
        f'getattr({obj!r}, {name!r})')


def _numpy_multiarray() -> Any:
    """Return numpy's ``multiarray`` module (``numpy._core`` on numpy 2)."""
    core = getattr(np, '_core', None)
    if core is not None and hasattr(core, 'multiarray'):
        return core.multiarray
    return np.core.multiarray  # numpy 1.x


def mmengine_safe_globals() -> List[SafeGlobal]:
    """List the globals that mmengine checkpoints need.

    Returns:
        list: Entries for :func:`torch.serialization.add_safe_globals`
        (objects, or ``(object, qualified name)`` tuples).
    """
    multiarray = _numpy_multiarray()
    safe: List[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
    ]
    # Names used by pickles written under the other numpy major version.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        safe.append((multiarray._reconstruct, f'{module}._reconstruct'))
        safe.append((multiarray.scalar, f'{module}.scalar'))
    dtype_classes = {type(np.dtype(code)) for code in _NUMERIC_TYPECODES}
    safe.extend(sorted(dtype_classes, key=lambda cls: cls.__qualname__))
    return safe


def allow_mmengine_checkpoints() -> None:
    """Allow-list mmengine checkpoint globals for weights-only loading.

    On torch >= 2.6 this registers :func:`mmengine_safe_globals` with
    :func:`torch.serialization.add_safe_globals`, so that mmengine 0.10.7
    can resume from and test with its own checkpoints while ``torch.load``
    keeps its safe ``weights_only=True`` default (spec ``mmdet_stack.md``
    section 7.3, open-mmlab/mmengine#1655). It neither sets
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` nor disables weights-only loading.

    Calling it again is a cheap no-op; on older torch it does nothing.
    """
    global _registered
    if _registered:
        return
    if digit_version(torch.__version__) >= digit_version('2.6.0'):
        torch.serialization.add_safe_globals(mmengine_safe_globals())
    _registered = True
