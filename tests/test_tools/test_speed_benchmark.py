# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of ``tools/analysis_tools/speed_benchmark.py`` (tiny models)."""
import importlib.util
import os.path as osp
from types import ModuleType

import pytest
import torch
from mmengine.config import Config, ConfigDict

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'speed_benchmark.py')

_BACKBONE = """
backbone=dict(
    type='ResNet', depth=18, base_channels=16, num_stages=4,
    out_indices=(0, 1, 2, 3), frozen_stages=1,
    norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True,
    style='pytorch',
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
"""
_PREPROCESSOR = """
data_preprocessor=dict(
    type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
"""

RETINANET_CFG = """default_scope = 'mmdet'
model = dict(
    type='RetinaNet',""" + _PREPROCESSOR + _BACKBONE + """
    neck=dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=16,
              start_level=1, add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(
        type='RetinaHead', num_classes=80, in_channels=16, stacked_convs=1,
        feat_channels=16,
        anchor_generator=dict(
            type='AnchorGenerator', octave_base_scale=4,
            scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[.0, .0, .0, .0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.95,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))
"""

FASTER_RCNN_CFG = """default_scope = 'mmdet'
model = dict(
    type='FasterRCNN',""" + _PREPROCESSOR + _BACKBONE + """
    neck=dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=16,
              num_outs=5),
    rpn_head=dict(
        type='RPNHead', in_channels=16, feat_channels=16,
        anchor_generator=dict(type='AnchorGenerator', scales=[8],
                              ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[.0, .0, .0, .0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                      loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=16, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='Shared2FCBBoxHead', in_channels=16, fc_out_channels=32,
            roi_feat_size=7, num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=None,
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000,
                 nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.95, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=100)))
"""


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('speed_benchmark', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def configs(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp('speed_cfgs')
    paths = []
    for name, text in (('tiny_retinanet', RETINANET_CFG), ('tiny_faster_rcnn',
                                                           FASTER_RCNN_CFG)):
        path = root / f'{name}.py'
        path.write_text(text)
        paths.append(str(path))
    return paths


def test_set_full_detections_nested(tool):
    test_cfg = ConfigDict(
        rpn=dict(nms_pre=1000, max_per_img=1000, score_thr=0.3),
        rcnn=dict(score_thr=0.05, max_per_img=50, nms=dict(iou_threshold=0.5)),
        panoptic=dict(score_thr=0.6, max_per_img=100, mask_overlap=0.5),
        stages=[dict(score_thr=0.1, max_num=20),
                dict(mask_thr=0.5)])
    changes = tool.set_full_detections(test_cfg, max_per_img=100)
    assert test_cfg.rpn.score_thr == 0
    assert test_cfg.rcnn.score_thr == 0
    assert test_cfg.panoptic.score_thr == 0
    assert test_cfg.stages[0].score_thr == 0
    assert test_cfg.rcnn.max_per_img == 100
    assert test_cfg.stages[0].max_num == 100
    # proposal counts, nms_pre and unrelated keys are kept
    assert test_cfg.rpn.max_per_img == 1000
    assert test_cfg.rpn.nms_pre == 1000
    assert test_cfg.rcnn.nms.iou_threshold == 0.5
    assert test_cfg.stages[1] == dict(mask_thr=0.5)
    assert 'rcnn.score_thr: 0.05 -> 0' in changes
    assert 'rcnn.max_per_img: 50 -> 100' in changes

    model_cfg = dict(
        type='X',
        test_cfg=dict(score_thr=0.5),
        head=dict(type='Y', test_cfg=dict(score_thr=0.3, max_per_img=5)))
    changes = tool.set_full_detections_in_model_cfg(model_cfg, 7)
    assert model_cfg['test_cfg']['score_thr'] == 0
    assert model_cfg['head']['test_cfg'] == dict(score_thr=0, max_per_img=7)
    assert 'model.head.test_cfg.max_per_img: 5 -> 7' in changes


def test_strip_pretrained(tool):
    cfg = dict(
        backbone=dict(
            pretrained='torchvision://resnet18',
            init_cfg=dict(type='Pretrained', checkpoint='x.pth')),
        head=dict(init_cfg=[
            dict(type='Normal', std=0.01),
            dict(type='Pretrained', checkpoint='y.pth')
        ]))
    removed = tool.strip_pretrained(cfg)
    assert cfg['backbone'] == dict(pretrained=None, init_cfg=None)
    assert cfg['head']['init_cfg'] == [dict(type='Normal', std=0.01)]
    assert len(removed) == 3


def test_built_model_gets_full_detections(tool, configs):
    cfg = Config.fromfile(configs[0])
    model, changes = tool.build_model_from_cfg(cfg, max_per_img=20)
    assert model.bbox_head.test_cfg.score_thr == 0
    assert model.bbox_head.test_cfg.max_per_img == 20
    assert any('score_thr: 0.95 -> 0' in c for c in changes)
    # the config passed in is not modified
    assert cfg.model.test_cfg.score_thr == 0.95
    batch = tool.make_batch(tool.make_inputs((64, 64)))
    results = tool._run(model, batch)
    assert len(results[0].pred_instances) == 20

    model, changes = tool.build_model_from_cfg(cfg, full_detections=False)
    assert changes == []
    assert model.bbox_head.test_cfg.score_thr == 0.95
    assert model.bbox_head.test_cfg.max_per_img == 50


def test_two_stage_keeps_proposal_count(tool, configs):
    model, changes = tool.build_model_from_cfg(configs[1])
    assert model.roi_head.test_cfg.score_thr == 0
    assert model.roi_head.test_cfg.max_per_img == 100
    assert model.rpn_head.test_cfg.max_per_img == 1000
    assert model.rpn_head.test_cfg.nms_pre == 1000
    assert not any('rpn' in c for c in changes)
    results = tool._run(model, tool.make_batch(tool.make_inputs((64, 64))))
    assert len(results[0].pred_instances) == 100


def test_main_end_to_end(tool, configs, capsys):
    threads = torch.get_num_threads()
    try:
        ret = tool.main(configs + [
            '--shape', '64', '64', '--repeat', '2', '--warmup', '1',
            '--device', 'cpu', '--threads', '1'
        ])
    finally:
        torch.set_num_threads(threads)
    assert ret == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith('config'))
    for col in ('median ms/img', 'ratio', 'params (M)', 'FLOPs (G)',
                'peak mem (MB)', 'dets/img'):
        assert col in header
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.split('|')]
        if cells[0] in ('tiny_retinanet', 'tiny_faster_rcnn'):
            rows[cells[0]] = cells
    assert set(rows) == {'tiny_retinanet', 'tiny_faster_rcnn'}
    assert rows['tiny_retinanet'][3] == '1.00'
    for cells in rows.values():
        assert float(cells[4]) > 0  # params
        assert cells[5] == 'n/a' or float(cells[5]) > 0  # FLOPs
        assert cells[7] == '100'  # full maximum of detections
    assert float(rows['tiny_retinanet'][5]) > 0
    assert 'torch threads' in out and 'mmdet' in out
    assert 'torch.profiler' in out


