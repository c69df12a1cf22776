# Copyright (c) mmdr1 contributors. All rights reserved.
"""Time and memory of the fused blender kernels versus the PyTorch path.

Compares, in one process, the modules with ``use_fused=True`` (compiled
kernels of :mod:`mmdr1.ops`) and ``use_fused=False`` (the pure PyTorch
reference path):

- ``blend``: :class:`mmdr1.models.layers.Blender` (BlendMask), bases
  ``N x K x H x W``, ``K * M * M`` attention per RoI, ``R x R`` masks;
- ``factored``: :class:`mmdr1.models.layers.FactoredAttention` (DR1Mask),
  basis ``N x C x H x W``, rank ``d``, ``R x R`` masks,

for every ``--num-instances`` value, forward only (under ``no_grad``, as
inference) and forward + backward (``out.sum().backward()``, gradients of
the basis and the per-instance inputs; for ``factored`` also of ``U`` and
``V``).

Time: median of ``--repeat`` runs after ``--warmup`` runs, the two paths
interleaved round-robin so that machine noise hits both alike.

Peak memory (``--memory rss``, Linux only): the growth of the process's
resident set during one run, i.e. the peak of the memory the run allocated
and touched on top of what existed before it (inputs, weights): tensors
(outputs, intermediates, saved tensors, gradients) and kernel scratch
buffers. Measured as ``VmHWM`` after the run minus ``VmRSS`` before it, with
the high-water mark reset through ``/proc/self/clear_refs`` just before the
run. So that freed blocks really leave the resident set, glibc's malloc is
set (``mallopt``) to serve every block of 64 KiB or more with ``mmap`` and
trimmed before each measurement; this is done after the timings, which
therefore run with the default allocator. Resolution is one page (4 KiB);
small allocations (< 64 KiB) that glibc keeps cached may be missed.

Example::

    python tools/analysis_tools/benchmark_fused_blend.py
    python tools/analysis_tools/benchmark_fused_blend.py --threads 2 \\
        --num-instances 10 100 500 --ops blend
"""
import argparse
import ctypes
import gc
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

#: ``impl -> fn(backward)`` running one implementation once.
Cases = Dict[str, Callable[[bool], None]]

IMPLS = ('reference', 'fused')
OPS = ('blend', 'factored')
MODES = (('forward', False), ('forward+backward', True))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Benchmark the fused blender kernels against the '
        'PyTorch reference path')
    parser.add_argument(
        '--ops',
        nargs='+',
        choices=OPS,
        default=list(OPS),
        help='ops to benchmark')
    parser.add_argument(
        '--num-instances', type=int, nargs='+', default=[10, 100, 500])
    parser.add_argument('--batch', type=int, default=2, help='images N')
    parser.add_argument(
        '--basis-size',
        type=int,
        nargs=2,
        default=[200, 336],
        metavar=('H', 'W'),
        help='basis / bases map size (stride 1 / spatial-scale)')
    parser.add_argument('--spatial-scale', type=float, default=0.25)
    parser.add_argument('--sampling-ratio', type=int, default=1)
    parser.add_argument('--num-bases', type=int, default=4, help='K')
    parser.add_argument('--attn-size', type=int, default=14, help='M')
    parser.add_argument('--bottom-resolution', type=int, default=56, help='R')
    parser.add_argument(
        '--channels', type=int, default=32, help='C (factored only)')
    parser.add_argument('--rank', type=int, default=4, help='d (factored)')
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument(
        '--memory',
        choices=('rss', 'none'),
        default='rss',
        help='peak-memory measurement (see the module docstring)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def random_rois(num: int, num_imgs: int, height: float, width: float,
                generator: torch.Generator) -> torch.Tensor:
    """``num`` RoIs on ``num_imgs`` images, sides 16 px to half the image.

    Args:
        num (int): Number of RoIs.
        num_imgs (int): Number of images (batch indices drawn uniformly).
        height (float): Image height in input pixels.
        width (float): Image width in input pixels.
        generator (torch.Generator): Random generator.

    Returns:
        Tensor: (num, 5) RoIs as ``[batch_index, x1, y1, x2, y2]``.
    """
    inds = torch.randint(0, num_imgs, (num, ), generator=generator).float()
    wh = torch.rand((num, 2), generator=generator)
    bw = 16 + wh[:, 0] * max(width / 2 - 16, 0)
    bh = 16 + wh[:, 1] * max(height / 2 - 16, 0)
    x1 = torch.rand(num, generator=generator) * (width - bw).clamp(min=0)
    y1 = torch.rand(num, generator=generator) * (height - bh).clamp(min=0)
    return torch.stack([inds, x1, y1, x1 + bw, y1 + bh], dim=1)


