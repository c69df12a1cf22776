# Copyright (c) mmdr1 contributors. All rights reserved.
"""Convert a reference SpatialFlow checkpoint (mmdet 2.3) to mmdr1.

Usage::

    python tools/model_converters/spatialflow_to_mmdr1.py SRC DST \\
        [--expected-config CFG] [--other-index 36]

``SRC`` is a checkpoint of ``chensnathan/SpatialFlow`` (``{'state_dict':
..., 'meta': ..., 'optimizer': ...}`` or a bare state dict). ``DST``
receives ``{'state_dict': ..., 'meta': ...}``; the optimizer state is
dropped. Tensors are copied unchanged (dtype included; the fp16 DCN
checkpoint's halves are cast when loaded) except the rows of the stuff
classifier, which are re-ordered (see below). With ``--expected-config``,
the model of that mmdr1 config is built and the converted keys and shapes
must match its state dict exactly.

Names (spatialflow spec section 8). The module tables below
(:data:`TOP_LEVEL_RENAMES`, :data:`HEAD_RENAMES`,
:data:`THING_HEAD_RENAMES`, :data:`STUFF_HEAD_RENAMES`) are the whole
mapping; what follows a renamed module is kept (``.{i}.conv.weight``...):

========================================  ==================================
reference (mmdet 2.3)                      mmdr1
========================================  ==================================
backbone.X (mmdet ResNet, DCNv2 too)       backbone.X
neck.X (mmdet FPN)                         neck.X
bbox_head.cls_convs / reg_convs            bbox_head.cls_convs / reg_convs
bbox_head.stuff_convs                      bbox_head.stuff_convs
bbox_head.mask_convs                       bbox_head.thing_convs
bbox_head.cls_spatial_flow_convs           bbox_head.cls_flow_convs
bbox_head.stuff_spatial_flow_convs         bbox_head.stuff_flow_convs
bbox_head.mask_spatial_flow_convs          bbox_head.thing_flow_convs
bbox_head.stuff_mask_flow_convs            bbox_head.semantic_flow_convs
bbox_head.retina_cls / retina_reg          bbox_head.retina_cls / retina_reg
mask_head.{convs,upsample,conv_logits}     thing_head.mask_head.{same}
stuff_head.lateral_convs.{l}.{2k}.X        stuff_head.lateral_convs.{l}.{2k}.X
stuff_head.conv.X                          stuff_head.conv_logits.X (rows
                                           permuted)
========================================  ==================================

The mmdr1 names are those of :class:`SpatialFlowHead`
(``mmdr1/models/dense_heads/spatialflow_head.py``), of the detector's
``thing_head`` (:class:`SpatialFlowThingHead`, whose ``mask_head`` is
mmdet's :class:`FCNMaskHead` with the reference's parameter names) and of
:class:`SpatialFlowStuffHead`. ResNet, FPN and FCNMaskHead parameter names
are the same in mmdet 2.3 and 3.3; the RoI extractor has no parameters. In
the DCN variant the tower convs stay ``.{i}.conv.weight/bias`` (mmcv's
``ModulatedDeformConv2d`` in both) and the matching flow convs have 27
output channels in both.

Stuff classes: the reference's 54 stuff-head classes are its ``seg_ids``
sorted by COCO id, so 'things-other' (183) is index 36; mmdr1's
:class:`SpatialFlowStuffHead` (like mmdet's :class:`PanopticFPNHead`) keeps
the 53 stuff classes in the same (id-sorted) order and puts the
things/"other" channel LAST. The rows of ``stuff_head.conv.weight`` and
``.bias`` are therefore permuted: mmdr1 row ``k`` is reference row
``perm[k]`` with ``perm = [0..35, 37..53, 36]`` (``--other-index``).
"""
import argparse
import os.path as osp
import re
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

#: Reference top-level module -> mmdr1 ``SpatialFlow`` detector attribute.
TOP_LEVEL_RENAMES = {
    'backbone': 'backbone',
    'neck': 'neck',
    'bbox_head': 'bbox_head',
    'mask_head': 'thing_head.mask_head',
    'stuff_head': 'stuff_head',
}

#: Reference ``SpatialFlowHead`` sub-module -> mmdr1 ``SpatialFlowHead``
#: sub-module (the names of ``mmdr1/models/dense_heads/spatialflow_head.py``).
HEAD_RENAMES = {
    'cls_convs': 'cls_convs',
    'reg_convs': 'reg_convs',
    'stuff_convs': 'stuff_convs',
    'mask_convs': 'thing_convs',
    'cls_spatial_flow_convs': 'cls_flow_convs',
    'stuff_spatial_flow_convs': 'stuff_flow_convs',
    'mask_spatial_flow_convs': 'thing_flow_convs',
    'stuff_mask_flow_convs': 'semantic_flow_convs',
    'retina_cls': 'retina_cls',
    'retina_reg': 'retina_reg',
}

