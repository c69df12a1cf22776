# Copyright (c) mmdr1 contributors. All rights reserved.
"""Reference values of the SpatialFlow configs (spatialflow spec 2-7).

The generic "every config loads and builds" check lives in
``test_configs.py``; here the reference's numbers are asserted on the
loaded configs, the R-101 and DCN configs are checked to differ from their
parents only where intended, and the R-50, DCN and RetinaNet-with-flows
models are run once on a tiny image (loss + backward + predict), the DCN
config's multi-scale + flip TTA through its own ``tta_pipeline`` and
``tta_model``. Nothing is downloaded: ``init_weights`` is never called.
"""
import copy
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
CFG_DIR = REPO / 'configs' / 'spatialflow'
R50 = 'spatialflow_r50_fpn_20e_coco'
R101 = 'spatialflow_r101_fpn_20e_coco'
DCN = 'spatialflow_r101_dcn_fpn_ms_20e_coco'
RETINA = 'retinanet_flow_r50_fpn_1x_coco'
TOY = 'spatialflow_r18_toy'
PANOPTIC = (R50, R101, DCN)
MISSING = '<missing>'
TORCHVISION = 'https://download.pytorch.org/models/'
BACKBONE_URL = {
    50: TORCHVISION + 'resnet50-0676ba61.pth',
    101: TORCHVISION + 'resnet101-63fe2227.pth',
}
TTA_SCALES = [(1500, 1000), (1800, 1200), (2100, 1400)]


def load(name: str) -> Config:
    import mmdr1  # noqa: F401
    return Config.fromfile(str(CFG_DIR / f'{name}.py'))


def config_diff(child: Config, parent: Config) -> Dict[str, Any]:
    """Keys of ``child`` (whole config, but not the imported classes)
    whose value differs from ``parent`` (MISSING when the child lacks
    it)."""

    def values(cfg: Config) -> Dict[str, Any]:
        return {
            k: cfg.get(k)
            for k in cfg.keys() if not isinstance(cfg.get(k), type)
        }

    a, b = flat(values(child)), flat(values(parent))
    return {
        k: a.get(k, MISSING)
        for k in sorted(set(a) | set(b))
        if a.get(k, MISSING) != b.get(k, MISSING)
    }


def build(name: str, cfg: Config = None):
    from mmdet.registry import MODELS
    cfg = cfg or load(name)
    model_cfg = no_sync_bn(copy.deepcopy(cfg.model))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)  # no init_weights: no downloads


# ---------------------------------------------------------------------------
# Values read from the configs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', PANOPTIC)
def test_schedule(name: str) -> None:
    """Spec 6.1: SGD 0.005 for batch 8 (4 GPUs x 2), 20 epochs, steps 16 and
    19, warm-up 500 iterations from 0.001; fp16 (static 512) for DCN."""
    cfg = load(name)
    optim = cfg.optim_wrapper
    if name == DCN:
        assert type_name(optim) == 'AmpOptimWrapper'
        assert optim.loss_scale == 512.
    else:
        assert type_name(optim) == 'OptimWrapper'
        assert 'loss_scale' not in optim
    assert optim.get('clip_grad') is None
    assert type_name(optim.optimizer) == 'SGD'
    assert (optim.optimizer.lr, optim.optimizer.momentum,
            optim.optimizer.weight_decay) == (0.005, 0.9, 1e-4)
    assert 'paramwise_cfg' not in optim

    warmup, steps = cfg.param_scheduler
    assert type_name(warmup) == 'LinearLR'
    assert (warmup.start_factor, warmup.begin, warmup.end,
            warmup.by_epoch) == (0.001, 0, 500, False)
    assert type_name(steps) == 'MultiStepLR'
    assert (steps.begin, steps.end, steps.by_epoch) == (0, 20, True)
    assert list(steps.milestones) == [16, 19]
    assert steps.gamma == 0.1

    assert type_name(cfg.train_cfg) == 'EpochBasedTrainLoop'
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (20, 1)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.num_workers == (4 if name == DCN else 2)
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=8)
    assert cfg.default_hooks.checkpoint.interval == 1
    assert cfg.default_hooks.logger.interval == 50
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_hooks == []


