# Copyright (c) mmdr1 contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with an mmdr1 (or stock mmdet) config.

Same command line as MMDetection 3.3's ``tools/test.py``; ``import mmdr1``
registers the mmdr1 components and lets mmengine checkpoints load on
torch >= 2.6. Used by ``mim test mmdr1 CONFIG --checkpoint CKPT``.
"""
import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('mmdr1') is None:  # run from a source checkout
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdr1  # noqa: E402,F401  (registers modules and checkpoint globals)
# yapf: disable
from mmdr1.utils.cli import (add_common_args, add_dump_metric,  # noqa: E402
                             build_runner, enable_tta, enable_visualization,
                             load_config, set_local_rank, setup_dynamo_cache)

# yapf: enable


def parse_args() -> argparse.Namespace:
    """Parse the command line.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved; a relative '
        'path is placed under work_dir/timestamp/')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta', action='store_true', help='enable test-time augmentation')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args)
    return args


def main() -> None:
    """Entry point."""
    args = parse_args()
    setup_dynamo_cache()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.tta:
        enable_tta(cfg)
    runner = build_runner(cfg)
    if args.out is not None:
        add_dump_metric(runner, args.out)
    runner.test()


if __name__ == '__main__':
    main()
