# Copyright (c) mmdr1 contributors. All rights reserved.
"""Generate the synthetic toy panoptic dataset.

Example::

    python tools/dataset_converters/make_toy_panoptic.py \\
        --out-dir data/toy_panoptic --num-train 160 --num-val 40
"""
import argparse
import json

from mmdr1.datasets import make_toy_panoptic


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Generate the mmdr1 toy panoptic dataset (COCO panoptic '
        'and instance format).')
    parser.add_argument(
        '--out-dir',
        default='data/toy_panoptic',
        help='output root (default: data/toy_panoptic)')
    parser.add_argument(
        '--num-train', type=int, default=160, help='training images')
    parser.add_argument(
        '--num-val', type=int, default=40, help='validation images')
    parser.add_argument(
        '--size', type=int, default=256, help='image side length in px')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--jpeg-quality', type=int, default=90, help='JPEG quality')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if a set with the same arguments exists')
    return parser.parse_args()


def main() -> None:
    """Generate the dataset and print its summary."""
    args = parse_args()
    summary = make_toy_panoptic(
        out_dir=args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.size,
        seed=args.seed,
        jpeg_quality=args.jpeg_quality,
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
