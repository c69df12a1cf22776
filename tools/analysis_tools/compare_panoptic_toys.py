# Copyright (c) mmdr1 contributors. All rights reserved.
"""Train several toy panoptic configs side by side and compare their PQ.

The learning check of the DR1Mask issue ("toy DR1Mask panoptic learns at
least as well as toy BlendMask panoptic, same budget, same run, same
data"): every config is trained with ``tools/train.py`` for its own
schedule (the toys share ``schedule_toy_1000it``) on the same toy set, with
the same seeds, the runs of one seed in parallel (the cores split evenly
between them); then the PQ / SQ / RQ of the last validation of every run is
printed, per seed and averaged. Example (two seeds, about 50 minutes on two
cores)::

    python tools/analysis_tools/compare_panoptic_toys.py \\
        configs/dr1mask/dr1mask_panoptic_r18_toy.py \\
        configs/blendmask/panoptic_blendmask_r18_toy.py \\
        --seeds 0 1 --work-dir work_dirs/compare_toys

The toy set must exist (``python tools/dataset_converters/
make_toy_panoptic.py``). ``--skip-train`` only reads existing logs.
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KEYS = ('PQ', 'SQ', 'RQ', 'PQ_th', 'RQ_th', 'PQ_st', 'RQ_st')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='toy configs to compare')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0], help='random seeds')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/compare_panoptic_toys',
        help='runs go to WORK_DIR/<config name>_seed<seed>')
    parser.add_argument(
        '--threads',
        type=int,
        default=max(1, (os.cpu_count() or 2)),
        help='CPU threads shared by the parallel runs of one seed')
    parser.add_argument(
        '--skip-train',
        action='store_true',
        help='only read the logs of earlier runs')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra --cfg-options for every run')
    return parser.parse_args(argv)


def run_dir(work_dir: str, config: str, seed: int) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, f'{name}_seed{seed}')


def last_val_metrics(log_dir: str) -> Dict[str, float]:
    """``coco_panoptic/*`` of the last validation in the newest log."""
    logs = []
    for root, _, files in os.walk(log_dir):
        logs += [osp.join(root, f) for f in files if f.endswith('.log')]
    if not logs:
        raise FileNotFoundError(f'no training log below {log_dir}')
    text = open(max(logs, key=osp.getmtime)).read()
    lines = [ln for ln in text.splitlines() if 'coco_panoptic/PQ:' in ln]
    if not lines:
        raise ValueError(f'{log_dir}: the log has no panoptic validation')
    values = dict(re.findall(r'coco_panoptic/(\w+): ([0-9.]+)', lines[-1]))
    return {k: float(values[k]) for k in KEYS}


def train(configs: List[str], seed: int, args: argparse.Namespace) -> None:
    threads = max(1, args.threads // len(configs))
    procs = []
    for config in configs:
        out = run_dir(args.work_dir, config, seed)
        os.makedirs(out, exist_ok=True)
        cmd = [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', out,
            '--cfg-options', f'randomness.seed={seed}', *args.cfg_options
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        log = open(osp.join(out, 'train.out'), 'w')
        print(f'[seed {seed}] {" ".join(cmd)} ({threads} threads)')
        procs.append((config,
                      subprocess.Popen(
                          cmd, stdout=log, stderr=subprocess.STDOUT,
                          env=env), log))
    for config, proc, log in procs:
        if proc.wait() != 0:
            raise RuntimeError(f'training {config} (seed {seed}) failed, see '
                               f'{log.name}')
        log.close()


def main(argv: Optional[List[str]] = None) -> Dict[str, List[dict]]:
    args = parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
    results: Dict[str, List[dict]] = {c: [] for c in args.configs}
    for seed in args.seeds:
        if not args.skip_train:
            start = time.time()
            train(args.configs, seed, args)
            print(f'[seed {seed}] trained in {time.time() - start:.0f} s')
        for config in args.configs:
            metrics = last_val_metrics(run_dir(args.work_dir, config, seed))
            results[config].append(metrics)
    header = f'{"config":48s} {"seed":>5s} ' + ' '.join(f'{k:>6s}'
                                                        for k in KEYS)
    print(header)
    for config, runs in results.items():
        name = osp.splitext(osp.basename(config))[0]
        for seed, metrics in zip(args.seeds, runs):
            print(f'{name:48s} {seed:5d} ' + ' '.join(f'{metrics[k]:6.1f}'
                                                      for k in KEYS))
        mean = {k: sum(m[k] for m in runs) / len(runs) for k in KEYS}
        print(f'{name:48s} {"mean":>5s} ' + ' '.join(f'{mean[k]:6.1f}'
                                                     for k in KEYS))
    return results


if __name__ == '__main__':
    main()
