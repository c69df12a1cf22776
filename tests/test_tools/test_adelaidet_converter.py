# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of ``tools/model_converters/adelaidet_blendmask.py``."""
import importlib.util
import os.path as osp
import pickle
from collections import OrderedDict
from types import ModuleType
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'model_converters',
                'adelaidet_blendmask.py')

BN = ('weight', 'bias', 'running_mean', 'running_var')
SYNC_BN = BN + ('num_batches_tracked', )


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('adelaidet_blendmask', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resnet50() -> List[Tuple[str, str, tuple]]:
    """(d2 key, mmdr1 key, shape) for a detectron2 R-50 (tiny widths)."""
    d2, mm = 'backbone.bottom_up.', 'backbone.'
    rows = [(d2 + 'stem.conv1.weight', mm + 'conv1.weight', (4, 3, 7, 7))]
    rows += [(f'{d2}stem.conv1.norm.{p}', f'{mm}bn1.{p}', (4, )) for p in BN]
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
        for b in range(blocks):
            src = f'{d2}res{stage}.{b}.'
            dst = f'{mm}layer{stage - 1}.{b}.'
            for n in (1, 2, 3):
                rows.append((f'{src}conv{n}.weight', f'{dst}conv{n}.weight',
                             (4, 4, 3, 3)))
                rows += [(f'{src}conv{n}.norm.{p}', f'{dst}bn{n}.{p}', (4, ))
                         for p in BN]
            if b == 0:
                rows.append((f'{src}shortcut.weight',
                             f'{dst}downsample.0.weight', (4, 4, 1, 1)))
                rows += [(f'{src}shortcut.norm.{p}', f'{dst}downsample.1.{p}',
                          (4, )) for p in BN]
    return rows


def _conv(src: str,
          dst: str,
          shape: tuple,
          bias: bool = True) -> List[Tuple[str, str, tuple]]:
    rows = [(f'{src}.weight', f'{dst}.weight', shape)]
    if bias:
        rows.append((f'{src}.bias', f'{dst}.bias', shape[:1]))
    return rows


def _norm(src: str, dst: str, params: tuple) -> List[Tuple[str, str, tuple]]:
    return [(f'{src}.{p}', f'{dst}.{p}', (4, )) for p in params]


def _heads(num_tower_convs: int = 3) -> List[Tuple[str, str, tuple]]:
    """FPN, FCOS head, top layer and basis module keys."""
    rows = []
    for i, lvl in enumerate((3, 4, 5)):
        rows += _conv(f'backbone.fpn_lateral{lvl}',
                      f'neck.lateral_convs.{i}.conv', (8, 4, 1, 1))
        rows += _conv(f'backbone.fpn_output{lvl}', f'neck.fpn_convs.{i}.conv',
                      (8, 8, 3, 3))
    rows += _conv('backbone.top_block.p6', 'neck.fpn_convs.3.conv',
                  (8, 8, 3, 3))
    rows += _conv('backbone.top_block.p7', 'neck.fpn_convs.4.conv',
                  (8, 8, 3, 3))
    fcos = 'proposal_generator.fcos_head.'
    for tower, convs in (('cls_tower', 'cls_convs'), ('bbox_tower',
                                                      'reg_convs')):
        for i in range(4):
            rows += _conv(f'{fcos}{tower}.{3 * i}',
                          f'bbox_head.{convs}.{i}.conv', (8, 8, 3, 3))
            rows += _norm(f'{fcos}{tower}.{3 * i + 1}',
                          f'bbox_head.{convs}.{i}.gn', ('weight', 'bias'))
    for src, dst, out in (('cls_logits', 'conv_cls', 80), ('bbox_pred',
                                                           'conv_reg', 4),
                          ('ctrness', 'conv_centerness', 1)):
        rows += _conv(fcos + src, 'bbox_head.' + dst, (out, 8, 3, 3))
    rows += _conv('top_layer', 'bbox_head.top_layer', (784, 8, 3, 3))
    basis = 'mask_head.basis.'
    for i in range(3):
        rows += _conv(
            f'basis_module.refine.{i}.0',
            f'{basis}refine.{i}.0', (4, 8, 3, 3),
            bias=False)
        rows += _norm(f'basis_module.refine.{i}.1', f'{basis}refine.{i}.1',
                      SYNC_BN)
    blocks = list(range(num_tower_convs)) + [num_tower_convs + 1]
    for i in blocks:
        rows += _conv(
            f'basis_module.tower.{i}.0',
            f'{basis}tower.{i}.0', (4, 4, 3, 3),
            bias=False)
        rows += _norm(f'basis_module.tower.{i}.1', f'{basis}tower.{i}.1',
                      SYNC_BN)
    last = num_tower_convs + 2
    rows += _conv(f'basis_module.tower.{last}', f'{basis}tower.{last}',
                  (4, 4, 1, 1))
    for src, dst in (('0', '0'), ('3', '3')):
        rows += _conv(
            f'basis_module.seg_head.{src}',
            f'{basis}seg_head.{dst}', (4, 8, 3, 3),
            bias=False)
    for src, dst in (('1', '1'), ('4', '4')):
        rows += _norm(f'basis_module.seg_head.{src}', f'{basis}seg_head.{dst}',
                      SYNC_BN)
    rows += _conv('basis_module.seg_head.6', f'{basis}seg_head.6',
                  (81, 4, 1, 1))
    return rows


def _state_dict(
    rows: List[Tuple[str, str, tuple]]
) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, str]]:
    gen = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for src, _, shape in rows:
        if src.endswith('num_batches_tracked'):
            state[src] = torch.tensor(7)
        else:
            state[src] = torch.randn(shape, generator=gen)
    return state, {src: dst for src, dst, _ in rows}


