# Copyright (c) mmdr1 contributors. All rights reserved.
"""Reference values of the COCO BlendMask configs (blendmask spec 4-13).

The generic "every config loads and builds" check lives in
``test_configs.py``; here the AdelaiDet numbers are asserted on the loaded
configs, the models are run once on a tiny image and the AdelaiDet
checkpoint converter's key names are checked against the built models.
Nothing is downloaded: ``init_weights`` is never called.
"""
import copy
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdr1.testing import demo_coco_batch, no_sync_bn, type_name

REPO = Path(__file__).resolve().parents[2]
CFG_DIR = REPO / 'configs' / 'blendmask'
TOOL = REPO / 'tools' / 'model_converters' / 'adelaidet_blendmask.py'

# (max_iters, LR milestones) of the reference's schedules (spec 11.3).
S1X = (90000, [60000, 80000])
S3X = (270000, [210000, 250000])
S4X = (360000, [300000, 340000])
# name: (backbone depth, schedule, variant)
INSTANCE = {
    'blendmask_r50_fpn_1x_coco': (50, S1X, 'base'),
    'blendmask_r50_fpn_3x_coco': (50, S3X, 'base'),
    'blendmask_r101_fpn_3x_coco': (101, S3X, 'base'),
    'blendmask_550_r50_fpn_1x_coco': (50, S1X, '550'),
    'blendmask_550_r50_fpn_3x_coco': (50, S3X, '550'),
    'blendmask_rt_r50_fpn_4x_syncbn_shtw_coco': (50, S4X, 'rt'),
}
PANOPTIC = {
    'panoptic_blendmask_r50_fpn_1x_coco': (50, S1X, 'panoptic'),
    'panoptic_blendmask_r50_fpn_3x_coco': (50, S3X, 'panoptic'),
    'panoptic_blendmask_r101_fpn_3x_coco': (101, S3X, 'panoptic'),
}
ALL = {**INSTANCE, **PANOPTIC}

# Per variant (spec 11.3): FPN outputs, FCOS strides / ranges / towers,
# basis tower convs, train short sides / max size, test size.
INF = 1e8
VARIANTS = dict(
    base=dict(
        num_outs=5,
        strides=(8, 16, 32, 64, 128),
        ranges=((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)),
        stacked_convs=4,
        num_share_convs=0,
        basis_convs=3,
        train_scales=[(1333, s) for s in range(640, 801, 32)],
        test_scale=(1333, 800)),
    panoptic=dict(
        num_outs=6,  # P2-P7; the instance branch gets P3-P7
        strides=(8, 16, 32, 64, 128),
        ranges=((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)),
        stacked_convs=4,
        num_share_convs=0,
        basis_convs=3,
        train_scales=[(1333, s) for s in range(640, 801, 32)],
        test_scale=(1333, 800)),
    **{
        '550':
        dict(
            num_outs=4,
            strides=(8, 16, 32, 64),
            ranges=((-1, 64), (64, 128), (128, 256), (256, INF)),
            stacked_convs=0,
            num_share_convs=3,
            basis_convs=2,
            train_scales=[(916, s) for s in (440, 462, 484, 506, 528, 550)],
            test_scale=(916, 550)),
        'rt':
        dict(
            num_outs=3,
            strides=(8, 16, 32),
            ranges=((-1, 64), (64, 128), (128, INF)),
            stacked_convs=0,
            num_share_convs=3,
            basis_convs=2,
            train_scales=[(900, s) for s in range(256, 609, 32)],
            test_scale=(736, 512)),
    })


def _panoptic_missing() -> Optional[str]:
    """Why the panoptic configs cannot be loaded yet (None if they can)."""
    import mmdr1.datasets.transforms as transforms
    import mmdr1.models as models
    missing = [
        name for name in ('PanopticBlendMask', 'SemSegFPNHead',
                          'ScoreThrHeuristicFusionHead')
        if not hasattr(models, name)
    ]
    if not hasattr(transforms, 'PackDetInputsWithThingSem'):
        missing.append('PackDetInputsWithThingSem')
    if missing:
        return f'panoptic BlendMask classes not available yet: {missing}'
    return None


