# Copyright (c) mmdr1 contributors. All rights reserved.
"""Side-by-side inference speed benchmark of detection configs.

Every config is built with random weights (nothing is downloaded), then all
models run the full ``predict`` path (data preprocessor, network and
post-processing) on the same random input in one process. The timed runs
are interleaved round-robin so that machine noise affects every model
equally.

By default the test-time score thresholds are set to 0 and the per-image
maxima to ``--max-per-img`` so that every model post-processes the same
number of detections; random weights would otherwise give arbitrary
numbers of detections. ``--keep-score-thr`` keeps the config values.

Example::

    python tools/analysis_tools/speed_benchmark.py \\
        configs/a.py configs/b.py --shape 512 512 --repeat 20 --warmup 3
"""
import argparse
import contextlib
import copy
import logging
import os.path as osp
import platform
import statistics
import sys
import time
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mmengine
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope, init_default_scope
from torch import nn

#: Keys holding a test-time score threshold.
SCORE_THR_KEYS = ('score_thr', 'score_threshold')
#: Keys holding a per-image maximum number of detections.
MAX_PER_IMG_KEYS = ('max_per_img', 'max_per_image', 'max_num')
#: Sub-configs whose per-image maximum is a proposal count, kept as is so
#: that two-stage models keep their stock workload.
PROPOSAL_KEYS = ('rpn', 'rpn_proposal')

CPU_MEMORY_METHOD = ('peak of live CPU tensor bytes allocated during one '
                     'inference (torch.profiler profile_memory; weights '
                     'and inputs allocated before excluded)')
CUDA_MEMORY_METHOD = ('torch.cuda.max_memory_allocated after '
                      'reset_peak_memory_stats, minus the memory allocated '
                      'before the inference (weights excluded)')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments without the program name.
            Defaults to None, i.e. ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Benchmark the inference speed of detection configs '
        'side by side (random weights, same random input).')
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[800, 1333],
        metavar=('H', 'W'),
        help='input image height and width (default: 800 1333)')
    parser.add_argument(
        '--repeat', type=int, default=10, help='timed runs per model')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed runs per model')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images per forward')
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device to run on (default: cuda when available)')
    parser.add_argument(
        '--threads',
        type=int,
        help='torch CPU threads (torch.set_num_threads); default: keep')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of weights and inputs')
    parser.add_argument(
        '--max-per-img',
        type=int,
        default=100,
        help='per-image maximum of detections set in every test_cfg')
    parser.add_argument(
        '--keep-score-thr',
        action='store_true',
        help='keep the test_cfg of the configs (score thresholds and '
        'per-image maxima) instead of forcing full detections')
    parser.add_argument(
        '--no-flops', action='store_true', help='skip the FLOP counting')
    parser.add_argument(
        '--out', help='optionally dump the results to this JSON/YAML file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, e.g. '
        'model.backbone.depth=18')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error('--repeat must be at least 1')
    if args.warmup < 0:
        parser.error('--warmup must not be negative')
    if args.batch_size < 1:
        parser.error('--batch-size must be at least 1')
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda requested but CUDA is not available')
    return args


def register_modules() -> None:
    """Register mmdet's and mmdr1's modules without forcing a scope."""
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    import mmdr1  # noqa: F401  (registers the mmdr1 components)


def _is_pretrained_init(init_cfg: Any) -> bool:
    """Whether an ``init_cfg`` dict loads a checkpoint."""
    if not isinstance(init_cfg, dict):
        return False
    init_type = init_cfg.get('type')
    if isinstance(init_type, str):
        return init_type.split('.')[-1] in ('Pretrained', 'PretrainedInit')
    return getattr(init_type, '__name__', None) == 'PretrainedInit'


