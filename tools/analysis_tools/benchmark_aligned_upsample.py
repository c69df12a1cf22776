# Copyright (c) mmdr1 contributors. All rights reserved.
"""Benchmark the compiled aligned upsampling against the PyTorch reference.

Prints the median time of ``mmdr1.ops.aligned_upsample`` (op) and
``mmdr1.models.layers.aligned_upsample_ref`` (ref), forward only and
forward + backward, for a few (N, C, H, W) shapes, side by side.

Example::

    python tools/analysis_tools/benchmark_aligned_upsample.py
    python tools/analysis_tools/benchmark_aligned_upsample.py \
        --shapes 2,128,50,68 --factor 4 --device cuda
"""
import argparse
import statistics
import time
from typing import Callable, List, Tuple

import torch

from mmdr1.models.layers import aligned_upsample_ref
from mmdr1.ops import aligned_upsample

DEFAULT_SHAPES = ['2,8,25,34', '2,64,25,34', '2,128,50,68', '1,256,100,136']


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark aligned upsampling: op vs reference')
    parser.add_argument(
        '--shapes',
        nargs='+',
        default=DEFAULT_SHAPES,
        help='input shapes as N,C,H,W')
    parser.add_argument('--factor', type=int, default=2)
    parser.add_argument(
        '--dtype',
        choices=['float32', 'float64', 'float16'],
        default='float32')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    return parser.parse_args()


def median_ms(fn: Callable[[], None], repeat: int, warmup: int,
              device: torch.device) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    sync = (
        torch.cuda.synchronize if device.type == 'cuda' else (lambda: None))
    for _ in range(warmup):
        fn()
    sync()
    times: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_shape(shape: Tuple[int, ...], args: argparse.Namespace,
                dtype: torch.dtype, device: torch.device) -> List[float]:
    x = torch.randn(shape, dtype=dtype, device=device)
    x_grad = x.clone().requires_grad_()
    grad_out = torch.randn(
        shape[0],
        shape[1],
        shape[2] * args.factor,
        shape[3] * args.factor,
        dtype=dtype,
        device=device)
    results = []
    for fn in (aligned_upsample, aligned_upsample_ref):

        def forward(fn=fn):
            with torch.no_grad():
                fn(x, args.factor)

        def forward_backward(fn=fn):
            x_grad.grad = None
            fn(x_grad, args.factor).backward(grad_out)

        results.append(median_ms(forward, args.repeat, args.warmup, device))
        results.append(
            median_ms(forward_backward, args.repeat, args.warmup, device))
    # check the two agree on this shape too
    torch.testing.assert_close(
        aligned_upsample(x, args.factor),
        aligned_upsample_ref(x, args.factor),
        rtol=1e-2 if dtype == torch.float16 else 1e-4,
        atol=1e-2 if dtype == torch.float16 else 1e-4)
    return results


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    print(f'aligned upsampling x{args.factor}, {args.dtype} on {device} '
          f'({torch.get_num_threads()} CPU threads), median of '
          f'{args.repeat} runs, ms')
    header = (f'{"shape (N,C,H,W)":<20}{"fwd op":>10}{"fwd ref":>10}'
              f'{"speedup":>9}{"f+b op":>10}{"f+b ref":>10}{"speedup":>9}')
    print(header)
    print('-' * len(header))
    for text in args.shapes:
        shape = tuple(int(v) for v in text.split(','))
        if len(shape) != 4:
            raise ValueError(f'shape must be N,C,H,W, got {text!r}')
        op_f, op_fb, ref_f, ref_fb = bench_shape(shape, args, dtype, device)
        print(f'{text:<20}{op_f:>10.3f}{ref_f:>10.3f}{ref_f / op_f:>8.2f}x'
              f'{op_fb:>10.3f}{ref_fb:>10.3f}{ref_fb / op_fb:>8.2f}x')


if __name__ == '__main__':
    main()