@pytest.mark.parametrize('name', PANOPTIC)
def test_data(name: str) -> None:
    """Spec 6.1 / 6.2: COCO panoptic, 1333 x 800 (DCN: short side
    400-1400, long <= 1600), flip 0.5, no images without things or < 32 px,
    PQ on val2017."""
    cfg = load(name)
    train = cfg.train_dataloader.dataset
    assert type_name(train) == 'CocoPanopticDataset'
    assert train.ann_file == 'annotations/panoptic_train2017.json'
    assert train.filter_cfg == dict(filter_empty_gt=True, min_size=32)
    names = [type_name(t) for t in train.pipeline]
    resize = train.pipeline[2]
    if name == DCN:
        assert names[2] == 'RandomResize'
        assert [tuple(s) for s in resize.scale] == [(1600, 400), (1600, 1400)]
        assert type_name(dict(type=resize.resize_type)) == 'Resize'
    else:
        assert names[2] == 'Resize'
        assert tuple(resize.scale) == (1333, 800)
    assert resize.keep_ratio is True
    assert names == [
        'LoadImageFromFile', 'LoadPanopticAnnotations', names[2], 'RandomFlip',
        'PackDetInputs'
    ]
    assert train.pipeline[3].prob == 0.5

    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert type_name(loader.dataset) == 'CocoPanopticDataset'
        assert loader.dataset.ann_file == 'annotations/panoptic_val2017.json'
        test = loader.dataset.pipeline
        assert type_name(test[1]) == 'Resize'
        assert tuple(test[1].scale) == (1333, 800)
        assert 'scale_factor' in test[-1].meta_keys
    from mmdet.evaluation import CocoPanopticMetric
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        # mmdet's metric or mmdr1's subclass of it
        assert issubclass(evaluator.type, CocoPanopticMetric)
        assert evaluator.ann_file.endswith('annotations/panoptic_val2017.json')


