# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of ``tools/model_converters/spatialflow_to_mmdr1.py``."""
import importlib.util
import os.path as osp
from collections import OrderedDict
from types import ModuleType
from typing import Dict, Tuple

import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from mmdr1.models import SpatialFlowStuffHead
from mmdr1.models.dense_heads.spatialflow_head import SpatialFlowHead
from mmdr1.models.roi_heads.spatialflow_thing_head import SpatialFlowThingHead

register_all_modules(init_default_scope=False)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'model_converters',
                'spatialflow_to_mmdr1.py')

C, F_, K = 8, 8, 5  # tiny head / stuff channels, thing classes
NUM_STUFF = 54  # 53 COCO stuff + 'other' (reference index 36)
GN = dict(type='GN', num_groups=4, requires_grad=True)


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('spatialflow_to_mmdr1', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _backbone_neck() -> Tuple[nn.Module, nn.Module]:
    backbone = ResNet(depth=50, base_channels=2, out_indices=(0, 1, 2, 3))
    neck = FPN(
        in_channels=[8, 16, 32, 64],
        out_channels=C,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5)
    return backbone, neck


def reference_state_dict(
        dcn: bool = False,
        chn: int = C,
        stuff_chn: int = F_,
        num_classes: int = K,
        with_backbone: bool = True) -> 'OrderedDict[str, torch.Tensor]':
    """Reference (mmdet 2.3 SpatialFlow) keys and shapes (tiny by default).

    Backbone / neck are stock mmdet modules whose names did not change
    between mmdet 2.3 and 3.3 (spec section 8); the head, mask head and
    stuff head keys are written out from the reference modules.
    """
    shapes: Dict[str, tuple] = OrderedDict()
    if with_backbone:
        backbone, neck = _backbone_neck()
        for prefix, module in (('backbone', backbone), ('neck', neck)):
            for k, v in module.state_dict().items():
                shapes[f'{prefix}.{k}'] = tuple(v.shape)

    def conv(name, out, inp, k, bias=True):
        shapes[f'{name}.weight'] = (out, inp, k, k)
        if bias:
            shapes[f'{name}.bias'] = (out, )

    flow_out = 27 if dcn else chn
    for i in range(4):
        conv(f'bbox_head.cls_convs.{i}.conv', chn, chn, 3)
        conv(f'bbox_head.reg_convs.{i}.conv', chn, chn, 3)
    conv('bbox_head.mask_convs.0.conv', chn, chn, 3)
    for i in range(4):
        conv(f'bbox_head.stuff_convs.{i}.conv', chn, chn, 3)
    for i in range(4):
        conv(f'bbox_head.cls_spatial_flow_convs.{i}.conv', flow_out, chn, 3)
    conv('bbox_head.mask_spatial_flow_convs.0.conv', flow_out, chn, 3)
    for i in range(4):
        conv(f'bbox_head.stuff_spatial_flow_convs.{i}.conv', flow_out, chn, 3)
    conv('bbox_head.stuff_mask_flow_convs.0.conv', chn, chn, 3)
    conv('bbox_head.retina_cls', 9 * num_classes, chn, 3)
    conv('bbox_head.retina_reg', 9 * 4, chn, 3)
    for i in range(4):
        conv(f'mask_head.convs.{i}.conv', chn, chn, 3)
    shapes['mask_head.upsample.weight'] = (chn, chn, 2, 2)  # ConvTranspose2d
    shapes['mask_head.upsample.bias'] = (chn, )
    conv('mask_head.conv_logits', num_classes, chn, 1)
    for level in range(3):
        for k in range(level + 1):
            name = f'stuff_head.lateral_convs.{level}.{2 * k}'
            conv(
                f'{name}.conv',
                stuff_chn,
                chn if k == 0 else stuff_chn,
                3,
                bias=False)
            shapes[f'{name}.gn.weight'] = (stuff_chn, )
            shapes[f'{name}.gn.bias'] = (stuff_chn, )
    conv('stuff_head.conv', NUM_STUFF, stuff_chn, 1)
    g = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(3)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def our_model(dcn: bool = False) -> nn.Module:
    """Our modules under the detector's attribute names."""
    backbone, neck = _backbone_neck()
    dcn_args = dict(
        dcn_cls_convs_idx=(0, 1, 2, 3),
        dcn_stuff_convs_idx=(0, 1, 2, 3),
        dcn_thing_convs_idx=(0, )) if dcn else {}
    return nn.ModuleDict(
        dict(
            backbone=backbone,
            neck=neck,
            bbox_head=SpatialFlowHead(
                num_classes=K, in_channels=C, feat_channels=C, **dcn_args),
            thing_head=SpatialFlowThingHead(
                roi_extractor=dict(
                    type='SingleRoIExtractor',
                    roi_layer=dict(
                        type='RoIAlign', output_size=14, sampling_ratio=0),
                    out_channels=C,
                    featmap_strides=[8, 16, 32]),
                mask_head=dict(
                    type='FCNMaskHead',
                    num_convs=4,
                    in_channels=C,
                    conv_out_channels=C,
                    num_classes=K)),
            stuff_head=SpatialFlowStuffHead(
                num_things_classes=K,
                in_channels=C,
                feat_channels=F_,
                norm_cfg=GN)))


@pytest.mark.parametrize('dcn', [False, True])
def test_every_key_maps_and_shapes_match(tool, dcn):
    ref = reference_state_dict(dcn)
    model = our_model(dcn)
    expected = model.state_dict()
    out = tool.convert_state_dict(
        dict(state_dict=ref, meta={}), expected=expected)
    assert set(out) == set(expected)
    assert len(out) == len(ref)
    for key, value in ref.items():
        target = tool.convert_key(key)
        if target in tool.STUFF_LOGITS_KEYS:
            continue
        assert out[target] is value  # passed through unchanged
    model.load_state_dict(out, strict=True)


def test_coco_sizes_match_our_heads(tool):
    """Full COCO widths: 256-channel head, 80 classes, 128 / 54 stuff."""
    ref = reference_state_dict(
        chn=256, stuff_chn=128, num_classes=80, with_backbone=False)
    heads = nn.ModuleDict(
        dict(
            bbox_head=SpatialFlowHead(num_classes=80, in_channels=256),
            thing_head=SpatialFlowThingHead(),
            stuff_head=SpatialFlowStuffHead()))
    expected = heads.state_dict()
    assert expected['bbox_head.retina_cls.weight'].shape == (720, 256, 3, 3)
    assert expected['stuff_head.conv_logits.weight'].shape == (54, 128, 1, 1)
    out = tool.convert_state_dict(ref, expected=expected)
    assert set(out) == set(expected)


def test_specific_names(tool):
    pairs = {
        'backbone.layer1.0.downsample.1.running_mean':
        'backbone.layer1.0.downsample.1.running_mean',
        'backbone.layer3.2.conv2.conv_offset.weight':
        'backbone.layer3.2.conv2.conv_offset.weight',
        'neck.fpn_convs.4.conv.bias': 'neck.fpn_convs.4.conv.bias',
        'bbox_head.cls_convs.3.conv.weight':
        'bbox_head.cls_convs.3.conv.weight',
        'bbox_head.mask_convs.0.conv.bias':
        'bbox_head.thing_convs.0.conv.bias',
        'bbox_head.cls_spatial_flow_convs.2.conv.weight':
        'bbox_head.cls_flow_convs.2.conv.weight',
        'bbox_head.stuff_spatial_flow_convs.0.conv.bias':
        'bbox_head.stuff_flow_convs.0.conv.bias',
        'bbox_head.mask_spatial_flow_convs.0.conv.weight':
        'bbox_head.thing_flow_convs.0.conv.weight',
        'bbox_head.stuff_mask_flow_convs.0.conv.weight':
        'bbox_head.semantic_flow_convs.0.conv.weight',
        'bbox_head.retina_cls.bias': 'bbox_head.retina_cls.bias',
        'mask_head.upsample.weight': 'thing_head.mask_head.upsample.weight',
        'mask_head.convs.3.conv.weight':
        'thing_head.mask_head.convs.3.conv.weight',
        'stuff_head.lateral_convs.2.4.gn.weight':
        'stuff_head.lateral_convs.2.4.gn.weight',
        'stuff_head.conv.bias': 'stuff_head.conv_logits.bias',
    }
    for src, dst in pairs.items():
        assert tool.convert_key(src) == dst


def test_stuff_rows_put_other_last(tool):
    perm = tool.stuff_permutation(NUM_STUFF)
    assert perm == list(range(36)) + list(range(37, 54)) + [36]
    ref = reference_state_dict()
    out = tool.convert_state_dict(ref)
    for suffix in ('weight', 'bias'):
        src = ref[f'stuff_head.conv.{suffix}']
        dst = out[f'stuff_head.conv_logits.{suffix}']
        assert dst.shape == src.shape
        assert torch.equal(dst[:36], src[:36])
        assert torch.equal(dst[36:53], src[37:])
        assert torch.equal(dst[53], src[36])  # 'other' -> things channel
    # another index for other data sets
    assert tool.stuff_permutation(4, 1) == [0, 2, 3, 1]
    with pytest.raises(ValueError, match='out of range'):
        tool.stuff_permutation(4, 4)


def test_converted_stuff_head_predicts_the_same_classes(tool):
    """Reference channel r is our channel perm^-1(r) after conversion."""
    ref = reference_state_dict()
    out = tool.convert_state_dict(ref)
    prefix = 'stuff_head.'

    def head_with(state, classifier):
        head = SpatialFlowStuffHead(
            num_things_classes=K, in_channels=C, feat_channels=F_, norm_cfg=GN)
        sub = {}
        for key, value in state.items():
            if key.startswith(prefix + classifier + '.'):
                sub['conv_logits.' + key.rsplit('.', 1)[1]] = value
            elif key.startswith(prefix):
                sub[key[len(prefix):]] = value
        head.load_state_dict(sub, strict=True)
        return head.eval()

    ours = head_with(out, 'conv_logits')
    reference_order = head_with(ref, 'conv')  # reference rows, unpermuted
    feats = [torch.randn(1, C, 64 // s, 96 // s) for s in (8, 16, 32)]
    with torch.no_grad():
        a = ours(feats)['seg_preds']
        b = reference_order(feats)['seg_preds']
    perm = tool.stuff_permutation(NUM_STUFF)
    torch.testing.assert_close(a, b[:, perm])
    ref_label = b.argmax(1)
    ours_label = a.argmax(1)
    mapped = torch.where(ref_label == 36, torch.full_like(ref_label, 53),
                         ref_label - (ref_label > 36).long())
    assert torch.equal(ours_label, mapped)


def test_errors(tool):
    ref = reference_state_dict()
    model = our_model()
    for bad in ('roi_head.mask_head.conv_logits.weight',
                'bbox_head.retina_obj.weight', 'stuff_head.upsample.weight',
                'stuff_head.lateral_convs.0.1.weight', 'mask_head'):
        with pytest.raises(KeyError, match='unknown SpatialFlow'):
            tool.convert_key(bad)
    broken = OrderedDict(ref)
    broken['bbox_head.retina_obj.weight'] = torch.zeros(1)
    with pytest.raises(tool.ConversionError, match='retina_obj'):
        tool.convert_state_dict(broken)
    with pytest.warns(UserWarning, match='retina_obj'):
        out = tool.convert_state_dict(broken, strict=False)
    assert len(out) == len(ref)
    missing = OrderedDict(ref)
    del missing['bbox_head.mask_convs.0.conv.weight']
    with pytest.raises(
            tool.ConversionError,
            match='missing key: bbox_head.thing_convs.0.conv.weight'):
        tool.convert_state_dict(missing, expected=model.state_dict())
    wrong = OrderedDict(ref)
    wrong['bbox_head.retina_cls.weight'] = torch.zeros(9 * 80, C, 3, 3)
    with pytest.raises(tool.ConversionError, match='shape mismatch'):
        tool.convert_state_dict(wrong, expected=model.state_dict())
    extra = dict(model.state_dict())
    del extra['bbox_head.retina_reg.bias']
    with pytest.raises(tool.ConversionError, match='unexpected key'):
        tool.convert_state_dict(ref, expected=extra)


def test_whole_detector_names(tool):
    """The converted keys are exactly those of the SpatialFlow detector."""
    import mmdr1.models.detectors.spatialflow  # noqa: F401  (registers)
    backbone, neck = _backbone_neck()
    model = MODELS.build(
        dict(
            type='SpatialFlow',
            backbone=dict(
                type='ResNet',
                depth=50,
                base_channels=2,
                out_indices=(0, 1, 2, 3)),
            neck=dict(
                type='FPN',
                in_channels=[8, 16, 32, 64],
                out_channels=C,
                start_level=1,
                add_extra_convs='on_input',
                num_outs=5),
            bbox_head=dict(
                type='SpatialFlowHead',
                num_classes=K,
                in_channels=C,
                feat_channels=C),
            thing_head=dict(
                type='SpatialFlowThingHead',
                roi_extractor=dict(
                    type='SingleRoIExtractor',
                    roi_layer=dict(
                        type='RoIAlign', output_size=14, sampling_ratio=0),
                    out_channels=C,
                    featmap_strides=[8, 16, 32]),
                mask_head=dict(
                    type='FCNMaskHead',
                    num_convs=4,
                    in_channels=C,
                    conv_out_channels=C,
                    num_classes=K)),
            stuff_head=dict(
                type='SpatialFlowStuffHead',
                num_things_classes=K,
                in_channels=C,
                feat_channels=F_,
                norm_cfg=GN),
            panoptic_fusion_head=dict(
                type='BoxFillFusionHead', num_things_classes=K)))
    out = tool.convert_state_dict(
        reference_state_dict(), expected=model.state_dict())
    model.load_state_dict(out, strict=True)


def test_cli(tool, tmp_path):
    ref = reference_state_dict()
    src, dst = str(tmp_path / 'ref.pth'), str(tmp_path / 'out.pth')
    torch.save(
        dict(
            state_dict=ref,
            meta=dict(epoch=20, iter=1000),
            optimizer=dict(state={})), src)
    tool.main([src, dst])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['converter'] == 'spatialflow_to_mmdr1'
    assert saved['meta']['epoch'] == 20
    assert set(saved['state_dict']) == set(our_model().state_dict())
    torch.testing.assert_close(
        saved['state_dict']['stuff_head.conv_logits.'
                            'bias'][53], ref['stuff_head.conv.bias'][36])
    args = tool.parse_args([src, dst, '--other-index', '5'])
    assert args.other_index == 5 and args.expected_config is None