def strip_pretrained(cfg: Any) -> List[str]:
    """Remove every pretrained initialisation from a config, in place.

    ``init_cfg`` entries of type ``Pretrained`` become None (or are dropped
    from lists) and string ``pretrained`` arguments become None, so building
    and initialising the model never loads or downloads a checkpoint.

    Args:
        cfg (dict | list): A (model) config, walked recursively.

    Returns:
        list[str]: The dotted paths of the removed entries.
    """
    removed: List[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key in list(node.keys()):
                value = node[key]
                sub = f'{path}.{key}' if path else str(key)
                if key == 'init_cfg':
                    if _is_pretrained_init(value):
                        node[key] = None
                        removed.append(sub)
                        continue
                    if isinstance(value, (list, tuple)):
                        kept = [v for v in value if not _is_pretrained_init(v)]
                        if len(kept) != len(value):
                            node[key] = kept or None
                            removed.append(sub)
                            continue
                elif key == 'pretrained' and isinstance(value, str):
                    node[key] = None
                    removed.append(sub)
                    continue
                walk(value, sub)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]')

    walk(cfg, '')
    return removed


def set_full_detections(test_cfg: Any,
                        max_per_img: int = 100,
                        prefix: str = '',
                        proposals: bool = False) -> List[str]:
    """Make a test config keep every detection up to a per-image maximum.

    Walks ``test_cfg`` recursively (dicts, ConfigDicts and lists), sets every
    score threshold (:data:`SCORE_THR_KEYS`) to 0 and every per-image maximum
    (:data:`MAX_PER_IMG_KEYS`) to ``max_per_img``. Maxima inside proposal
    sub-configs (:data:`PROPOSAL_KEYS`, e.g. ``test_cfg.rpn``) are proposal
    counts and stay as they are; ``nms_pre`` is never changed. Modifies
    ``test_cfg`` in place.

    Args:
        test_cfg (dict | list): A test config, e.g. ``cfg.model.test_cfg``
            or a whole ``cfg.model`` (every nested value is visited).
        max_per_img (int): The per-image maximum to set. Defaults to 100.
        prefix (str): Path prefix used in the returned descriptions.
        proposals (bool): Whether the whole ``test_cfg`` is a proposal
            config (e.g. the ``test_cfg`` of an RPN head inside a two-stage
            detector), whose maxima are kept. Defaults to False.

    Returns:
        list[str]: Descriptions ``'path: old -> new'`` of every changed key.
    """
    changes: List[str] = []

    def walk(node: Any, path: str, in_proposals: bool) -> None:
        if isinstance(node, dict):
            for key in list(node.keys()):
                value = node[key]
                sub = f'{path}.{key}' if path else str(key)
                if key in SCORE_THR_KEYS and _is_number(value):
                    if value != 0:
                        changes.append(f'{sub}: {value} -> 0')
                    node[key] = 0
                elif (key in MAX_PER_IMG_KEYS and _is_number(value)
                      and not in_proposals):
                    if value != max_per_img:
                        changes.append(f'{sub}: {value} -> {max_per_img}')
                    node[key] = max_per_img
                else:
                    walk(value, sub, in_proposals or key in PROPOSAL_KEYS)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]', in_proposals)

    walk(test_cfg, prefix, proposals)
    return changes


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def set_full_detections_in_model_cfg(model_cfg: Any,
                                     max_per_img: int = 100) -> List[str]:
    """Apply :func:`set_full_detections` to every ``test_cfg`` of a model
    config (the detector's and any head's own), in place.

    Args:
        model_cfg (dict): The model config, e.g. ``cfg.model``.
        max_per_img (int): The per-image maximum to set. Defaults to 100.

    Returns:
        list[str]: Descriptions of every changed key.
    """
    changes: List[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f'{path}.{key}' if path else str(key)
                if key == 'test_cfg':
                    changes.extend(
                        set_full_detections(value, max_per_img, sub))
                else:
                    walk(value, sub)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]')

    walk(model_cfg, 'model')
    return changes


