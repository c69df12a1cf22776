# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of :mod:`mmdr1.utils.checkpoint` (weights-only checkpoint loading)."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.utils import digit_version

from mmdr1.utils import allow_mmengine_checkpoints

needs_weights_only_default = pytest.mark.skipif(
    digit_version(torch.__version__) < digit_version('2.6.0'),
    reason='torch.load defaults to weights_only=True from torch 2.6 on')


class _GetattrReduce:
    """Pickles as ``getattr(HistoryBuffer, name)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return getattr, (HistoryBuffer, self.name)


def _fake_checkpoint() -> dict:
    hub = MessageHub.get_instance('mmdr1_test_checkpoint')
    for value in (1.5, 0.25):
        hub.update_scalar('train/loss', value)
    hub.update_scalar('train/lr', np.float32(0.01))
    hub.update_info('iter', np.int64(7))
    return dict(
        meta=dict(epoch=1, iter=np.int64(7), seed=np.uint32(3)),
        state_dict=dict(w=torch.ones(2)),
        message_hub=hub.state_dict())


def test_idempotent_and_no_unsafe_switch() -> None:
    allow_mmengine_checkpoints()
    before = list(torch.serialization.get_safe_globals())
    allow_mmengine_checkpoints()
    assert list(torch.serialization.get_safe_globals()) == before
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ


@needs_weights_only_default
def test_message_hub_checkpoint_loads_weights_only(tmp_path: Path) -> None:
    allow_mmengine_checkpoints()
    path = tmp_path / 'ckpt.pth'
    torch.save(_fake_checkpoint(), str(path))
    ckpt = torch.load(str(path), map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 7
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(0.875)
    assert buffer.current() == pytest.approx(0.25)
    assert ckpt['message_hub']['runtime_info']['iter'] == 7


@needs_weights_only_default
def test_getattr_stays_restricted(tmp_path: Path) -> None:
    allow_mmengine_checkpoints()
    ok = tmp_path / 'ok.pth'
    torch.save({'m': _GetattrReduce('mean')}, str(ok))
    assert torch.load(str(ok))['m'] is HistoryBuffer.mean
    bad = tmp_path / 'bad.pth'
    torch.save({'m': _GetattrReduce('__init__')}, str(bad))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(str(bad))
