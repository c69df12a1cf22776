# Copyright (c) mmdr1 contributors. All rights reserved.
"""Reference values of the DR1Mask configs (dr1mask spec sections 1-7).

The generic "every config loads and builds" check lives in
``test_configs.py``; here the paper's settings are asserted on the loaded
configs, every ablation is checked to differ from its parent only where
intended, and the two main COCO models are run once on a tiny image whose
size is a multiple of 4 but not of 32. Nothing is downloaded:
``init_weights`` is never called.
"""
import copy
from operator import attrgetter
from pathlib import Path
from typing import Any, Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdr1.testing import demo_coco_batch
from mmdr1.testing import flatten_config as flat
from mmdr1.testing import no_sync_bn, toy_cityscapes_batch, type_name

REPO = Path(__file__).resolve().parents[2]
CFG_ROOT = REPO / 'configs'
DR1 = CFG_ROOT / 'dr1mask'
ABL = DR1 / 'ablations'

# (max_iters, LR milestones): 1x and the paper's 3x (spec section 7).
S1X = (90000, [60000, 80000])
S3X = (270000, [180000, 240000])

# name: (backbone depth, schedule, panoptic)
MAIN = {
    'dr1mask_r50_fpn_1x_coco': (50, S1X, False),
    'dr1mask_r50_fpn_3x_coco': (50, S3X, False),
    'dr1mask_r101_fpn_3x_coco': (101, S3X, False),
    'dr1mask_panoptic_r50_fpn_3x_coco': (50, S3X, True),
    'dr1mask_panoptic_r101_fpn_3x_coco': (101, S3X, True),
}

MISSING = '<missing>'
VECTOR = 'dr1mask_vector_r50_fpn_1x_coco'
PAN = 'dr1mask_panoptic_r50_fpn_3x_coco'
WIDTH_KEYS = ('basis_channels', 'embed_dim', 'model.bbox_head.basis_channels',
              'model.bbox_head.embed_dim', 'model.mask_head.basis.channels',
              'model.mask_head.instance_module.in_channels',
              'model.panoptic_head.in_channels')