def set_full_detections_in_model(model: nn.Module,
                                 max_per_img: int = 100) -> List[str]:
    """Apply :func:`set_full_detections` to the ``test_cfg`` attribute of
    every submodule of a built model, in place.

    Submodules named like a proposal config (e.g. ``rpn_head``) only get
    their score thresholds changed, as in ``test_cfg.rpn``.

    Args:
        model (nn.Module): The built model.
        max_per_img (int): The per-image maximum to set. Defaults to 100.

    Returns:
        list[str]: Descriptions of every changed key.
    """
    changes: List[str] = []
    for name, module in model.named_modules():
        test_cfg = getattr(module, 'test_cfg', None)
        if isinstance(test_cfg, dict):
            prefix = f'{name}.test_cfg' if name else 'test_cfg'
            # the RPN head of a two-stage model gets ``test_cfg.rpn``
            proposals = any(
                key in part for part in name.split('.')
                for key in PROPOSAL_KEYS)
            changes.extend(
                set_full_detections(test_cfg, max_per_img, prefix, proposals))
    return changes


@contextlib.contextmanager
def _quiet_logger() -> Iterator[None]:
    """Silence mmengine's per-parameter initialisation log."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_config(path: str,
                cfg_options: Optional[Dict[str, Any]] = None) -> Config:
    """Load a (classic or pure-Python) config and merge overrides.

    Args:
        path (str): The config file.
        cfg_options (dict, optional): ``--cfg-options`` style overrides.

    Returns:
        Config: The loaded config.
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model_from_cfg(
    cfg: Union[Config, str],
    device: str = 'cpu',
    full_detections: bool = True,
    max_per_img: int = 100,
    seed: int = 0,
    cfg_options: Optional[Dict[str,
                               Any]] = None) -> Tuple[nn.Module, List[str]]:
    """Build a model with random weights in eval mode.

    Pretrained initialisations are stripped (nothing is downloaded), the
    weights come from ``model.init_weights()`` after seeding, and SyncBN is
    reverted to BN.

    Args:
        cfg (Config | str): The config or its path. A Config is copied
            before being modified.
        device (str): Device to move the model to. Defaults to 'cpu'.
        full_detections (bool): Whether to apply :func:`set_full_detections`
            to every test config. Defaults to True.
        max_per_img (int): Per-image maximum for ``full_detections``.
        seed (int): Seed of the random weights. Defaults to 0.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        tuple[nn.Module, list[str]]: The model and the descriptions of the
        test-config changes (empty with ``full_detections=False``).
    """
    from mmdet.registry import MODELS
    from mmengine.model import revert_sync_batchnorm

    register_modules()
    if isinstance(cfg, str):
        cfg = load_config(cfg, cfg_options)
    else:
        cfg = copy.deepcopy(cfg)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    model_cfg = cfg.model
    strip_pretrained(model_cfg)
    changes: List[str] = []
    if full_detections:
        changes = set_full_detections_in_model_cfg(model_cfg, max_per_img)
    scope = cfg.get('default_scope') or 'mmdet'
    torch.manual_seed(seed)
    np.random.seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
        if hasattr(model, 'init_weights'):
            with _quiet_logger():
                model.init_weights()
    if full_detections:
        # heads may keep their own copies; keep the change list unique
        for change in set_full_detections_in_model(model, max_per_img):
            if change not in changes:
                changes.append(change)
    model = revert_sync_batchnorm(model)
    model.to(device)
    model.eval()
    return model, changes


def make_inputs(shape: Sequence[int],
                batch_size: int = 1,
                seed: int = 0) -> List[torch.Tensor]:
    """Random uint8 images (C, H, W) as a data loader would give them.

    Args:
        shape (Sequence[int]): Image height and width.
        batch_size (int): Number of images. Defaults to 1.
        seed (int): Seed of the pixels. Defaults to 0.

    Returns:
        list[Tensor]: ``batch_size`` images of shape (3, H, W).
    """
    gen = torch.Generator().manual_seed(seed)
    h, w = int(shape[0]), int(shape[1])
    return [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        for _ in range(batch_size)
    ]


