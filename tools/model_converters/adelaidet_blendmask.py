# Copyright (c) mmdr1 contributors. All rights reserved.
"""Convert an AdelaiDet BlendMask checkpoint into an mmdr1 checkpoint.

Usage::

    python tools/model_converters/adelaidet_blendmask.py SRC DST \\
        [--expected-config CFG]

``SRC`` is a released AdelaiDet checkpoint, either detectron2's ``.pkl``
(numpy arrays) or a ``.pth`` (torch tensors), possibly wrapped as
``{'model': state_dict, '__author__': ...}``. ``DST`` receives
``{'state_dict': ..., 'meta': ...}``. Tensors are copied unchanged; only the
key names change (spec ``blendmask.md`` section 13).

Target names (those of mmdr1's BlendMask / PanopticBlendMask models;
``tests/test_configs/test_blendmask_coco_configs.py`` checks them against the
COCO configs' models). ``L`` is the FPN
level, ``S`` the lowest FPN input level (3, or 2 in panoptic checkpoints,
detected from ``backbone.fpn_lateral2``), ``i``/``j`` layer indices, ``X``
a parameter or buffer name. Prefixes: ``R = backbone.bottom_up.res{s}.{b}``,
``T = backbone.layer{s-1}.{b}``, ``F = proposal_generator.fcos_head``,
``B = basis_module``, ``P = panoptic_module``,
``U = semantic_head.conv_upsample_layers``:

======================================  ====================================
detectron2 / AdelaiDet key              mmdr1 key
======================================  ====================================
backbone.bottom_up.stem.conv1.weight    backbone.conv1.weight
backbone.bottom_up.stem.conv1.norm.X    backbone.bn1.X
R.conv{n}.weight                        T.conv{n}.weight
R.conv{n}.norm.X                        T.bn{n}.X
R.conv2_offset.X (DCNv2)                T.conv2.conv_offset.X
R.shortcut.weight                       T.downsample.0.weight
R.shortcut.norm.X                       T.downsample.1.X
backbone.fpn_lateral{L}.X               neck.lateral_convs.{L-S}.conv.X
backbone.fpn_output{L}.X                neck.fpn_convs.{L-S}.conv.X
backbone.top_block.p{6,7}.X             neck.fpn_convs.{6,7 - S}.conv.X
F.cls_tower.{3i}.X / .{3i+1}.X          bbox_head.cls_convs.{i}.conv/gn.X
F.bbox_tower.{3i}.X / .{3i+1}.X         bbox_head.reg_convs.{i}.conv/gn.X
F.share_tower.{3i}.X / .{3i+1}.X        bbox_head.share_convs.{i}.conv/gn.X
F.cls_logits.X                          bbox_head.conv_cls.X
F.bbox_pred.X                           bbox_head.conv_reg.X
F.ctrness.X (legacy: F.centerness.X)    bbox_head.conv_centerness.X
F.scales.{i}.scale                      bbox_head.scales.{i}.scale
top_layer.X                             bbox_head.top_layer.X
proposal_generator.top_layer.X          bbox_head.top_layer.X
B.refine.{i}.{0,1}.X                    mask_head.basis.refine.{i}.{0,1}.X
B.tower.{i}.{0,1}.X (conv blocks)       mask_head.basis.tower.{i}.{0,1}.X
B.tower.{i}.X (last 1x1 conv)           mask_head.basis.tower.{i}.X
B.seg_head.{0,1,3,4,6}.X                mask_head.basis.seg_head.{same}.X
P.p{L}.{2j}.weight                      U.{L-2}.conv.{j}.conv.weight
P.p{L}.{2j}.norm.X                      U.{L-2}.conv.{j}.gn.X
P.predictor.X                           semantic_head.conv_logits.X
pixel_mean, pixel_std                   (dropped: data preprocessor config)
======================================  ====================================

Notes on the model:

* ``mask_head.basis`` is :class:`mmdr1.models.seg_heads.ProtoNetBasis`,
  which keeps the reference's ``nn.Sequential`` indices (conv blocks
  ``Sequential(conv, norm, ReLU)``, the parameter-free upsample at tower
  index ``NUM_CONVS``, the 1x1 conv last; ``seg_head`` indices 0, 1, 3, 4,
  6), so only the ``basis_module.`` prefix changes.
* ``semantic_head.conv_logits`` keeps detectron2's channel order ("things"
  at index 0), unlike mmdet's ``PanopticFPNHead`` (things last).
* FCOS towers must use GN (``NORM='GN'``); per-level BN towers and
  norm-less towers are not supported and raise as unknown keys.
* detectron2's FrozenBN has no ``num_batches_tracked`` and BlendMask has no
  FCOS ``scales`` (``USE_SCALE=False``); such target keys are never reported
  as missing.
"""
import argparse
import os.path as osp
import pickle
import re
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Match, Optional, Tuple

