# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of SpatialFlowStuffHead (spatialflow spec section 4)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.structures import PixelData

from mmdr1.models import SpatialFlowStuffHead

register_all_modules(init_default_scope=False)

T, S = 3, 4  # thing / stuff classes
C = 8  # tiny channels
GN = dict(type='GN', num_groups=4, requires_grad=True)


def make_head(**kwargs):
    cfg = dict(
        num_things_classes=T,
        num_stuff_classes=S,
        in_channels=C,
        feat_channels=C,
        norm_cfg=GN)
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = SpatialFlowStuffHead(**cfg)
    head.init_weights()
    return head


def make_feats(h=64, w=96, batch=2, seed=2):
    """P3-P5 stuff features of a padded (h, w) input."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, C, h // s, w // s, generator=g) for s in (8, 16, 32)
    ]


def make_samples(img_shapes, pad_shape, seed=1):
    """Samples whose gt_sem_seg is padded with 255 as pad_seg does."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for h, w in img_shapes:
        sem = torch.full((1, ) + tuple(pad_shape), 255, dtype=torch.uint8)
        sem[:, :h, :w] = torch.randint(
            0, T + S, (1, h, w), generator=g, dtype=torch.uint8)
        sem[:, :3, :5] = 255  # some void pixels inside the image
        s = DetDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=tuple(pad_shape),
                batch_input_shape=tuple(pad_shape)))
        s.gt_sem_seg = PixelData(sem_seg=sem)
        samples.append(s)
    return samples


def test_structure_matches_spec():
    head = SpatialFlowStuffHead()  # COCO defaults
    assert head.num_classes == 54
    assert head.loss_seg.loss_weight == 0.25
    assert head.loss_seg.ignore_index == 255 and head.ignore_index == 255
    convs = [[m for m in seq if not isinstance(m, nn.Upsample)]
             for seq in head.lateral_convs]
    assert [len(c) for c in convs] == [1, 2, 3]  # P3, P4, P5 (spec 4.1)
    for level, seq in enumerate(head.lateral_convs):
        assert len(seq) == 2 * (level + 1)
        for k, m in enumerate(seq):
            if k % 2:
                assert isinstance(m, nn.Upsample)
                assert m.scale_factor == 2 and m.mode == 'bilinear'
                assert m.align_corners is True
            else:
                assert m.conv.in_channels == (256 if k == 0 else 128)
                assert m.conv.out_channels == 128
                assert m.conv.kernel_size == (3, 3) and m.conv.bias is None
                assert isinstance(m.gn, nn.GroupNorm)
                assert m.gn.num_groups == 32
                assert isinstance(m.activate, nn.ReLU)
    assert head.conv_logits.in_channels == 128
    assert head.conv_logits.out_channels == 54
    assert head.conv_logits.kernel_size == (1, 1)
    assert head.conv_logits.bias is not None
    assert head.upsample.scale_factor == 4
    assert head.upsample.align_corners is True
    names = set(head.state_dict())
    # reference names (spec 8) under lateral_convs; classifier renamed
    for key in ('lateral_convs.0.0.conv.weight', 'lateral_convs.1.2.gn.bias',
                'lateral_convs.2.4.conv.weight', 'conv_logits.bias'):
        assert key in names
    assert len(names) == 3 * 6 + 2


def test_init_is_kaiming_fan_out():
    head = SpatialFlowStuffHead()
    head.init_weights()
    w = head.lateral_convs[2][4].conv.weight
    assert abs(w.std().item() - (2 / (128 * 9))**0.5) < 2e-3
    assert abs(head.conv_logits.weight.std().item() - (2 / 54)**0.5) < 0.02
    assert (head.conv_logits.bias == 0).all()
    gn = head.lateral_convs[1][2].gn
    assert (gn.weight == 1).all() and (gn.bias == 0).all()