@pytest.mark.parametrize('name', PANOPTIC)
def test_model(name: str) -> None:
    """Spec 2-5: RetinaNet R-50/101, the four sub-networks and flows, thing
    and stuff heads, losses, training RoIs and test thresholds."""
    cfg = load(name)
    model = cfg.model
    depth = 50 if name == R50 else 101
    dcn = name == DCN
    assert type_name(model) == 'SpatialFlow'

    pre = model.data_preprocessor
    assert type_name(pre) == 'DetDataPreprocessor'
    assert list(pre.mean) == [123.675, 116.28, 103.53]
    assert list(pre.std) == [58.395, 57.12, 57.375]
    assert pre.bgr_to_rgb is True
    assert pre.pad_size_divisor == 32
    assert (pre.pad_mask, pre.mask_pad_value) == (True, 0)
    assert (pre.pad_seg, pre.seg_pad_value) == (True, 255)

    bb = model.backbone
    assert type_name(bb) == 'ResNet'
    assert (bb.depth, bb.style, bb.num_stages) == (depth, 'pytorch', 4)
    assert tuple(bb.out_indices) == (0, 1, 2, 3)
    assert (bb.frozen_stages, bb.norm_eval) == (1, True)
    assert bb.norm_cfg == dict(type='BN', requires_grad=True)
    assert bb.init_cfg == dict(
        type='Pretrained', checkpoint=BACKBONE_URL[depth])
    if dcn:
        assert bb.dcn == dict(
            type='DCNv2', deform_groups=1, fallback_on_stride=False)
        assert tuple(bb.stage_with_dcn) == (False, True, True, True)
    else:
        assert 'dcn' not in bb

    neck = model.neck
    assert type_name(neck) == 'FPN'
    assert list(neck.in_channels) == [256, 512, 1024, 2048]
    assert (neck.out_channels, neck.start_level, neck.num_outs) == (256, 1, 5)
    assert neck.add_extra_convs == 'on_input'
    assert not neck.get('relu_before_extra_convs', False)

    head = model.bbox_head
    assert type_name(head) == 'SpatialFlowHead'
    assert (head.num_classes, head.in_channels,
            head.feat_channels) == (80, 256, 256)
    assert (head.stacked_convs, head.stacked_stuff_convs,
            head.stacked_thing_convs, head.num_seg_levels) == (4, 4, 1, 3)
    assert (head.with_reg_cls_flow, head.with_reg_stuff_flow,
            head.with_reg_thing_flow, head.with_semantic_flow) == (True, ) * 4
    assert head.norm_cfg is None and head.conv_cfg is None
    if dcn:
        assert tuple(head.dcn_cls_convs_idx) == (0, 1, 2, 3)
        assert tuple(head.dcn_stuff_convs_idx) == (0, 1, 2, 3)
        assert tuple(head.dcn_thing_convs_idx) == (0, )
    else:
        assert head.dcn_cls_convs_idx is None
        assert head.dcn_stuff_convs_idx is None
        assert head.dcn_thing_convs_idx is None
    anchors = head.anchor_generator
    assert type_name(anchors) == 'AnchorGenerator'
    assert (anchors.octave_base_scale, anchors.scales_per_octave) == (4, 3)
    assert list(anchors.ratios) == [0.5, 1.0, 2.0]
    assert list(anchors.strides) == [8, 16, 32, 64, 128]
    assert type_name(head.bbox_coder) == 'DeltaXYWHBBoxCoder'
    assert list(head.bbox_coder.target_means) == [0.] * 4
    assert list(head.bbox_coder.target_stds) == [1.] * 4
    assert type_name(head.loss_cls) == 'FocalLoss'
    assert (head.loss_cls.use_sigmoid, head.loss_cls.gamma,
            head.loss_cls.alpha, head.loss_cls.loss_weight) == (True, 2.0,
                                                                0.25, 1.0)
    assert type_name(head.loss_bbox) == 'L1Loss'
    assert head.loss_bbox.loss_weight == 1.0

    thing = model.thing_head
    assert type_name(thing) == 'SpatialFlowThingHead'
    assert thing.add_gt_as_proposals is True
    roi = thing.roi_extractor
    assert type_name(roi) == 'SingleRoIExtractor'
    assert type_name(roi.roi_layer) == 'RoIAlign'
    assert (roi.roi_layer.output_size, roi.roi_layer.sampling_ratio,
            roi.roi_layer.aligned) == (14, 0, True)
    assert (roi.out_channels, list(roi.featmap_strides),
            roi.finest_scale) == (256, [8, 16, 32], 56)
    mask = thing.mask_head
    assert type_name(mask) == 'FCNMaskHead'
    assert (mask.num_convs, mask.in_channels, mask.conv_out_channels,
            mask.num_classes, mask.class_agnostic) == (4, 256, 256, 80, False)
    assert type_name(mask.loss_mask) == 'CrossEntropyLoss'
    assert (mask.loss_mask.use_mask, mask.loss_mask.loss_weight) == (True, 1.0)

    stuff = model.stuff_head
    assert type_name(stuff) == 'SpatialFlowStuffHead'
    assert (stuff.num_things_classes, stuff.num_stuff_classes) == (80, 53)
    assert (stuff.in_channels, stuff.feat_channels) == (256, 128)
    assert (tuple(stuff.feat_strides), stuff.out_stride) == ((8, 16, 32), 4)
    assert stuff.norm_cfg == dict(type='GN', num_groups=32, requires_grad=True)
    assert (stuff.upsample_mode, stuff.align_corners) == ('bilinear', True)
    assert stuff.rescale_cfg == dict(mode='nearest')
    # the reference's nominal 0.25 on the standard per-pixel mean; its
    # quirks (x N images per GPU, padding as class 0) are opt-in (spec 4.3)
    assert stuff.reference_loss_quirks is False
    loss = stuff.loss_seg
    assert type_name(loss) == 'CrossEntropyLoss'
    assert (loss.ignore_index, loss.avg_non_ignore,
            loss.loss_weight) == (255, True, 0.25)
    fusion = model.panoptic_fusion_head
    assert type_name(fusion) == 'BoxFillFusionHead'
    assert (fusion.num_things_classes, fusion.num_stuff_classes) == (80, 53)

    train_cfg = model.train_cfg
    assert type_name(train_cfg.assigner) == 'MaxIoUAssigner'
    assert (train_cfg.assigner.pos_iou_thr, train_cfg.assigner.neg_iou_thr,
            train_cfg.assigner.min_pos_iou,
            train_cfg.assigner.ignore_iof_thr) == (0.5, 0.4, 0, -1)
    assert type_name(train_cfg.sampler) == 'PseudoSampler'
    assert (train_cfg.allowed_border, train_cfg.pos_weight) == (-1, -1)
    assert train_cfg.thing_proposal == dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.4),
        max_per_img=100)
    thing_assigner = train_cfg.thing.assigner
    assert type_name(thing_assigner) == 'MaxIoUAssigner'
    assert (thing_assigner.pos_iou_thr, thing_assigner.neg_iou_thr,
            thing_assigner.min_pos_iou,
            thing_assigner.ignore_iof_thr) == (0.5, 0.5, 0.5, -1)
    assert train_cfg.thing.mask_size == 28

    test_cfg = model.test_cfg
    assert (test_cfg.nms_pre, test_cfg.min_bbox_size, test_cfg.score_thr,
            test_cfg.max_per_img) == (1000, 0, 0.05, 100)
    assert test_cfg.nms == dict(type='nms', iou_threshold=0.4)
    assert test_cfg.thing == dict(mask_thr_binary=0.5)
    assert test_cfg.panoptic == dict(
        instance_score_thr=0.37,
        overlap_thr=0.37,
        stuff_area_limit=4900,
        use_bbox_fill=True,
        bbox_overlap_thr=0.5)


