# Copyright (c) mmdr1 contributors. All rights reserved.
"""Time BlendMask's blender alone, next to Mask R-CNN's mask branch.

For ``--num-instances`` RoIs (100 by default, the detector's
``max_per_img``) on an input of ``--input-size`` (800 x 1216 by default),
prints the median time of

- ``blender``: :class:`mmdr1.models.layers.Blender` (RoIAlign of the
  K = 4 stride-4 bases to R x R = 56 x 56, attention upsampling from
  M x M = 14 x 14, softmax over K, weighted sum) - the whole per-instance
  mask cost of BlendMask;
- ``mask_rcnn``: mmdet's Mask R-CNN mask branch for the same RoIs
  (RoIAlign 14 x 14 of 256-channel stride-4 features, ``FCNMaskHead``: four
  3x3 256-channel convs, deconv to 28 x 28, 1x1 to 80 classes),

forward only (inference) and forward + backward, measured round-robin in
one process so that machine noise hits both alike. The timings exclude
the backbone, FPN, basis module and box heads.

Example::

    python tools/analysis_tools/benchmark_blender.py
    python tools/analysis_tools/benchmark_blender.py --num-instances 100 \\
        --input-size 512 512 --threads 1 --device cuda
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

#: ``name -> fn(backward)`` running one mask branch once.
Cases = Dict[str, Callable[[bool], None]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Benchmark the BlendMask blender vs the Mask R-CNN '
        'mask branch')
    parser.add_argument('--num-instances', type=int, default=100)
    parser.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        default=[800, 1216],
        metavar=('H', 'W'),
        help='padded network input size')
    parser.add_argument('--num-bases', type=int, default=4)
    parser.add_argument('--attn-size', type=int, default=14)
    parser.add_argument('--bottom-resolution', type=int, default=56)
    parser.add_argument(
        '--no-mask-rcnn', action='store_true', help='time the blender only')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def random_rois(num: int, height: int, width: int,
                generator: torch.Generator) -> torch.Tensor:
    """``num`` boxes as [0, x1, y1, x2, y2], sides 16 px to half the image.

    Args:
        num (int): Number of RoIs.
        height (int): Image height.
        width (int): Image width.
        generator (torch.Generator): Random generator.

    Returns:
        Tensor: (num, 5) RoIs of image 0.
    """
    wh = torch.rand((num, 2), generator=generator)
    bw = 16 + wh[:, 0] * (width / 2 - 16)
    bh = 16 + wh[:, 1] * (height / 2 - 16)
    x1 = torch.rand(num, generator=generator) * (width - bw)
    y1 = torch.rand(num, generator=generator) * (height - bh)
    return torch.stack([torch.zeros(num), x1, y1, x1 + bw, y1 + bh], dim=1)


def build_cases(args: argparse.Namespace, device: torch.device) -> Cases:
    """Closures ``fn(backward)`` running each mask branch once.

    Args:
        args (argparse.Namespace): Parsed arguments.
        device (torch.device): Device.

    Returns:
        dict[str, Callable]: ``name -> fn``.
    """
    from mmdr1.models.layers import Blender

    g = torch.Generator().manual_seed(args.seed)
    height, width = args.input_size
    num = args.num_instances
    rois = random_rois(num, height, width, g).to(device)
    blender = Blender(
        num_bases=args.num_bases,
        attn_size=args.attn_size,
        bottom_resolution=args.bottom_resolution).to(device)
    bases = torch.randn((1, args.num_bases, height // 4, width // 4),
                        generator=g).to(device).requires_grad_()
    attns = torch.randn((num, args.num_bases * args.attn_size**2),
                        generator=g).to(device).requires_grad_()

    def run_blender(backward: bool) -> None:
        with torch.set_grad_enabled(backward):
            out = blender(bases, rois, attns)
            if backward:
                out.sum().backward()

    cases = {'blender': run_blender}
    if args.no_mask_rcnn:
        return cases

    from mmcv.ops import RoIAlign
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead

    roi_align = RoIAlign(14, 0.25, sampling_ratio=0, aligned=True)
    mask_head = FCNMaskHead(
        num_convs=4, in_channels=256, conv_out_channels=256,
        num_classes=80).to(device)
    feats = torch.randn((1, 256, height // 4, width // 4),
                        generator=g).to(device).requires_grad_()

    def run_mask_rcnn(backward: bool) -> None:
        with torch.set_grad_enabled(backward):
            out = mask_head(roi_align(feats, rois))
            if backward:
                out.sum().backward()

    cases['mask_rcnn'] = run_mask_rcnn
    return cases


def benchmark(cases: Cases, backward: bool, repeat: int, warmup: int,
              device: torch.device) -> Dict[str, float]:
    """Median milliseconds per case, runs interleaved round-robin.

    Args:
        cases (dict[str, Callable]): ``name -> fn(backward)``.
        backward (bool): Time forward + backward instead of forward.
        repeat (int): Timed runs per case.
        warmup (int): Untimed runs per case first.
        device (torch.device): Synchronised when CUDA.

    Returns:
        dict[str, float]: ``name -> median ms``.
    """
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    for fn in cases.values():
        for _ in range(warmup):
            fn(backward)
    sync()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn(backward)
            sync()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Run the benchmark and print a table.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        dict[str, float]: ``'<case>/<mode>' -> median ms``.
    """
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = build_cases(args, device)
    height, width = args.input_size
    print(f'device: {device} ({torch.get_num_threads()} CPU threads), '
          f'torch {torch.__version__}')
    print(f'{args.num_instances} instances, input {height}x{width}, '
          f'bases {args.num_bases}x{height // 4}x{width // 4}, '
          f'attention {args.attn_size}x{args.attn_size}, masks '
          f'{args.bottom_resolution}x{args.bottom_resolution}; median of '
          f'{args.repeat} runs after {args.warmup} warm-up runs')
    results = {}
    print(f'{"mode":<18}' + ''.join(f'{name:>14}' for name in cases) +
          ('   ratio' if len(cases) > 1 else ''))
    for mode, backward in (('forward', False), ('forward+backward', True)):
        ms = benchmark(cases, backward, args.repeat, args.warmup, device)
        line = f'{mode:<18}' + ''.join(f'{ms[n]:>11.2f} ms' for n in cases)
        if len(cases) > 1:
            line += f'   {ms["mask_rcnn"] / ms["blender"]:.1f}x'
        print(line)
        results.update({f'{n}/{mode}': v for n, v in ms.items()})
    if len(cases) > 1:
        print('ratio = mask_rcnn / blender (times faster for the blender)')
    return results


if __name__ == '__main__':
    main()