def test_forward_shapes_and_computation():
    head = make_head()
    feats = make_feats()
    out = head(feats)
    assert out['seg_preds'].shape == (2, S + 1, 64, 96)
    assert out['seg_feats'].shape == (2, C, 16, 24)

    def up(t, k=2):
        return F.interpolate(
            t, scale_factor=k, mode='bilinear', align_corners=True)

    expected = 0
    for seq, f in zip(head.lateral_convs, feats):
        for k in range(0, len(seq), 2):
            f = up(seq[k](f))
        expected = expected + f
    logits = up(head.conv_logits(expected), 4)
    torch.testing.assert_close(out['seg_preds'], logits)
    with pytest.raises(ValueError, match='feature maps'):
        head(feats[:2])
    with pytest.raises(ValueError, match='pad_size_divisor'):
        head(make_feats(h=72))
    with pytest.raises(ValueError, match='out_stride'):
        make_head(feat_strides=(8, 12, 32))


def test_registry_and_nearest_upsample():
    head = MODELS.build(
        dict(
            type='SpatialFlowStuffHead',
            num_things_classes=T,
            num_stuff_classes=S,
            in_channels=C,
            feat_channels=C,
            norm_cfg=GN,
            upsample_mode='nearest'))
    assert head.upsample.mode == 'nearest'
    assert head(make_feats())['seg_preds'].shape == (2, S + 1, 64, 96)


def test_label_mapping():
    head = make_head()
    gt = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 255])
    # things -> S (last), stuff T + j -> j, out of range / 255 -> ignore
    assert head._set_things_to_void(gt).tolist() == \
        [4, 4, 4, 0, 1, 2, 3, 255, 255]


def _manual_ce(logits, labels, ignore=255):
    valid = labels != ignore
    ce = F.cross_entropy(logits, labels, reduction='none', ignore_index=ignore)
    return ce.sum() / valid.sum()


def test_default_loss_ignores_void_and_padding():
    head = make_head()
    feats = make_feats()
    shapes = [(60, 90), (40, 70)]
    samples = make_samples(shapes, (64, 96))
    loss = head.loss(feats, samples)['loss_stuff']
    logits = head(feats)['seg_preds']
    gt = torch.stack(
        [head._set_things_to_void(s.gt_sem_seg.sem_seg[0]) for s in samples])
    assert (gt[1, 40:] == 255).all()  # padding is ignored
    torch.testing.assert_close(loss, 0.25 * _manual_ce(logits, gt))

    # unpadded maps (no pad_seg) are padded with ignore by the head
    unpadded = make_samples(shapes, (64, 96))
    for s, (h, w) in zip(unpadded, shapes):
        s.gt_sem_seg = PixelData(sem_seg=s.gt_sem_seg.sem_seg[:, :h, :w])
    torch.testing.assert_close(head.loss(feats, unpadded)['loss_stuff'], loss)
    loss.backward()
    assert head.conv_logits.weight.grad is not None


def test_data_preprocessor_pads_with_ignore():
    """mmdet's preprocessor pads gt_sem_seg with seg_pad_value=255."""
    head = make_head()
    pre = DetDataPreprocessor(
        pad_size_divisor=32, pad_seg=True, seg_pad_value=255)
    shapes = [(60, 90), (40, 70)]
    samples = make_samples(shapes, (64, 96))
    raw = []
    for s, (h, w) in zip(samples, shapes):
        s.gt_sem_seg = PixelData(sem_seg=s.gt_sem_seg.sem_seg[:, :h, :w])
        raw.append(torch.zeros((3, h, w), dtype=torch.uint8))
    data = pre(dict(inputs=raw, data_samples=samples), training=True)
    assert data['inputs'].shape[-2:] == (64, 96)
    padded = data['data_samples'][1].gt_sem_seg.sem_seg
    assert padded.shape[-2:] == (64, 96) and (padded[:, 40:] == 255).all()
    feats = make_feats()
    expected = head.loss(feats, make_samples(shapes, (64, 96)))['loss_stuff']
    torch.testing.assert_close(
        head.loss(feats, data['data_samples'])['loss_stuff'], expected)