import numpy as np
import torch

#: detectron2 keys that are deliberately dropped (no mmdet counterpart).
DROPPED_KEYS = frozenset({'pixel_mean', 'pixel_std'})

#: Target keys that may be absent from a converted checkpoint.
OPTIONAL_TARGET_KEYS = (re.compile(r'.*\.num_batches_tracked'),
                        re.compile(r'bbox_head\.scales\.\d+\.scale'))


class ConversionError(KeyError):
    """Unknown, missing or unexpected keys (a ``KeyError``, readable)."""

    def __str__(self) -> str:
        return str(self.args[0])


_FCOS = r'proposal_generator\.fcos_head\.'
_TOWERS = {'cls': 'cls_convs', 'bbox': 'reg_convs', 'share': 'share_convs'}
_FCOS_PREDICTORS = {
    'cls_logits': 'conv_cls',
    'bbox_pred': 'conv_reg',
    'ctrness': 'conv_centerness',
    'centerness': 'conv_centerness',
}


def _fcos_tower(m: Match) -> Optional[str]:
    """Map ``{tower}.{3i}`` to ``.conv`` and ``{tower}.{3i+1}`` to ``.gn``."""
    idx, kind = divmod(int(m['idx']), 3)
    if kind == 2:  # ReLU: it has no parameters
        return None
    layer = 'conv' if kind == 0 else 'gn'
    return f'bbox_head.{_TOWERS[m["tower"]]}.{idx}.{layer}.{m["rest"]}'


def _panoptic_level(m: Match) -> Optional[str]:
    """Map ``panoptic_module.p{L}.{2j}`` (conv, upsample pairs)."""
    idx, odd = divmod(int(m['idx']), 2)
    if odd:  # the upsampling layer has no parameters
        return None
    layer = 'gn' if m['norm'] else 'conv'
    return (f'semantic_head.conv_upsample_layers.{int(m["lvl"]) - 2}.'
            f'conv.{idx}.{layer}.{m["param"]}')


