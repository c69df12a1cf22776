# Copyright (c) mmdr1 contributors. All rights reserved.
"""Time DR1Mask's DR1Basis next to BlendMask's ProtoNet basis module.

DR1Mask's claim (paper section 3.2.2, dr1mask spec section 3): DR1Basis is
"one block with 1/4 of the channels" of BlendMask's bottom module, so it must
be measurably cheaper. Both modules get the FPN maps of one R-50 input of
``--input-size`` (256 channels; P3-P7 for DR1Basis with its contexts
``[A, B]``, P3-P5 for ProtoNet), in inference mode; the script prints the
median forward time (runs interleaved round-robin in one process),
parameters and FLOPs (mmengine's ``FlopAnalyzer``, multiply-add = 1).

Example::

    python tools/analysis_tools/benchmark_basis.py
    python tools/analysis_tools/benchmark_basis.py --input-size 512 512 \\
        --threads 1 --device cuda
"""
import argparse
import math
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Benchmark DR1Basis vs the ProtoNet basis module')
    parser.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        default=[800, 1216],
        metavar=('H', 'W'),
        help='padded network input size')
    parser.add_argument(
        '--widths',
        type=int,
        nargs='+',
        default=[32, 64],
        help='DR1Basis widths C to time (32 instance, 64 panoptic)')
    parser.add_argument('--fpn-channels', type=int, default=256)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--no-flops', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def level_sizes(height: int, width: int,
                strides: Sequence[int]) -> List[Tuple[int, int]]:
    """Feature sizes ``ceil(size / stride)`` of each level."""
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def build_cases(
    args: argparse.Namespace, device: torch.device
) -> Dict[str, Tuple[nn.Module, Tuple[torch.Tensor, ...]]]:
    """Modules in eval mode with their inputs.

    Args:
        args (argparse.Namespace): Parsed arguments.
        device (torch.device): Device.

    Returns:
        dict: ``name -> (module, inputs)``; ``module(*inputs)`` runs it.
    """
    from mmdr1.models.necks import DR1Basis
    from mmdr1.models.seg_heads import ProtoNetBasis

    g = torch.Generator().manual_seed(args.seed)
    height, width = args.input_size
    sizes = level_sizes(height, width, (8, 16, 32, 64, 128))
    feats = [
        torch.randn((1, args.fpn_channels, h, w), generator=g).to(device)
        for h, w in sizes
    ]
    cases = {}
    proto = ProtoNetBasis(
        in_channels=args.fpn_channels,
        norm_cfg=dict(type='BN', requires_grad=True)).to(device).eval()
    cases['protonet (BlendMask)'] = (_FirstOutput(proto), (feats[:3], ))
    for c in args.widths:
        basis = DR1Basis(
            in_channels=args.fpn_channels, channels=c,
            num_levels=5).to(device).eval()
        contexts = [
            torch.randn((1, 2 * c, h, w), generator=g).to(device)
            for h, w in sizes
        ]
        size = (math.ceil(height / 4), math.ceil(width / 4))
        cases[f'dr1basis C={c}'] = (_WithSize(basis, size), (feats, contexts))
    return cases


class _FirstOutput(nn.Module):
    """ProtoNetBasis returns (bases, sem_logits): keep the bases."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        return self.module(feats)[0]


class _WithSize(nn.Module):
    """DR1Basis with a fixed output size (a quarter of the input)."""

    def __init__(self, module: nn.Module, size: Tuple[int, int]) -> None:
        super().__init__()
        self.module = module
        self.size = size

    def forward(self, feats: List[torch.Tensor],
                contexts: List[torch.Tensor]) -> torch.Tensor:
        return self.module(feats, contexts, output_size=self.size)


def count_flops(module: nn.Module, inputs: Tuple) -> Optional[float]:
    """GFLOPs of one forward (mmengine ``FlopAnalyzer``), or None."""
    from mmengine.analysis import FlopAnalyzer

    ups = [m for m in module.modules() if hasattr(m, 'impl')]
    saved = [m.impl for m in ups]
    for m in ups:  # the traced reference has the same arithmetic
        m.impl = 'ref'
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(module, inputs)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return analyzer.total() / 1e9
    except Exception:  # noqa: BLE001  tracing can fail on exotic ops
        return None
    finally:
        for m, impl in zip(ups, saved):
            m.impl = impl


def time_cases(cases: Dict[str, Callable[[], torch.Tensor]], repeat: int,
               warmup: int, device: torch.device) -> Dict[str, float]:
    """Median ms per case, interleaved round-robin."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    with torch.no_grad():
        for fn in cases.values():
            for _ in range(warmup):
                fn()
        sync()
        times: Dict[str, List[float]] = {name: [] for name in cases}
        for _ in range(repeat):
            for name, fn in cases.items():
                start = time.perf_counter()
                fn()
                sync()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Run the benchmark and print a table.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        dict: ``name -> {'ms', 'params_m', 'gflops', 'ratio'}``.
    """
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = build_cases(args, device)
    fns = {name: (lambda m=m, i=i: m(*i)) for name, (m, i) in cases.items()}
    ms = time_cases(fns, args.repeat, args.warmup, device)
    first = next(iter(ms.values()))
    height, width = args.input_size
    print(f'device: {device} ({torch.get_num_threads()} CPU threads), '
          f'torch {torch.__version__}')
    print(f'input {height}x{width}: FPN maps of {args.fpn_channels} '
          f'channels; median of {args.repeat} runs after {args.warmup} '
          'warm-up runs, inference mode')
    print(f'{"module":<22}{"ms":>10}{"params (M)":>12}{"GFLOPs":>10}'
          f'{"ratio":>8}')
    results = {}
    for name, (module, inputs) in cases.items():
        # inference parameters (ProtoNet's training-only seg head excluded)
        params = sum(p.numel() for n, p in module.named_parameters()
                     if '.seg_head.' not in n) / 1e6
        flops = None if args.no_flops else count_flops(module, inputs)
        flops_txt = 'n/a' if flops is None else f'{flops:.2f}'
        ratio = ms[name] / first
        print(f'{name:<22}{ms[name]:>10.1f}{params:>12.3f}{flops_txt:>10}'
              f'{ratio:>8.2f}')
        results[name] = dict(
            ms=ms[name],
            params_m=params,
            gflops=flops if flops is not None else float('nan'),
            ratio=ratio)
    print('ratio: median time / median time of the ProtoNet basis; '
          "ProtoNet's training-only semantic head is neither run nor "
          'counted; element-wise multiply/add are not counted as FLOPs')
    return results


if __name__ == '__main__':
    main()
