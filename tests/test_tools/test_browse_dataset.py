# Copyright (c) mmdr1 contributors. All rights reserved.
"""Visual checks: ``browse_dataset.py`` and ``tools/test.py --show-dir``.

``browse_dataset.py`` draws the panoptic ground truth of the toy COCO
panoptic set and of a converted toy Cityscapes set (with the real
Cityscapes recipe and the toy one) to PNG. The last test is the toy
Cityscapes route end to end: the converter's output trains a Panoptic FPN
for two iterations (``tools/train.py``, PQ at the end) and
``tools/test.py --show-dir`` writes the panoptic overlays and prints PQ.
"""
import contextlib
import importlib.util
import io
import os
import os.path as osp
import subprocess
import sys
from glob import glob
from pathlib import Path
from typing import List

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
BROWSE = TOOLS / 'analysis_tools' / 'browse_dataset.py'
CONVERTER = TOOLS / 'dataset_converters' / 'cityscapes.py'
TOY_COCO_CONFIG = REPO / 'configs' / 'toy' / 'panoptic_fpn_r18_toy.py'
TOY_CS_CONFIG = REPO / 'configs' / 'toy' / 'panoptic_fpn_r18_toy_cityscapes.py'
CS_CONFIG = REPO / 'configs' / '_base_' / 'datasets' / 'cityscapes_panoptic.py'
NO_WORKERS = [
    f'{loader}_dataloader.{key}' for loader in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False')
]


def _module(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(path))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.fixture(scope='module')
def browse():
    return _module('mmdr1_browse_dataset', BROWSE)


@pytest.fixture(scope='module')
def toy_coco(tmp_path_factory) -> str:
    from mmdr1.datasets import make_toy_panoptic
    root = str(tmp_path_factory.mktemp('toy_coco'))
    make_toy_panoptic(root, num_train=3, num_val=2, img_size=64)
    return root


@pytest.fixture(scope='module')
def toy_cityscapes(tmp_path_factory) -> str:
    """A converted toy Cityscapes set, in ``<dir>/data/toy_cityscapes``
    (the toy config's relative ``data_root``)."""
    from mmdr1.datasets import make_toy_cityscapes
    root = str(tmp_path_factory.mktemp('run'))
    data = osp.join(root, 'data', 'toy_cityscapes')
    make_toy_cityscapes(data, num_train=4, num_val=2, img_size=(64, 128))
    conv = _module('mmdr1_cityscapes_converter', CONVERTER)
    out = osp.join(data, 'annotations')
    os.makedirs(out)
    with contextlib.redirect_stdout(io.StringIO()):
        for split in ('train', 'val'):
            conv.convert_split(data, out, split)
    return data


