# Copyright (c) mmdr1 contributors. All rights reserved.
"""Smoke test of ``tools/analysis_tools/benchmark_basis.py``."""
import importlib.util
import math
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_basis.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_basis', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_run(capsys):
    tool = load_tool()
    assert tool.level_sizes(100, 130, (8, 128)) == [(13, 17), (1, 2)]
    results = tool.main([
        '--input-size', '68', '100', '--widths', '8', '--fpn-channels', '16',
        '--repeat', '1', '--warmup', '0'
    ])
    assert set(results) == {'protonet (BlendMask)', 'dr1basis C=8'}
    proto, dr1 = results['protonet (BlendMask)'], results['dr1basis C=8']
    assert proto['ratio'] == 1.0 and dr1['ms'] > 0
    # DR1Basis is the smaller module (spec section 3)
    assert dr1['params_m'] < proto['params_m']
    assert not math.isnan(dr1['gflops']) and dr1['gflops'] < proto['gflops']
    assert 'dr1basis C=8' in capsys.readouterr().out
