# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of DR1Mask, DR1MaskPanoptic and their heads (dr1mask spec 2-6)."""
import copy

import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.registry import DefaultScope

from mmdr1.models import (DR1Mask, DR1MaskFCOSHead, DR1MaskHead,
                          DR1MaskPanoptic, UnifiedPanopticHead)
from mmdr1.testing import demo_panoptic_sample

register_all_modules(init_default_scope=False)

T, S, C = 3, 2, 8
GN = dict(type='GN', num_groups=4, requires_grad=True)


def model_cfg(panoptic=False, module='FactoredAttention'):
    if module == 'FactoredAttention':
        inst = dict(
            type=module,
            in_channels=C,
            num_bases=2,
            rank=2,
            bottom_resolution=8)
        embed_dim = C * 2 + 2 * 2
    elif module == 'VectorMask':
        inst = dict(type=module, in_channels=C, bottom_resolution=8)
        embed_dim = C
    else:  # Blender on a projected basis
        inst = dict(
            type='Blender', num_bases=2, attn_size=4, bottom_resolution=8)
        embed_dim = 2 * 4 * 4
    cfg = dict(
        type='DR1MaskPanoptic' if panoptic else 'DR1Mask',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[103.53, 116.28, 123.675],
            std=[1.0, 1.0, 1.0],
            bgr_to_rgb=False,
            pad_size_divisor=4,
            pad_mask=True,
            pad_seg=panoptic,
            seg_pad_value=255),
        backbone=dict(
            type='ResNet',
            depth=18,
            base_channels=8,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            init_cfg=None),
        neck=dict(
            type='FPN',
            in_channels=[8, 16, 32, 64],
            out_channels=16,
            start_level=1,
            add_extra_convs='on_output',
            num_outs=5,
            relu_before_extra_convs=True),
        bbox_head=dict(
            type='DR1MaskFCOSHead',
            num_classes=T,
            in_channels=16,
            feat_channels=16,
            stacked_convs=1,
            basis_channels=C,
            embed_dim=embed_dim,
            merge_embeds='mean' if panoptic else None,
            norm_cfg=GN),
        mask_head=dict(
            type='DR1MaskHead',
            basis=dict(
                type='DR1Basis',
                in_channels=16,
                channels=C,
                num_levels=5,
                norm_cfg=GN),
            instance_module=inst,
            num_things_classes=T,
            sem_channels=8,
            sem_norm_cfg=GN,
            thing_sem_field='gt_thing_sem_seg' if panoptic else 'gt_sem_seg'),
        test_cfg=dict(
            nms_pre=100,
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.6),
            max_per_img=10))
    if panoptic:
        cfg['panoptic_head'] = dict(
            type='UnifiedPanopticHead',
            in_channels=C,
            num_things_classes=T,
            num_stuff_classes=S,
            stuff_area_limit=16)
    return cfg


def build(cfg):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


def make_data(shapes=((92, 130), (84, 100)), things=(3, 0), panoptic=False):
    inputs, samples = [], []
    for i, ((h, w), n) in enumerate(zip(shapes, things)):
        img, sample = demo_panoptic_sample(h, w, n, T, seed=i, min_size=12)
        if not panoptic:  # instance data: no panoptic map
            del sample.gt_sem_seg
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


# ----------------------------------------------------------------------
# DR1MaskFCOSHead
# ----------------------------------------------------------------------
def fcos_head(**kwargs):
    cfg = dict(
        num_classes=T,
        in_channels=16,
        feat_channels=16,
        stacked_convs=1,
        basis_channels=C,
        embed_dim=12,
        norm_cfg=GN)
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = DR1MaskFCOSHead(**cfg)
    head.init_weights()
    return head


@pytest.mark.parametrize('context_from', ['box_tower', 'cls_tower', 'fpn'])
def test_fcos_head_contexts_and_embeddings(context_from):
    head = fcos_head(context_from=context_from)
    feats = [torch.randn(2, 16, s, s + 1) for s in (12, 6, 3, 2, 1)]
    cls, bbox, ctr, emb = head(feats)
    ctx = head.get_contexts()
    assert len(ctx) == 5
    for lvl, f in enumerate(feats):
        assert emb[lvl].shape == (2, 12) + f.shape[-2:]
        assert ctx[lvl].shape == (2, 2 * C) + f.shape[-2:]
    if context_from == 'box_tower':  # one conv gives [context, embedding]
        assert head.context_layer is None
        assert head.top_layer.out_channels == 2 * C + 12
        _, _, _, _, reg = head._forward_towers(feats[0], head.scales[0], 8)
        top = head.top_layer(reg)
        assert torch.allclose(ctx[0], top[:, :2 * C], atol=1e-6)
        assert torch.allclose(emb[0], top[:, 2 * C:], atol=1e-6)
    else:
        assert head.top_layer.out_channels == 12
        assert head.context_layer.out_channels == 2 * C
        if context_from == 'fpn':
            assert torch.allclose(
                ctx[1], head.context_layer(feats[1]), atol=1e-6)
    assert abs(head.top_layer.weight.std().item() - 0.01) < 3e-3