PANOPTIC_SKIP = _panoptic_missing()
needs_panoptic = pytest.mark.skipif(
    PANOPTIC_SKIP is not None, reason=str(PANOPTIC_SKIP))


def _params(names: Dict[str, tuple]) -> List:
    return [
        pytest.param(
            name,
            *values,
            id=name,
            marks=[needs_panoptic] if name in PANOPTIC else [])
        for name, values in names.items()
    ]


def load(name: str) -> Config:
    import mmdr1  # noqa: F401
    return Config.fromfile(str(CFG_DIR / f'{name}.py'))


# ---------------------------------------------------------------------------
# Values read from the configs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name,depth,schedule,variant', _params(ALL))
def test_solver(name, depth, schedule, variant) -> None:
    """Spec 11.2 / 11.5: detectron2's solver, iteration based."""
    max_iters, milestones = schedule
    cfg = load(name)
    optim = cfg.optim_wrapper
    assert type_name(optim) == 'OptimWrapper'
    assert 'clip_grad' not in optim or optim.clip_grad is None
    assert type_name(optim.optimizer) == 'SGD'
    assert optim.optimizer.lr == 0.01
    assert optim.optimizer.momentum == 0.9
    assert optim.optimizer.weight_decay == 1e-4
    assert optim.optimizer.get('nesterov', False) is False
    # WEIGHT_DECAY_NORM 0; BIAS_LR_FACTOR 1 and WEIGHT_DECAY_BIAS 1e-4.
    assert optim.paramwise_cfg == dict(norm_decay_mult=0.)

    warmup, steps = cfg.param_scheduler
    assert type_name(warmup) == 'LinearLR'
    assert (warmup.start_factor, warmup.begin, warmup.end,
            warmup.by_epoch) == (0.001, 0, 1000, False)
    assert type_name(steps) == 'MultiStepLR'
    assert steps.by_epoch is False
    assert (steps.begin, steps.end) == (0, max_iters)
    assert list(steps.milestones) == milestones
    assert steps.gamma == 0.1

    assert type_name(cfg.train_cfg) == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == max_iters
    assert cfg.train_cfg.val_interval == max_iters
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert max_iters % cfg.default_hooks.checkpoint.interval == 0
    assert cfg.log_processor.by_epoch is False
    # 16 images per iteration = 8 GPUs x 2.
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)


@pytest.mark.parametrize('name,depth,schedule,variant', _params(ALL))
def test_data(name, depth, schedule, variant) -> None:
    """Spec 6.4, 11.3 and 11.6: scales, thing-semantic map, filters."""
    cfg = load(name)
    ref = VARIANTS[variant]
    panoptic = variant == 'panoptic'
    train = cfg.train_dataloader.dataset
    names = [type_name(t) for t in train.pipeline]
    load_ann = 'LoadPanopticAnnotations' if panoptic else 'LoadAnnotations'
    pack = 'PackDetInputsWithThingSem' if panoptic else 'PackDetInputs'
    if panoptic:
        assert names == [
            'LoadImageFromFile', load_ann, 'RandomChoiceResize', 'RandomFlip',
            'GenerateThingSemanticSeg', pack
        ]
        thing, resize, flip = (train.pipeline[i] for i in (4, 2, 3))
        assert (thing.seg_key, thing.source) == ('gt_thing_sem_seg',
                                                 'panoptic')
        assert thing.num_things_classes == 80
    else:
        # rasterised from the annotations before the geometric transforms
        assert names == [
            'LoadImageFromFile', load_ann, 'GenerateThingSemanticSeg',
            'RandomChoiceResize', 'RandomFlip', pack
        ]
        assert train.pipeline[1].poly2mask is False
        assert train.pipeline[1].with_mask is True
        thing, resize, flip = (train.pipeline[i] for i in (2, 3, 4))
        assert (thing.seg_key, thing.source) == ('gt_seg_map', 'annotations')
    assert [tuple(s) for s in resize.scales] == ref['train_scales']
    assert resize.keep_ratio is True
    assert type_name(dict(type=resize.resize_type)) == 'Resize'
    assert flip.prob == 0.5
    # no min_size=32 filter in detectron2
    assert train.filter_cfg == dict(filter_empty_gt=True, min_size=0)

    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        test = loader.dataset.pipeline
        assert type_name(test[1]) == 'Resize'
        assert tuple(test[1].scale) == ref['test_scale']
        assert test[1].keep_ratio is True
        assert type_name(test[-1]) == 'PackDetInputs'
        assert 'scale_factor' in test[-1].meta_keys

    if panoptic:
        assert type_name(train) == 'CocoPanopticDataset'
        assert train.ann_file == 'annotations/panoptic_train2017.json'
        assert (cfg.val_dataloader.dataset.ann_file ==
                'annotations/panoptic_val2017.json')
        assert type_name(cfg.val_evaluator) == 'SafeCocoPanopticMetric'
    else:
        assert type_name(train) == 'CocoDataset'
        assert train.ann_file == 'annotations/instances_train2017.json'
        assert type_name(cfg.val_evaluator) == 'CocoMetric'
        assert list(cfg.val_evaluator.metric) == ['bbox', 'segm']
        assert cfg.val_evaluator.ann_file.endswith(
            'annotations/instances_val2017.json')


