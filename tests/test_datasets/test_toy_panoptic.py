# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of the synthetic toy panoptic dataset and its dataset classes."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmdet.evaluation import CocoPanopticMetric
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import DATASETS
from mmengine.registry import DefaultScope
from panopticapi.utils import id2rgb, rgb2id

from mmdr1.datasets import (TOY_PANOPTIC_CATEGORIES, ToyInstanceDataset,
                            ToyPanopticDataset, make_toy_panoptic)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIZE = 96
NUM_TRAIN, NUM_VAL = 6, 4
CATS = {c['id']: c for c in TOY_PANOPTIC_CATEGORIES}
THING_IDS = [c['id'] for c in TOY_PANOPTIC_CATEGORIES if c['isthing']]
STUFF_IDS = [c['id'] for c in TOY_PANOPTIC_CATEGORIES if not c['isthing']]
LABELS = {c['id']: i for i, c in enumerate(TOY_PANOPTIC_CATEGORIES)}
SPLITS = ('train', 'val')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """A small toy set and the summary of its generation."""
    root = str(tmp_path_factory.mktemp('toy'))
    summary = make_toy_panoptic(
        root, num_train=NUM_TRAIN, num_val=NUM_VAL, img_size=SIZE, seed=0)
    return root, summary


def _load_json(root, kind, split):
    with open(osp.join(root, 'annotations', f'{kind}_{split}.json')) as f:
        return json.load(f)


def _read_rgb(path):
    return mmcv.imread(path, flag='color', channel_order='rgb')


def _pan_ids(root, split, png_name):
    png = osp.join(root, 'annotations', f'panoptic_{split}', png_name)
    return rgb2id(_read_rgb(png))


def _all_segments(root, split):
    """(image, panoptic annotation) pairs of a split."""
    pan = _load_json(root, 'panoptic', split)
    images = {img['id']: img for img in pan['images']}
    return [(images[ann['image_id']], ann) for ann in pan['annotations']]


def _bbox_of(mask):
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1)
    ]


def test_categories():
    isthing = [c['isthing'] for c in TOY_PANOPTIC_CATEGORIES]
    # things first, then stuff; at least 3 of each
    assert isthing == sorted(isthing, reverse=True)
    assert len(THING_IDS) >= 3 and len(STUFF_IDS) >= 3
    ids = [c['id'] for c in TOY_PANOPTIC_CATEGORIES]
    assert len(set(ids)) == len(ids)
    assert ids != list(range(1, len(ids) + 1))  # non-contiguous ids
    assert len({tuple(c['color'])
                for c in TOY_PANOPTIC_CATEGORIES}) == len(ids)
    meta = ToyPanopticDataset.METAINFO
    assert meta['classes'] == meta['thing_classes'] + meta['stuff_classes']
    assert meta['classes'] == tuple(c['name'] for c in TOY_PANOPTIC_CATEGORIES)
    assert len(meta['palette']) == len(meta['classes'])
    assert ToyInstanceDataset.METAINFO['classes'] == meta['thing_classes']
    assert DATASETS.get('ToyPanopticDataset') is ToyPanopticDataset
    assert DATASETS.get('ToyInstanceDataset') is ToyInstanceDataset


def test_layout_and_json(toy):
    root, summary = toy
    assert not summary['skipped']
    for split, num in zip(SPLITS, (NUM_TRAIN, NUM_VAL)):
        pan = _load_json(root, 'panoptic', split)
        assert [c['id'] for c in pan['categories']] == list(CATS)
        for cat in pan['categories']:
            ref = CATS[cat['id']]
            assert cat['name'] == ref['name']
            assert cat['isthing'] == ref['isthing']
            assert cat['supercategory'] == ref['supercategory']
            assert tuple(cat['color']) == tuple(ref['color'])
        assert len(pan['images']) == len(pan['annotations']) == num
        assert len({img['id'] for img in pan['images']}) == num
        jpgs = sorted(os.listdir(osp.join(root, split)))
        pngs = sorted(
            os.listdir(osp.join(root, 'annotations', f'panoptic_{split}')))
        assert len(jpgs) == len(pngs) == num
        for img, ann in _all_segments(root, split):
            stem = osp.splitext(img['file_name'])[0]
            assert img['file_name'].endswith('.jpg')
            # the PNG is named after the image (mmdet's naming rule)
            assert ann['file_name'] == f'{stem}.png'
            assert img['file_name'].replace('.jpg', '.png') in pngs
            assert (img['height'], img['width']) == (SIZE, SIZE)
            assert _read_rgb(osp.join(root, split,
                                      img['file_name'])).shape == (SIZE, SIZE,
                                                                   3)