# ablation: (parent, [(dotted key, value in the ablation)]); nothing else
# may differ from the parent.
ABLATIONS = {
    # Table 4 "Vector", parent of the Table 1 / 3 ablations
    VECTOR: ('dr1mask_r50_fpn_1x_coco', [
        ('embed_dim', 32),
        ('model.bbox_head.embed_dim', 32),
        ('model.mask_head.instance_module.type', 'VectorMask'),
        ('model.mask_head.instance_module.num_bases', MISSING),
        ('model.mask_head.instance_module.rank', MISSING),
    ]),
    # Table 4 "Full"
    'dr1mask_full_attn_r50_fpn_1x_coco': ('dr1mask_r50_fpn_1x_coco', [
        ('embed_dim', 784),
        ('model.bbox_head.embed_dim', 784),
        ('model.mask_head.instance_module.type', 'Blender'),
        ('model.mask_head.instance_module.attn_size', 14),
        ('model.mask_head.instance_module.in_channels', MISSING),
        ('model.mask_head.instance_module.rank', MISSING),
    ]),
    # Table 1 baseline / Table 3 "none"
    'dr1mask_ablation_no_context_r50_fpn_1x_coco':
    (VECTOR, [('model.bbox_head.with_context', False)]),
    # Table 1 "w/ A", "w/ B"
    'dr1mask_ablation_only_a_r50_fpn_1x_coco':
    (VECTOR, [('model.mask_head.basis.use_post', False)]),
    'dr1mask_ablation_only_b_r50_fpn_1x_coco':
    (VECTOR, [('model.mask_head.basis.use_pre', False)]),
    # Table 3 "class tower", "FPN"
    'dr1mask_ablation_ctx_cls_tower_r50_fpn_1x_coco':
    (VECTOR, [('model.bbox_head.context_from', 'cls_tower')]),
    'dr1mask_ablation_ctx_fpn_r50_fpn_1x_coco': (VECTOR, [
        ('model.bbox_head.context_from', 'fpn')
    ]),
    # Table 6 widths
    'dr1mask_panoptic_ablation_c32_r50_fpn_3x_coco': (PAN, [
        (key, 32) for key in WIDTH_KEYS
    ]),
    'dr1mask_panoptic_ablation_c128_r50_fpn_3x_coco': (PAN, [
        (key, 128) for key in WIDTH_KEYS
    ]),
    # Table 2 "w/o A, B"
    'dr1mask_panoptic_ablation_no_context_r50_fpn_3x_coco': (PAN, [
        ('model.bbox_head.with_context', False)
    ]),
    # Table 7 "Factored"
    'dr1mask_panoptic_ablation_factored_r50_fpn_3x_coco': (PAN, [
        ('embed_dim', 336),
        ('inst_embed_dim', 336 - 64),
        ('model.bbox_head.embed_dim', 336),
        ('model.row_embed', 'separate'),
        ('model.mask_head.instance_module.type', 'FactoredAttention'),
        ('model.mask_head.instance_module.num_bases', 4),
        ('model.mask_head.instance_module.rank', 4),
    ]),
    # Table 5 "32"
    'dr1mask_panoptic_ablation_div32_r50_fpn_3x_coco': (PAN, [
        ('model.data_preprocessor.pad_size_divisor', 32),
        ('model.mask_head.basis.upsample', 'bilinear'),
        ('model.panoptic_head.upsample', 'bilinear'),
    ]),
}
# Larger variants of the main configs: only these keys differ.
SCHEDULE_3X = [
    ('train_cfg.max_iters', 270000),
    ('train_cfg.val_interval', 270000),
    ('param_scheduler.1.end', 270000),
    ('param_scheduler.1.milestones.0', 180000),
    ('param_scheduler.1.milestones.1', 240000),
    ('default_hooks.checkpoint.interval', 30000),
    ('max_iters', 270000),
]
R101 = [
    ('model.backbone.depth', 101),
    ('model.backbone.init_cfg.checkpoint',
     'open-mmlab://detectron2/resnet101_caffe'),
]
VARIANTS = {
    'dr1mask_r50_fpn_3x_coco': ('dr1mask_r50_fpn_1x_coco', SCHEDULE_3X),
    'dr1mask_r101_fpn_3x_coco': ('dr1mask_r50_fpn_3x_coco', R101),
    'dr1mask_panoptic_r101_fpn_3x_coco': (PAN, R101),
}
# Attributes of the built ablation models.
BUILT = {
    VECTOR: [
        ('bbox_head.top_layer.out_channels', 2 * 32 + 32),
        ('mask_head.proj', None),
        ('mask_head.instance_module.embed_dim', 32),
    ],
    'dr1mask_full_attn_r50_fpn_1x_coco': [
        ('bbox_head.top_layer.out_channels', 2 * 32 + 784),
        ('mask_head.proj.in_channels', 32),  # the automatic C -> K proj
        ('mask_head.proj.out_channels', 4),
        ('mask_head.instance_module.embed_dim', 784),
    ],
    'dr1mask_ablation_no_context_r50_fpn_1x_coco': [
        ('bbox_head.top_layer.out_channels', 32),
        ('bbox_head.context_layer', None),
    ],
    'dr1mask_ablation_only_a_r50_fpn_1x_coco': [
        ('mask_head.basis.use_pre', True),
        ('mask_head.basis.use_post', False),
    ],
    'dr1mask_ablation_only_b_r50_fpn_1x_coco': [
        ('mask_head.basis.use_pre', False),
        ('mask_head.basis.use_post', True),
    ],
    'dr1mask_ablation_ctx_cls_tower_r50_fpn_1x_coco': [
        ('bbox_head.top_layer.out_channels', 32),
        ('bbox_head.context_layer.out_channels', 2 * 32),
    ],
    'dr1mask_ablation_ctx_fpn_r50_fpn_1x_coco': [
        ('bbox_head.top_layer.out_channels', 32),
        ('bbox_head.context_layer.out_channels', 2 * 32),
    ],
    'dr1mask_panoptic_ablation_c32_r50_fpn_3x_coco': [
        ('bbox_head.top_layer.out_channels', 3 * 32),
        ('mask_head.basis.channels', 32),
        ('panoptic_head.conv_stuff.in_channels', 32),
    ],
    'dr1mask_panoptic_ablation_c128_r50_fpn_3x_coco': [
        ('bbox_head.top_layer.out_channels', 3 * 128),
        ('mask_head.basis.channels', 128),
        ('panoptic_head.conv_stuff.in_channels', 128),
    ],
    'dr1mask_panoptic_ablation_no_context_r50_fpn_3x_coco': [
        ('bbox_head.top_layer.out_channels', 64),
        ('bbox_head.context_layer', None),
    ],
    'dr1mask_panoptic_ablation_factored_r50_fpn_3x_coco': [
        ('bbox_head.top_layer.out_channels', 2 * 64 + 64 * 4 + 4 * 4 + 64),
        ('mask_head.instance_module.embed_dim', 64 * 4 + 4 * 4),
        ('mask_head.proj', None),
        ('panoptic_head.conv_stuff.in_channels', 64),
    ],
    'dr1mask_panoptic_ablation_div32_r50_fpn_3x_coco': [
        ('data_preprocessor.pad_size_divisor', 32),
        ('mask_head.basis.upsample', 'bilinear'),
        ('panoptic_head.upsample', 'bilinear'),
    ],
}
# Sections of a config compared in the diffs (plus the top-level numbers).
SECTIONS = ('model', 'train_cfg', 'val_cfg', 'test_cfg', 'param_scheduler',
            'optim_wrapper', 'auto_scale_lr', 'train_dataloader',
            'val_dataloader', 'test_dataloader', 'val_evaluator',
            'test_evaluator', 'default_hooks', 'log_processor', 'custom_hooks',
            'max_iters', 'basis_channels', 'embed_dim', 'num_bases',
            'attn_rank', 'attn_size', 'num_stuff_classes', 'inst_embed_dim')