@pytest.mark.parametrize('name,depth,schedule,variant', _params(ALL))
def test_model(name, depth, schedule, variant) -> None:
    """Spec 4-7 and 11.3: backbone, FPN, FCOS, basis and blender."""
    cfg = load(name)
    ref = VARIANTS[variant]
    model = cfg.model
    panoptic = variant == 'panoptic'
    rt = variant == 'rt'

    pre = model.data_preprocessor
    assert type_name(pre) == 'DetDataPreprocessor'
    assert list(pre.mean) == [103.530, 116.280, 123.675]
    assert list(pre.std) == [1.0, 1.0, 1.0]
    assert pre.bgr_to_rgb is False
    assert pre.pad_size_divisor == 32
    assert pre.pad_mask is True
    if panoptic:
        assert (pre.pad_seg, pre.seg_pad_value) == (True, 255)
    else:
        # The thing map in gt_sem_seg is padded with 0 by the head, never
        # with the preprocessor's default 255.
        assert not pre.get('pad_seg', False)

    bb = model.backbone
    assert type_name(bb) == 'ResNet'
    assert bb.depth == depth
    assert bb.style == 'caffe'
    assert tuple(bb.out_indices) == ((0, 1, 2, 3) if panoptic else (1, 2, 3))
    assert bb.init_cfg == dict(
        type='Pretrained',
        checkpoint=f'open-mmlab://detectron2/resnet{depth}_caffe')
    if rt:  # RESNETS.NORM SyncBN, FREEZE_AT -1
        assert bb.norm_cfg == dict(type='SyncBN', requires_grad=True)
        assert (bb.frozen_stages, bb.norm_eval) == (-1, False)
    else:  # FrozenBN, FREEZE_AT 2
        assert bb.norm_cfg == dict(type='BN', requires_grad=False)
        assert (bb.frozen_stages, bb.norm_eval) == (1, True)

    neck = model.neck
    assert type_name(neck) == 'FPN'
    assert list(neck.in_channels) == ([256, 512, 1024, 2048]
                                      if panoptic else [512, 1024, 2048])
    assert neck.start_level == 0
    assert neck.out_channels == 256
    assert neck.num_outs == ref['num_outs']
    assert neck.add_extra_convs == 'on_output'
    assert neck.relu_before_extra_convs is True
    # detectron2's c2_xavier_fill = kaiming_uniform_(a=1), bias 0
    assert neck.init_cfg == dict(
        type='Kaiming',
        layer='Conv2d',
        a=1,
        mode='fan_in',
        nonlinearity='leaky_relu',
        distribution='uniform')

    head = model.bbox_head
    assert type_name(head) == 'BlendMaskFCOSHead'
    assert head.num_classes == 80
    assert (head.in_channels, head.feat_channels) == (256, 256)
    assert tuple(head.strides) == ref['strides']
    assert tuple(tuple(r) for r in head.regress_ranges) == ref['ranges']
    assert head.stacked_convs == ref['stacked_convs']
    assert head.get('num_share_convs', 0) == ref['num_share_convs']
    assert (head.num_bases, head.attn_size) == (4, 14)
    assert head.norm_cfg == dict(type='GN', num_groups=32, requires_grad=True)
    test_cfg = model.test_cfg
    assert (test_cfg.nms_pre, test_cfg.score_thr,
            test_cfg.max_per_img) == (1000, 0.05, 100)
    assert test_cfg.nms == dict(type='nms', iou_threshold=0.6)

    mask_head = model.mask_head
    assert type_name(mask_head) == 'BlendMaskHead'
    assert mask_head.loss_weight == 1.0
    basis = mask_head.basis
    assert type_name(basis) == 'ProtoNetBasis'
    assert (basis.in_channels, basis.convs_dim, basis.num_bases,
            basis.num_things_classes) == (256, 128, 4, 80)
    assert basis.num_convs == ref['basis_convs']
    assert basis.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert (basis.loss_on, basis.loss_weight) == (True, 0.3)
    blender = mask_head.blender
    assert type_name(blender) == 'Blender'
    assert (blender.num_bases, blender.attn_size) == (4, 14)
    assert blender.bottom_resolution == 56
    assert (blender.spatial_scale, blender.sampling_ratio) == (0.25, 1)
    field = 'gt_thing_sem_seg' if panoptic else 'gt_sem_seg'
    assert mask_head.get('thing_sem_field', 'gt_sem_seg') == field