def test_png_matches_segments(toy):
    root, _ = toy
    for split in SPLITS:
        for img, ann in _all_segments(root, split):
            rgb = _read_rgb(
                osp.join(root, 'annotations', f'panoptic_{split}',
                         ann['file_name']))
            ids = rgb2id(rgb)
            np.testing.assert_array_equal(id2rgb(ids), rgb)
            segs = ann['segments_info']
            seg_ids = [s['id'] for s in segs]
            assert len(set(seg_ids)) == len(seg_ids)
            # every pixel belongs to a listed segment (no VOID)
            assert set(np.unique(ids).tolist()) == set(seg_ids)
            assert 0 not in seg_ids
            for seg in segs:
                mask = ids == seg['id']
                assert seg['category_id'] in CATS
                assert seg['area'] == int(mask.sum()) > 0
                assert seg['bbox'] == _bbox_of(mask)
                assert seg['iscrowd'] in (0, 1)
                if seg['iscrowd']:
                    assert seg['category_id'] in THING_IDS
            assert any(s['category_id'] in STUFF_IDS for s in segs)


def test_instances_match_panoptic(toy):
    root, _ = toy
    for split in SPLITS:
        inst = _load_json(root, 'instances', split)
        pan = _load_json(root, 'panoptic', split)
        assert inst['images'] == pan['images']
        assert [c['id'] for c in inst['categories']] == THING_IDS
        ann_ids = [a['id'] for a in inst['annotations']]
        assert len(set(ann_ids)) == len(ann_ids)
        for img, ann in _all_segments(root, split):
            ids = _pan_ids(root, split, ann['file_name'])
            things = [
                s for s in ann['segments_info']
                if s['category_id'] in THING_IDS
            ]
            insts = [
                a for a in inst['annotations'] if a['image_id'] == img['id']
            ]
            assert len(insts) == len(things)
            for thing, ins in zip(things, insts):
                for key in ('category_id', 'area', 'bbox', 'iscrowd'):
                    assert ins[key] == thing[key]
                rle = ins['segmentation']
                assert isinstance(rle['counts'], str)
                np.testing.assert_array_equal(
                    mask_util.decode(rle).astype(bool), ids == thing['id'])
                assert int(mask_util.area(rle)) == ins['area']
                assert mask_util.toBbox(rle).tolist() == ins['bbox']


def _boxes_overlap(a, b):
    return (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3]
            and b[1] < a[1] + a[3])


def test_variety(toy):
    root, summary = toy
    for split in SPLITS:
        stats = summary['splits'][split]
        assert stats['num_occluded_things'] > 0
        assert stats['num_border_things'] > 0
        assert stats['num_crowd_segments'] > 0
        assert stats['num_images_without_things'] > 0
        segs = _all_segments(root, split)
        plain, crowd_only, empty = [], 0, 0
        overlapping = border = 0
        for _, ann in segs:
            things = [
                s for s in ann['segments_info']
                if s['category_id'] in THING_IDS
            ]
            normal = [s for s in things if not s['iscrowd']]
            if not things:
                empty += 1
            elif not normal:
                crowd_only += 1
            plain += normal
            overlapping += sum(
                _boxes_overlap(a['bbox'], b['bbox'])
                for i, a in enumerate(normal) for b in normal[i + 1:])
            for s in normal:
                x, y, w, h = s['bbox']
                border += x == 0 or y == 0 or x + w == SIZE or y + h == SIZE
        assert empty > 0 and crowd_only > 0
        assert overlapping > 0 and border > 0
        extents = [max(s['bbox'][2:]) for s in plain]
        assert min(extents) <= 12  # small things, ~10 px at 256 px
        assert max(extents) >= 0.4 * SIZE  # and large ones
    # every category shows up in the training split
    train_cats = {
        s['category_id']
        for _, ann in _all_segments(root, 'train')
        for s in ann['segments_info']
    }
    assert train_cats == set(CATS)


def test_stuff_colours(toy):
    """Stuff regions are rendered around their category's base colour."""
    root, _ = toy
    sums = {cid: np.zeros(3) for cid in STUFF_IDS}
    counts = dict.fromkeys(STUFF_IDS, 0)
    for split in SPLITS:
        for img, ann in _all_segments(root, split):
            rgb = _read_rgb(osp.join(root, split, img['file_name']))
            ids = _pan_ids(root, split, ann['file_name'])
            for seg in ann['segments_info']:
                if seg['category_id'] in STUFF_IDS:
                    mask = ids == seg['id']
                    sums[seg['category_id']] += rgb[mask].sum(0)
                    counts[seg['category_id']] += int(mask.sum())
    bases = np.array([CATS[cid]['color'] for cid in STUFF_IDS], dtype=float)
    for i, cid in enumerate(STUFF_IDS):
        mean = sums[cid] / counts[cid]
        # checker/stripes mix in a lighter/darker shade, so compare the
        # nearest base colour rather than an absolute tolerance
        assert np.argmin(np.linalg.norm(bases - mean, axis=1)) == i