def path_of(name: str) -> Path:
    for folder in (DR1, ABL, CFG_ROOT / 'blendmask'):
        path = folder / f'{name}.py'
        if path.exists():
            return path
    raise FileNotFoundError(name)


def load(name: str) -> Config:
    import mmdr1  # noqa: F401
    return Config.fromfile(str(path_of(name)))


def config_diff(child: Config, parent: Config) -> Dict[str, Any]:
    """Keys of ``child`` whose value differs from ``parent`` (MISSING when
    the child lacks it)."""
    a = flat({k: child.get(k, MISSING) for k in SECTIONS})
    b = flat({k: parent.get(k, MISSING) for k in SECTIONS})
    return {
        k: a.get(k, MISSING)
        for k in sorted(set(a) | set(b))
        if a.get(k, MISSING) != b.get(k, MISSING)
    }


def dict_diff(a: dict, b: dict) -> Dict[str, Any]:
    fa, fb = flat(a), flat(b)
    return {
        k: fa.get(k, MISSING)
        for k in set(fa) | set(fb) if fa.get(k, MISSING) != fb.get(k, MISSING)
    }


def build(model_cfg: dict):
    from mmdet.registry import MODELS
    model_cfg = no_sync_bn(copy.deepcopy(model_cfg))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)  # no init_weights: no downloads