def reference_loss(logits, samples, weight=0.25, ignore=255):
    """The reference StuffHead.loss (spec 4.3), written literally.

    Padding is class 0, the weight map is image 0's valid region in every
    image, and mmdet 2.3's weight_reduce_loss multiplies (N, H, W) CE by the
    (N, 1, H, W) weights (broadcast to (N, N, H, W)) before summing.
    """
    num_t = T
    targets = []
    for s in samples:
        gt = s.gt_sem_seg.sem_seg[0].long()
        h, w = s.metainfo['img_shape']
        lab = torch.full_like(gt, ignore)
        lab[(gt >= num_t) & (gt < num_t + S)] = gt[(gt >= num_t)
                                                   & (gt < num_t + S)] - num_t
        lab[gt < num_t] = S
        lab[h:, :] = 0  # Pad(seg_pad_val=0) / collate padding
        lab[:, w:] = 0
        targets.append(lab)
    target = torch.stack(targets)[:, None]  # (N, 1, H, W)
    valid_h, valid_w = samples[0].metainfo['img_shape']
    weights = target.new_zeros(target.size(), dtype=torch.float)
    weights[..., :valid_h, :valid_w] = 1.
    avg = max(torch.sum(weights > 0).float().item(), 1.)
    ce = F.cross_entropy(
        logits, target.squeeze(1), reduction='none', ignore_index=ignore)
    assert (ce * weights).shape == (len(samples), ) * 2 + ce.shape[-2:]
    return weight * (ce * weights).sum() / avg


@pytest.mark.parametrize('batch', [1, 2, 3])
def test_reference_quirks_reproduce_spec(batch):
    head = make_head(reference_loss_quirks=True)
    feats = make_feats(batch=batch, seed=batch)
    shapes = [(48, 80), (64, 60), (30, 96)][:batch]
    samples = make_samples(shapes, (64, 96), seed=batch)
    loss = head.loss(feats, samples)['loss_stuff']
    logits = head(feats)['seg_preds'].detach()
    torch.testing.assert_close(loss, reference_loss(logits, samples))

    # closed form: N x the batch mean over image 0's region R0, the void
    # pixels counted in the denominator, padding labelled class 0
    h0, w0 = shapes[0]
    gt = head._stack_gts(samples, (64, 96))
    for i, (h, w) in enumerate(shapes):
        gt[i, h:] = 0
        gt[i, :, w:] = 0
    ce = F.cross_entropy(logits, gt, reduction='none', ignore_index=255)
    batch_mean = ce[:, :h0, :w0].sum() / (batch * h0 * w0)
    torch.testing.assert_close(loss, 0.25 * batch * batch_mean)
    per_image = sum(ce[i, :h0, :w0].mean() for i in range(batch))
    torch.testing.assert_close(loss, 0.25 * per_image)


def test_quirks_are_n_times_default_on_clean_batches():
    """Same shapes, no void: the quirk loss is exactly N x the default."""
    feats = make_feats(batch=3)
    samples = make_samples([(64, 96)] * 3, (64, 96))
    for s in samples:
        s.gt_sem_seg.sem_seg[s.gt_sem_seg.sem_seg == 255] = T  # no void
    default = make_head().loss(feats, samples)['loss_stuff']
    quirks = make_head(reference_loss_quirks=True).loss(feats,
                                                        samples)['loss_stuff']
    torch.testing.assert_close(quirks, 3 * default)


def test_predict_rescale():
    head = make_head()
    feats = make_feats()
    metas = [
        dict(
            img_shape=(60, 90), ori_shape=(30, 45),
            batch_input_shape=(64, 96)),
        dict(
            img_shape=(40, 70),
            ori_shape=(100, 175),
            batch_input_shape=(64, 96))
    ]
    logits = head(feats)['seg_preds']
    out = head.predict(feats, metas, rescale=False)
    assert [tuple(o.shape) for o in out] == [(S + 1, 60, 90), (S + 1, 40, 70)]
    torch.testing.assert_close(out[1], logits[1, :, :40, :70])
    out = head.predict(feats, metas, rescale=True)
    assert [tuple(o.shape) for o in out] == [(S + 1, 30, 45),
                                             (S + 1, 100, 175)]
    # nearest resize: argmax then resize == resize then argmax (spec 5.1)
    for o, logit, meta in zip(out, logits, metas):
        h, w = meta['img_shape']
        label = logit[:, :h, :w].argmax(0)[None, None].float()
        label = F.interpolate(label, size=meta['ori_shape'], mode='nearest')
        assert torch.equal(o.argmax(0), label[0, 0].long())
    bilinear = make_head(
        rescale_cfg=dict(mode='bilinear', align_corners=True)).predict(
            feats, metas, rescale=True)
    expected = F.interpolate(
        logits[1:2, :, :40, :70],
        size=(100, 175),
        mode='bilinear',
        align_corners=True)[0]
    torch.testing.assert_close(bilinear[1], expected)