def make_batch(images: List[torch.Tensor]) -> Dict[str, Any]:
    """A fresh ``test_step`` batch (new data samples) for the given images.

    Args:
        images (list[Tensor]): Images of shape (3, H, W).

    Returns:
        dict: ``dict(inputs=..., data_samples=...)``.
    """
    from mmdet.structures import DetDataSample

    samples = []
    for i, img in enumerate(images):
        h, w = img.shape[-2:]
        samples.append(
            DetDataSample(
                metainfo=dict(
                    img_id=i,
                    img_path=f'speed_benchmark_{i}.jpg',
                    ori_shape=(h, w),
                    img_shape=(h, w),
                    pad_shape=(h, w),
                    batch_input_shape=(h, w),
                    scale_factor=(1.0, 1.0),
                    flip=False,
                    flip_direction=None)))
    return dict(inputs=list(images), data_samples=samples)


class _TensorModeForward(nn.Module):
    """Wrap ``model._forward`` (tensor mode) for the FLOP analyser."""

    def __init__(self, model: nn.Module, data_samples: list) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(
            _flatten_tensors(self.model._forward(inputs, self.data_samples)))


def _flatten_tensors(obj: Any) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _flatten_tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _flatten_tensors(item)]
    if hasattr(obj, 'values') and callable(obj.values):  # InstanceData
        try:
            return _flatten_tensors(list(obj.values()))
        except Exception:  # noqa: BLE001
            return []
    return []


def count_flops(model: nn.Module,
                batch: Dict[str, Any]) -> Tuple[Optional[float], str]:
    """Count the FLOPs of the tensor-mode forward with mmengine.

    Uses :class:`mmengine.analysis.FlopAnalyzer` (fvcore convention: one
    fused multiply-add counts as one FLOP) on ``model._forward`` after the
    data preprocessor; post-processing is not counted.

    Args:
        model (nn.Module): The model.
        batch (dict): A fresh ``test_step`` batch.

    Returns:
        tuple[float | None, str]: FLOPs of the whole batch (None when the
        counting failed) and a note (the failure reason, or the operators
        the analyser skipped).
    """
    from mmengine.analysis import FlopAnalyzer

    try:
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
            wrapper = _TensorModeForward(model, data['data_samples'])
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                analyzer = FlopAnalyzer(wrapper, (data['inputs'], ))
                analyzer.unsupported_ops_warnings(False)
                analyzer.uncalled_modules_warnings(False)
                analyzer.tracer_warnings('none')
                total = float(analyzer.total())
                skipped = analyzer.unsupported_ops()
    except Exception as exc:  # noqa: BLE001  (report, never crash)
        reason = f'{type(exc).__name__}: {exc}'.strip().splitlines()[0]
        return None, reason[:200]
    note = ''
    if skipped:
        names = sorted(skipped, key=lambda k: -skipped[k])
        note = 'not counted: ' + ', '.join(
            name.split('::')[-1] for name in names[:6])
        if len(names) > 6:
            note += f', ... ({len(names)} ops)'
    return total, note


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def _run(model: nn.Module, batch: Dict[str, Any]) -> list:
    with torch.no_grad():
        return model.test_step(batch)


def _count_instances(results: list, captured: List[int],
                     head_name: str) -> Tuple[List[Optional[int]], str]:
    """Detections per image: ``len(pred_instances)``, else the number of
    instances the detection head returned (e.g. for panoptic-only
    predictions). Returns the counts and where they come from."""
    counts: List[Optional[int]] = []
    sources = set()
    for i, sample in enumerate(results):
        if 'pred_instances' in sample:
            counts.append(len(sample.pred_instances))
            sources.add('pred_instances')
        elif i < len(captured):
            counts.append(captured[i])
            sources.add(f'{head_name}.predict')
        else:
            counts.append(None)
    return counts, ', '.join(sorted(sources)) or 'none'