# ---------------------------------------------------------------------------
# Main configs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(MAIN))
def test_blendmask_setup_reused(name: str) -> None:
    """Spec section 7: backbone, FPN, FCOS, data and solver of BlendMask."""
    depth, _, panoptic = MAIN[name]
    cfg = load(name)
    ref = load(f'panoptic_blendmask_r{depth}_fpn_3x_coco'
               if panoptic else f'blendmask_r{depth}_fpn_3x_coco')
    model = cfg.model
    # backbone: caffe, BGR, frozen BN and stage 1, d2 weights
    bb = model.backbone
    assert (type_name(bb), bb.depth, bb.style) == ('ResNet', depth, 'caffe')
    assert tuple(bb.out_indices) == (1, 2, 3)  # P3-P7 also for panoptic
    assert bb.norm_cfg == dict(type='BN', requires_grad=False)
    assert (bb.frozen_stages, bb.norm_eval) == (1, True)
    assert bb.init_cfg == dict(
        type='Pretrained',
        checkpoint=f'open-mmlab://detectron2/resnet{depth}_caffe')
    blend = load(f'blendmask_r{depth}_fpn_3x_coco').model
    assert flat(bb) == flat(blend.backbone)
    assert flat(model.neck) == flat(blend.neck)  # FPN 256, P3-P7 from P5
    assert (model.neck.out_channels, model.neck.num_outs) == (256, 5)
    assert model.neck.add_extra_convs == 'on_output'

    pre = model.data_preprocessor
    assert list(pre.mean) == [103.530, 116.280, 123.675]
    assert list(pre.std) == [1.0, 1.0, 1.0]
    assert pre.bgr_to_rgb is False
    assert pre.pad_size_divisor == 4  # spec section 6
    assert pre.pad_mask is True
    if panoptic:
        assert (pre.pad_seg, pre.seg_pad_value) == (True, 255)
    else:
        assert not pre.get('pad_seg', False)  # the head pads the thing map

    # FCOS: BlendMaskFCOSHead's settings (its defaults are inherited)
    head = model.bbox_head
    assert type_name(head) == 'DR1MaskFCOSHead'
    fcos = {
        k: v
        for k, v in flat(head).items()
        if k not in ('type', 'basis_channels', 'embed_dim', 'context_from',
                     'with_context', 'merge_embeds')
    }
    ref_fcos = {
        k: v
        for k, v in flat(blend.bbox_head).items()
        if k not in ('type', 'num_bases', 'attn_size')
    }
    assert fcos == ref_fcos
    assert (head.num_classes, head.stacked_convs) == (80, 4)
    assert 'num_bases' not in head and 'attn_size' not in head
    assert flat(model.test_cfg) == flat(blend.test_cfg)

    # data and solver: BlendMask's
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'optim_wrapper', 'auto_scale_lr'):
        assert flat(cfg[key]) == flat(ref[key]), key
    assert 'clip_grad' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.)
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_size == 2


@pytest.mark.parametrize('name', list(MAIN))
def test_schedule(name: str) -> None:
    """Spec section 7: 1x 90k (60k, 80k); 3x 270k (180k, 240k)."""
    max_iters, milestones = MAIN[name][1]
    cfg = load(name)
    warmup, steps = cfg.param_scheduler
    assert type_name(warmup) == 'LinearLR'
    assert (warmup.start_factor, warmup.begin, warmup.end,
            warmup.by_epoch) == (0.001, 0, 1000, False)
    assert type_name(steps) == 'MultiStepLR'
    assert (steps.begin, steps.end, steps.by_epoch) == (0, max_iters, False)
    assert list(steps.milestones) == milestones
    assert steps.gamma == 0.1
    assert type_name(cfg.train_cfg) == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == cfg.train_cfg.val_interval == max_iters
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert max_iters % cfg.default_hooks.checkpoint.interval == 0
    assert cfg.log_processor.by_epoch is False


