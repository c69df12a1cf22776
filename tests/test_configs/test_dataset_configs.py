# Copyright (c) mmdr1 contributors. All rights reserved.
"""The dataset base configs resolve and their pipelines run on toy data.

``coco_instance.py`` (mmdet's COCO instance recipe) runs on the toy set's
COCO instance file, ``cityscapes_panoptic.py`` and its 1/8-scale toy
version on a converted toy Cityscapes set, ``coco_panoptic.py`` on the toy
panoptic set; the COCO configs with the toy classes (``metainfo``).
"""
import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmdr1  # noqa: F401  (registers the mmdr1 datasets)

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / 'configs' / '_base_' / 'datasets'


def _load(name: str) -> Config:
    return Config.fromfile(str(BASE / name))


@pytest.fixture(scope='module')
def toy_coco(tmp_path_factory) -> str:
    from mmdr1.datasets import make_toy_panoptic
    root = str(tmp_path_factory.mktemp('toy_coco'))
    make_toy_panoptic(root, num_train=3, num_val=1, img_size=64)
    return root


def _samples(dataset_cfg, num: int = 2) -> list:
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_cfg)
        return [dataset[i % len(dataset)] for i in range(num)]


def _transforms(pipeline) -> list:
    """``(type name, arguments)`` of a pipeline, for comparisons."""
    out = []
    for t in pipeline:
        t = dict(t)
        kind = t.pop('type')
        out.append((kind if isinstance(kind, str) else kind.__name__, t))
    return out


def test_coco_instance_is_mmdets_recipe() -> None:
    mmdet_root = Path(importlib.util.find_spec('mmdet').origin).parent
    ref = Config.fromfile(
        str(mmdet_root / '.mim' / 'configs' / '_base_' / 'datasets' /
            'coco_instance.py'))
    cfg = _load('coco_instance.py')
    for key in ('train_dataloader', 'val_dataloader'):
        ours, theirs = cfg[key], ref[key]
        assert _transforms(ours.dataset.pipeline) == \
            _transforms(theirs.dataset.pipeline)
        for field in ('ann_file', 'data_prefix', 'data_root'):
            assert ours.dataset.get(field) == theirs.dataset.get(field)
        assert ours.dataset.get('filter_cfg') == \
            theirs.dataset.get('filter_cfg')
        assert ours.batch_size == theirs.batch_size
    assert cfg.val_evaluator.metric == ref.val_evaluator.metric
    assert cfg.val_evaluator.ann_file == ref.val_evaluator.ann_file


def test_coco_instance_pipeline(toy_coco: str) -> None:
    from mmdr1.datasets import ToyInstanceDataset
    cfg = _load('coco_instance.py')
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.update(
        data_root=toy_coco,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        metainfo=ToyInstanceDataset.METAINFO)
    # toy image 0 has things; image 1 none (filtered); 2 a crowd only
    first, crowd = _samples(dataset_cfg)
    for data in (first, crowd):
        h, w = data['inputs'].shape[-2:]
        assert (h, w) == (800, 800)  # 64 x 64 -> 1333 x 800, keep ratio
        inst = data['data_samples'].gt_instances
        assert inst.masks.to_ndarray().shape == (len(inst), h, w)
    assert len(first['data_samples'].gt_instances) > 0
    assert len(crowd['data_samples'].gt_instances) == 0
    assert len(crowd['data_samples'].ignored_instances) == 1


