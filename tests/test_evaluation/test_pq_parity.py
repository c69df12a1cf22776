# Copyright (c) mmdr1 contributors. All rights reserved.
"""PQ of mmdet's ``CocoPanopticMetric`` equals panopticapi's ``pq_compute``.

(And so does mmdr1's ``SafeCocoPanopticMetric``, which the data configs use,
without changing the predictions it is given.)

A small ground truth (two images, 2 thing and 2 stuff classes in use, a
crowd region and void pixels) and a crafted prediction with the usual
errors: two persons merged into one segment, a person split in two, a
missed car, a missed stuff region, a false car, and segments that must be
ignored (mostly on void, inside a crowd region of their class). The
prediction files are written here, independently of mmdet, and scored by
panopticapi; the metric scores the same predictions in its four modes
(with / without ``ann_file``, per batch / with ``outfile_prefix``), and the
files it writes in ``outfile_prefix`` mode score the same with panopticapi.
Two setups: COCO-like (int image ids, ``.jpg`` images, sparse category ids)
and Cityscapes (string image ids, ``*_leftImg8bit.png`` images and PNGs
named after them, train-id categories listed things first, as the
converter writes them).
"""
import contextlib
import io
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoPanopticMetric
from mmdet.evaluation.functional import INSTANCE_OFFSET
from panopticapi.evaluation import pq_compute, pq_compute_single_core
from panopticapi.utils import id2rgb
from PIL import Image

from mmdr1.datasets import CITYSCAPES_STUFF, CITYSCAPES_THINGS
from mmdr1.evaluation import SafeCocoPanopticMetric

H, W = 40, 60


def _rect(y1: int, y2: int, x1: int, x2: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


# Ground truth per image: (segment id, class, iscrowd, mask), painted in
# order (later on top); segment id 0 paints void.
GT_SCENES = [
    [
        (11, 'sky', 0, _rect(0, 15, 0, W)),
        (12, 'road', 0, _rect(15, 40, 0, W)),
        (0, None, 0, _rect(37, 40, 0, W)),  # void (e.g. ego vehicle)
        (101, 'person', 0, _rect(4, 20, 4, 12)),
        (102, 'person', 0, _rect(4, 20, 13, 21)),
        (201, 'car', 0, _rect(22, 34, 28, 48)),
        (299, 'car', 1, _rect(20, 32, 50, 60)),  # a car group (crowd)
        (103, 'person', 0, _rect(24, 36, 4, 16)),
    ],
    [
        (11, 'sky', 0, _rect(0, 20, 0, W)),
        (12, 'road', 0, _rect(20, 40, 0, W)),
        (201, 'car', 0, _rect(25, 35, 10, 30)),
    ],
]
# Prediction per image: (class, instance number or 0 for stuff, mask),
# painted in order on VOID.
PRED_SCENES = [
    [
        ('sky', 0, _rect(0, 15, 0, W)),
        ('road', 0, _rect(15, 40, 0, W)),  # the car 201 is missed
        ('person', 1, _rect(4, 20, 4, 21)),  # persons 101 + 102 merged
        ('person', 2, _rect(24, 32, 4, 16)),  # person 103 split: top part
        ('person', 3, _rect(32, 36, 4, 16)),  # ... and bottom part
        ('car', 4, _rect(21, 31, 51, 60)),  # inside the crowd: ignored
        ('person', 5, _rect(36, 40, 30, 40)),  # 3/4 on void: ignored
        ('car', 6, _rect(2, 8, 40, 50)),  # a false car in the sky
    ],
    [
        # the sky is missed (VOID)
        ('road', 0, _rect(20, 40, 0, W)),
        ('car', 1, _rect(25, 35, 10, 30)),  # exact
    ],
]
# What the errors above amount to: class -> (tp, fp, fn).
EXPECTED_COUNTS = {
    'person': (1, 2, 2),
    'car': (1, 1, 1),
    'sky': (1, 0, 1),
    'road': (2, 0, 0),
}


def _setup(kind: str) -> dict:
    """Categories and image names of a setup."""
    if kind == 'coco':
        things = [('person', 1), ('car', 3)]
        stuff = [('road', 149), ('sky', 187)]
        images = [(397133, '000000397133.jpg'), (37777, '000000037777.jpg')]
    else:
        things = [(c[0], c[2]) for c in CITYSCAPES_THINGS]
        stuff = [(c[0], c[2]) for c in CITYSCAPES_STUFF]
        images = [(f'{city}_000000_000019', f'{city}_000000_000019'
                   '_leftImg8bit.png') for city in ('frankfurt', 'lindau')]
    cats = [dict(id=i, name=n, isthing=1) for n, i in things]
    cats += [dict(id=i, name=n, isthing=0) for n, i in stuff]
    classes = tuple(c['name'] for c in cats)
    return dict(
        cats=cats,
        cat_id={c['name']: c['id']
                for c in cats},
        label={
            c['name']: i
            for i, c in enumerate(cats)
        },
        images=images,
        meta=dict(
            classes=classes,
            thing_classes=tuple(n for n, _ in things),
            stuff_classes=tuple(n for n, _ in stuff)))


def _png_name(img_name: str) -> str:
    return img_name.replace('.jpg', '.png')


def _write_png(path: str, ids: np.ndarray) -> None:
    Image.fromarray(id2rgb(ids)).save(path)


def _bbox(mask: np.ndarray) -> List[int]:
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1)
    ]