@pytest.mark.parametrize('name', list(MAIN))
def test_dr1mask_heads(name: str) -> None:
    """Spec sections 2-5: C, embeddings, modules, semantic loss."""
    panoptic = MAIN[name][2]
    model = load(name).model
    c = 64 if panoptic else 32
    head = model.bbox_head
    assert head.basis_channels == c
    assert (head.context_from, head.with_context) == ('box_tower', True)
    mask = model.mask_head
    assert type_name(mask) == 'DR1MaskHead'
    basis = mask.basis
    assert type_name(basis) == 'DR1Basis'
    assert (basis.in_channels, basis.channels, basis.num_levels) == (256, c, 5)
    assert basis.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert basis.get('upsample', 'aligned') == 'aligned'
    assert basis.get('use_pre', True) and basis.get('use_post', True)
    module = mask.instance_module
    assert module.in_channels == c
    assert (module.bottom_resolution, module.spatial_scale,
            module.sampling_ratio) == (56, 0.25, 1)
    assert mask.num_things_classes == 80
    assert (mask.with_sem_head, mask.sem_loss_weight) == (True, 0.3)
    assert mask.sem_norm_cfg == dict(type='BN', requires_grad=True)
    assert mask.loss_weight == 1.0
    if panoptic:
        assert type_name(model) == 'DR1MaskPanoptic'
        assert type_name(module) == 'VectorMask'
        assert head.embed_dim == 64 and head.merge_embeds == 'mean'
        assert mask.thing_sem_field == 'gt_thing_sem_seg'
        pan = model.panoptic_head
        assert type_name(pan) == 'UnifiedPanopticHead'
        assert (pan.in_channels, pan.num_things_classes,
                pan.num_stuff_classes) == (64, 80, 53)
        assert (pan.stuff_area_limit, pan.upsample) == (4096, 'aligned')
        assert (pan.loss_weight, pan.ignore_index) == (1.0, 255)
        assert model.with_instance_loss is True
    else:
        assert type_name(model) == 'DR1Mask'
        assert type_name(module) == 'FactoredAttention'
        assert (module.num_bases, module.rank) == (4, 4)
        assert head.embed_dim == 32 * 4 + 4 * 4 == 144
        assert head.merge_embeds is None
        assert mask.get('thing_sem_field', 'gt_sem_seg') == 'gt_sem_seg'


@pytest.mark.parametrize('name', [n for n in MAIN if MAIN[n][0] == 50])
def test_built_embed_dims(name: str) -> None:
    """The built modules agree: top layer = 2C + embed_dim channels (the
    R-101 configs differ from R-50 only in the backbone, see the diffs)."""
    panoptic = MAIN[name][2]
    model = build(load(name).model)
    c, embed = (64, 64) if panoptic else (32, 144)
    assert model.bbox_head.top_layer.out_channels == 2 * c + embed
    assert model.mask_head.instance_module.embed_dim == embed
    assert model.mask_head.proj is None
    assert model.mask_head.basis.channels == c
    if panoptic:
        assert model.panoptic_head.in_channels == c


def test_panoptic_data() -> None:
    """Thing map from the panoptic PNG, packed beside the panoptic map."""
    cfg = load(PAN)
    names = [type_name(t) for t in cfg.train_dataloader.dataset.pipeline]
    assert names[-2:] == [
        'GenerateThingSemanticSeg', 'PackDetInputsWithThingSem'
    ]
    thing = cfg.train_dataloader.dataset.pipeline[-2]
    assert (thing.seg_key, thing.source,
            thing.num_things_classes) == ('gt_thing_sem_seg', 'panoptic', 80)
    assert type_name(cfg.val_evaluator) == 'SafeCocoPanopticMetric'
    assert cfg.custom_hooks == []


# ---------------------------------------------------------------------------
# Variants and ablations: only the intended keys change
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(VARIANTS) + list(ABLATIONS))
def test_differs_from_parent_only_where_intended(name: str) -> None:
    parent, expected = {**VARIANTS, **ABLATIONS}[name]
    assert config_diff(load(name), load(parent)) == dict(expected)