def test_every_key_converts(tool: ModuleType) -> None:
    rows = _resnet50() + _heads()
    state, expected = _state_dict(rows)
    state['pixel_mean'] = torch.zeros(3, 1, 1)
    state['pixel_std'] = torch.ones(3, 1, 1)
    out = tool.convert_state_dict(state, expected_keys=expected.values())
    assert list(out) == list(expected.values())
    assert len(set(out)) == len(rows)
    for src, dst in expected.items():
        assert tool.convert_key(src) == dst
        assert out[dst] is state[src]  # passed through unchanged
    assert tool.convert_key('pixel_mean') is None


def test_specific_names(tool: ModuleType) -> None:
    fcos = 'proposal_generator.fcos_head.'
    cases = {
        fcos + 'centerness.bias': 'bbox_head.conv_centerness.bias',
        fcos + 'share_tower.3.weight': 'bbox_head.share_convs.1.conv.weight',
        fcos + 'scales.2.scale': 'bbox_head.scales.2.scale',
        'proposal_generator.top_layer.weight': 'bbox_head.top_layer.weight',
        'backbone.bottom_up.res3.0.conv2_offset.weight':
        'backbone.layer2.0.conv2.conv_offset.weight',
        'basis_module.tower.4.weight': 'mask_head.basis.tower.4.weight',
        'panoptic_module.p2.0.weight':
        'semantic_head.conv_upsample_layers.0.conv.0.conv.weight',
        'panoptic_module.p5.4.norm.bias':
        'semantic_head.conv_upsample_layers.3.conv.2.gn.bias',
        'panoptic_module.predictor.weight': 'semantic_head.conv_logits.weight',
    }
    for src, dst in cases.items():
        assert tool.convert_key(src) == dst
    assert (tool.convert_key('backbone.fpn_lateral3.weight',
                             2) == 'neck.lateral_convs.1.conv.weight')
    assert (tool.convert_key('backbone.top_block.p7.bias',
                             2) == 'neck.fpn_convs.5.conv.bias')


def test_panoptic_fpn_levels_shift(tool: ModuleType) -> None:
    state = OrderedDict((f'backbone.fpn_{kind}{lvl}.weight', torch.zeros(1))
                        for kind in ('lateral', 'output')
                        for lvl in (2, 3, 4, 5))
    state['backbone.top_block.p6.weight'] = torch.zeros(1)
    out = tool.convert_state_dict(state)
    assert 'neck.lateral_convs.0.conv.weight' in out
    assert 'neck.fpn_convs.3.conv.weight' in out  # p5
    assert 'neck.fpn_convs.4.conv.weight' in out  # p6


@pytest.mark.parametrize(
    'key',
    [
        'proposal_generator.fcos_head.cls_tower.2.weight',  # a ReLU index
        'basis_module.seg_head.2.weight',
        'backbone.bottom_up.res6.0.conv1.weight',
        'roi_heads.box_predictor.cls_score.weight',
    ])