def _rules(start: int) -> List[Tuple[str, Callable[[Match], Optional[str]]]]:
    """Build the ordered ``(regex, target builder)`` table.

    Args:
        start (int): The lowest FPN input level (3, or 2 for panoptic).

    Returns:
        list[tuple[str, Callable]]: Patterns matched with ``re.fullmatch``;
        a builder returning None means "no match".
    """
    res = r'backbone\.bottom_up\.res(?P<s>[2-5])\.(?P<b>\d+)\.'

    def layer(m: Match) -> str:
        return f'backbone.layer{int(m["s"]) - 1}.{m["b"]}.'

    return [
        # ResNet (mmdet ResNet, caffe style)
        (r'backbone\.bottom_up\.stem\.conv1\.weight',
         lambda m: 'backbone.conv1.weight'),
        (r'backbone\.bottom_up\.stem\.conv1\.norm\.(?P<p>\w+)',
         lambda m: f'backbone.bn1.{m["p"]}'),
        (res + r'conv(?P<n>[123])\.weight',
         lambda m: f'{layer(m)}conv{m["n"]}.weight'),
        (res + r'conv(?P<n>[123])\.norm\.(?P<p>\w+)',
         lambda m: f'{layer(m)}bn{m["n"]}.{m["p"]}'),
        (res + r'conv2_offset\.(?P<p>weight|bias)',
         lambda m: f'{layer(m)}conv2.conv_offset.{m["p"]}'),
        (res + r'shortcut\.weight',
         lambda m: f'{layer(m)}downsample.0.weight'),
        (res + r'shortcut\.norm\.(?P<p>\w+)',
         lambda m: f'{layer(m)}downsample.1.{m["p"]}'),
        # FPN (mmdet FPN, add_extra_convs='on_output')
        (r'backbone\.fpn_lateral(?P<l>[2-5])\.(?P<p>weight|bias)',
         lambda m: f'neck.lateral_convs.{int(m["l"]) - start}.conv.{m["p"]}'),
        (r'backbone\.fpn_output(?P<l>[2-5])\.(?P<p>weight|bias)',
         lambda m: f'neck.fpn_convs.{int(m["l"]) - start}.conv.{m["p"]}'),
        (r'backbone\.top_block\.p(?P<l>[67])\.(?P<p>weight|bias)',
         lambda m: f'neck.fpn_convs.{int(m["l"]) - start}.conv.{m["p"]}'),
        # FCOS head (mmdet FCOSHead names) and the attention top layer
        (_FCOS + r'(?P<tower>cls|bbox|share)_tower\.(?P<idx>\d+)\.'
         r'(?P<rest>weight|bias)', _fcos_tower),
        (_FCOS + r'(?P<name>cls_logits|bbox_pred|ctrness|centerness)\.'
         r'(?P<p>weight|bias)',
         lambda m: f'bbox_head.{_FCOS_PREDICTORS[m["name"]]}.{m["p"]}'),
        (_FCOS + r'scales\.(?P<i>\d+)\.scale',
         lambda m: f'bbox_head.scales.{m["i"]}.scale'),
        (r'(proposal_generator\.)?top_layer\.(?P<p>weight|bias)',
         lambda m: f'bbox_head.top_layer.{m["p"]}'),
        # Basis module (ProtoNet) with mmcv ConvModule names
        # ProtoNetBasis keeps the reference's nn.Sequential layout (spec
        # 6.2), so basis keys only change their prefix.
        (r'basis_module\.(?P<rest>(?:refine|tower)\.\d+\.[01]\.\w+'
         r'|tower\.\d+\.(?:weight|bias)|seg_head\.[01346]\.\w+)',
         lambda m: f'mask_head.basis.{m["rest"]}'),
        # Panoptic semantic branch (detectron2 SemSegFPNHead)
        (r'panoptic_module\.p(?P<lvl>[2-5])\.(?P<idx>\d+)\.(?P<norm>norm\.)?'
         r'(?P<param>\w+)', _panoptic_level),
        (r'panoptic_module\.predictor\.(?P<p>weight|bias)',
         lambda m: f'semantic_head.conv_logits.{m["p"]}'),
    ]


_RULES = {
    start: [(re.compile(p), fn) for p, fn in _rules(start)]
    for start in (2, 3)
}


def convert_key(d2_key: str, fpn_start_level: int = 3) -> Optional[str]:
    """Convert one detectron2 / AdelaiDet key to its mmdr1 name.

    Args:
        d2_key (str): The key in the AdelaiDet state dict.
        fpn_start_level (int): The lowest FPN input level: 3, or 2 for
            panoptic checkpoints (they have ``backbone.fpn_lateral2``).

    Returns:
        str | None: The mmdr1 key, or None for a key in
        :data:`DROPPED_KEYS`.

    Raises:
        KeyError: If no rule knows the key.
    """
    if d2_key in DROPPED_KEYS:
        return None
    if fpn_start_level not in _RULES:
        raise ValueError(f'fpn_start_level must be 2 or 3, '
                         f'got {fpn_start_level}')
    for pattern, build in _RULES[fpn_start_level]:
        match = pattern.fullmatch(d2_key)
        if match is not None:
            target = build(match)
            if target is not None:
                return target
    raise KeyError(f'unknown AdelaiDet BlendMask checkpoint key: {d2_key!r}')


def _unwrap(checkpoint: Dict[str, Any]) -> Tuple[Dict[str, Any], dict]:
    """Strip detectron2's ``{'model': ..., '__author__': ...}`` wrapper.

    Args:
        checkpoint (dict): A raw checkpoint or a bare state dict.

    Returns:
        tuple[dict, dict]: The state dict and wrapper metadata.
    """
    for name in ('model', 'state_dict'):
        if isinstance(checkpoint.get(name), dict):
            meta = {k: v for k, v in checkpoint.items() if k == '__author__'}
            return checkpoint[name], meta
    return checkpoint, {}