def _capture_head_counts(model: nn.Module) -> Tuple[List[int], str, Any]:
    """Record the lengths of the instance lists the final detection head
    (``roi_head`` or ``bbox_head``) returns from ``predict``.

    Returns:
        tuple: The (filled while running) list of lengths, the head's name
        and a function undoing the patch.
    """
    captured: List[int] = []
    for name in ('roi_head', 'bbox_head'):
        head = getattr(model, name, None)
        if head is not None and hasattr(head, 'predict'):
            break
    else:
        return captured, '', lambda: None
    original = head.predict

    def predict(*args, **kwargs):
        results = original(*args, **kwargs)
        if isinstance(results, (list, tuple)):
            for res in results:
                try:
                    captured.append(len(res))
                except TypeError:
                    pass
        return results

    head.predict = predict

    def undo() -> None:
        del head.predict

    return captured, name, undo


def profile_once(model: nn.Module, batch: Dict[str, Any],
                 device: str) -> Tuple[List[Optional[int]], str, float]:
    """Run one inference for detection counts and peak memory.

    Args:
        model (nn.Module): The model.
        batch (dict): A fresh ``test_step`` batch.
        device (str): 'cpu' or 'cuda'.

    Returns:
        tuple: Detections per image, where they were counted, and the peak
        memory in bytes (:data:`CPU_MEMORY_METHOD` or
        :data:`CUDA_MEMORY_METHOD`).
    """
    captured, head_name, undo = _capture_head_counts(model)
    try:
        if device == 'cuda':
            _sync(device)
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            results = _run(model, batch)
            _sync(device)
            peak = float(torch.cuda.max_memory_allocated() - base)
        else:
            from torch.profiler import ProfilerActivity, profile
            with profile(
                    activities=[ProfilerActivity.CPU],
                    profile_memory=True) as prof:
                results = _run(model, batch)
            peak = _peak_live_bytes(prof)
    finally:
        undo()
    counts, source = _count_instances(results, captured, head_name)
    return counts, source, peak


def _peak_live_bytes(prof: Any) -> float:
    """Peak of the running sum of CPU allocations/frees in a profile."""
    events = [
        ev for ev in prof.profiler.kineto_results.events()
        if ev.name() == '[memory]' and ev.device_type().name == 'CPU'
    ]
    events.sort(key=lambda ev: ev.start_ns())
    live = peak = 0
    for ev in events:
        live += ev.nbytes()
        peak = max(peak, live)
    return float(peak)