def test_keep_score_thr(tool, configs):
    results = tool.benchmark(
        configs[:1],
        shape=(64, 64),
        repeat=1,
        warmup=0,
        full_detections=False,
        with_flops=False)
    res = results[0]
    assert res['changes'] == []
    assert res['ratio'] == 1.0
    # score_thr 0.95 on random weights keeps (almost) nothing
    assert res['dets_per_img'][0] < 50
    table = tool.format_table(results, full_detections=False)
    assert 'tiny_retinanet' in table and '--keep-score-thr' in table


def test_parse_args_defaults(tool):
    args = tool.parse_args(['a.py', 'b.py', '--shape', '96', '96'])
    assert args.configs == ['a.py', 'b.py']
    assert args.shape == [96, 96]
    assert args.max_per_img == 100 and not args.keep_score_thr
    assert args.batch_size == 1
    if not torch.cuda.is_available():
        assert args.device == 'cpu'


def test_counts_and_flops_fallbacks(tool):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    with_inst = DetDataSample()
    with_inst.pred_instances = InstanceData(scores=torch.zeros(3))
    counts, source = tool._count_instances(
        [with_inst, DetDataSample()], [5, 7], 'roi_head')
    assert counts == [3, 7]
    assert source == 'pred_instances, roi_head.predict'

    class Broken(torch.nn.Module):

        def data_preprocessor(self, batch, training):
            return dict(inputs=torch.zeros(1, 3, 8, 8), data_samples=[])

        def _forward(self, inputs, data_samples):
            raise RuntimeError('cannot trace this')

    flops, reason = tool.count_flops(Broken(), {})
    assert flops is None and 'cannot trace this' in reason
    result = dict(
        name='broken',
        median_ms=2.,
        min_ms=1.,
        ratio=1.,
        params=10**6,
        flops=None,
        flops_note=reason,
        peak_mem_bytes=0.,
        dets_per_img=[7],
        dets_source='roi_head.predict')
    table = tool.format_table([result])
    row = next(line for line in table.splitlines()
               if line.startswith('broken'))
    assert 'n/a' in row and '7 (<100)' in row
    assert 'FLOPs n/a: RuntimeError: cannot trace this' in table
    assert 'counted from roi_head.predict' in table