def test_unknown_keys_raise(tool: ModuleType, key: str) -> None:
    with pytest.raises(KeyError, match='unknown'):
        tool.convert_key(key)
    state, _ = _state_dict(_heads())
    state[key] = torch.zeros(1)
    state['another.bad.key'] = torch.zeros(1)
    with pytest.raises(KeyError) as info:
        tool.convert_state_dict(state)
    assert key in str(info.value) and 'another.bad.key' in str(info.value)
    with pytest.warns(UserWarning, match='another.bad.key'):
        out = tool.convert_state_dict(state, strict=False)
    assert len(out) == len(state) - 2


def test_missing_and_unexpected_keys_raise(tool: ModuleType) -> None:
    rows = _heads()
    state, expected = _state_dict(rows)
    targets = set(expected.values())
    del state['top_layer.bias']
    optional = {'neck.bn.num_batches_tracked', 'bbox_head.scales.0.scale'}
    with pytest.raises(KeyError) as info:
        tool.convert_state_dict(
            state, expected_keys=targets | optional | {'extra.weight'})
    message = str(info.value)
    assert 'missing key: bbox_head.top_layer.bias' in message
    assert 'missing key: extra.weight' in message
    assert 'num_batches_tracked' not in message and 'scales' not in message
    with pytest.raises(KeyError, match='unexpected key: bbox_head.conv_cls'):
        tool.convert_state_dict(
            state, expected_keys=targets - {'bbox_head.conv_cls.weight'})


def test_duplicate_targets_raise(tool: ModuleType) -> None:
    fcos = 'proposal_generator.fcos_head.'
    state = {
        fcos + 'ctrness.weight': torch.zeros(1),
        fcos + 'centerness.weight': torch.zeros(1)
    }
    with pytest.raises(ValueError, match='both map to'):
        tool.convert_state_dict(state)


def test_pkl_numpy_wrapper(tool: ModuleType) -> None:
    state, expected = _state_dict(_heads(num_tower_convs=2))
    wrapped = {
        'model': {
            k: v.numpy()
            for k, v in state.items()
        },
        '__author__': 'AdelaiDet',
        'matching_heuristics': True
    }
    out = tool.convert_state_dict(wrapped, expected_keys=expected.values())
    for src, dst in expected.items():
        assert isinstance(out[dst], torch.Tensor)
        assert torch.equal(out[dst], state[src])
    assert 'mask_head.basis.tower.4.weight' in out  # NUM_CONVS=2
    with pytest.raises(TypeError, match='top_layer.weight'):
        tool.convert_state_dict({'top_layer.weight': [1.0]})


@pytest.mark.parametrize('suffix', ['.pkl', '.pth'])
def test_cli_round_trip(tool: ModuleType, tmp_path, suffix: str) -> None:
    state, expected = _state_dict(_resnet50()[:20] + _heads())
    src = tmp_path / f'blendmask{suffix}'
    if suffix == '.pkl':
        with open(src, 'wb') as f:
            pickle.dump(
                {
                    'model': {
                        k: v.numpy()
                        for k, v in state.items()
                    },
                    '__author__': 'AdelaiDet'
                }, f)
    else:
        torch.save({'model': state}, src)
    dst = tmp_path / 'out.pth'
    tool.main([str(src), str(dst)])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['source'] == src.name
    assert saved['meta'].get('__author__') == ('AdelaiDet'
                                               if suffix == '.pkl' else None)
    assert list(saved['state_dict']) == list(expected.values())
    for src_key, dst_key in expected.items():
        assert torch.equal(saved['state_dict'][dst_key], state[src_key])
    assert isinstance(next(iter(saved['state_dict'].values())), torch.Tensor)
    np.testing.assert_array_equal(
        saved['state_dict']['bbox_head.top_layer.weight'].numpy(),
        state['top_layer.weight'].numpy())


@pytest.mark.parametrize('num_convs', [3, 2])
def test_basis_keys_match_protonet_basis(tool: ModuleType,
                                         num_convs: int) -> None:
    """Converted basis keys are exactly mmdr1's ProtoNetBasis parameters."""
    from mmdr1.models.seg_heads import ProtoNetBasis
    model = ProtoNetBasis(num_convs=num_convs)
    expected = {f'mask_head.basis.{k}' for k in model.state_dict()}
    src = [
        src for src, _, _ in _heads(num_convs)
        if src.startswith('basis_module.')
    ]
    converted = {tool.convert_key(k) for k in src}
    assert converted == expected