def _write_gt(root: str, setup: dict) -> Tuple[str, str, List[list]]:
    """Ground-truth JSON and PNGs; returns them and the dataset-style
    ``segments_info`` of every image."""
    gt_dir = osp.join(root, 'gt')
    os.makedirs(gt_dir)
    images, anns, seg_infos = [], [], []
    for (img_id, img_name), scene in zip(setup['images'], GT_SCENES):
        ids = np.zeros((H, W), dtype=np.int64)
        for seg_id, _, _, mask in scene:
            ids[mask] = seg_id
        _write_png(osp.join(gt_dir, _png_name(img_name)), ids)
        segments, infos = [], []
        for seg_id, name, iscrowd, _ in scene:
            if name is None:
                continue
            mask = ids == seg_id
            isthing = name in setup['meta']['thing_classes']
            segments.append(
                dict(
                    id=seg_id,
                    category_id=setup['cat_id'][name],
                    iscrowd=iscrowd,
                    area=int(mask.sum()),
                    bbox=_bbox(mask)))
            infos.append(
                dict(
                    id=seg_id,
                    category=setup['label'][name],
                    is_thing=isthing and not iscrowd))
        images.append(dict(id=img_id, file_name=img_name, height=H, width=W))
        anns.append(
            dict(
                image_id=img_id,
                file_name=_png_name(img_name),
                segments_info=segments))
        seg_infos.append(infos)
    gt_json = osp.join(root, 'gt.json')
    with open(gt_json, 'w') as f:
        json.dump(
            dict(images=images, annotations=anns, categories=setup['cats']), f)
    return gt_json, gt_dir, seg_infos


def _pred_maps(setup: dict) -> List[np.ndarray]:
    """Predictions in mmdet's label space (``label + k * INSTANCE_OFFSET``,
    VOID = number of classes)."""
    maps = []
    for scene in PRED_SCENES:
        pan = np.full((H, W), len(setup['cats']), dtype=np.int64)
        for name, k, mask in scene:
            pan[mask] = setup['label'][name] + k * INSTANCE_OFFSET
        maps.append(pan)
    return maps


def _write_pred(root: str, setup: dict,
                maps: List[np.ndarray]) -> Tuple[str, str]:
    """Prediction JSON and PNGs in COCO panoptic format (VOID = id 0)."""
    pred_dir = osp.join(root, 'pred')
    os.makedirs(pred_dir)
    label2cat = {i: c['id'] for i, c in enumerate(setup['cats'])}
    anns = []
    for (img_id, img_name), pan in zip(setup['images'], maps):
        ids = np.where(pan == len(setup['cats']), 0, pan)
        _write_png(osp.join(pred_dir, _png_name(img_name)), ids)
        segments = [
            dict(
                id=int(i),
                category_id=label2cat[int(i) % INSTANCE_OFFSET],
                area=int((ids == i).sum())) for i in np.unique(ids) if i
        ]
        anns.append(
            dict(
                image_id=img_id,
                file_name=_png_name(img_name),
                segments_info=segments))
    pred_json = osp.join(root, 'pred.json')
    with open(pred_json, 'w') as f:
        json.dump(dict(annotations=anns), f)
    return pred_json, pred_dir


def _panopticapi(gt_json: str, pred_json: str, gt_dir: str,
                 pred_dir: str) -> Dict[str, float]:
    """panopticapi's ``pq_compute`` in the metric's keys and percent."""
    with contextlib.redirect_stdout(io.StringIO()):
        res = pq_compute(gt_json, pred_json, gt_dir, pred_dir)
    out = {}
    for name, suffix in (('All', ''), ('Things', '_th'), ('Stuff', '_st')):
        for key in ('pq', 'sq', 'rq'):
            out[f'{key.upper()}{suffix}'] = 100 * res[name][key]
    return out