def _tree_bytes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def test_determinism_and_skip(tmp_path):
    kwargs = dict(num_train=3, num_val=2, img_size=64)
    first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
    summary = make_toy_panoptic(first, seed=1, **kwargs)
    assert not summary['skipped']
    make_toy_panoptic(second, seed=1, **kwargs)
    files = _tree_bytes(first)
    assert files == _tree_bytes(second)
    assert 'toy_meta.json' in files and len(files) == 2 * (3 + 2) + 5
    # images are seeded one by one: more training images leave the first
    # ones and the whole validation split unchanged
    third = str(tmp_path / 'c')
    make_toy_panoptic(third, seed=1, num_train=4, num_val=2, img_size=64)
    more = _tree_bytes(third)
    for name, data in files.items():
        if 'val' in name or name.endswith('00000.jpg'):
            assert more[name] == data, name

    # same args: skipped, files untouched
    meta = osp.join(first, 'toy_meta.json')
    jpg = osp.join(first, 'train', 'train_00000.jpg')
    mtimes = [os.stat(p).st_mtime_ns for p in (meta, jpg)]
    again = make_toy_panoptic(first, seed=1, **kwargs)
    assert again['skipped']
    assert again['splits'] == summary['splits']
    assert [os.stat(p).st_mtime_ns for p in (meta, jpg)] == mtimes
    # force regenerates the same bytes
    assert not make_toy_panoptic(
        first, seed=1, force=True, **kwargs)['skipped']
    assert _tree_bytes(first) == files

    # other args regenerate; stale images of the larger set are removed
    other = make_toy_panoptic(
        first, seed=2, num_train=2, num_val=2, img_size=64)
    assert not other['skipped']
    assert sorted(os.listdir(osp.join(
        first, 'train'))) == ['train_00000.jpg', 'train_00001.jpg']
    assert _tree_bytes(
        first)['train/train_00000.jpg'] != files['train/train_00000.jpg']


def test_invalid_args(tmp_path):
    with pytest.raises(ValueError):
        make_toy_panoptic(str(tmp_path), img_size=16)
    with pytest.raises(ValueError):
        make_toy_panoptic(str(tmp_path), num_train=-1)


def _panoptic_dataset(root, split, test_mode=False):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return _build_panoptic_dataset(root, split, test_mode)


def _build_panoptic_dataset(root, split, test_mode):
    return ToyPanopticDataset(
        data_root=root,
        ann_file=f'annotations/panoptic_{split}.json',
        data_prefix=dict(
            img=f'{split}/', seg=f'annotations/panoptic_{split}/'),
        test_mode=test_mode,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='LoadPanopticAnnotations',
                with_bbox=True,
                with_mask=True,
                with_seg=True),
            dict(
                type='PackDetInputs',
                meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                           'scale_factor', 'segments_info', 'seg_map_path'))
        ])


def test_panoptic_dataset_pipeline(toy):
    root, _ = toy
    dataset = _panoptic_dataset(root, 'train')
    assert len(dataset) == NUM_TRAIN
    assert dataset.metainfo['classes'] == ToyPanopticDataset.METAINFO[
        'classes']
    assert dataset.cat2label == LABELS
    anns = {img['id']: ann for img, ann in _all_segments(root, 'train')}
    num_masks = 0
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        ann = anns[sample.img_id]
        assert osp.basename(sample.seg_map_path) == ann['file_name']
        ids = _pan_ids(root, 'train', ann['file_name'])
        expected = np.full(ids.shape, 255, dtype=np.int64)
        masks, labels, boxes = [], [], []
        for seg in ann['segments_info']:
            expected[ids == seg['id']] = LABELS[seg['category_id']]
            if seg['category_id'] in THING_IDS and not seg['iscrowd']:
                masks.append(ids == seg['id'])
                labels.append(LABELS[seg['category_id']])
                x, y, w, h = seg['bbox']
                boxes.append([x, y, x + w, y + h])
        sem = sample.gt_sem_seg.sem_seg
        assert sem.shape == (1, SIZE, SIZE)
        np.testing.assert_array_equal(sem[0].numpy(), expected)
        gt = sample.gt_instances
        assert gt.labels.tolist() == labels
        assert all(label < 3 for label in labels)
        np.testing.assert_allclose(
            gt.bboxes.numpy().reshape(-1, 4),
            np.array(boxes, dtype=np.float32).reshape(-1, 4))
        assert len(gt.masks) == len(masks)
        if masks:
            np.testing.assert_array_equal(
                gt.masks.masks.astype(bool), np.stack(masks))
        num_masks += len(masks)
    assert num_masks > 0