#: Reference ``FCNMaskHead`` sub-module -> mmdr1 (mmdet 3.3 FCNMaskHead).
THING_HEAD_RENAMES = {
    'convs': 'convs',
    'upsample': 'upsample',
    'conv_logits': 'conv_logits',
}

#: Reference ``StuffHead`` sub-module -> mmdr1 ``SpatialFlowStuffHead``.
STUFF_HEAD_RENAMES = {
    'lateral_convs': 'lateral_convs',
    'conv': 'conv_logits',
}

_SUB_RENAMES = {
    'bbox_head': HEAD_RENAMES,
    'mask_head': THING_HEAD_RENAMES,
    'stuff_head': STUFF_HEAD_RENAMES,
}

#: mmdr1 keys whose rows (dim 0) are re-ordered: the stuff classifier.
STUFF_LOGITS_KEYS = ('stuff_head.conv_logits.weight',
                     'stuff_head.conv_logits.bias')

#: Reference index of 'things-other' among the 54 sorted stuff ids.
REFERENCE_OTHER_INDEX = 36

#: Target keys that may be absent from a converted checkpoint.
OPTIONAL_TARGET_KEYS = (re.compile(r'.*\.num_batches_tracked'), )

_LATERAL = re.compile(r'lateral_convs\.\d+\.(?P<idx>\d+)\..+')