# ---------------------------------------------------------------------------
# Variants: only the intended keys change
# ---------------------------------------------------------------------------
def test_r101_differs_from_r50_only_in_the_backbone() -> None:
    assert config_diff(load(R101), load(R50)) == {
        'model.backbone.depth': 101,
        'model.backbone.init_cfg.checkpoint': BACKBONE_URL[101],
    }


def test_dcn_differs_from_r101_only_where_intended() -> None:
    diff = config_diff(load(DCN), load(R101))
    tta = {k: diff.pop(k) for k in list(diff) if k.startswith('tta_')}
    # multi-scale training, in the dataloader and the train_pipeline
    # variable it was made from
    train = {}
    for prefix in ('train_dataloader.dataset.pipeline.2.',
                   'train_pipeline.2.'):
        train.update({
            prefix + 'type': 'RandomResize',
            prefix + 'scale.0': MISSING,
            prefix + 'scale.1': MISSING,
            prefix + 'scale.0.0': 1600,
            prefix + 'scale.0.1': 400,
            prefix + 'scale.1.0': 1600,
            prefix + 'scale.1.1': 1400,
            prefix + 'resize_type': 'Resize',
        })
    assert diff == {
        # backbone DCNv2 in C3-C5
        'model.backbone.dcn.type': 'DCNv2',
        'model.backbone.dcn.deform_groups': 1,
        'model.backbone.dcn.fallback_on_stride': False,
        'model.backbone.stage_with_dcn.0': False,
        'model.backbone.stage_with_dcn.1': True,
        'model.backbone.stage_with_dcn.2': True,
        'model.backbone.stage_with_dcn.3': True,
        # deformable sub-networks
        'model.bbox_head.dcn_cls_convs_idx': MISSING,
        'model.bbox_head.dcn_cls_convs_idx.0': 0,
        'model.bbox_head.dcn_cls_convs_idx.1': 1,
        'model.bbox_head.dcn_cls_convs_idx.2': 2,
        'model.bbox_head.dcn_cls_convs_idx.3': 3,
        'model.bbox_head.dcn_stuff_convs_idx': MISSING,
        'model.bbox_head.dcn_stuff_convs_idx.0': 0,
        'model.bbox_head.dcn_stuff_convs_idx.1': 1,
        'model.bbox_head.dcn_stuff_convs_idx.2': 2,
        'model.bbox_head.dcn_stuff_convs_idx.3': 3,
        'model.bbox_head.dcn_thing_convs_idx': MISSING,
        'model.bbox_head.dcn_thing_convs_idx.0': 0,
        **train,
        'train_dataloader.num_workers': 4,
        # fp16, static loss scale 512
        'optim_wrapper.type': 'AmpOptimWrapper',
        'optim_wrapper.loss_scale': 512.,
    }
    assert tta['tta_model.type'] == 'SpatialFlowTTAModel'
    assert all(
        k.startswith(('tta_model.', 'tta_pipeline.', 'tta_scales.'))
        for k in tta)


