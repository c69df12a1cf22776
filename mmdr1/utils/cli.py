# Copyright (c) mmdr1 contributors. All rights reserved.
"""Shared logic of ``tools/train.py`` and ``tools/test.py``.

Both scripts follow the command-line contract of MMDetection 3.3's
``tools/train.py`` / ``tools/test.py`` (same flags, same behaviour), which is
what ``mim train mmdr1 ...`` and ``mim test mmdr1 ...`` rely on.
"""
import argparse
import os
import os.path as osp
import warnings
from copy import deepcopy
from typing import Optional

from mmdet.registry import RUNNERS
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

CFG_OPTIONS_HELP = (
    'override some settings in the used config, the key-value pair in '
    'xxx=yyy format will be merged into the config file. If the value to '
    'be overwritten is a list, it should be like key="[a,b]" or key=a,b. '
    'Nested lists/tuples are allowed too, e.g. key="[(a,b),(c,d)]". The '
    'quotation marks are necessary and no white space is allowed.')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add the options shared by the train and test scripts.

    Adds ``--cfg-options``, ``--launcher`` and ``--local_rank`` /
    ``--local-rank`` (``torch.distributed.launch`` passes the dashed form on
    torch >= 2.0).

    Args:
        parser (argparse.ArgumentParser): The parser to extend.
    """
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(args: argparse.Namespace) -> None:
    """Export ``LOCAL_RANK`` from ``--local-rank`` unless already set.

    Args:
        args (argparse.Namespace): Parsed arguments with ``local_rank``.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def setup_dynamo_cache() -> None:
    """Apply ``DYNAMO_CACHE_SIZE_LIMIT`` like mmdet's tools do."""
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()


def load_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` and apply the generic command-line overrides.

    Sets ``cfg.launcher``, merges ``--cfg-options`` and resolves the work
    directory with the priority: ``--work-dir`` > ``work_dir`` in the config
    > ``./work_dirs/<config file stem>``.

    Args:
        args (argparse.Namespace): Parsed arguments with ``config``,
            ``launcher``, ``cfg_options`` and ``work_dir``.

    Returns:
        Config: The loaded config.
    """
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        stem = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('./work_dirs', stem)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the default runner, or ``cfg.runner_type`` from ``RUNNERS``.

    Args:
        cfg (Config): The full config.

    Returns:
        Runner: The built runner.
    """
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to dynamic-loss-scale AMP.

    Args:
        cfg (Config): The config to modify in place.
    """
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def enable_auto_scale_lr(cfg: Config) -> None:
    """Turn on ``auto_scale_lr``; the config must define it fully.

    Args:
        cfg (Config): The config to modify in place.

    Raises:
        RuntimeError: If ``auto_scale_lr.enable`` or
            ``auto_scale_lr.base_batch_size`` is missing.
    """
    auto_scale_lr = cfg.get('auto_scale_lr', None)
    if (auto_scale_lr is None or 'enable' not in auto_scale_lr
            or 'base_batch_size' not in auto_scale_lr):
        raise RuntimeError('Can not find "auto_scale_lr" or '
                           '"auto_scale_lr.enable" or '
                           '"auto_scale_lr.base_batch_size" in your '
                           'configuration file.')
    cfg.auto_scale_lr.enable = True


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """Apply ``--resume``: ``'auto'`` = latest checkpoint of the work dir.

    Args:
        cfg (Config): The config to modify in place.
        resume (str, optional): ``None`` (no resume), ``'auto'`` or a
            checkpoint path.
    """
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume


def enable_visualization(cfg: Config,
                         show: bool = False,
                         show_dir: Optional[str] = None,
                         wait_time: float = 2.) -> None:
    """Turn on drawing in ``default_hooks.visualization``.

    With ``show_dir`` the painted test images (panoptic overlays for panoptic
    models) are written to ``<work_dir>/<timestamp>/<show_dir>``; drawing
    uses an off-screen canvas, so no display is needed unless ``show``.

    Args:
        cfg (Config): The config to modify in place.
        show (bool): Display the pictures in a window.
        show_dir (str, optional): Directory for the painted pictures.
        wait_time (float): Seconds each picture is shown.

    Raises:
        RuntimeError: If the config has no visualization hook.
    """
    hooks = cfg.get('default_hooks', None)
    if hooks is None or 'visualization' not in hooks:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks, e.g. '
            "default_hooks.visualization=dict(type='DetVisualizationHook')")
    vis_hook = hooks['visualization']
    vis_hook['draw'] = True
    if show:
        vis_hook['show'] = True
        vis_hook['wait_time'] = wait_time
    if show_dir:
        vis_hook['test_out_dir'] = show_dir


def enable_tta(cfg: Config) -> None:
    """Wrap the model for flip test-time augmentation.

    Uses ``cfg.tta_model`` / ``cfg.tta_pipeline`` when present, otherwise
    mmdet's defaults: ``DetTTAModel`` with NMS at IoU 0.5 and 100
    detections, and a horizontal-flip ``TestTimeAug`` replacing the last
    transform of the test pipeline.

    Args:
        cfg (Config): The config to modify in place.
    """
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, '
                      'we will set it as default.')
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, '
                      'we will set it as default.')
        dataset_cfg = cfg.test_dataloader.dataset
        while 'dataset' in dataset_cfg:
            dataset_cfg = dataset_cfg['dataset']
        pipeline = deepcopy(dataset_cfg.pipeline)
        flips = [
            dict(type='RandomFlip', prob=1.),
            dict(type='RandomFlip', prob=0.)
        ]
        pack = dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                       'scale_factor', 'flip', 'flip_direction'))
        pipeline[-1] = dict(type='TestTimeAug', transforms=[flips, [pack]])
        cfg.tta_pipeline = pipeline
    # Not ``ConfigDict(**cfg.tta_model, module=...)`` (as mmdet's tools do):
    # that re-wraps the dict and loses how a pure-Python config holds an
    # imported class in ``type``, and dumping the config then fails.
    tta_model = deepcopy(cfg.tta_model)
    tta_model['module'] = cfg.model
    cfg.model = tta_model
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def add_dump_metric(runner: Runner, out: str) -> None:
    """Append a ``DumpDetResults`` metric that pickles the predictions.

    Args:
        runner (Runner): The runner whose test evaluator is extended.
        out (str): Output file, ending with ``.pkl`` or ``.pickle``.

    Raises:
        ValueError: If ``out`` is not a pickle file name.
    """
    from mmdet.evaluation import DumpDetResults
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError('The dump file must be a pkl file.')
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
