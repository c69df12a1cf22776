# Copyright (c) mmdr1 contributors. All rights reserved.
"""The toy SpatialFlow config through ``tools/train.py`` / ``tools/test.py``.

As ``test_train_test_tools.py``: subprocesses in a working directory with
a tiny generated toy set in ``data/toy_panoptic/`` (the config's relative
``data_root``), 2 training iterations with evaluation and a checkpoint at
the end, then ``tools/test.py`` on the 2 val images, single-scale and with
``--tta`` (the config's :class:`SpatialFlowTTAModel`, 2 scales x flip).
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
CONFIG = REPO / 'configs' / 'spatialflow' / 'spatialflow_r18_toy.py'
METRIC = 'coco_panoptic/PQ'

# 2 iterations on a 4-image set, evaluation and checkpoint at the end, no
# dataloader workers.
FAST_OPTIONS = [
    'train_cfg.max_iters=2',
    'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=2',
    'default_hooks.logger.interval=1',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False',
]


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _run(args: List[str], cwd: Path) -> str:
    """Run a tool; fail with its output tail when it exits non-zero."""
    proc = subprocess.run([sys.executable, *args],
                          cwd=str(cwd),
                          env=_env(),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with '
                    f'{proc.returncode}:\n{proc.stdout[-6000:]}')
    return proc.stdout


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a 4 train / 2 val toy set of 64 px."""
    from mmdr1.datasets import make_toy_panoptic
    root = tmp_path_factory.mktemp('spatialflow_toy')
    make_toy_panoptic(
        str(root / 'data' / 'toy_panoptic'),
        num_train=4,
        num_val=2,
        img_size=64,
        seed=0)
    return root


@pytest.fixture(scope='module')
def trained(toy_dir: Path) -> Path:
    """2 iterations with tools/train.py; returns the checkpoint."""
    work_dir = toy_dir / 'work_train'
    out = _run([
        str(TOOLS / 'train.py'),
        str(CONFIG), '--work-dir',
        str(work_dir), '--cfg-options', *FAST_OPTIONS
    ], toy_dir)
    for key in ('loss_cls', 'loss_bbox', 'loss_mask', 'loss_stuff', METRIC):
        assert key in out, key
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    return ckpt


@pytest.mark.parametrize('tta', [False, True], ids=['single', 'tta'])
def test_toy_test_tool(toy_dir: Path, trained: Path, tta: bool) -> None:
    work_dir = toy_dir / f'work_test_{int(tta)}'
    out = _run([
        str(TOOLS / 'test.py'),
        str(CONFIG),
        str(trained), '--work-dir',
        str(work_dir), *(['--tta'] if tta else []), '--cfg-options',
        *FAST_OPTIONS
    ], toy_dir)
    assert METRIC in out
    assert 'Load checkpoint from' in out
    # the run's config dump: tta_model, and with --tta the model too
    assert out.count("type='SpatialFlowTTAModel'") == (2 if tta else 1)
    assert 'Cannot find ``tta_' not in out