def test_instance_dataset(toy):
    root, _ = toy
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = ToyInstanceDataset(
            data_root=root,
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='val/'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='PackDetInputs')
            ])
    assert len(dataset) == NUM_VAL
    inst = _load_json(root, 'instances', 'val')
    num_crowd = 0
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        anns = [
            a for a in inst['annotations'] if a['image_id'] == sample.img_id
        ]
        plain = [a for a in anns if not a['iscrowd']]
        assert len(sample.gt_instances) == len(plain)
        assert len(sample.ignored_instances) == len(anns) - len(plain)
        num_crowd += len(sample.ignored_instances)
        for masks, group in ((sample.gt_instances.masks, plain),
                             (sample.ignored_instances.masks,
                              [a for a in anns if a['iscrowd']])):
            for mask, ann in zip(masks.masks, group):
                assert int(mask.sum()) == ann['area']
    assert num_crowd > 0


def _gt_as_prediction(root, split, sample):
    """Build ``pred_panoptic_seg`` like mmdet's fusion heads from the GT."""
    ids = _pan_ids(root, split, osp.basename(sample.seg_map_path))
    pan = np.zeros(ids.shape, dtype=np.int64)
    inst_id = 1
    for seg in sample.segments_info:
        mask = ids == seg['id']
        if seg['category'] < len(THING_IDS):  # things, crowd included
            pan[mask] = seg['category'] + inst_id * INSTANCE_OFFSET
            inst_id += 1
        else:
            pan[mask] = seg['category']
    return pan


@pytest.mark.parametrize('outfile', [False, True])
def test_metric_gt_scores_pq_100(toy, tmp_path, outfile):
    root, _ = toy
    dataset = _panoptic_dataset(root, 'val', test_mode=True)
    metric = CocoPanopticMetric(
        ann_file=osp.join(root, 'annotations', 'panoptic_val.json'),
        seg_prefix=osp.join(root, 'annotations', 'panoptic_val'),
        outfile_prefix=str(tmp_path / 'pred') if outfile else None,
        nproc=1)
    metric.dataset_meta = dataset.metainfo
    wrong = CocoPanopticMetric(
        ann_file=osp.join(root, 'annotations', 'panoptic_val.json'),
        seg_prefix=osp.join(root, 'annotations', 'panoptic_val'),
        nproc=1)
    wrong.dataset_meta = dataset.metainfo
    num_stuff = len(STUFF_IDS)
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        pan = _gt_as_prediction(root, 'val', sample)
        pred = dict(
            img_id=sample.img_id,
            img_path=sample.img_path,
            ori_shape=sample.ori_shape,
            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan[None]).int()))
        metric.process({}, [pred])
        # a prediction with the stuff classes rotated must score lower
        stuff = pan < INSTANCE_OFFSET
        rotated = pan.copy()
        rotated[stuff] = len(THING_IDS) + (pan[stuff] - len(THING_IDS) +
                                           1) % num_stuff
        wrong.process({}, [
            dict(
                pred,
                pred_panoptic_seg=dict(
                    sem_seg=torch.from_numpy(rotated[None]).int()))
        ])
    results = metric.evaluate(len(dataset))
    for key in ('PQ', 'PQ_th', 'PQ_st', 'SQ', 'RQ'):
        assert results[f'coco_panoptic/{key}'] == pytest.approx(100.)
    bad = wrong.evaluate(len(dataset))
    assert bad['coco_panoptic/PQ_th'] == pytest.approx(100.)
    assert bad['coco_panoptic/PQ_st'] < 50.


@pytest.mark.slow
def test_cli(tmp_path):
    out = str(tmp_path / 'cli')
    script = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                      'make_toy_panoptic.py')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    proc = subprocess.run([
        sys.executable, script, '--out-dir', out, '--num-train', '2',
        '--num-val', '1', '--size', '48', '--seed', '3'
    ],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary['splits']['train']['num_images'] == 2
    assert summary['args']['img_size'] == 48
    assert summary['args']['seed'] == 3
    assert sorted(os.listdir(osp.join(out, 'val'))) == ['val_00000.jpg']
    assert osp.isfile(
        osp.join(out, 'annotations', 'panoptic_val', 'val_00000.png'))
    assert osp.isfile(osp.join(out, 'annotations', 'instances_train.json'))
