# Copyright (c) mmdr1 contributors. All rights reserved.
"""Generate the synthetic toy set in the official Cityscapes layout.

Example (then convert it like the real data)::

    python tools/dataset_converters/make_toy_cityscapes.py \\
        --out-dir data/toy_cityscapes --num-train 32 --num-val 8
    python tools/dataset_converters/cityscapes.py data/toy_cityscapes
"""
import argparse
import importlib.util
import json
import os.path as osp
import sys

if importlib.util.find_spec('mmdr1') is None:  # run from a source checkout
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmdr1.datasets import make_toy_cityscapes  # noqa: E402


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Generate the mmdr1 toy Cityscapes set (leftImg8bit/ and '
        'gtFine/ with *_labelIds.png and *_instanceIds.png).')
    parser.add_argument(
        '--out-dir',
        default='data/toy_cityscapes',
        help='output root (default: data/toy_cityscapes)')
    parser.add_argument(
        '--num-train', type=int, default=32, help='training images')
    parser.add_argument(
        '--num-val', type=int, default=8, help='validation images')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=[128, 256],
        metavar=('HEIGHT', 'WIDTH'),
        help='image size in px (default: 128 256)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if a set with the same arguments exists')
    return parser.parse_args()


def main() -> None:
    """Generate the dataset and print its summary."""
    args = parse_args()
    summary = make_toy_cityscapes(
        out_dir=args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.size,
        seed=args.seed,
        force=args.force)
    if summary['skipped']:
        print(f'{args.out_dir}: a set with these arguments exists, skipped '
              '(use --force to regenerate)')
    else:
        print(f'{args.out_dir}: generated in {summary["seconds"]:.1f} s')
    for split, stats in summary['splits'].items():
        print(f'  {split}: ' + ', '.join(f'{k}={v}' for k, v in stats.items()))
    print(json.dumps(summary, sort_keys=True))


if __name__ == '__main__':
    main()
