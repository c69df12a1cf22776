# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of ``tools/analysis_tools/compare_panoptic_toys.py``."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'compare_panoptic_toys.py'
CONFIGS = [
    REPO / 'configs' / 'dr1mask' / 'dr1mask_panoptic_r18_toy.py',
    REPO / 'configs' / 'blendmask' / 'panoptic_blendmask_r18_toy.py',
]
FAST = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False'
]


def load_tool():
    spec = importlib.util.spec_from_file_location('compare_toys', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_last_val_metrics(tmp_path):
    tool = load_tool()
    with pytest.raises(FileNotFoundError, match='no training log'):
        tool.last_val_metrics(str(tmp_path))
    log = tmp_path / '20260101_000000' / '20260101_000000.log'
    log.parent.mkdir()
    log.write_text('Iter(train) [2/2] loss: 1.0\n')
    with pytest.raises(ValueError, match='no panoptic validation'):
        tool.last_val_metrics(str(tmp_path))
    line = ('Iter(val) [2/2] ' +
            '  '.join(f'coco_panoptic/{k}: {v}'
                      for k, v in zip(tool.KEYS +
                                      ('SQ_th', 'SQ_st'), range(1, 10))))
    log.write_text(log.read_text() + line.replace(': 1 ', ': 0.5 ') + '\n' +
                   line + '\n')
    metrics = tool.last_val_metrics(str(tmp_path))
    assert metrics == {k: float(i + 1) for i, k in enumerate(tool.KEYS)}


@pytest.mark.slow
def test_two_configs_two_iterations(tmp_path, monkeypatch, capsys):
    from mmdr1.datasets import make_toy_panoptic
    make_toy_panoptic(
        str(tmp_path / 'data' / 'toy_panoptic'),
        num_train=4,
        num_val=2,
        img_size=64,
        seed=0)
    monkeypatch.chdir(tmp_path)
    tool = load_tool()
    args = [str(c) for c in CONFIGS] + [
        '--seeds', '3', '--threads', '2', '--work-dir', 'cmp', '--cfg-options',
        *FAST
    ]
    results = tool.main(args)
    assert set(results) == {str(c) for c in CONFIGS}
    for runs in results.values():
        assert len(runs) == 1 and 0.0 <= runs[0]['PQ'] <= 100.0
    for config in CONFIGS:
        run = tmp_path / 'cmp' / f'{config.stem}_seed3'
        assert (run / 'iter_2.pth').is_file()
        assert 'seed=3' in (run / 'train.out').read_text()
    out = capsys.readouterr().out
    assert 'dr1mask_panoptic_r18_toy' in out and 'mean' in out
    # the logs are read again without training
    again = tool.main(args + ['--skip-train'])
    assert again == results