class ConversionError(KeyError):
    """Unknown, missing, unexpected or mis-shaped keys (a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


def convert_key(ref_key: str) -> str:
    """Convert one reference key to its mmdr1 name.

    Args:
        ref_key (str): A key of the reference state dict.

    Returns:
        str: The mmdr1 key.

    Raises:
        KeyError: If the tables do not know the key.
    """
    top, _, rest = ref_key.partition('.')
    if top not in TOP_LEVEL_RENAMES or not rest:
        raise KeyError(f'unknown SpatialFlow checkpoint key: {ref_key!r} '
                       f'(top-level module {top!r}; known: '
                       f'{sorted(TOP_LEVEL_RENAMES)})')
    renames = _SUB_RENAMES.get(top)
    if renames is not None:
        module, _, tail = rest.partition('.')
        if module not in renames or not tail:
            raise KeyError(f'unknown SpatialFlow checkpoint key: {ref_key!r} '
                           f'({top} sub-module {module!r}; known: '
                           f'{sorted(renames)})')
        if top == 'stuff_head' and module == 'lateral_convs':
            match = _LATERAL.fullmatch(rest)
            if match is None or int(match['idx']) % 2:
                # odd indices are the parameter-free nn.Upsample layers
                raise KeyError('unknown SpatialFlow checkpoint key: '
                               f'{ref_key!r} (stuff_head.lateral_convs.'
                               '{level}.{even index}.X expected)')
        rest = f'{renames[module]}.{tail}'
    return f'{TOP_LEVEL_RENAMES[top]}.{rest}'


def stuff_permutation(num_channels: int,
                      other_index: int = REFERENCE_OTHER_INDEX) -> List[int]:
    """Reference row of each mmdr1 stuff channel ("other" moved last).

    Args:
        num_channels (int): Stuff-head classes, "other" included (54).
        other_index (int): The reference's index of "other". Defaults to
            36.

    Returns:
        list[int]: ``perm`` with mmdr1 row ``k`` = reference row
        ``perm[k]``.
    """
    if not 0 <= other_index < num_channels:
        raise ValueError(f'other_index {other_index} out of range for '
                         f'{num_channels} stuff channels')
    return [i for i in range(num_channels) if i != other_index] + [other_index]


def _unwrap(checkpoint: Mapping[str, Any]) -> Tuple[Mapping[str, Any], dict]:
    """Split an mmdet checkpoint into its state dict and ``meta``."""
    if isinstance(checkpoint.get('state_dict'), Mapping):
        meta = checkpoint.get('meta')
        return checkpoint['state_dict'], dict(meta) if isinstance(
            meta, Mapping) else {}
    return checkpoint, {}


def _is_optional(key: str) -> bool:
    return any(p.fullmatch(key) for p in OPTIONAL_TARGET_KEYS)


def _shape(value: Any) -> Optional[Tuple[int, ...]]:
    shape = getattr(value, 'shape', None)
    return None if shape is None else tuple(shape)


def convert_state_dict(
    ref_state_dict: Mapping[str, Any],
    other_index: int = REFERENCE_OTHER_INDEX,
    strict: bool = True,
    expected: Optional[Mapping[str, Any]] = None
) -> 'OrderedDict[str, torch.Tensor]':
    """Rename every key of a reference state dict, permute the stuff rows.

    Args:
        ref_state_dict (Mapping): The reference state dict, or a checkpoint
            ``{'state_dict': ..., 'meta': ...}``.
        other_index (int): The reference's index of 'things-other' in the
            stuff classifier. Defaults to 36 (COCO).
        strict (bool): Raise on problems; if False, unknown keys are
            dropped and every problem is a warning. Defaults to True.
        expected (Mapping, optional): The target model's state dict (or any
            ``{key: tensor or shape}``). When given, expected keys that are
            not produced are "missing" (except ``num_batches_tracked``),
            produced keys that are not expected are "unexpected", and
            shapes must agree.

    Returns:
        OrderedDict[str, Tensor]: The mmdr1 state dict, in source order.

    Raises:
        ConversionError: In strict mode, listing every problem.
        ValueError: If two keys map to the same target.
    """
    state_dict, _ = _unwrap(ref_state_dict)
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    sources: Dict[str, str] = {}
    problems = []
    for key, value in state_dict.items():
        try:
            target = convert_key(key)
        except KeyError as err:
            problems.append(f'  {err.args[0]}')
            continue
        if target in sources:
            raise ValueError(f'{sources[target]!r} and {key!r} both map to '
                             f'{target!r}')
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'value of {key!r} is a {type(value).__name__}, '
                            'expected a torch.Tensor')
        if target in STUFF_LOGITS_KEYS:
            perm = stuff_permutation(value.shape[0], other_index)
            value = value[perm].clone()
        sources[target] = key
        converted[target] = value
    if expected is not None:
        problems += [
            f'  missing key: {k}' for k in expected
            if k not in converted and not _is_optional(k)
        ]
        for key, value in converted.items():
            if key not in expected:
                problems.append(
                    f'  unexpected key: {key} (from {sources[key]})')
                continue
            want = expected[key]
            want = _shape(want) if _shape(want) is not None else tuple(want)
            if tuple(value.shape) != want:
                problems.append(f'  shape mismatch: {key} (from '
                                f'{sources[key]}) {tuple(value.shape)} vs '
                                f'the model\'s {want}')
    if problems:
        message = 'SpatialFlow conversion failed:\n' + '\n'.join(problems)
        if strict:
            raise ConversionError(message)
        warnings.warn(message)
    return converted


def load_checkpoint_file(path: str) -> Tuple[Mapping[str, Any], dict]:
    """Load a reference ``.pth`` checkpoint.

    Args:
        path (str): The user-given, trusted checkpoint file.

    Returns:
        tuple[Mapping, dict]: The state dict and its ``meta``.
    """
    # mmdet 2.x checkpoints pickle their meta (config text, mmcv objects):
    # full unpickling is only done for this explicitly given file.
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'{path} does not hold a dict checkpoint')
    return _unwrap(checkpoint)


def expected_state_from_config(config: str) -> Dict[str, Tuple[int, ...]]:
    """Build the model of an mmdr1 config; return its keys and shapes.

    Args:
        config (str): Path of the mmdr1 config file.

    Returns:
        dict[str, tuple[int, ...]]: The model's state-dict shapes.
    """
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdr1  # noqa: F401  (registers the mmdr1 modules)

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Convert a reference SpatialFlow (mmdet 2.3) checkpoint '
        'to mmdr1.')
    parser.add_argument('src', help='reference checkpoint (.pth)')
    parser.add_argument('dst', help='output mmdr1 checkpoint (.pth)')
    parser.add_argument(
        '--expected-config',
        help='mmdr1 config whose model keys and shapes the result must match')
    parser.add_argument(
        '--other-index',
        type=int,
        default=REFERENCE_OTHER_INDEX,
        help='index of the things-other class in the reference stuff head '
        '(default: 36, COCO)')
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
        expected = expected_state_from_config(args.expected_config)
    converted = convert_state_dict(
        state_dict, other_index=args.other_index, expected=expected)
    meta = dict(
        epoch=meta.get('epoch'),
        iter=meta.get('iter'),
        source=osp.basename(args.src),
        converter='spatialflow_to_mmdr1')
    torch.save({'state_dict': converted, 'meta': meta}, args.dst)
    print(f'Converted {len(converted)} tensors from {args.src} '
          f'into {args.dst}')


if __name__ == '__main__':
    main()
