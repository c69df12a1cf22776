# Copyright (c) mmdr1 contributors. All rights reserved.
"""Smoke test of ``tools/analysis_tools/benchmark_fused_blend.py``."""
import importlib.util
import os.path as osp

import pytest
import torch

from mmdr1.ops import blend_supported

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools',
                'benchmark_fused_blend.py')

requires_ext = pytest.mark.skipif(
    not blend_supported(torch.zeros(1), torch.zeros(1), torch.zeros(1)),
    reason='mmdr1._ext is not built (python setup.py build_ext --inplace)')


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_fused_blend',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rois_inside_image():
    tool = load_tool()
    rois = tool.random_rois(50, 2, 64, 96, torch.Generator().manual_seed(0))
    assert rois.shape == (50, 5)
    assert set(rois[:, 0].tolist()) <= {0., 1.}
    assert (rois[:, 1] >= 0).all() and (rois[:, 3] <= 96 + 1e-4).all()
    assert (rois[:, 2] >= 0).all() and (rois[:, 4] <= 64 + 1e-4).all()
    assert (rois[:, 3] - rois[:, 1] >= 16 - 1e-4).all()


def test_rss_meter_sees_allocations():
    tool = load_tool()
    meter = tool.RSSPeak()
    if not meter.available:
        pytest.skip('no /proc/self/clear_refs here')
    # 8 MiB written and freed within the call.
    peak = meter.measure(lambda: torch.ones(2 * 2**20).sum())
    assert 7.5 * 2**20 <= peak <= 10 * 2**20


@requires_ext
def test_small_run_prints_table(capsys, one_thread):
    tool = load_tool()
    results = tool.main([
        '--num-instances', '0', '3', '--basis-size', '12', '16',
        '--bottom-resolution', '8', '--attn-size', '4', '--channels', '6',
        '--rank', '2', '--repeat', '1', '--warmup', '0'
    ])
    for op in ('blend', 'factored'):
        for num in (0, 3):
            for mode in ('forward', 'forward+backward'):
                for impl in ('reference', 'fused'):
                    assert results[(op, num, mode, impl, 'ms')] > 0
    out = capsys.readouterr().out
    assert 'speedup' in out and 'mem ratio' in out
    assert 'factored' in out and 'forward+backward' in out
    only = tool.main([
        '--ops', 'blend', '--num-instances', '2', '--basis-size', '8', '8',
        '--bottom-resolution', '4', '--attn-size', '2', '--repeat', '1',
        '--warmup', '0', '--memory', 'none'
    ])
    assert {key[0] for key in only} == {'blend'}
    assert not any(key[-1] == 'MiB' for key in only)