@needs_panoptic
@pytest.mark.parametrize('name', list(PANOPTIC))
def test_panoptic_heads(name: str) -> None:
    """Spec 12: semantic head on P2-P5 and the fusion thresholds."""
    model = load(name).model
    assert type_name(model) == 'PanopticBlendMask'
    assert model.instance_start_level == 1
    sem = model.semantic_head
    assert type_name(sem) == 'SemSegFPNHead'
    assert (sem.num_things_classes, sem.num_stuff_classes) == (80, 53)
    assert (sem.in_channels, sem.inner_channels) == (256, 128)
    assert (sem.start_level, sem.end_level) == (0, 4)
    assert sem.norm_cfg == dict(type='GN', num_groups=32, requires_grad=True)
    assert sem.things_first is True
    assert type_name(sem.loss_seg) == 'CrossEntropyLoss'
    assert (sem.loss_seg.ignore_index, sem.loss_seg.loss_weight,
            sem.loss_seg.avg_non_ignore) == (255, 0.5, True)
    fusion = model.panoptic_fusion_head
    assert type_name(fusion) == 'ScoreThrHeuristicFusionHead'
    assert (fusion.num_things_classes, fusion.num_stuff_classes) == (80, 53)
    assert model.test_cfg.panoptic == dict(
        score_thr=0.45, mask_overlap=0.4, stuff_area_limit=4096)


def _tiny_coco(root: Path, h: int = 48, w: int = 64) -> None:
    """One image with two polygon instances and one crowd (RLE) region."""
    import mmcv
    import pycocotools.mask as mask_util
    img = np.random.RandomState(0).randint(0, 256, (h, w, 3), np.uint8)
    mmcv.imwrite(img, str(root / 'img.png'))
    crowd = np.zeros((h, w), np.uint8)
    crowd[40:46, 40:60] = 1
    rle = mask_util.encode(np.asfortranarray(crowd))
    rle['counts'] = rle['counts'].decode()
    anns = [
        dict(
            segmentation=[[4, 4, 30, 4, 30, 40, 4, 40]],
            bbox=[4, 4, 26, 36],
            category_id=1,
            iscrowd=0),
        dict(
            segmentation=[[34, 10, 60, 10, 60, 30, 34, 30]],
            bbox=[34, 10, 26, 20],
            category_id=18,
            iscrowd=0),
        dict(
            segmentation=rle, bbox=[40, 40, 20, 6], category_id=18, iscrowd=1),
    ]
    for i, ann in enumerate(anns):
        ann.update(id=i + 1, image_id=1, area=ann['bbox'][2] * ann['bbox'][3])
    coco = dict(
        images=[dict(id=1, file_name='img.png', height=h, width=w)],
        annotations=anns,
        categories=[
            dict(id=1, name='person'),
            dict(id=18, name='dog'),
        ])
    (root / 'instances.json').write_text(json.dumps(coco))


def _first_sample(dataset_cfg: dict) -> dict:
    from mmdet.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) > 0
    return dataset[0]