def benchmark(configs: Sequence[str],
              shape: Sequence[int] = (800, 1333),
              repeat: int = 10,
              warmup: int = 2,
              batch_size: int = 1,
              device: str = 'cpu',
              full_detections: bool = True,
              max_per_img: int = 100,
              seed: int = 0,
              cfg_options: Optional[Dict[str, Any]] = None,
              with_flops: bool = True) -> List[Dict[str, Any]]:
    """Build every config and time their ``predict`` paths side by side.

    Args:
        configs (Sequence[str]): Config files.
        shape (Sequence[int]): Input height and width.
        repeat (int): Timed runs per model (round-robin over the models,
            with the starting model rotated every round).
        warmup (int): Untimed runs per model before timing.
        batch_size (int): Images per forward.
        device (str): 'cpu' or 'cuda'.
        full_detections (bool): Force score thresholds to 0 and per-image
            maxima to ``max_per_img``.
        max_per_img (int): The per-image maximum. Defaults to 100.
        seed (int): Seed of weights and inputs.
        cfg_options (dict, optional): Overrides for every config.
        with_flops (bool): Whether to count FLOPs.

    Returns:
        list[dict]: One result per config with keys ``name``, ``config``,
        ``latencies_ms`` (per image), ``median_ms``, ``min_ms``, ``ratio``,
        ``params``, ``flops`` (per image, or None), ``flops_note``,
        ``peak_mem_bytes``, ``dets_per_img``, ``dets_source``,
        ``changes``.
    """
    register_modules()
    names = _config_names(configs)
    results: List[Dict[str, Any]] = []
    models = []
    for name, path in zip(names, configs):
        cfg = load_config(path, cfg_options)
        if not results:
            init_default_scope(cfg.get('default_scope') or 'mmdet')
        model, changes = build_model_from_cfg(
            cfg,
            device=device,
            full_detections=full_detections,
            max_per_img=max_per_img,
            seed=seed)
        models.append(model)
        results.append(
            dict(
                name=name,
                config=path,
                params=sum(p.numel() for p in model.parameters()),
                changes=changes))

    images = [img.to(device) for img in make_inputs(shape, batch_size, seed)]

    for model, res in zip(models, results):
        if with_flops:
            flops, note = count_flops(model, make_batch(images))
            res['flops'] = None if flops is None else flops / batch_size
            if flops is not None and getattr(model, 'with_roi_head', False):
                note = ('RoI heads counted on all RPN proposals (as in '
                        'mmdet\'s tensor-mode _forward); ' + note).rstrip('; ')
            res['flops_note'] = note
        else:
            res['flops'], res['flops_note'] = None, 'skipped (--no-flops)'

    for _ in range(warmup):
        for model in models:
            _run(model, make_batch(images))
    _sync(device)

    for model, res in zip(models, results):
        counts, source, peak = profile_once(model, make_batch(images), device)
        res['dets_per_img'] = counts
        res['dets_source'] = source
        res['peak_mem_bytes'] = peak

    times: List[List[float]] = [[] for _ in models]
    for r in range(repeat):
        order = [(r + k) % len(models) for k in range(len(models))]
        for idx in order:
            batch = make_batch(images)
            _sync(device)
            start = time.perf_counter()
            _run(models[idx], batch)
            _sync(device)
            times[idx].append(
                (time.perf_counter() - start) * 1000. / batch_size)

    for res, lat in zip(results, times):
        res['latencies_ms'] = lat
        res['median_ms'] = statistics.median(lat)
        res['min_ms'] = min(lat)
    first = results[0]['median_ms']
    for res in results:
        res['ratio'] = res['median_ms'] / first if first > 0 else float('nan')
    return results


def _config_names(configs: Sequence[str]) -> List[str]:
    """Config file stems, or the given paths where stems repeat."""
    stems = [osp.splitext(osp.basename(c))[0] for c in configs]
    return [
        stem if stems.count(stem) == 1 else path
        for stem, path in zip(stems, configs)
    ]


def _fmt_count(counts: List[Optional[int]]) -> str:
    known = [c for c in counts if c is not None]
    if not known:
        return 'n/a'
    lo, hi = min(known), max(known)
    return str(lo) if lo == hi else f'{lo}-{hi}'


