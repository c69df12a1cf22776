# Copyright (c) mmdr1 contributors. All rights reserved.
"""Train a model with an mmdr1 (or stock mmdet) config.

Same command line as MMDetection 3.3's ``tools/train.py``; ``import mmdr1``
registers the mmdr1 components and lets mmengine checkpoints load on
torch >= 2.6 (``--resume``). Used by ``mim train mmdr1 CONFIG``.
"""
import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('mmdr1') is None:  # run from a source checkout
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdr1  # noqa: E402,F401  (registers modules and checkpoint globals)
# yapf: disable
from mmdr1.utils.cli import (add_common_args, apply_resume,  # noqa: E402
                             build_runner, enable_amp, enable_auto_scale_lr,
                             load_config, set_local_rank, setup_dynamo_cache)

# yapf: enable


def parse_args() -> argparse.Namespace:
    """Parse the command line.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, resume '
        'from the latest checkpoint in the work directory.')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args)
    return args


def main() -> None:
    """Entry point."""
    args = parse_args()
    setup_dynamo_cache()
    cfg = load_config(args)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    apply_resume(cfg, args.resume)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