def test_fcos_head_without_context_and_bad_args():
    head = fcos_head(with_context=False)
    head([torch.randn(1, 16, s, s) for s in (8, 4, 2, 1, 1)])
    assert head.get_contexts() is None
    assert head.top_layer.out_channels == 12
    with pytest.raises(ValueError, match='context_from'):
        fcos_head(context_from='neck')
    with pytest.raises(ValueError, match='merge_embeds'):
        fcos_head(merge_embeds='max')


@pytest.mark.parametrize('mode', ['mean', 'own'])
def test_fcos_head_merged_embeddings(mode):
    head = fcos_head(merge_embeds=mode)
    head.eval()
    feats = [torch.randn(1, 16, s, s) for s in (8, 4, 2, 1, 1)]
    meta = dict(img_shape=(64, 64), scale_factor=(1., 1.))
    cfg = dict(
        nms_pre=50,
        score_thr=0.0,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=5)
    with torch.no_grad():
        outs = head(feats)
        res = head.predict_by_feat(*outs, [meta], cfg=cfg)[0]
        pre = head.predict_by_feat(*outs, [meta], cfg=cfg, with_nms=False)[0]
    assert len(res) <= 5
    assert res.merged_top_feats.shape == res.top_feats.shape
    if mode == 'own':
        assert torch.equal(res.merged_top_feats, res.top_feats)
    else:
        # every merged row is a mean of pre-NMS candidate embeddings
        keep = [
            int(torch.nonzero((pre.top_feats == t).all(1))[0])
            for t in res.top_feats
        ]
        rows = UnifiedPanopticHead.merge_nms_rows(
            pre.bboxes,
            pre.scores,
            pre.labels,
            pre.top_feats,
            torch.tensor(keep),
            0.6,
            mode='mean')
        assert torch.allclose(res.merged_top_feats, rows, atol=1e-6)


# ----------------------------------------------------------------------
# DR1MaskHead
# ----------------------------------------------------------------------
def test_mask_head_projection_and_outputs():
    cfg = model_cfg(module='Blender')['mask_head']
    head = MODELS.build(cfg)
    assert isinstance(head, DR1MaskHead)
    assert head.proj is not None and head.proj.out_channels == 2
    assert head.instance_module is head.blender
    for module in ('FactoredAttention', 'VectorMask'):
        assert MODELS.build(model_cfg(module=module)['mask_head']).proj \
            is None
    feats = [torch.randn(2, 16, s, s) for s in (12, 6, 3, 2, 1)]
    ctx = [torch.randn(2, 2 * C, s, s) for s in (12, 6, 3, 2, 1)]
    head.train()
    bases, sem, raw = head(feats, ctx, output_size=(23, 24), return_raw=True)
    assert bases.shape == (2, 2, 23, 24) and raw.shape == (2, C, 23, 24)
    assert sem.shape == (2, T + 1, 23, 24)
    head.eval()
    bases, sem = head(feats, ctx)
    assert sem is None and bases.shape == (2, 2, 24, 24)


# ----------------------------------------------------------------------
# DR1Mask
# ----------------------------------------------------------------------
@pytest.mark.parametrize('module',
                         ['FactoredAttention', 'VectorMask', 'Blender'])
