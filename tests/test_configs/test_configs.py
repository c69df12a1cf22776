# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the shipped configs and of the classic mmdet config route."""
import os
from pathlib import Path
from typing import List

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

REPO = Path(__file__).resolve().parents[2]
CONFIG_ROOT = REPO / 'configs'
CONFIGS = sorted(CONFIG_ROOT.rglob('*.py'))
# Folders of the checkout that are not part of the source tree (hidden
# folders such as .git, .mim links and virtual environments are skipped too).
SKIP_DIRS = {'data', 'work_dirs', 'build', 'dist', '__pycache__'}


def _config_id(path: Path) -> str:
    return str(path.relative_to(CONFIG_ROOT))


def _source_py_files() -> List[Path]:
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [
            d for d in dirs
            if d not in SKIP_DIRS and not d.startswith('.') and not d.endswith(
                '.egg-info') and not (Path(root) / d / 'pyvenv.cfg').exists()
        ]
        files.extend(Path(root) / n for n in names if n.endswith('.py'))
    return files


def test_config_basenames_unique() -> None:
    # `mim train mmdr1 NAME.py` finds configs by basename in the whole
    # package tree (configs, tools and the mmdr1 modules).
    assert CONFIGS
    names = {}
    for path in _source_py_files():
        names.setdefault(path.name, []).append(path)
    for cfg in CONFIGS:
        assert '-' not in cfg.name, f'{cfg}: pure-Python configs need ' \
            'module-like names (underscores, no hyphens)'
        assert len(names[cfg.name]) == 1, \
            f'config basename {cfg.name} is not unique: {names[cfg.name]}'


@pytest.mark.parametrize('path', CONFIGS, ids=_config_id)
def test_config_loads_and_builds(path: Path) -> None:
    from mmdet.registry import MODELS

    import mmdr1  # noqa: F401
    cfg = Config.fromfile(str(path))
    if path.parent.name in ('datasets', 'schedules') or path.name in (
            'default_runtime.py', ):
        assert 'model' not in cfg
    if 'default_hooks' in cfg:
        assert cfg.default_scope == 'mmdet'
    if 'model' not in cfg:
        return
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)  # no init_weights: no downloads
    assert sum(p.numel() for p in model.parameters()) > 0


def test_toy_config_matches_dataset() -> None:
    from mmdr1.datasets import ToyPanopticDataset
    cfg = Config.fromfile(str(CONFIG_ROOT / 'toy' / 'panoptic_fpn_r18_toy.py'))
    meta = ToyPanopticDataset.METAINFO
    num_things = len(meta['thing_classes'])
    num_stuff = len(meta['stuff_classes'])
    model = cfg.model
    assert model.roi_head.bbox_head.num_classes == num_things
    assert model.roi_head.mask_head.num_classes == num_things
    for head in (model.semantic_head, model.panoptic_fusion_head):
        assert head.num_things_classes == num_things
        assert head.num_stuff_classes == num_stuff
    assert model.backbone.depth == 18
    assert model.backbone.init_cfg is None  # trained from scratch
    assert cfg.train_dataloader.dataset.type is ToyPanopticDataset
    assert cfg.val_evaluator.ann_file.endswith('annotations/panoptic_val.json')


CLASSIC_CONFIG = """\
_base_ = ['mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmdr1'], allow_failed_imports=False)

data_root = {data_root!r}
num_things, num_stuff = 3, 3
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(
        bbox_head=dict(num_classes=num_things),
        mask_head=dict(num_classes=num_things)),
    semantic_head=dict(
        num_things_classes=num_things, num_stuff_classes=num_stuff),
    panoptic_fusion_head=dict(
        num_things_classes=num_things, num_stuff_classes=num_stuff))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    dataset=dict(
        type='ToyPanopticDataset',
        data_root=data_root,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline))
"""


def test_classic_mmdet_config_route(tmp_path: Path) -> None:
    """A classic ``mmdet::`` config uses mmdr1 parts by registered name."""
    from mmdet.registry import DATASETS, MODELS

    from mmdr1.datasets import make_toy_panoptic
    data_root = tmp_path / 'toy_panoptic'
    make_toy_panoptic(
        str(data_root), num_train=2, num_val=1, img_size=64, seed=0)
    cfg_file = tmp_path / 'classic_panoptic_fpn_toy.py'
    cfg_file.write_text(CLASSIC_CONFIG.format(data_root=f'{data_root}/'))

    cfg = Config.fromfile(str(cfg_file))  # runs custom_imports
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.type == 'PanopticFPN'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        model = MODELS.build(cfg.model)
        upsample = MODELS.build(dict(type='AlignedUpsample', factor=2))
    assert type(dataset).__name__ == 'ToyPanopticDataset'
    assert len(dataset) == 2
    assert dataset.metainfo['thing_classes'] == ('disk', 'box', 'triangle')
    assert type(upsample).__name__ == 'AlignedUpsample'

    torch.manual_seed(0)
    model.init_weights()
    batch = pseudo_collate([dataset[0], dataset[1]])
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_rpn_cls', 'loss_cls', 'loss_mask', 'loss_seg'} <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        results = model.predict(data['inputs'], data['data_samples'])
        # The registered mmdr1 layer works on the model's FPN features:
        # P3 upsampled to the P2 grid.
        feats = model.extract_feat(data['inputs'])
        up = upsample(feats[1], size=feats[0].shape[-2:])
    assert up.shape == feats[0].shape
    assert len(results) == 2
    for result in results:
        sem = result.pred_panoptic_seg.sem_seg
        assert sem.shape[-2:] == tuple(result.ori_shape)