def test_tta_config() -> None:
    """Spec 5.2: 3 scales x {flip, no flip}; concatenated candidates, one
    class-aware NMS 0.4, 100 boxes; stuff logits resized bilinearly."""
    cfg = load(DCN)
    assert type_name(cfg.tta_model) == 'SpatialFlowTTAModel'
    assert cfg.tta_model.tta_cfg == dict(
        nms=dict(type='nms', iou_threshold=0.4),
        max_per_img=100,
        stuff_resize_cfg=dict(mode='bilinear', align_corners=True))
    load_img, tta = cfg.tta_pipeline
    assert type_name(load_img) == 'LoadImageFromFile'
    assert type_name(tta) == 'TestTimeAug'
    resizes, flips, loads, packs = tta.transforms
    assert [type_name(r) for r in resizes] == ['Resize'] * 3
    assert [tuple(r.scale) for r in resizes] == TTA_SCALES
    assert all(r.keep_ratio for r in resizes)
    assert [(type_name(f), f.prob) for f in flips] == [('RandomFlip', 1.),
                                                       ('RandomFlip', 0.)]
    assert [type_name(t) for t in loads] == ['LoadPanopticAnnotations']
    assert [type_name(t) for t in packs] == ['PackDetInputs']
    assert {
        'flip', 'flip_direction', 'scale_factor', 'img_shape', 'ori_shape'
    } <= set(packs[0].meta_keys)


def test_retinanet_flow_config() -> None:
    """Paper Table XII: stock RetinaNet 1x, only the reg -> cls flow."""
    cfg = load(RETINA)
    model = cfg.model
    assert type_name(model) == 'RetinaNet'
    head = model.bbox_head
    assert type_name(head) == 'SpatialFlowHead'
    assert (head.stacked_convs, head.stacked_stuff_convs,
            head.stacked_thing_convs) == (4, 0, 0)
    assert head.with_reg_cls_flow is True
    assert (head.anchor_generator.octave_base_scale,
            head.anchor_generator.scales_per_octave) == (4, 3)
    assert type_name(head.loss_bbox) == 'L1Loss'
    assert model.test_cfg.nms == dict(type='nms', iou_threshold=0.5)
    assert model.train_cfg.assigner.neg_iou_thr == 0.4
    assert model.backbone.init_cfg.checkpoint == BACKBONE_URL[50]
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.train_cfg.max_epochs == 12
    assert list(cfg.param_scheduler[1].milestones) == [8, 11]
    assert cfg.auto_scale_lr.base_batch_size == 16
    train = cfg.train_dataloader.dataset
    assert type_name(train) == 'CocoDataset'
    assert train.ann_file == 'annotations/instances_train2017.json'
    assert train.filter_cfg == dict(filter_empty_gt=True, min_size=32)
    assert type_name(cfg.val_evaluator) == 'CocoMetric'
    assert cfg.val_evaluator.metric == 'bbox'