def _run_metric(setup: dict,
                maps: List[np.ndarray],
                seg_infos: List[list],
                gt_dir: str,
                metric_cls: type = CocoPanopticMetric,
                **kwargs) -> Dict[str, float]:
    """Score the predictions with ``metric_cls(**kwargs)``.

    ``SafeCocoPanopticMetric`` gets the maps themselves and must leave them
    as they were; mmdet's metric gets copies.
    """
    safe = metric_cls is SafeCocoPanopticMetric
    metric = metric_cls(seg_prefix=gt_dir, nproc=1, **kwargs)
    metric.dataset_meta = setup['meta']
    samples = []
    for (img_id, img_name), pan, infos in zip(setup['images'], maps,
                                              seg_infos):
        samples.append(
            dict(
                img_id=img_id,
                img_path=osp.join('/nonexistent/images', img_name),
                ori_shape=(H, W),
                seg_map_path=osp.join(gt_dir, _png_name(img_name)),
                segments_info=infos,
                # a copy: on CPU mmdet's metric writes VOID = 0 into the map
                pred_panoptic_seg=dict(
                    sem_seg=torch.from_numpy(pan if safe else pan.copy())
                    [None])))
    before = [m.copy() for m in maps]
    metric.process({}, samples[:1])
    metric.process({}, samples[1:])
    if safe:
        for pan, ref in zip(maps, before):
            np.testing.assert_array_equal(pan, ref)
    with contextlib.redirect_stdout(io.StringIO()):
        res = metric.evaluate(len(samples))
    return {k.split('/')[-1]: v for k, v in res.items()}


@pytest.mark.parametrize('kind', ['coco', 'cityscapes'])
def test_pq_matches_panopticapi(kind: str, tmp_path) -> None:
    root = str(tmp_path)
    setup = _setup(kind)
    gt_json, gt_dir, seg_infos = _write_gt(root, setup)
    maps = _pred_maps(setup)
    pred_json, pred_dir = _write_pred(root, setup, maps)

    # the crafted errors count as intended (panopticapi's own statistics)
    with open(gt_json) as f:
        gt = json.load(f)
    with open(pred_json) as f:
        pred = json.load(f)
    categories = {c['id']: c for c in gt['categories']}
    with contextlib.redirect_stdout(io.StringIO()):
        stat = pq_compute_single_core(
            0, list(zip(gt['annotations'], pred['annotations'])), gt_dir,
            pred_dir, categories)
    for name, counts in EXPECTED_COUNTS.items():
        s = stat[setup['cat_id'][name]]
        assert (s.tp, s.fp, s.fn) == counts, name

    ref = _panopticapi(gt_json, pred_json, gt_dir, pred_dir)
    assert 0 < ref['PQ_th'] < ref['PQ_st'] < 100
    assert 0 < ref['RQ'] < ref['SQ'] < 100

    outfile = osp.join(root, 'out', 'results')
    os.makedirs(osp.dirname(outfile))
    modes = {
        'ann_file':
        dict(ann_file=gt_json),
        'ann_file+outfile_prefix':
        dict(ann_file=gt_json, outfile_prefix=outfile),
        'dataset_gt':
        dict(),
        'dataset_gt+outfile_prefix':
        dict(outfile_prefix=osp.join(root, 'out', 'results2')),
    }
    for mode, kwargs in modes.items():
        for metric_cls in (CocoPanopticMetric, SafeCocoPanopticMetric):
            res = _run_metric(setup, maps, seg_infos, gt_dir, metric_cls,
                              **kwargs)
            assert set(res) == set(ref), mode
            for key, value in ref.items():
                assert res[key] == pytest.approx(value, abs=1e-9), (mode, key)

    # the prediction files the metric wrote score the same
    written = _panopticapi(gt_json, f'{outfile}.panoptic.json', gt_dir,
                           f'{outfile}.panoptic')
    for key, value in ref.items():
        assert written[key] == pytest.approx(value, abs=1e-9), key


def test_perfect_prediction_scores_100(tmp_path) -> None:
    """String ids and train-id categories (with id 0): GT against itself."""
    setup = _setup('cityscapes')
    gt_json, gt_dir, seg_infos = _write_gt(str(tmp_path), setup)
    maps = []
    for scene in GT_SCENES:
        pan = np.full((H, W), len(setup['cats']), dtype=np.int64)
        for k, (_, name, iscrowd, mask) in enumerate(scene, 1):
            if name is not None:
                inst = 0 if name in setup['meta']['stuff_classes'] else k
                pan[mask] = setup['label'][name] + inst * INSTANCE_OFFSET
            else:
                pan[mask] = len(setup['cats'])
        maps.append(pan)
    res = _run_metric(setup, maps, seg_infos, gt_dir, ann_file=gt_json)
    assert res['PQ'] == pytest.approx(100.)
