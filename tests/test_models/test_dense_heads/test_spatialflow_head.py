# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of SpatialFlowHead (spatialflow spec sections 2.2-2.4, 8)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from mmdr1.models.dense_heads import DeformFlowConvModule, SpatialFlowHead

register_all_modules(init_default_scope=False)

C = 8
K = 3
SIZES = ((16, 20), (8, 10), (4, 5), (2, 3), (1, 2))
FLOW_PREFIX = dict(
    with_reg_cls_flow='cls_flow_convs.',
    with_reg_stuff_flow='stuff_flow_convs.',
    with_reg_thing_flow='thing_flow_convs.',
    with_semantic_flow='semantic_flow_convs.')
NO_FLOWS = {name: False for name in FLOW_PREFIX}


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Small convolutions on one thread (see ``tests/conftest.py``)."""
    yield


def make_head(**kwargs):
    cfg = dict(num_classes=K, in_channels=C, feat_channels=C)
    cfg.update(kwargs)
    return SpatialFlowHead(**cfg)


def randomize(head, seed=0, std=0.3):
    """Non-trivial weights (the default init makes every signal tiny)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(head.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return head


def make_feats(batch=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, C, h, w, generator=gen) for h, w in SIZES)


def zero_flows(head):
    with torch.no_grad():
        for name, p in head.named_parameters():
            if any(name.startswith(pre) for pre in FLOW_PREFIX.values()):
                p.zero_()
    return head


def conv(x, module):
    """A ConvModule's 3x3 conv (no activation)."""
    return F.conv2d(x, module.conv.weight, module.conv.bias, padding=1)


def reference_level(head, x):
    """Spec 2.3 pseudo-code for one level, written out independently."""
    cls = reg = stuff = x
    thing = None
    for i in range(4):
        reg = F.relu(conv(reg, head.reg_convs[i]))
        cls = F.relu(
            conv(cls + conv(reg, head.cls_flow_convs[i]), head.cls_convs[i]))
        stuff = F.relu(
            conv(stuff + conv(reg, head.stuff_flow_convs[i]),
                 head.stuff_convs[i]))
        if i == 3:
            thing = x + conv(stuff, head.semantic_flow_convs[0])
            thing = F.relu(
                conv(thing + conv(reg, head.thing_flow_convs[0]),
                     head.thing_convs[0]))
    cls_score = F.conv2d(
        cls, head.retina_cls.weight, head.retina_cls.bias, padding=1)
    bbox_pred = F.conv2d(
        reg, head.retina_reg.weight, head.retina_reg.bias, padding=1)
    return cls_score, bbox_pred, stuff, thing


def assert_outs_close(outs_a, outs_b, atol=1e-5):
    assert len(outs_a) == len(outs_b)
    for list_a, list_b in zip(outs_a, outs_b):
        assert len(list_a) == len(list_b)
        for a, b in zip(list_a, list_b):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def test_shapes_per_level():
    head = make_head()
    head.init_weights()
    feats = make_feats()
    cls_scores, bbox_preds = head(feats)
    outs = head.forward_all(feats)
    assert len(outs) == 4
    assert len(cls_scores) == len(bbox_preds) == 5
    for lvl, (h, w) in enumerate(SIZES):
        assert outs[0][lvl].shape == (2, 9 * K, h, w)
        assert outs[1][lvl].shape == (2, 9 * 4, h, w)
        # forward (dense part only) gives the same dense outputs
        torch.testing.assert_close(cls_scores[lvl], outs[0][lvl])
        torch.testing.assert_close(bbox_preds[lvl], outs[1][lvl])
    for feats_list in outs[2:]:
        assert [f.shape for f in feats_list] == [(2, C, h, w)
                                                 for h, w in SIZES[:3]]
    outs = make_head(num_seg_levels=2).forward_all(feats)
    assert len(outs[2]) == len(outs[3]) == 2


