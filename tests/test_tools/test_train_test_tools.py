# Copyright (c) mmdr1 contributors. All rights reserved.
"""End-to-end tests of ``tools/train.py``, ``tools/test.py`` and ``mim``.

Every run happens in a subprocess whose working directory holds a tiny
generated toy set in ``data/toy_panoptic/`` (the relative ``data_root`` of
the toy config), with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` removed from the
environment: checkpoints must load through torch's safe weights-only
unpickler thanks to :func:`mmdr1.utils.allow_mmengine_checkpoints`.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
TOY_CONFIG = REPO / 'configs' / 'toy' / 'panoptic_fpn_r18_toy.py'
FORCE_UNSAFE_LOAD = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'

# Fast settings for a 4-image set: 2 iterations, evaluation and checkpoint
# at the end, no dataloader workers.
FAST_OPTIONS = [
    'train_cfg.max_iters=2',
    'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=2',
    'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False',
]


def _env() -> Dict[str, str]:
    """Subprocess environment without the unsafe-load switch."""
    env = dict(os.environ)
    env.pop(FORCE_UNSAFE_LOAD, None)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _run(args: List[str],
         cwd: Path,
         timeout: int = 300,
         check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, return the result with stdout and stderr merged."""
    env = _env()
    assert FORCE_UNSAFE_LOAD not in env
    proc = subprocess.run(
        args,
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with '
                    f'{proc.returncode}:\n{proc.stdout[-6000:]}')
    return proc


def _tool(name: str, *args: str) -> List[str]:
    return [sys.executable, str(TOOLS / name), *args]