@pytest.mark.parametrize('name,short_sides', [
    ('blendmask_r50_fpn_1x_coco', range(640, 801, 32)),
    ('blendmask_550_r50_fpn_1x_coco', range(440, 551, 22)),
    ('blendmask_rt_r50_fpn_4x_syncbn_shtw_coco', range(256, 609, 32)),
])
def test_instance_train_pipeline(tmp_path: Path, name: str,
                                 short_sides: range) -> None:
    """The configs' train pipeline on a real COCO file: multi-scale
    resize, polygon masks and the packed thing-semantic map."""
    from mmdet.structures.mask import PolygonMasks
    _tiny_coco(tmp_path)
    dataset_cfg = copy.deepcopy(load(name).train_dataloader.dataset)
    dataset_cfg.update(
        data_root=str(tmp_path),
        ann_file='instances.json',
        data_prefix=dict(img=''))
    for seed in range(3):
        np.random.seed(seed)
        data = _first_sample(dataset_cfg)
        h, w = data['inputs'].shape[-2:]
        assert h in short_sides  # 48 x 64 image: the short side is h
        sample = data['data_samples']
        assert isinstance(sample.gt_instances.masks, PolygonMasks)
        assert len(sample.gt_instances) == 2
        assert len(sample.ignored_instances) == 1  # the crowd region
        sem = sample.gt_sem_seg.sem_seg
        assert sem.shape == (1, h, w)
        # 0 = background, label + 1 = thing ('person' 0, 'dog' 1 here)
        assert set(sem.unique().tolist()) <= {0, 1, 2}
        assert {1, 2} <= set(sem.unique().tolist())
        # the crowd 'dog' region (rows 40-46 of 48, 20 of 64 columns) is
        # painted too (reference npz, spec 6.4); no polygon reaches there
        band = sem[0, int(41 / 48 * h):int(45 / 48 * h)]
        assert (band == 2).sum(1).min() >= int(19 / 64 * w)
        assert set(band.unique().tolist()) == {0, 2}


@needs_panoptic
def test_panoptic_train_pipeline(tmp_path: Path) -> None:
    """Panoptic pipeline: stuff map in gt_sem_seg, thing map beside it."""
    from mmdr1.datasets import ToyPanopticDataset, make_toy_panoptic
    make_toy_panoptic(str(tmp_path), num_train=2, num_val=1, img_size=64)
    cfg = load('panoptic_blendmask_r50_fpn_1x_coco')
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.update(
        type=ToyPanopticDataset,
        data_root=str(tmp_path),
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'))
    num_things = len(ToyPanopticDataset.METAINFO['thing_classes'])
    assert dataset_cfg.pipeline[4].num_things_classes == 80  # COCO
    dataset_cfg.pipeline[4].num_things_classes = num_things  # toy data
    data = _first_sample(dataset_cfg)
    h, w = data['inputs'].shape[-2:]
    assert min(h, w) in range(640, 801, 32)
    sample = data['data_samples']
    thing = sample.gt_thing_sem_seg.sem_seg
    assert thing.shape == sample.gt_sem_seg.sem_seg.shape == (1, h, w)
    values = set(thing.unique().tolist())
    assert values <= set(range(num_things + 1)) and len(values) > 1
    painted = torch.zeros((h, w), dtype=torch.bool)
    for mask in sample.gt_instances.masks.to_tensor(torch.bool, 'cpu'):
        painted |= mask
    assert (thing[0][painted] > 0).all()
    # every thing pixel of the panoptic map (crowd segments too)
    pan = sample.gt_sem_seg.sem_seg[0]
    assert torch.equal(thing[0] > 0, pan < num_things)
    assert torch.equal(thing[0][pan < num_things], pan[pan < num_things] + 1)


def test_config_chain_is_not_shared() -> None:
    """Children edit their parents' values; loading order must not leak."""
    for name in ('blendmask_rt_r50_fpn_4x_syncbn_shtw_coco',
                 'blendmask_r101_fpn_3x_coco', 'blendmask_r50_fpn_1x_coco'):
        cfg = load(name)
    assert cfg.train_cfg.max_iters == 90000
    assert cfg.model.backbone.depth == 50
    assert cfg.model.neck.num_outs == 5
    assert cfg.model.bbox_head.stacked_convs == 4
    assert cfg.default_hooks.checkpoint.interval == 10000


# ---------------------------------------------------------------------------
# The configs' models on a tiny image
# ---------------------------------------------------------------------------
def build(name: str):
    from mmdet.registry import MODELS
    cfg = load(name)
    model_cfg = no_sync_bn(copy.deepcopy(cfg.model))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)  # no init_weights: no downloads