def test_toy_config() -> None:
    """The toy: toy classes, 128 channels, scaled anchors and area limit,
    the shared 1000-iteration schedule."""
    from mmdr1.datasets import ToyPanopticDataset
    cfg = load(TOY)
    meta = ToyPanopticDataset.METAINFO
    t, s = len(meta['thing_classes']), len(meta['stuff_classes'])
    model = cfg.model
    assert model.backbone.depth == 18
    assert model.backbone.init_cfg is None  # from scratch
    assert model.bbox_head.num_classes == t
    assert model.bbox_head.feat_channels == 128
    assert 2 <= model.bbox_head.stacked_convs <= 4
    assert model.bbox_head.anchor_generator.octave_base_scale == 2
    # GN in the towers: the norm-free towers hardly learn from scratch
    assert model.bbox_head.norm_cfg == dict(
        type='GN', num_groups=32, requires_grad=True)
    assert model.thing_head.mask_head.num_classes == t
    for head in (model.stuff_head, model.panoptic_fusion_head):
        assert (head.num_things_classes, head.num_stuff_classes) == (t, s)
    # 4900 px at ~800 x 1333 -> ~300 px at 256 x 256
    assert model.test_cfg.panoptic.stuff_area_limit == 300
    assert abs(4900 * 256**2 / (800 * 1333) - 300) < 2
    assert cfg.train_cfg.max_iters == 1000
    assert cfg.train_dataloader.dataset.type is ToyPanopticDataset
    assert type_name(cfg.tta_model) == 'SpatialFlowTTAModel'