def _browse(browse, args: List[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        browse.main(args + ['--not-show'])


def _pictures(folder: str) -> List[np.ndarray]:
    return [
        np.array(Image.open(p))
        for p in sorted(glob(osp.join(folder, '*.png')))
    ]


def test_panoptic_gt_map(browse, toy_coco: str) -> None:
    """Things ``label + k * 1000``, stuff and crowd by label, VOID."""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmdr1.datasets import ToyPanopticDataset
    cfg = Config.fromfile(str(TOY_COCO_CONFIG))
    ds_cfg = cfg.val_dataloader.dataset
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = ToyPanopticDataset(
            data_root=toy_coco + '/',
            ann_file=ds_cfg.ann_file,
            data_prefix=ds_cfg.data_prefix,
            test_mode=True,
            pipeline=ds_cfg.pipeline)
    num_classes = len(ds.metainfo['classes'])
    for idx in range(len(ds)):
        item = ds[idx]
        sample = item['data_samples'].numpy()
        pan = browse.panoptic_gt(sample, num_classes)
        segments = ds.get_data_info(idx)['segments_info']
        # one region per segment (one stuff segment per class, at most
        # one crowd segment per class in the toy images)
        ids = set(np.unique(pan).tolist()) - {num_classes}
        assert len(ids) == len(segments)
        things = [i for i in ids if i >= INSTANCE_OFFSET]
        assert len(things) == len(sample.gt_instances)
        drawn = browse.drawable_sample(sample, ds.metainfo, (32, 48))
        assert drawn.gt_panoptic_seg.sem_seg.shape == (1, 32, 48)
        assert set(np.unique(drawn.gt_panoptic_seg.sem_seg).tolist()) <= \
            ids | {num_classes}


def test_browse_coco_toy(browse, toy_coco: str, tmp_path) -> None:
    out = str(tmp_path / 'coco')
    _browse(browse, [
        str(TOY_COCO_CONFIG), '--split', 'val', '--output-dir', out,
        '--cfg-options', f'val_dataloader.dataset.data_root={toy_coco}/'
    ])
    pictures = _pictures(out)
    assert len(pictures) == 2
    for pic, img in zip(pictures, sorted(glob(f'{toy_coco}/val/*.jpg'))):
        assert pic.shape == (256, 256, 3)  # the test pipeline's size
        # coloured regions and labels drawn over the image
        raw = np.array(Image.open(img).resize((256, 256)))
        assert np.abs(pic.astype(int) - raw).mean() > 10


def test_browse_cityscapes(browse, toy_cityscapes: str, tmp_path) -> None:
    # the real recipe: 512 x 1024 crops of rescaled images
    out = str(tmp_path / 'recipe')
    _browse(browse, [
        str(CS_CONFIG), '--max-images', '1', '--output-dir', out,
        '--cfg-options', f'train_dataloader.dataset.data_root={toy_cityscapes}'
    ])
    pictures = _pictures(out)
    assert len(pictures) == 1 and pictures[0].shape == (512, 1024, 3)
    # the toy config, validation images at 256 x 128
    out = str(tmp_path / 'toy')
    _browse(browse, [
        str(TOY_CS_CONFIG), '--split', 'val', '--output-dir', out,
        '--cfg-options', f'val_dataloader.dataset.data_root={toy_cityscapes}/'
    ])
    names = sorted(os.listdir(out))
    assert names == sorted(
        osp.basename(p) for p in glob(
            osp.join(toy_cityscapes, 'leftImg8bit', 'val', '*', '*.png')))
    for pic in _pictures(out):
        assert pic.shape == (128, 256, 3)
        assert len(np.unique(pic.reshape(-1, 3), axis=0)) > 50


def _run(args: List[str], cwd: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


@pytest.mark.slow
def test_toy_cityscapes_train_test_show_dir(toy_cityscapes: str) -> None:
    cwd = osp.dirname(osp.dirname(toy_cityscapes))  # data/ lives here
    work = osp.join(cwd, 'work')
    options = [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ] + NO_WORKERS
    log = _run([
        str(TOOLS / 'train.py'),
        str(TOY_CS_CONFIG), '--work-dir', work, '--cfg-options', *options
    ], cwd)
    assert 'Iter(train) [2/2]' in log
    assert 'coco_panoptic/PQ' in log
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    test_dir = osp.join(cwd, 'work_test')
    log = _run([
        str(TOOLS / 'test.py'),
        str(TOY_CS_CONFIG), ckpt, '--work-dir', test_dir, '--show-dir', 'vis',
        '--cfg-options', *NO_WORKERS
    ], cwd)
    assert 'Panoptic Evaluation Results' in log
    assert 'coco_panoptic/PQ' in log
    overlays = sorted(glob(osp.join(test_dir, '*', 'vis', '*.png')))
    assert [osp.basename(p) for p in overlays] == sorted(
        osp.basename(p) for p in glob(
            osp.join(toy_cityscapes, 'leftImg8bit', 'val', '*', '*.png')))
    for path in overlays:
        # ground truth | prediction, side by side
        assert np.array(Image.open(path)).shape == (64, 256, 3)