def _run(name: str, panoptic: bool) -> list:
    model = build(name)
    model.train()
    data = model.data_preprocessor(demo_coco_batch(panoptic), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    expected = {
        'loss_cls', 'loss_bbox', 'loss_centerness', 'loss_mask',
        'loss_basis_sem'
    }
    if panoptic:
        expected.add('loss_sem_seg')
    assert expected <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.bbox_head.top_layer.weight.grad is not None
    assert model.mask_head.basis.seg_head[0].weight.grad is not None

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(demo_coco_batch(panoptic), False)
        return model.predict(data['inputs'], data['data_samples'])


@pytest.mark.parametrize(
    'name',
    ['blendmask_rt_r50_fpn_4x_syncbn_shtw_coco', 'blendmask_r50_fpn_1x_coco'])
def test_instance_forward(name: str, one_thread) -> None:
    results = _run(name, panoptic=False)
    assert len(results) == 1
    pred = results[0].pred_instances
    assert pred.masks.shape[-2:] == (96, 128)
    assert len(pred) <= 100
    assert len(pred.bboxes) == len(pred.scores) == len(pred.labels)


def test_optimizer_param_groups() -> None:
    """WEIGHT_DECAY_NORM 0 on every norm layer (frozen / trainable BN, GN,
    SyncBN), normal lr and decay elsewhere, biases included."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm
    name = 'blendmask_rt_r50_fpn_4x_syncbn_shtw_coco'  # trainable BN
    model = build(name)
    with DefaultScope.overwrite_default_scope('mmdet'):
        optim = build_optim_wrapper(model, load(name).optim_wrapper)
    norm_params = {
        id(p)
        for m in model.modules()
        if isinstance(m, (_BatchNorm, torch.nn.GroupNorm))
        for p in m.parameters(recurse=False)
    }
    groups = optim.optimizer.param_groups
    seen = 0
    for group in groups:
        for p in group['params']:
            seen += 1
            assert group['lr'] == 0.01
            wd = 0. if id(p) in norm_params else 1e-4
            assert group['weight_decay'] == wd
    assert seen == len(list(model.parameters()))
    assert len(norm_params) > 0


@needs_panoptic
def test_panoptic_forward(one_thread) -> None:
    results = _run('panoptic_blendmask_r50_fpn_1x_coco', panoptic=True)
    assert len(results) == 1
    pan = results[0].pred_panoptic_seg.sem_seg
    assert pan.shape == (1, 96, 128)
    assert results[0].pred_instances.masks.shape[-2:] == (96, 128)


# ---------------------------------------------------------------------------
# AdelaiDet checkpoint names vs. the configs' models
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('adelaidet_blendmask',
                                                  str(TOOL))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FROZEN_BN = ('weight', 'bias', 'running_mean', 'running_var')
BN = FROZEN_BN + ('num_batches_tracked', )


def adelaidet_keys(depth: int = 50,
                   variant: str = 'base',
                   backbone_norm: tuple = FROZEN_BN) -> List[str]:
    """Key names of an AdelaiDet BlendMask checkpoint (spec 6.2, 13).

    ``variant``: 'base' (R_50_1x etc.), '550', 'rt' or 'panoptic'.
    """
    keys = ['pixel_mean', 'pixel_std']
    d2 = 'backbone.bottom_up.'
    keys += [d2 + 'stem.conv1.weight']
    keys += [f'{d2}stem.conv1.norm.{p}' for p in backbone_norm]
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    for stage, num in zip(range(2, 6), blocks):
        for b in range(num):
            pre = f'{d2}res{stage}.{b}.'
            convs = ['conv1', 'conv2', 'conv3']
            if b == 0:
                convs.append('shortcut')
            for conv in convs:
                keys.append(f'{pre}{conv}.weight')
                keys += [f'{pre}{conv}.norm.{p}' for p in backbone_norm]
    levels = (2, 3, 4, 5) if variant == 'panoptic' else (3, 4, 5)
    for lvl in levels:
        for kind in ('lateral', 'output'):
            keys += [
                f'backbone.fpn_{kind}{lvl}.{p}' for p in ('weight', 'bias')
            ]
    top = {'base': (6, 7), 'panoptic': (6, 7), '550': (6, ), 'rt': ()}[variant]
    for lvl in top:
        keys += [f'backbone.top_block.p{lvl}.{p}' for p in ('weight', 'bias')]
    fcos = 'proposal_generator.fcos_head.'
    shtw = variant in ('550', 'rt')
    towers = {'share': 3} if shtw else {'cls': 4, 'bbox': 4}
    for tower, num in towers.items():
        for i in range(num):
            for idx in (3 * i, 3 * i + 1):  # conv (bias) and GN
                keys += [
                    f'{fcos}{tower}_tower.{idx}.{p}'
                    for p in ('weight', 'bias')
                ]
    for pred in ('cls_logits', 'bbox_pred', 'ctrness'):
        keys += [f'{fcos}{pred}.{p}' for p in ('weight', 'bias')]
    keys += [f'top_layer.{p}' for p in ('weight', 'bias')]
    basis = 'basis_module.'
    num_convs = 2 if shtw else 3
    for i in range(3):
        keys.append(f'{basis}refine.{i}.0.weight')
        keys += [f'{basis}refine.{i}.1.{p}' for p in BN]  # SyncBN
    for i in list(range(num_convs)) + [num_convs + 1]:
        keys.append(f'{basis}tower.{i}.0.weight')
        keys += [f'{basis}tower.{i}.1.{p}' for p in BN]
    keys += [f'{basis}tower.{num_convs + 2}.{p}' for p in ('weight', 'bias')]
    for i in (0, 3):
        keys.append(f'{basis}seg_head.{i}.weight')
    for i in (1, 4):
        keys += [f'{basis}seg_head.{i}.{p}' for p in BN]
    keys += [f'{basis}seg_head.6.{p}' for p in ('weight', 'bias')]
    if variant == 'panoptic':
        # detectron2 SemSegFPNHead: max(1, log2(stride) - 2) conv(+GN)
        # per level, each followed by an x2 upsample when stride != 4.
        for lvl, num in ((2, 1), (3, 1), (4, 2), (5, 3)):
            step = 1 if lvl == 2 else 2
            for j in range(num):
                pre = f'panoptic_module.p{lvl}.{j * step}.'
                keys += [
                    pre + 'weight', pre + 'norm.weight', pre + 'norm.bias'
                ]
        keys += [f'panoptic_module.predictor.{p}' for p in ('weight', 'bias')]
    return keys


CONVERTER_CASES = [
    ('blendmask_r50_fpn_1x_coco', 50, 'base', FROZEN_BN),
    ('blendmask_r101_fpn_3x_coco', 101, 'base', FROZEN_BN),
    ('blendmask_550_r50_fpn_1x_coco', 50, '550', FROZEN_BN),
    ('blendmask_rt_r50_fpn_4x_syncbn_shtw_coco', 50, 'rt', BN),
    pytest.param(
        'panoptic_blendmask_r50_fpn_1x_coco',
        50,
        'panoptic',
        FROZEN_BN,
        marks=needs_panoptic),
]


@pytest.mark.parametrize('name,depth,variant,norm', CONVERTER_CASES)
def test_converter_keys_match_model(tool: ModuleType, name: str, depth: int,
                                    variant: str, norm: tuple) -> None:
    """Every AdelaiDet key lands on a parameter / buffer of our model, and
    every model key (but ``num_batches_tracked`` and FCOS ``scales``) is
    produced."""
    keys = adelaidet_keys(depth, variant, norm)
    assert len(set(keys)) == len(keys)
    state = {k: torch.zeros(1) for k in keys}
    expected = tool.expected_keys_from_config(str(CFG_DIR / f'{name}.py'))
    out = tool.convert_state_dict(state, expected_keys=expected)
    assert len(out) == len(keys) - 2  # pixel_mean / pixel_std dropped
    missing = set(expected) - set(out)
    optional = {k for k in missing if k.endswith('num_batches_tracked')}
    assert missing == optional