def format_table(results: List[Dict[str, Any]],
                 device: str = 'cpu',
                 full_detections: bool = True,
                 max_per_img: int = 100) -> str:
    """Format benchmark results as a text table with footnotes.

    Args:
        results (list[dict]): Output of :func:`benchmark`.
        device (str): The device the results were measured on.
        full_detections (bool): Whether the thresholds were overridden.
        max_per_img (int): The per-image maximum that was set.

    Returns:
        str: The table.
    """
    mem_method = CUDA_MEMORY_METHOD if device == 'cuda' else \
        CPU_MEMORY_METHOD
    header = [
        'config', 'median ms/img', 'min ms/img', 'ratio', 'params (M)',
        'FLOPs (G)', 'peak mem (MB)', 'dets/img'
    ]
    rows = []
    notes = []
    for res in results:
        flops = res.get('flops')
        dets = res.get('dets_per_img', [])
        dets_str = _fmt_count(dets)
        known = [c for c in dets if c is not None]
        if full_detections and known and min(known) < max_per_img:
            dets_str += f' (<{max_per_img})'
            notes.append(f'{res["name"]}: fewer detections than the '
                         f'maximum {max_per_img} ({dets_str.split()[0]})')
        rows.append([
            res['name'],
            f'{res["median_ms"]:.2f}',
            f'{res["min_ms"]:.2f}',
            f'{res["ratio"]:.2f}',
            f'{res["params"] / 1e6:.2f}',
            'n/a' if flops is None else f'{flops / 1e9:.2f}',
            f'{res.get("peak_mem_bytes", 0.) / 2**20:.1f}',
            dets_str,
        ])
        source = res.get('dets_source', 'pred_instances')
        if source != 'pred_instances':
            notes.append(f'{res["name"]}: detections counted from '
                         f'{source} (no pred_instances)')
        if res.get('flops_note'):
            prefix = 'FLOPs n/a' if flops is None else 'FLOPs'
            notes.append(f'{res["name"]}: {prefix}: {res["flops_note"]}')
    widths = [
        max(len(header[i]), *(len(row[i]) for row in rows))
        for i in range(len(header))
    ]

    def line(cells: List[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return ' | '.join(out)

    sep = '-+-'.join('-' * w for w in widths)
    lines = [line(header), sep] + [line(row) for row in rows]
    lines.append('')
    lines.append('ratio: median latency / median latency of the first '
                 'config')
    lines.append('FLOPs: mmengine FlopAnalyzer on the tensor-mode _forward '
                 'per image (multiply-add = 1 FLOP, no post-processing)')
    lines.append(f'peak mem: {mem_method}')
    if full_detections:
        lines.append(f'dets/img: len(pred_instances) per image; every '
                     f'score_thr set to 0 and per-image maximum to '
                     f'{max_per_img} (proposal counts and nms_pre unchanged)')
    else:
        lines.append('dets/img: len(pred_instances) per image; test_cfg '
                     'thresholds kept (--keep-score-thr)')
    lines.extend(f'note: {n}' for n in notes)
    return '\n'.join(lines)


def environment_info(device: str) -> str:
    """Device, thread count and library versions as text."""
    import mmcv
    import mmdet
    if device == 'cuda':
        dev = f'cuda ({torch.cuda.get_device_name()})'
    else:
        dev = f'cpu ({_cpu_name()})'
    return (f'device: {dev}, torch threads: {torch.get_num_threads()}\n'
            f'python {platform.python_version()}, torch {torch.__version__}'
            f', mmdet {mmdet.__version__}, mmcv {mmcv.__version__}, '
            f'mmengine {mmengine.__version__}')


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for row in f:
                if row.startswith('model name'):
                    return row.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point.

    Args:
        argv (Sequence[str], optional): Arguments without the program name.

    Returns:
        int: The exit status (0 on success).
    """
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    full = not args.keep_score_thr
    results = benchmark(
        args.configs,
        shape=args.shape,
        repeat=args.repeat,
        warmup=args.warmup,
        batch_size=args.batch_size,
        device=args.device,
        full_detections=full,
        max_per_img=args.max_per_img,
        seed=args.seed,
        cfg_options=args.cfg_options,
        with_flops=not args.no_flops)
    h, w = args.shape
    print(environment_info(args.device))
    print(f'input: {args.batch_size}x3x{h}x{w} random uint8 (seed '
          f'{args.seed}), warmup {args.warmup}, repeat {args.repeat} '
          f'(round-robin), full predict path in torch.no_grad()')
    print(format_table(results, args.device, full, args.max_per_img))
    for res in results:
        if res['changes']:
            print(f'{res["name"]} test_cfg overrides: ' +
                  ', '.join(res['changes']))
    if args.out:
        mmengine.dump(results, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
