# Copyright (c) mmdr1 contributors. All rights reserved.
"""Smoke test of ``tools/analysis_tools/benchmark_blender.py``."""
import importlib.util
import os.path as osp

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_blender.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_blender', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rois_inside_image():
    tool = load_tool()
    rois = tool.random_rois(50, 64, 96, torch.Generator().manual_seed(0))
    assert rois.shape == (50, 5) and (rois[:, 0] == 0).all()
    assert (rois[:, 1] >= 0).all() and (rois[:, 3] <= 96 + 1e-4).all()
    assert (rois[:, 2] >= 0).all() and (rois[:, 4] <= 64 + 1e-4).all()
    assert (rois[:, 3] - rois[:, 1] >= 16 - 1e-4).all()


def test_small_run_prints_both_branches(capsys):
    tool = load_tool()
    results = tool.main([
        '--num-instances', '5', '--input-size', '64', '96', '--repeat', '2',
        '--warmup', '1'
    ])
    assert set(results) == {
        'blender/forward', 'mask_rcnn/forward', 'blender/forward+backward',
        'mask_rcnn/forward+backward'
    }
    assert all(v > 0 for v in results.values())
    out = capsys.readouterr().out
    assert '5 instances, input 64x96' in out and 'ratio' in out
    only = tool.main([
        '--num-instances', '3', '--input-size', '32', '32', '--repeat', '1',
        '--warmup', '0', '--no-mask-rcnn'
    ])
    assert set(only) == {'blender/forward', 'blender/forward+backward'}