def test_ablation_docstrings_name_the_paper_table() -> None:
    for name in ABLATIONS:
        text = path_of(name).read_text()
        doc = text.split('"""')[1]
        assert 'Table' in doc, name
        assert 'mim train mmdr1' in doc and '--launcher pytorch' in doc


@pytest.mark.parametrize('name', list(BUILT))
def test_ablation_modules(name: str) -> None:
    """The switches reach the built modules."""
    model = build(load(name).model)
    for attr, value in BUILT[name]:
        assert attrgetter(attr)(model) == value, attr


def test_panoptic_factored_is_rejected() -> None:
    """With the default ``row_embed='shared'`` the unified panoptic layer
    takes the embeddings as its rows, so DR1MaskPanoptic needs
    ``embed_dim == C``, while factored embeddings have ``C * K + K * d``
    numbers (272 for C = 64). The detector refuses that model; the Table 7
    config adds a separate row (``row_embed='separate'``)."""
    cfg = copy.deepcopy(load(PAN).model)
    cfg.bbox_head.embed_dim = 64 * 4 + 4 * 4
    cfg.mask_head.instance_module = dict(
        type='FactoredAttention', in_channels=64, num_bases=4, rank=4)
    with pytest.raises(ValueError, match='embed'):
        build(cfg)


def test_instance_toy() -> None:
    """The instance toy: blendmask_r18_toy's data / schedule / backbone,
    the DR1Mask model of the panoptic toy without the panoptic head."""
    cfg = load('dr1mask_r18_toy')
    blend = load('blendmask_r18_toy')
    pan = load('dr1mask_panoptic_r18_toy')
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                'train_cfg', 'param_scheduler', 'optim_wrapper',
                'auto_scale_lr', 'default_hooks', 'randomness'):
        assert flat(cfg[key]) == flat(blend[key]), key
    model = cfg.model
    assert type_name(model) == 'DR1Mask'
    assert 'panoptic_head' not in model
    assert model.data_preprocessor.pad_size_divisor == 4
    assert not model.data_preprocessor.get('pad_seg', False)
    for key in ('backbone', 'neck'):
        assert flat(model[key]) == flat(blend.model[key])
    assert flat(model.backbone) == flat(pan.model.backbone)
    # the panoptic toy's basis also takes P2 (fine_level)
    assert dict_diff(pan.model.neck, model.neck) == {
        'start_level': 0,
        'num_outs': 6
    }
    head = model.bbox_head
    assert (head.basis_channels, head.embed_dim) == (32, 144)
    assert head.get('merge_embeds') is None
    assert dict_diff(head, pan.model.bbox_head) == {
        'embed_dim': 144,
        'merge_embeds': MISSING
    }
    mask = model.mask_head
    assert dict_diff(pan.model.mask_head.basis, mask.basis) == {
        'fine_level': True
    }
    assert type_name(mask.instance_module) == 'FactoredAttention'
    assert (mask.instance_module.in_channels, mask.instance_module.num_bases,
            mask.instance_module.rank) == (32, 4, 4)
    assert mask.get('thing_sem_field', 'gt_sem_seg') == 'gt_sem_seg'
    names = [type_name(t) for t in cfg.train_dataloader.dataset.pipeline]
    assert 'GenerateThingSemanticSeg' not in names


# ---------------------------------------------------------------------------
# The main COCO models on a tiny image (96 x 132: a multiple of 4, not 32)
# ---------------------------------------------------------------------------
H, W = 96, 132
BOXES = [[8, 10, 60, 80], [50, 30, 124, 90]]