def build_cases(args: argparse.Namespace, op: str, num: int) -> Cases:
    """Closures ``fn(backward)`` running each implementation once.

    Args:
        args (argparse.Namespace): Parsed arguments.
        op (str): ``'blend'`` or ``'factored'``.
        num (int): Number of RoIs P.

    Returns:
        dict[str, Callable]: ``impl -> fn`` for ``reference`` and ``fused``.
    """
    from mmdr1.models.layers import Blender, FactoredAttention

    g = torch.Generator().manual_seed(args.seed)
    height, width = args.basis_size
    rois = random_rois(num, args.batch, height / args.spatial_scale,
                       width / args.spatial_scale, g)
    common = dict(
        bottom_resolution=args.bottom_resolution,
        spatial_scale=args.spatial_scale,
        sampling_ratio=args.sampling_ratio)
    modules = {}
    if op == 'blend':
        channels = args.num_bases
        for impl in IMPLS:
            modules[impl] = Blender(
                num_bases=args.num_bases,
                attn_size=args.attn_size,
                use_fused=impl == 'fused',
                **common)
    else:
        channels = args.channels
        for impl in IMPLS:
            modules[impl] = FactoredAttention(
                in_channels=args.channels,
                num_bases=args.num_bases,
                rank=args.rank,
                use_fused=impl == 'fused',
                **common)
        modules['fused'].load_state_dict(modules['reference'].state_dict())
    basis = torch.randn((args.batch, channels, height, width),
                        generator=g).requires_grad_()
    embeds = torch.randn((num, modules['fused'].embed_dim),
                         generator=g).requires_grad_()
    if not modules['fused'].uses_fused(basis, rois, embeds):
        raise RuntimeError(
            'the fused kernels cannot run here: build mmdr1._ext '
            '(python setup.py build_ext --inplace)')
    leaves = [basis, embeds] + list(modules['fused'].parameters())

    def make(module: torch.nn.Module) -> Callable[[bool], None]:
        params = list(module.parameters())

        def run(backward: bool) -> None:
            for t in leaves + params:
                t.grad = None
            with torch.set_grad_enabled(backward):
                out = module(basis, rois, embeds)
                if backward:
                    out.sum().backward()
            for t in leaves + params:
                t.grad = None

        return run

    return {impl: make(modules[impl]) for impl in IMPLS}