def _to_tensor(key: str, value: Any) -> torch.Tensor:
    """Return ``value`` as a tensor (numpy arrays come from ``.pkl``)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())  # writable, C-contiguous
    raise TypeError(f'value of {key!r} is a {type(value).__name__}, '
                    'expected a torch.Tensor or numpy.ndarray')


def _is_optional(key: str) -> bool:
    return any(p.fullmatch(key) for p in OPTIONAL_TARGET_KEYS)


def _report(problems: List[str], strict: bool) -> None:
    """Raise (strict) or warn about collected conversion problems."""
    if not problems:
        return
    message = 'AdelaiDet BlendMask conversion failed:\n' + '\n'.join(problems)
    if strict:
        raise ConversionError(message)
    warnings.warn(message)


def convert_state_dict(
    d2_state_dict: Dict[str, Any],
    strict: bool = True,
    expected_keys: Optional[Iterable[str]] = None
) -> 'OrderedDict[str, torch.Tensor]':
    """Rename every key of an AdelaiDet BlendMask state dict.

    Args:
        d2_state_dict (dict): The state dict, or a detectron2 checkpoint
            ``{'model': state_dict, ...}``; values may be numpy arrays.
        strict (bool): Raise on unknown, missing or unexpected keys. If
            False, unknown keys are dropped and every problem is a warning.
        expected_keys (Iterable[str], optional): The target model's
            state-dict keys. When given, expected keys that no source key
            produces are "missing" (except :data:`OPTIONAL_TARGET_KEYS`) and
            produced keys that are not expected are "unexpected".

    Returns:
        OrderedDict[str, torch.Tensor]: The state dict with mmdr1 names, in
        source order, tensors unchanged.

    Raises:
        ConversionError: A ``KeyError`` raised in strict mode, listing
            every unknown, missing and unexpected key.
        ValueError: If two source keys map to the same target key.
    """
    state_dict, _ = _unwrap(d2_state_dict)
    start = 2 if any(
        k.startswith('backbone.fpn_lateral2.') for k in state_dict) else 3
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    sources: Dict[str, str] = {}
    problems = []
    for key, value in state_dict.items():
        try:
            target = convert_key(key, start)
        except KeyError:
            problems.append(f'  unknown key: {key}')
            continue
        if target is None:
            continue
        if target in sources:
            raise ValueError(f'{sources[target]!r} and {key!r} both map to '
                             f'{target!r}')
        sources[target] = key
        converted[target] = _to_tensor(key, value)
    if expected_keys is not None:
        expected = set(expected_keys)
        problems += [
            f'  missing key: {k}' for k in sorted(expected - set(converted))
            if not _is_optional(k)
        ]
        problems += [
            f'  unexpected key: {k} (from {sources[k]})' for k in converted
            if k not in expected
        ]
    _report(problems, strict)
    return converted


def load_checkpoint_file(path: str) -> Tuple[Dict[str, Any], dict]:
    """Load a ``.pkl`` (pickle) or ``.pth`` (torch) AdelaiDet checkpoint.

    Args:
        path (str): The user-given, trusted checkpoint file.

    Returns:
        tuple[dict, dict]: The state dict and wrapper metadata.
    """
    if path.endswith('.pkl'):
        with open(path, 'rb') as f:
            checkpoint = pickle.load(f, encoding='latin1')
    else:
        # Full unpickling is only done for this explicitly given file.
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path} does not hold a dict checkpoint')
    return _unwrap(checkpoint)


def expected_keys_from_config(config: str) -> List[str]:
    """Build the model of an mmdr1 config and return its state-dict keys.

    Args:
        config (str): Path of the mmdr1 config file.

    Returns:
        list[str]: The model's state-dict keys.
    """
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdr1  # noqa: F401  (registers the mmdr1 modules)

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return list(MODELS.build(cfg.model).state_dict().keys())


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Convert an AdelaiDet BlendMask checkpoint to mmdr1.')
    parser.add_argument('src', help='AdelaiDet checkpoint (.pkl or .pth)')
    parser.add_argument('dst', help='output mmdr1 checkpoint (.pth)')
    parser.add_argument(
        '--expected-config',
        help='mmdr1 config whose model keys the result must match')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Convert ``SRC`` into ``DST`` (see the module docstring).

    Args:
        argv (list[str], optional): Arguments; ``sys.argv`` if None.
    """
    args = parse_args(argv)
    state_dict, meta = load_checkpoint_file(args.src)
    expected = None
    if args.expected_config:
        expected = expected_keys_from_config(args.expected_config)
    converted = convert_state_dict(state_dict, expected_keys=expected)
    meta = dict(
        meta, source=osp.basename(args.src), converter='adelaidet_blendmask')
    torch.save({'state_dict': converted, 'meta': meta}, args.dst)
    print(f'Converted {len(converted)} tensors from {args.src} '
          f'into {args.dst}')


if __name__ == '__main__':
    main()