def test_dr1mask_loss_and_predict(module):
    model = build(model_cfg(module=module))
    assert isinstance(model, DR1Mask)
    model.train()
    data = model.data_preprocessor(make_data(), True)
    # divisibility 4: 92 x 130 -> 92 x 132 (not 96 x 160)
    assert data['inputs'].shape[-2:] == (92, 132)
    losses = model(**data, mode='loss')
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness', 'loss_mask',
                'loss_basis_sem'):
        assert torch.isfinite(losses[key]), key
    assert losses['loss_mask'] > 0
    sum(losses.values()).backward()
    # the mask loss reaches the DR1Basis and, through the contexts, the
    # top layer
    assert model.mask_head.basis.dr1_convs[0].conv.weight.grad.abs().sum() > 0
    assert model.bbox_head.top_layer.weight.grad[:2 * C].abs().sum() > 0
    model.eval()
    data = model.data_preprocessor(make_data(), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    for sample, (h, w) in zip(results, ((92, 130), (84, 100))):
        pred = sample.pred_instances
        assert pred.masks.shape[-2:] == (h, w)
        assert pred.masks.dtype == torch.bool
        assert 'merged_top_feats' not in pred


def test_dr1mask_empty_gt_and_tensor_mode():
    model = build(model_cfg())
    model.train()
    data = model.data_preprocessor(make_data(things=(0, 0)), True)
    losses = model(**data, mode='loss')
    assert losses['loss_mask'].item() == 0
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    fcos, (bases, sem) = model(**data, mode='tensor')
    assert bases.shape[-2:] == (92 // 4, 132 // 4)
    assert len(fcos) == 4


# ----------------------------------------------------------------------
# DR1MaskPanoptic
# ----------------------------------------------------------------------
def test_panoptic_loss_and_options():
    model = build(model_cfg(panoptic=True, module='VectorMask'))
    assert isinstance(model, DR1MaskPanoptic)
    model.train()
    data = model.data_preprocessor(make_data(panoptic=True), True)
    losses = model(**data, mode='loss')
    assert {'loss_panoptic', 'loss_mask', 'loss_basis_sem'} <= set(losses)
    assert losses['loss_panoptic'] > 0
    sum(losses.values()).backward()
    assert model.panoptic_head.conv_stuff.weight.grad.abs().sum() > 0
    # the instance rows are embeddings: the panoptic loss alone reaches
    # the top layer's embedding channels
    model.zero_grad()
    model.with_instance_loss = False
    losses = model(**data, mode='loss')
    assert 'loss_mask' not in losses and 'loss_basis_sem' not in losses
    losses['loss_panoptic'].backward()
    assert model.bbox_head.top_layer.weight.grad[2 * C:].abs().sum() > 0


def test_panoptic_stuff_only_images():
    model = build(model_cfg(panoptic=True, module='VectorMask'))
    model.train()
    data = model.data_preprocessor(
        make_data(things=(0, 0), panoptic=True), True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_panoptic'] > 0  # stuff is still supervised


def test_panoptic_compact_targets():
    model = build(model_cfg(panoptic=True, module='VectorMask'))
    ign = model.panoptic_head.ignore_index
    t = torch.tensor([[[0, 1, S, S + 1, S + 2, ign]]])
    valid = [torch.tensor([True, False, True])]
    out = model._compact_instance_targets(t.clone(), valid)
    assert out.tolist() == [[[0, 1, S, ign, S + 1, ign]]]


@pytest.mark.parametrize('shapes', [((92, 130), (84, 100)), ((61, 77), )])
def test_panoptic_predict(shapes):
    model = build(model_cfg(panoptic=True, module='VectorMask'))
    model.eval()
    data = make_data(shapes=shapes, things=(2, 0)[:len(shapes)], panoptic=True)
    data = model.data_preprocessor(data, False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    for sample, (h, w) in zip(results, shapes):
        pan = sample.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, h, w)
        values = torch.unique(pan)
        things = values >= INSTANCE_OFFSET
        assert (values[things] % INSTANCE_OFFSET < T).all()
        assert ((values[~things] >= T) & (values[~things] <= T + S)).all()
        assert sample.pred_instances.masks.shape[-2:] == (h, w)


def test_panoptic_inference_choices():
    """``instance_overlap`` and ``thing_void_thr`` through the detector."""
    cfg = model_cfg(panoptic=True, module='VectorMask')
    model = build(cfg)
    model.eval()
    data = make_data(things=(3, 1), panoptic=True)
    data = model.data_preprocessor(data, False)

    def run(**head_args):
        for key, value in head_args.items():
            setattr(model.panoptic_head, key, value)
        with torch.no_grad():
            out = model(**copy.deepcopy(data), mode='predict')
        model.panoptic_head.instance_overlap = None
        model.panoptic_head.thing_void_thr = None
        return [s.pred_panoptic_seg for s in out]

    plain = run()
    # a threshold no probability exceeds changes nothing; one every
    # probability exceeds leaves no stuff pixel
    same = run(thing_void_thr=1.0)
    no_stuff = run(thing_void_thr=0.0)
    for p, q, r in zip(plain, same, no_stuff):
        assert torch.equal(p.sem_seg, q.sem_seg)
        v = r.sem_seg
        assert not ((v >= T) & (v < T + S)).any()
        assert torch.equal(v >= INSTANCE_OFFSET, p.sem_seg >= INSTANCE_OFFSET)
    # the overlap test only removes instances, so segments can only grow
    filtered = run(instance_overlap=0.0)
    counts = []
    for p, f in zip(plain, filtered):
        n_plain = sum(a > 0 for a in p.instance_areas)
        n_filt = sum(a > 0 for a in f.instance_areas)
        counts.append((n_plain, n_filt))
        assert all(b == 0 or b >= a
                   for a, b in zip(p.instance_areas, f.instance_areas))
    assert all(n <= m for m, n in counts) and counts != [(m, m)
                                                         for m, _ in counts]
    probs = model.thing_probs(torch.randn(2, C, 5, 6))
    assert len(probs) == 2 and probs[0].shape == (5, 6)
    assert all(((q > 0) & (q < 1)).all() for q in probs)
    # the thing probabilities need the auxiliary semantic head
    cfg['panoptic_head']['thing_void_thr'] = 0.5
    cfg['mask_head']['with_sem_head'] = False
    with pytest.raises(ValueError, match='with_sem_head'):
        build(cfg)


@pytest.mark.parametrize('panoptic', [False, True])
def test_fine_level_basis(panoptic):
    """DR1Basis(fine_level=True): the neck gives P2-P7, FCOS gets P3-P7."""
    cfg = model_cfg(panoptic=panoptic, module='VectorMask')
    cfg['neck'].update(start_level=0, in_channels=[8, 16, 32, 64], num_outs=6)
    cfg['mask_head']['basis']['fine_level'] = True
    model = build(cfg)
    model.train()
    data = model.data_preprocessor(make_data(panoptic=panoptic), True)
    x = model.extract_feat(data['inputs'])
    assert len(x) == 6 and len(model.instance_feats(x)) == 5
    assert model.instance_feats(x)[0] is x[1]
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    grad = model.mask_head.basis.fine_reduce.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.eval()
    shapes = ((61, 77), )
    data = model.data_preprocessor(
        make_data(shapes=shapes, things=(2, ), panoptic=panoptic), False)
    with torch.no_grad():
        out = model(**data, mode='predict')[0]
    assert out.pred_instances.masks.shape[-2:] == shapes[0]
    if panoptic:
        assert out.pred_panoptic_seg.sem_seg.shape == (1, ) + shapes[0]
    # a five-level neck cannot feed both
    cfg['neck'].update(start_level=1, num_outs=5)
    model = build(cfg)
    with pytest.raises(ValueError, match='P2'):
        model.instance_feats(model.extract_feat(data['inputs']))


def test_panoptic_config_checks():
    cfg = model_cfg(panoptic=True, module='VectorMask')
    cfg['bbox_head']['merge_embeds'] = None
    with pytest.raises(ValueError, match='merge_embeds'):
        build(cfg)
    cfg = model_cfg(panoptic=True)  # factored embeddings != C
    with pytest.raises(ValueError, match='vector'):
        build(cfg)


def separate_rows_cfg():
    """Factored attention + a separate C-dim panoptic row (Table 7)."""
    cfg = model_cfg(panoptic=True)
    cfg['row_embed'] = 'separate'
    cfg['bbox_head']['embed_dim'] += C
    return cfg


def test_panoptic_separate_rows_loss():
    model = build(separate_rows_cfg())
    assert model.row_embed == 'separate'
    model.train()
    data = model.data_preprocessor(make_data(panoptic=True), True)
    losses = model(**data, mode='loss')
    assert {'loss_panoptic', 'loss_mask'} <= set(losses)
    # the panoptic loss reaches only the row part of the embedding, the
    # mask loss only the instance-module part
    module_dim = model.mask_head.blender.embed_dim
    weight = model.bbox_head.top_layer.weight
    embed_rows = slice(2 * C, 2 * C + module_dim)
    row_rows = slice(2 * C + module_dim, 2 * C + module_dim + C)
    losses['loss_panoptic'].backward(retain_graph=True)
    assert weight.grad[row_rows].abs().sum() > 0
    assert weight.grad[embed_rows].abs().sum() == 0
    model.zero_grad()
    losses['loss_mask'].backward()
    assert weight.grad[embed_rows].abs().sum() > 0
    assert weight.grad[row_rows].abs().sum() == 0


def test_panoptic_separate_rows_predict():
    model = build(separate_rows_cfg())
    model.eval()
    shapes = ((61, 77), )
    data = model.data_preprocessor(
        make_data(shapes=shapes, things=(2, ), panoptic=True), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    pan = results[0].pred_panoptic_seg.sem_seg
    assert pan.shape == (1, 61, 77)
    inst = results[0].pred_instances
    assert 'merged_top_feats' not in inst
    assert inst.masks.shape[-2:] == (61, 77)


def test_panoptic_separate_rows_checks():
    cfg = separate_rows_cfg()
    cfg['bbox_head']['embed_dim'] -= 1
    with pytest.raises(ValueError, match='plus the'):
        build(cfg)
    cfg = separate_rows_cfg()
    cfg['row_embed'] = 'both'
    with pytest.raises(ValueError, match='row_embed'):
        build(cfg)