def _run(name: str, panoptic: bool) -> list:
    model = build(load(name).model)
    model.train()
    data = model.data_preprocessor(
        demo_coco_batch(panoptic, H, W, boxes=BOXES), True)
    assert tuple(data['inputs'].shape[-2:]) == (H, W)  # no padding to 32
    losses = model.loss(data['inputs'], data['data_samples'])
    expected = {
        'loss_cls', 'loss_bbox', 'loss_centerness', 'loss_mask',
        'loss_basis_sem'
    }
    if panoptic:
        expected.add('loss_panoptic')
    assert expected <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.bbox_head.top_layer.weight.grad is not None
    assert model.mask_head.basis.reduce_convs[0].conv.weight.grad is not None
    assert model.mask_head.sem_head[-1].weight.grad is not None
    if panoptic:
        assert model.panoptic_head.conv_stuff.weight.grad is not None

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            demo_coco_batch(panoptic, H, W, boxes=BOXES), False)
        return model.predict(data['inputs'], data['data_samples'])


def test_instance_forward(one_thread) -> None:
    results = _run('dr1mask_r50_fpn_1x_coco', panoptic=False)
    assert len(results) == 1
    pred = results[0].pred_instances
    assert pred.masks.shape[-2:] == (H, W)
    assert 0 < len(pred) <= 100
    assert len(pred.bboxes) == len(pred.scores) == len(pred.labels)


def test_panoptic_forward(one_thread) -> None:
    results = _run(PAN, panoptic=True)
    assert len(results) == 1
    pan = results[0].pred_panoptic_seg.sem_seg
    assert pan.shape == (1, H, W)
    assert results[0].pred_instances.masks.shape[-2:] == (H, W)


# ---------------------------------------------------------------------------
# Cityscapes panoptic
# ---------------------------------------------------------------------------
CITY = 'dr1mask_panoptic_r50_fpn_cityscapes'


def test_cityscapes_config() -> None:
    """The COCO panoptic model with 8 things / 11 stuff on the Cityscapes
    data (with the thing-semantic target) and its own schedule."""
    cfg = load(CITY)
    coco = load(PAN)
    data = Config.fromfile(
        str(CFG_ROOT / '_base_' / 'datasets' / 'cityscapes_panoptic.py'))
    model = cfg.model
    assert model.bbox_head.num_classes == 8
    assert model.mask_head.num_things_classes == 8
    pan = model.panoptic_head
    assert (pan.num_things_classes, pan.num_stuff_classes,
            pan.stuff_area_limit) == (8, 11, 2048)
    # only the class counts and the stuff area differ from the COCO model
    diff = dict_diff(model, coco.model)
    assert set(diff) == {
        'bbox_head.num_classes', 'mask_head.num_things_classes',
        'panoptic_head.num_things_classes', 'panoptic_head.num_stuff_classes',
        'panoptic_head.stuff_area_limit'
    }
    # Cityscapes data; the train pipeline adds the thing-semantic target
    train = cfg.train_dataloader.dataset
    assert type_name(train) == 'CityscapesPanopticDataset'
    names = [type_name(t) for t in train.pipeline]
    ref = [type_name(t) for t in data.train_dataloader.dataset.pipeline]
    assert names == ref[:-1] + [
        'GenerateThingSemanticSeg', 'PackDetInputsWithThingSem'
    ]
    assert train.pipeline[-2].num_things_classes == 8
    assert flat(cfg.val_dataloader) == flat(data.val_dataloader)
    assert flat(cfg.val_evaluator) == flat(data.val_evaluator)
    assert cfg.train_cfg.max_iters == 65000
    assert cfg.param_scheduler[1].milestones == [50000, 60000]
    assert flat(cfg.optim_wrapper) == flat(coco.optim_wrapper)


def test_cityscapes_train_step(toy_cityscapes: str, one_thread) -> None:
    """The config's train pipeline (scaled down) on a converted toy
    Cityscapes set, then one loss step of the built model."""
    cfg = load(CITY)
    torch.manual_seed(0)
    batch = toy_cityscapes_batch(cfg.train_dataloader.dataset, toy_cityscapes)
    thing = batch['data_samples'][0].gt_thing_sem_seg.sem_seg
    assert int(thing.max()) <= 8
    model = build(cfg.model)
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_panoptic', 'loss_basis_sem', 'loss_mask'} <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