def test_cityscapes_panoptic_recipe(toy_cityscapes: str) -> None:
    from mmdr1.datasets import CityscapesPanopticDataset
    cfg = _load('cityscapes_panoptic.py')
    train = cfg.train_dataloader.dataset
    assert train.type is CityscapesPanopticDataset
    kinds = _transforms(train.pipeline)
    assert [k for k, _ in kinds] == [
        'LoadImageFromFile', 'LoadPanopticAnnotations', 'RandomResize',
        'RandomCrop', 'FilterAnnotations', 'RandomFlip', 'PackDetInputs'
    ]
    assert kinds[4][1] == dict(min_gt_bbox_wh=(1e-2, 1e-2), keep_empty=False)
    assert kinds[2][1]['scale'] == (2048, 1024)
    assert kinds[2][1]['ratio_range'] == (0.5, 2.0)
    assert kinds[3][1]['crop_size'] == (1024, 512)  # (w, h): 512 x 1024
    val = cfg.val_dataloader.dataset
    assert _transforms(val.pipeline)[1] == ('Resize',
                                            dict(
                                                scale=(2048, 1024),
                                                keep_ratio=True))
    # the metric reads the files of the val dataset
    assert cfg.val_evaluator.ann_file == cfg.data_root + val.ann_file
    assert cfg.val_evaluator.seg_prefix == cfg.data_root + \
        val.data_prefix.seg

    dataset_cfg = copy.deepcopy(train)
    dataset_cfg.data_root = toy_cityscapes
    np.random.seed(0)
    for data in _samples(dataset_cfg, 3):
        sample = data['data_samples']
        assert data['inputs'].shape == (3, 512, 1024)
        sem = sample.gt_sem_seg.sem_seg
        assert sem.shape == (1, 512, 1024)
        assert set(sem.unique().tolist()) <= set(range(19)) | {255}
        boxes = sample.gt_instances.bboxes.tensor
        assert (boxes[:, 2:] <= boxes.new_tensor([1024, 512])).all()
    dataset_cfg = copy.deepcopy(val)
    dataset_cfg.data_root = toy_cityscapes
    data = _samples(dataset_cfg, 1)[0]
    assert data['inputs'].shape == (3, 1024, 2048)
    assert data['data_samples'].ori_shape == (64, 128)


def test_toy_cityscapes_is_the_recipe_at_one_eighth(
        toy_cityscapes: str) -> None:
    real, toy = _load('cityscapes_panoptic.py'), _load(
        'toy_cityscapes_panoptic.py')
    for key in ('train_dataloader', 'val_dataloader'):
        ours = _transforms(toy[key].dataset.pipeline)
        ref = _transforms(real[key].dataset.pipeline)
        assert [k for k, _ in ours] == [k for k, _ in ref]
        for (kind, args), (_, ref_args) in zip(ours, ref):
            for field in ('scale', 'crop_size'):
                if field in args:
                    assert tuple(8 * s for s in args[field]) == \
                        tuple(ref_args[field])
                    args = {k: v for k, v in args.items() if k != field}
                    ref_args = {
                        k: v
                        for k, v in ref_args.items() if k != field
                    }
            assert args == ref_args, kind
    dataset_cfg = copy.deepcopy(toy.train_dataloader.dataset)
    dataset_cfg.data_root = toy_cityscapes + '/'
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_cfg)
    # 60 random crops; without FilterAnnotations 3 boxes of these have zero
    # size (cut by the crop border, no mask pixel left): a NaN box loss
    for seed in range(5):
        np.random.seed(seed)
        for idx in range(12):
            data = dataset[idx % len(dataset)]
            assert data['inputs'].shape == (3, 64, 128)
            boxes = data['data_samples'].gt_instances.bboxes.tensor
            assert ((boxes[:, 2:] - boxes[:, :2]) > 0).all()
    dataset_cfg = copy.deepcopy(toy.val_dataloader.dataset)
    dataset_cfg.data_root = toy_cityscapes + '/'
    assert _samples(dataset_cfg, 1)[0]['inputs'].shape == (3, 128, 256)


def test_coco_panoptic_pipeline(toy_coco: str) -> None:
    from mmdr1.datasets import ToyPanopticDataset
    cfg = _load('coco_panoptic.py')
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.update(
        data_root=toy_coco,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        metainfo=ToyPanopticDataset.METAINFO)
    num_things = len(ToyPanopticDataset.METAINFO['thing_classes'])
    for data in _samples(dataset_cfg):
        sample = data['data_samples']
        sem = sample.gt_sem_seg.sem_seg[0]
        assert sem.shape == data['inputs'].shape[-2:] == (800, 800)
        for mask, label in zip(sample.gt_instances.masks.to_ndarray(),
                               sample.gt_instances.labels.tolist()):
            assert label < num_things
            assert (sem[mask.astype(bool)] == label).all()