def test_wiring_matches_spec_pseudo_code():
    head = randomize(make_head())
    feats = make_feats()
    cls_scores, bbox_preds, stuff_feats, thing_feats = head.forward_all(feats)
    for lvl in range(3):
        ref = reference_level(head, feats[lvl])
        got = (cls_scores[lvl], bbox_preds[lvl], stuff_feats[lvl],
               thing_feats[lvl])
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # P6 / P7: cls and reg only, cls still with its reg flows
    ref = reference_level(head, feats[4])
    torch.testing.assert_close(cls_scores[4], ref[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(bbox_preds[4], ref[1], atol=1e-5, rtol=1e-4)


def test_zero_flows_equal_no_flow_head():
    full = zero_flows(randomize(make_head()))
    plain = make_head(**NO_FLOWS)
    missing, unexpected = plain.load_state_dict(
        full.state_dict(), strict=False)
    assert missing == []
    assert all(
        any(k.startswith(p) for p in FLOW_PREFIX.values()) for k in unexpected)
    feats = make_feats()
    assert_outs_close(full.forward_all(feats), plain.forward_all(feats))
    # and the flows matter once they are not zero
    randomize(full, seed=3)
    plain.load_state_dict(full.state_dict(), strict=False)
    out_full, out_plain = full.forward_all(feats), plain.forward_all(feats)
    for i in (0, 2, 3):  # cls, stuff, thing receive flows
        assert not torch.allclose(out_full[i][0], out_plain[i][0])
    torch.testing.assert_close(out_full[1][0], out_plain[1][0])  # reg not


@pytest.mark.parametrize('switch', sorted(FLOW_PREFIX))
def test_each_switch_removes_exactly_its_convs(switch):
    full_keys = set(make_head().state_dict())
    keys = set(make_head(**{switch: False}).state_dict())
    assert keys <= full_keys
    removed = full_keys - keys
    assert removed and all(k.startswith(FLOW_PREFIX[switch]) for k in removed)
    assert not any(k.startswith(FLOW_PREFIX[switch]) for k in keys)


def test_parameter_counts_256_channels():
    """Spec 2.3: 10 flow convs x 590,080, 5 extra tower convs."""
    head = SpatialFlowHead(num_classes=80, in_channels=256)
    retina = RetinaHead(num_classes=80, in_channels=256)

    def count(prefixes):
        return sum(p.numel() for n, p in head.named_parameters()
                   if n.startswith(prefixes))

    conv_params = 256 * 256 * 9 + 256
    assert conv_params == 590080
    assert count(tuple(FLOW_PREFIX.values())) == 10 * conv_params
    assert count(('stuff_convs.', 'thing_convs.')) == 5 * conv_params
    assert len(head.cls_flow_convs) == len(head.stuff_flow_convs) == 4
    assert len(head.thing_flow_convs) == len(head.semantic_flow_convs) == 1
    total = sum(p.numel() for p in head.parameters())
    assert total == sum(p.numel()
                        for p in retina.parameters()) + 15 * conv_params


def test_init():
    head = make_head(in_channels=64, feat_channels=64)
    head.init_weights()
    for name, p in head.named_parameters():
        if name.endswith('conv.weight'):
            assert abs(p.std().item() - 0.01) < 0.002, name
        elif name.endswith('conv.bias'):
            assert p.abs().max().item() == 0, name
    assert torch.allclose(head.retina_cls.bias,
                          torch.full_like(head.retina_cls.bias, -4.59512))


@pytest.mark.parametrize('consumer', ['cls', 'stuff', 'thing'])
def test_reg_tower_gets_gradients_through_flows(consumer):
    index = dict(cls=0, stuff=2, thing=3)[consumer]
    for with_flows in (True, False):
        head = randomize(make_head(**({} if with_flows else NO_FLOWS)))
        outs = head.forward_all(make_feats())
        sum(o.sum() for o in outs[index]).backward()
        grad = head.reg_convs[0].conv.weight.grad
        if with_flows:
            assert grad is not None and grad.abs().sum() > 0
        else:
            assert grad is None


def test_tower_depths_and_alignment():
    # thing tower of 2 stages aligned with the last 2 reg stages
    head = randomize(make_head(stacked_thing_convs=2, stacked_stuff_convs=2))
    feats = make_feats()
    _, _, stuff_feats, thing_feats = head.forward_all(feats)
    x = feats[0]
    regs = head._reg_tower(x)
    stuff = x
    for j in range(2):
        stuff = F.relu(
            conv(stuff + conv(regs[2 + j], head.stuff_flow_convs[j]),
                 head.stuff_convs[j]))
    thing = x + conv(stuff, head.semantic_flow_convs[0])
    for j in range(2):
        thing = F.relu(
            conv(thing + conv(regs[2 + j], head.thing_flow_convs[j]),
                 head.thing_convs[j]))
    torch.testing.assert_close(stuff_feats[0], stuff, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(thing_feats[0], thing, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='stacked_stuff_convs'):
        make_head(stacked_convs=2, stacked_stuff_convs=3)
    with pytest.raises(ValueError, match='in_channels'):
        make_head(in_channels=C * 2)


def test_retina_head_parity_without_flows_and_seg_towers():
    """No flows, no stuff/thing convs: exactly mmdet's RetinaHead."""
    head = randomize(
        make_head(stacked_stuff_convs=0, stacked_thing_convs=0, **NO_FLOWS))
    retina = RetinaHead(num_classes=K, in_channels=C, feat_channels=C)
    assert set(head.state_dict()) == set(retina.state_dict())
    retina.load_state_dict(head.state_dict())
    feats = make_feats()
    assert_outs_close(head(feats), retina(feats))
    # towers of 0 convs pass the FPN features through
    outs = head.forward_all(feats)
    for lvl in range(3):
        assert outs[2][lvl] is feats[lvl] and outs[3][lvl] is feats[lvl]


def test_dcn_shapes_and_modules():
    head = make_head(
        dcn_cls_convs_idx=[0, 1, 2, 3],
        dcn_stuff_convs_idx=[0, 1, 2, 3],
        dcn_thing_convs_idx=[0])
    head.init_weights()
    for convs in (head.cls_convs, head.stuff_convs, head.thing_convs):
        assert all(isinstance(m, DeformFlowConvModule) for m in convs)
        assert all(
            abs(m.conv.weight.std().item() - 0.01) < 0.005 for m in convs)
    assert not any(isinstance(m, DeformFlowConvModule) for m in head.reg_convs)
    for flows in (head.cls_flow_convs, head.stuff_flow_convs,
                  head.thing_flow_convs):
        assert all(m.conv.out_channels == 27 for m in flows)
    assert head.semantic_flow_convs[0].conv.out_channels == C
    feats = make_feats()
    outs = head.forward_all(feats)
    for lvl, (h, w) in enumerate(SIZES):
        assert outs[0][lvl].shape == (2, 9 * K, h, w)
    assert [f.shape for f in outs[3]] == [(2, C, h, w) for h, w in SIZES[:3]]
    with pytest.raises(ValueError, match='out of range'):
        make_head(dcn_thing_convs_idx=[1])
    with pytest.raises(ValueError, match='with_reg_cls_flow'):
        make_head(dcn_cls_convs_idx=[0], with_reg_cls_flow=False)


def test_dcn_zero_flow_is_half_modulated_plain_conv():
    """Zero offset convs: offset 0, mask sigmoid(0) = 0.5, so a DCN stage is
    ``ReLU(0.5 * W * x + b)``, i.e. a plain stage with weights 0.5 W (and a
    zero additive flow); the semantic flow is still added."""
    dcn = randomize(
        make_head(
            dcn_cls_convs_idx=[1, 3],
            dcn_stuff_convs_idx=[0, 1, 2, 3],
            dcn_thing_convs_idx=[0]))
    zero_flows(dcn)
    with torch.no_grad():  # semantic flow stays on
        randomize(dcn.semantic_flow_convs, seed=5)
    plain = make_head()
    state = copy.deepcopy(dcn.state_dict())
    reg_flows = ('cls_flow_convs.', 'stuff_flow_convs.', 'thing_flow_convs.')
    for name in list(state):
        if name.startswith(reg_flows):
            state[name] = torch.zeros_like(plain.state_dict()[name])
    for prefix, idx in (('cls_convs', (1, 3)), ('stuff_convs', (0, 1, 2, 3)),
                        ('thing_convs', (0, ))):
        for i in idx:
            state[f'{prefix}.{i}.conv.weight'] *= 0.5
    plain.load_state_dict(state)
    feats = make_feats()
    assert_outs_close(dcn.forward_all(feats), plain.forward_all(feats))


def test_dcn_offsets_come_from_feature_plus_reg():
    dcn = randomize(make_head(dcn_cls_convs_idx=[0]), std=0.5)
    feats = make_feats()
    outs = dcn.forward_all(feats)
    outs[0][0].sum().backward()
    # the reg tower steers the offsets / modulation of cls stage 0
    assert dcn.reg_convs[0].conv.weight.grad.abs().sum() > 0
    assert dcn.cls_flow_convs[0].conv.weight.grad.abs().sum() > 0
    # and reg is NOT added to the cls feature: a DCN stage with the flow's
    # offset/mask replaced by the same computation by hand
    x = feats[0]
    reg = dcn._reg_tower(x)[0]
    out = conv(x + reg, dcn.cls_flow_convs[0])
    o1, o2, m = out.chunk(3, dim=1)
    ref = F.relu(dcn.cls_convs[0].conv(x, torch.cat([o1, o2], 1), m.sigmoid()))
    got = dcn._stage(x, reg, dcn.cls_convs[0], dcn.cls_flow_convs[0])
    torch.testing.assert_close(got, ref)


def test_retinanet_with_flows_in_mmdet_retinanet():
    cfg = dict(
        type='RetinaNet',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32),
        backbone=dict(
            type='ResNet',
            depth=18,
            base_channels=8,
            num_stages=4,
            out_indices=(1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            init_cfg=None),
        neck=dict(
            type='FPN',
            in_channels=[16, 32, 64],
            out_channels=C,
            start_level=0,
            add_extra_convs='on_input',
            num_outs=5),
        bbox_head=dict(
            type='SpatialFlowHead',
            num_classes=K,
            in_channels=C,
            feat_channels=C,
            stacked_stuff_convs=0,
            stacked_thing_convs=0,
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.4,
                min_pos_iou=0,
                ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        test_cfg=dict(
            nms_pre=100,
            min_bbox_size=0,
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.4),
            max_per_img=10))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    head = model.bbox_head
    # only the reg -> cls flow: no stuff / thing towers, no other flows
    extra = set(head.state_dict()) - set(
        RetinaHead(num_classes=K, in_channels=C, feat_channels=C).state_dict())
    assert extra and all(k.startswith('cls_flow_convs.') for k in extra)
    packed = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 64, 80), (3, 50, 70)],
        num_items=[2, 0],
        num_classes=K)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    sum(sum(v) if isinstance(v, list) else v
        for v in losses.values()).backward()
    assert head.cls_flow_convs[0].conv.weight.grad.abs().sum() > 0
    model.eval()
    data = model.data_preprocessor(packed, False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2
    for res in results:
        assert len(res.pred_instances) <= 10
        assert res.pred_instances.bboxes.shape[-1] == 4