def time_cases(cases: Cases, backward: bool, repeat: int,
               warmup: int) -> Dict[str, float]:
    """Median milliseconds per case, runs interleaved round-robin.

    Args:
        cases (dict[str, Callable]): ``impl -> fn(backward)``.
        backward (bool): Time forward + backward instead of forward.
        repeat (int): Timed runs per case.
        warmup (int): Untimed runs per case first.

    Returns:
        dict[str, float]: ``impl -> median ms``.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn(backward)
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn(backward)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


class RSSPeak:
    """Peak resident-set growth of one call (see the module docstring).

    ``available`` is False where ``/proc/self/clear_refs`` or glibc's
    ``mallopt`` cannot be used; :meth:`measure` then returns None.
    """

    M_MMAP_THRESHOLD = -3

    def __init__(self) -> None:
        self.available = False
        self._libc = None
        if not sys.platform.startswith('linux'):
            return
        try:
            libc = ctypes.CDLL('libc.so.6')
            if libc.mallopt(self.M_MMAP_THRESHOLD, 64 * 1024) != 1:
                return
            self._libc = libc
            self._reset()
            self.available = self._status('VmHWM') is not None
        except (OSError, AttributeError):
            self.available = False

    @staticmethod
    def _status(key: str) -> Optional[int]:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
        return None

    @staticmethod
    def _reset() -> None:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')

    def measure(self, fn: Callable[[], None]) -> Optional[int]:
        """Bytes by which the resident set peaked above its level before
        ``fn()``; None if unavailable."""
        if not self.available:
            return None
        gc.collect()
        self._libc.malloc_trim(0)
        before = self._status('VmRSS')
        self._reset()
        fn()
        return max(self._status('VmHWM') - before, 0)


def measure_memory(cases: Cases, backward: bool,
                   meter: RSSPeak) -> Dict[str, Optional[float]]:
    """Peak memory (MiB) of one run of each case, the minimum of 3 tries.

    Args:
        cases (dict[str, Callable]): ``impl -> fn(backward)``.
        backward (bool): Forward + backward instead of forward.
        meter (RSSPeak): The meter.

    Returns:
        dict[str, float or None]: ``impl -> MiB`` (None if unavailable).
    """
    result: Dict[str, Optional[float]] = {}
    for name, fn in cases.items():
        fn(backward)  # allocate thread pools and caches first
        peaks = [meter.measure(lambda: fn(backward)) for _ in range(3)]
        result[name] = None if peaks[0] is None else min(peaks) / 2**20
    return result


def _fmt(value: Optional[float], spec: str) -> str:
    return 'n/a' if value is None else format(value, spec)


def main(argv: Optional[Sequence[str]] = None) -> Dict[Tuple, float]:
    """Run the benchmark and print a table.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        dict: ``(op, P, mode, impl, 'ms' | 'MiB') -> value``.
    """
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    height, width = args.basis_size
    print(f'torch {torch.__version__}, CPU, {torch.get_num_threads()} '
          f'threads; median of {args.repeat} runs after {args.warmup} '
          'warm-up runs, reference and fused interleaved')
    print(f'N = {args.batch}, basis {height} x {width}, spatial_scale '
          f'{args.spatial_scale}, sampling_ratio {args.sampling_ratio}, '
          f'K = {args.num_bases}, R = {args.bottom_resolution}; blend: M = '
          f'{args.attn_size}; factored: C = {args.channels}, '
          f'd = {args.rank}')
    all_cases = {
        (op, num): build_cases(args, op, num)
        for op in args.ops
        for num in args.num_instances
    }
    results: Dict[Tuple, float] = {}
    for (op, num), cases in all_cases.items():
        for mode, backward in MODES:
            ms = time_cases(cases, backward, args.repeat, args.warmup)
            for impl in IMPLS:
                results[(op, num, mode, impl, 'ms')] = ms[impl]
    meter = RSSPeak() if args.memory == 'rss' else None
    for (op, num), cases in all_cases.items():
        for mode, backward in MODES:
            mem = measure_memory(cases, backward, meter) if meter else {}
            for impl in IMPLS:
                if mem.get(impl) is not None:
                    results[(op, num, mode, impl, 'MiB')] = mem[impl]
    if meter is not None and not meter.available:
        print('peak memory: unavailable here (needs Linux /proc/self/'
              'clear_refs and glibc)')
    header = (f'{"op":<9}{"P":>5}  {"mode":<17}{"ref ms":>9}{"fused ms":>10}'
              f'{"speedup":>9}{"ref MiB":>10}{"fused MiB":>11}'
              f'{"mem ratio":>11}')
    print(header)
    print('-' * len(header))
    for (op, num) in all_cases:
        for mode, _ in MODES:
            ref_ms = results[(op, num, mode, 'reference', 'ms')]
            fused_ms = results[(op, num, mode, 'fused', 'ms')]
            ref_mib = results.get((op, num, mode, 'reference', 'MiB'))
            fused_mib = results.get((op, num, mode, 'fused', 'MiB'))
            ratio = (
                fused_mib /
                ref_mib if ref_mib and fused_mib is not None else None)
            print(f'{op:<9}{num:>5}  {mode:<17}{ref_ms:>9.2f}{fused_ms:>10.2f}'
                  f'{ref_ms / fused_ms:>8.2f}x{_fmt(ref_mib, ".2f"):>10}'
                  f'{_fmt(fused_mib, ".2f"):>11}{_fmt(ratio, ".3f"):>11}')
    print('speedup = reference ms / fused ms; mem ratio = fused MiB / '
          'reference MiB (peak resident-set growth during one run)')
    return results


if __name__ == '__main__':
    main()