def _mim_finds_mmdr1(cwd: Path) -> bool:
    """Whether ``mim`` can look mmdr1 up (installed, or egg-info on path)."""
    code = ('import pkg_resources, sys; '
            'sys.exit(0 if pkg_resources.get_distribution("mmdr1") else 1)')
    proc = _run([sys.executable, '-c', code], cwd, timeout=120, check=False)
    return proc.returncode == 0


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a 4 train / 2 val toy set of 64 px."""
    from mmdr1.datasets import make_toy_panoptic
    root = tmp_path_factory.mktemp('toy_run')
    make_toy_panoptic(
        str(root / 'data' / 'toy_panoptic'),
        num_train=4,
        num_val=2,
        img_size=64,
        seed=0)
    return root


@pytest.fixture(scope='module')
def trained(toy_dir: Path) -> Path:
    """Train 2 iterations with tools/train.py; return the work dir."""
    work_dir = toy_dir / 'work_train'
    proc = _run(
        _tool('train.py', str(TOY_CONFIG), '--work-dir', str(work_dir),
              '--local-rank', '0', '--cfg-options', *FAST_OPTIONS), toy_dir)
    assert 'coco_panoptic/PQ' in proc.stdout
    assert (work_dir / 'iter_2.pth').is_file()
    return work_dir


def test_help_exits_zero(tmp_path: Path) -> None:
    for script in ('train.py', 'test.py'):
        proc = _run(_tool(script, '-h'), tmp_path, timeout=120)
        assert '--cfg-options' in proc.stdout
        assert '--launcher' in proc.stdout
        assert '--local_rank' in proc.stdout


def test_train_writes_checkpoint(trained: Path) -> None:
    ckpt = trained / 'iter_2.pth'
    assert ckpt.is_file()
    # The checkpoint loads under torch's default (weights-only) unpickler
    # once mmdr1 is imported.
    import torch

    import mmdr1  # noqa: F401
    state = torch.load(str(ckpt), map_location='cpu')
    assert {'meta', 'state_dict', 'message_hub'} <= set(state)


def test_test_tool_show_dir(toy_dir: Path, trained: Path) -> None:
    work_dir = toy_dir / 'work_test'
    out_pkl = toy_dir / 'preds.pkl'
    proc = _run(
        _tool('test.py', str(TOY_CONFIG), str(trained / 'iter_2.pth'),
              '--work-dir', str(work_dir), '--show-dir', 'vis', '--out',
              str(out_pkl), '--local_rank', '0', '--cfg-options',
              *FAST_OPTIONS), toy_dir)
    assert 'coco_panoptic/PQ' in proc.stdout
    assert 'Load checkpoint from' in proc.stdout
    pictures = sorted(work_dir.glob('*/vis/*.jpg')) + sorted(
        work_dir.glob('*/vis/*.png'))
    assert len(pictures) == 2, sorted(work_dir.rglob('*'))
    assert all(p.stat().st_size > 0 for p in pictures)
    assert out_pkl.is_file()


def test_resume_and_load_from(toy_dir: Path, trained: Path) -> None:
    more = [o for o in FAST_OPTIONS if not o.startswith('train_cfg.')]
    longer = ['train_cfg.max_iters=3', 'train_cfg.val_interval=100']
    ckpt = trained / 'iter_2.pth'

    # `--resume` without a path: the latest checkpoint of the work dir
    # (a copy of the trained one, whose `last_checkpoint` names iter_2).
    auto_dir = toy_dir / 'work_auto_resume'
    auto_dir.mkdir()
    shutil.copy(ckpt, auto_dir / 'iter_2.pth')
    (auto_dir / 'last_checkpoint').write_text(str(auto_dir / 'iter_2.pth'))
    proc = _run(
        _tool('train.py', str(TOY_CONFIG), '--work-dir', str(auto_dir),
              '--resume', '--cfg-options', *longer, *more), toy_dir)
    assert 'resumed epoch: 0, iter: 2' in proc.stdout
    assert (auto_dir / 'iter_3.pth').is_file()

    # `--resume CKPT` with an explicit path into a fresh work dir.
    resume_dir = toy_dir / 'work_resume'
    proc = _run(
        _tool('train.py', str(TOY_CONFIG), '--work-dir', str(resume_dir),
              '--resume', str(ckpt), '--cfg-options', *longer, *more), toy_dir)
    assert 'resumed epoch: 0, iter: 2' in proc.stdout
    assert (resume_dir / 'iter_3.pth').is_file()

    # `load_from`: weights only, training restarts at iteration 0; no
    # --work-dir, so the default ./work_dirs/<config stem> is used.
    proc = _run(
        _tool('train.py', str(TOY_CONFIG), '--cfg-options',
              f'load_from={ckpt}', 'train_cfg.max_iters=1',
              'train_cfg.val_interval=100',
              'default_hooks.checkpoint.interval=1', *more), toy_dir)
    assert f'Load checkpoint from {ckpt}' in proc.stdout
    assert 'resumed epoch' not in proc.stdout
    assert (toy_dir / 'work_dirs' / TOY_CONFIG.stem / 'iter_1.pth').is_file()


def test_mim_train_and_test(toy_dir: Path) -> None:
    if not _mim_finds_mmdr1(toy_dir):
        pytest.skip('mim cannot find mmdr1 through pkg_resources: it is '
                    'neither installed nor is an mmdr1.egg-info on the path '
                    '(run `python setup.py egg_info` in the repository and '
                    'set PYTHONPATH to it)')
    work_dir = toy_dir / 'work_mim'
    options = [
        o.replace('max_iters=2', 'max_iters=1').replace(
            'val_interval=2',
            'val_interval=100').replace('checkpoint.interval=2',
                                        'checkpoint.interval=1')
        for o in FAST_OPTIONS
    ]
    mim = [sys.executable, '-m', 'mim']
    proc = _run(
        mim + [
            'train', 'mmdr1',
            str(TOY_CONFIG), '--work-dir',
            str(work_dir), '--cfg-options', *options
        ], toy_dir)
    assert 'Training finished successfully' in proc.stdout
    ckpt = work_dir / 'iter_1.pth'
    assert ckpt.is_file()
    proc = _run(
        mim + [
            'test', 'mmdr1',
            str(TOY_CONFIG), '--checkpoint',
            str(ckpt), '--work-dir',
            str(toy_dir / 'work_mim_test'), '--cfg-options', *options
        ], toy_dir)
    assert 'coco_panoptic/PQ' in proc.stdout


@pytest.mark.parametrize('config,metric', [
    ('blendmask/blendmask_r18_toy.py', 'coco/segm_mAP'),
    ('blendmask/panoptic_blendmask_r18_toy.py', 'coco_panoptic/PQ'),
])
def test_blendmask_toy_configs(toy_dir: Path, config: str,
                               metric: str) -> None:
    """The toy BlendMask configs train, evaluate and test end to end."""
    cfg = REPO / 'configs' / config
    work_dir = toy_dir / f'work_{cfg.stem}'
    # After 2 iterations no score passes 0.05, and CocoMetric reports
    # nothing for empty results: keep every detection.
    options = FAST_OPTIONS + ['model.test_cfg.score_thr=0.0']
    proc = _run(
        _tool('train.py', str(cfg), '--work-dir', str(work_dir),
              '--cfg-options', *options), toy_dir)
    assert metric in proc.stdout
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    proc = _run(
        _tool('test.py', str(cfg), str(ckpt), '--work-dir',
              str(toy_dir / f'work_{cfg.stem}_test'), '--cfg-options',
              *options), toy_dir)
    assert metric in proc.stdout