# ---------------------------------------------------------------------------
# The configs' models on a tiny image
# ---------------------------------------------------------------------------
def _loss_and_predict(model, panoptic: bool) -> list:
    model.train()
    data = model.data_preprocessor(demo_coco_batch(panoptic), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    expected = {'loss_cls', 'loss_bbox'}
    if panoptic:
        expected |= {'loss_mask', 'loss_stuff'}
    assert set(losses) == expected
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.bbox_head.cls_flow_convs[0].conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(demo_coco_batch(panoptic), False)
        return model.predict(data['inputs'], data['data_samples'])


@pytest.mark.parametrize('name', [R50, DCN])
def test_panoptic_forward(name: str, one_thread) -> None:
    from mmcv.ops import ModulatedDeformConv2d
    model = build(name)
    head = model.bbox_head
    assert len(head.cls_flow_convs) == len(head.stuff_flow_convs) == 4
    assert len(head.thing_flow_convs) == len(head.semantic_flow_convs) == 1
    assert len(head.thing_convs) == 1
    num_dcn = sum(
        isinstance(m, ModulatedDeformConv2d) for m in model.modules())
    # DCN: 4 cls + 4 stuff + 1 thing stages, ResNet-101 C3-C5 3x3 convs
    # (4 + 23 + 3 blocks)
    assert num_dcn == (9 + 30 if name == DCN else 0)
    assert model.stuff_head.conv_logits.out_channels == 54
    assert model.thing_head.mask_head.conv_logits.out_channels == 80
    results = _loss_and_predict(model, panoptic=True)
    assert len(results) == 1
    pan = results[0].pred_panoptic_seg.sem_seg
    assert pan.shape == (1, 96, 128)
    pred = results[0].pred_instances
    assert pred.masks.shape[-2:] == (96, 128)
    assert len(pred) <= 100


def test_retinanet_flow_forward(one_thread) -> None:
    model = build(RETINA)
    head = model.bbox_head
    assert len(head.cls_flow_convs) == 4
    assert head.stuff_flow_convs is None and head.thing_flow_convs is None
    assert head.semantic_flow_convs is None
    assert len(head.stuff_convs) == len(head.thing_convs) == 0
    results = _loss_and_predict(model, panoptic=False)
    pred = results[0].pred_instances
    assert len(pred.bboxes) == len(pred.scores) == len(pred.labels) <= 100


def test_dcn_tta_pipeline_and_model(tmp_path: Path, one_thread) -> None:
    """The DCN config's tta_pipeline makes the 6 views of a real panoptic
    sample; its tta_model merges them (scales shrunk to keep it fast)."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate

    from mmdr1.datasets import ToyPanopticDataset, make_toy_panoptic
    from mmdr1.models import SpatialFlowTTAModel
    make_toy_panoptic(str(tmp_path), num_train=1, num_val=1, img_size=64)
    cfg = load(DCN)

    def dataset(pipeline):
        with DefaultScope.overwrite_default_scope('mmdet'):
            return DATASETS.build(
                dict(
                    type=ToyPanopticDataset,
                    data_root=str(tmp_path),
                    ann_file='annotations/panoptic_val.json',
                    data_prefix=dict(
                        img='val/', seg='annotations/panoptic_val/'),
                    test_mode=True,
                    pipeline=pipeline))

    views = dataset(cfg.tta_pipeline)[0]
    assert len(views['inputs']) == len(views['data_samples']) == 6
    seen = []
    for img, sample in zip(views['inputs'], views['data_samples']):
        h, w = img.shape[-2:]
        assert tuple(sample.img_shape) == (h, w)
        seen.append((max(h, w), sample.flip))
    # a 64 x 64 image fits a (long, short) scale by its short side
    assert sorted(seen) == sorted(
        (s, f) for _, s in TTA_SCALES for f in (True, False))

    small = copy.deepcopy(cfg.tta_pipeline)
    for resize, scale in zip(small[1].transforms[0], [(80, 48), (96, 64),
                                                      (112, 80)]):
        resize.scale = scale
    batch = pseudo_collate([dataset(small)[0]])
    model = build(R50)  # the DCN model's TTA path is the same, and slower
    tta = SpatialFlowTTAModel(
        module=model, tta_cfg=copy.deepcopy(cfg.tta_model.tta_cfg))
    tta.eval()
    with torch.no_grad():
        results = tta.test_step(batch)
    assert len(results) == 1
    assert results[0].pred_panoptic_seg.sem_seg.shape == (1, 64, 64)
    assert len(results[0].pred_instances) <= 100


# ---------------------------------------------------------------------------
# Cityscapes panoptic
# ---------------------------------------------------------------------------
CITY = 'spatialflow_r50_fpn_cityscapes'


def test_cityscapes_config() -> None:
    """The R-50 COCO model with 8 things / 11 stuff on the Cityscapes data;
    only the class counts, the stuff area and the schedule differ."""
    cfg, coco = load(CITY), load(R50)
    data = Config.fromfile(
        str(REPO / 'configs' / '_base_' / 'datasets' /
            'cityscapes_panoptic.py'))
    diff = set(flat(cfg.model)) ^ set(flat(coco.model))
    assert not diff  # same keys
    changed = {
        k
        for k, v in flat(cfg.model).items() if flat(coco.model)[k] != v
    }
    assert changed == {
        'bbox_head.num_classes', 'thing_head.mask_head.num_classes',
        'stuff_head.num_things_classes', 'stuff_head.num_stuff_classes',
        'panoptic_fusion_head.num_things_classes',
        'panoptic_fusion_head.num_stuff_classes',
        'test_cfg.panoptic.stuff_area_limit'
    }
    assert cfg.model.bbox_head.num_classes == 8
    assert cfg.model.stuff_head.num_stuff_classes == 11
    assert cfg.model.test_cfg.panoptic.stuff_area_limit == 2048
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator'):
        assert flat(cfg[key]) == flat(data[key]), key
    assert cfg.train_cfg.max_epochs == 160
    assert cfg.param_scheduler[1].milestones == [130, 150]
    assert flat(cfg.optim_wrapper) == flat(coco.optim_wrapper)


def test_cityscapes_train_step(toy_cityscapes: str, one_thread) -> None:
    """The config's train pipeline (scaled down) on a converted toy
    Cityscapes set, then one loss step of the built model."""
    cfg = load(CITY)
    torch.manual_seed(0)
    batch = toy_cityscapes_batch(cfg.train_dataloader.dataset, toy_cityscapes)
    model = build(CITY, cfg)
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_mask', 'loss_stuff'}
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
