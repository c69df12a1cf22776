# Copyright (c) mmdr1 contributors. All rights reserved.
"""Toy Cityscapes layout -> converter -> CityscapesPanopticDataset.

The toy generator writes the official layout (``leftImg8bit/``, ``gtFine/``
with ``*_labelIds.png`` and ``*_instanceIds.png``);
``tools/dataset_converters/cityscapes.py`` turns it into COCO panoptic and
COCO instance JSON with cityscapesscripts; the dataset class reads the
result. The converter's panoptic output is compared with a plain
``convert2panoptic`` run of cityscapesscripts on the same folder.
"""
import contextlib
import importlib.util
import io
import json
import os
import os.path as osp
import subprocess
import sys
from glob import glob
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from cityscapesscripts.helpers.labels import id2label, labels, name2label
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
from mmdet.datasets import CityscapesDataset
from mmdet.registry import DATASETS
from mmengine.registry import DefaultScope
from panopticapi.utils import rgb2id
from PIL import Image

from mmdr1.datasets import (CITYSCAPES_STUFF, CITYSCAPES_THINGS,
                            CityscapesPanopticDataset, make_toy_cityscapes)
from mmdr1.datasets.cityscapes import cityscapes_city

REPO = Path(__file__).resolve().parents[2]
CONVERTER = REPO / 'tools' / 'dataset_converters' / 'cityscapes.py'
SIZE = (64, 128)
NUM = {'train': 4, 'val': 3}
CLASSES = CityscapesPanopticDataset.METAINFO['classes']


def _load_converter():
    """The converter script as a module (registered for the worker pool)."""
    name = 'mmdr1_cityscapes_converter'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(CONVERTER))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope='module')
def toy(tmp_path_factory) -> str:
    """A converted toy set; train with 2 worker processes."""
    root = str(tmp_path_factory.mktemp('toy_cityscapes'))
    make_toy_cityscapes(
        root, num_train=NUM['train'], num_val=NUM['val'], img_size=SIZE)
    conv = _load_converter()
    out = osp.join(root, 'annotations')
    os.makedirs(out)
    with contextlib.redirect_stdout(io.StringIO()):
        conv.convert_split(root, out, 'train', nproc=2)
        conv.convert_split(root, out, 'val', nproc=1)
    return root


def _json(root: str, name: str) -> dict:
    with open(osp.join(root, 'annotations', name)) as f:
        return json.load(f)


def _read(path: str) -> np.ndarray:
    return np.array(Image.open(path))


def test_metainfo_matches_cityscapesscripts() -> None:
    evaluated = [lb for lb in labels if not lb.ignoreInEval]
    assert len(CITYSCAPES_THINGS) == 8 and len(CITYSCAPES_STUFF) == 11
    assert {c[0] for c in CITYSCAPES_THINGS + CITYSCAPES_STUFF} == \
        {lb.name for lb in evaluated}
    for group, isthing in ((CITYSCAPES_THINGS, True), (CITYSCAPES_STUFF,
                                                       False)):
        # train-id order within things and within stuff
        assert [c[2] for c in group] == sorted(c[2] for c in group)
        for name, label_id, train_id, colour in group:
            label = name2label[name]
            assert label.hasInstances == isthing
            assert (label.id, label.trainId, label.color) == (label_id,
                                                              train_id, colour)
    meta = CityscapesPanopticDataset.METAINFO
    assert meta['classes'] == meta['thing_classes'] + meta['stuff_classes']
    assert meta['thing_classes'] == ('person', 'rider', 'car', 'truck', 'bus',
                                     'train', 'motorcycle', 'bicycle')
    assert len(meta['palette']) == 19
    assert DATASETS.get('CityscapesPanopticDataset') is \
        CityscapesPanopticDataset


def test_city_from_name() -> None:
    assert cityscapes_city('frankfurt_000000_000294_leftImg8bit.png') == \
        'frankfurt'
    assert cityscapes_city('stuttgart_00_000000_000001_leftImg8bit.png') == \
        'stuttgart_00'
    with pytest.raises(ValueError, match='not a Cityscapes file name'):
        cityscapes_city('000000397133.jpg')


def test_toy_layout(toy: str) -> None:
    for split, num in NUM.items():
        images = sorted(glob(osp.join(toy, 'leftImg8bit', split, '*', '*')))
        assert len(images) == num
        cities = {osp.basename(osp.dirname(p)) for p in images}
        assert len(cities) == 2
        for img in images:
            city = osp.basename(osp.dirname(img))
            stem = osp.basename(img)[:-len('_leftImg8bit.png')]
            assert stem.startswith(f'{city}_000000_')
            assert _read(img).shape == (*SIZE, 3)
            gt = osp.join(toy, 'gtFine', split, city, stem)
            label_ids = _read(f'{gt}_gtFine_labelIds.png')
            inst_ids = cv2_unchanged(f'{gt}_gtFine_instanceIds.png')
            assert label_ids.dtype == np.uint8 and inst_ids.dtype == np.uint16
            # instance ids: label_id * 1000 + k on instances, else label id
            derived = np.where(inst_ids >= 1000, inst_ids // 1000, inst_ids)
            np.testing.assert_array_equal(derived, label_ids)
            for value in np.unique(inst_ids).tolist():
                label = id2label[value // 1000 if value >= 1000 else value]
                if value >= 1000:
                    assert label.hasInstances
    # every kind of region appears somewhere
    values = np.unique(
        np.concatenate([
            cv2_unchanged(p).ravel() for p in glob(
                osp.join(toy, 'gtFine', '*', '*', '*_instanceIds.png'))
        ]))
    assert (values >= 1000).any()  # instances
    assert any(id2label[v].hasInstances for v in values if v < 1000)  # crowd
    assert any(id2label[v].ignoreInEval for v in values if v < 1000)  # void


def cv2_unchanged(path: str) -> np.ndarray:
    """Read a PNG with its bit depth (16-bit stays uint16)."""
    import cv2
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def test_toy_is_deterministic(tmp_path) -> None:
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    make_toy_cityscapes(a, num_train=2, num_val=1, img_size=(32, 64))
    summary = make_toy_cityscapes(b, num_train=2, num_val=1, img_size=(32, 64))
    assert not summary['skipped']
    files = sorted(
        osp.relpath(p, a)
        for p in glob(osp.join(a, '**', '*.png'), recursive=True))
    assert len(files) == 9
    for rel in files:
        with open(osp.join(a, rel), 'rb') as fa, \
                open(osp.join(b, rel), 'rb') as fb:
            assert fa.read() == fb.read(), rel
    again = make_toy_cityscapes(b, num_train=2, num_val=1, img_size=(32, 64))
    assert again['skipped'] and again['splits'] == summary['splits']


def test_panoptic_json(toy: str) -> None:
    thing_train_ids = {c[2] for c in CITYSCAPES_THINGS}
    for split, num in NUM.items():
        pan = _json(toy, f'cityscapes_panoptic_{split}.json')
        cats = pan['categories']
        # train ids as category ids, listed in the dataset's class order
        assert [c['name'] for c in cats] == list(CLASSES)
        assert [c['id'] for c in cats
                ] == [c[2] for c in CITYSCAPES_THINGS + CITYSCAPES_STUFF]
        assert {c['id'] for c in cats if c['isthing']} == thing_train_ids
        assert len(pan['images']) == len(pan['annotations']) == num
        for img, ann in zip(pan['images'], pan['annotations']):
            # string ids; the PNG is named after the image
            assert isinstance(img['id'], str) and img['id'] == ann['image_id']
            assert img['file_name'] == f'{img["id"]}_leftImg8bit.png'
            assert ann['file_name'] == img['file_name']
            city = cityscapes_city(img['file_name'])
            assert osp.isfile(
                osp.join(toy, 'leftImg8bit', split, city, img['file_name']))
            ids = rgb2id(
                _read(
                    osp.join(toy, 'annotations',
                             f'cityscapes_panoptic_{split}',
                             ann['file_name'])))
            inst = cv2_unchanged(
                osp.join(toy, 'gtFine', split, city,
                         f'{img["id"]}_gtFine_instanceIds.png'))
            segs = {s['id']: s for s in ann['segments_info']}
            assert set(np.unique(ids).tolist()) - {0} == set(segs)
            for seg_id, seg in segs.items():
                label = id2label[seg_id // 1000 if seg_id >= 1000 else seg_id]
                assert seg['category_id'] == label.trainId
                assert seg['iscrowd'] == int(label.hasInstances
                                             and seg_id < 1000)
                mask = ids == seg_id
                np.testing.assert_array_equal(mask, inst == seg_id)
                assert seg['area'] == int(mask.sum())
            # pixels of not evaluated classes are void
            ignored = np.vectorize(lambda v: id2label[v // 1000 if v >= 1000
                                                      else v].ignoreInEval)(
                                                          inst)
            np.testing.assert_array_equal(ids == 0, ignored)


def test_same_as_create_panoptic_imgs(toy: str, tmp_path) -> None:
    """Apart from the naming and the category order, the converter's output
    is cityscapesscripts' own."""
    out = str(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(
            cityscapesPath=osp.join(toy, 'gtFine'),
            outputFolder=out,
            useTrainId=True,
            setNames=['val'])
    with open(osp.join(out, 'cityscapes_panoptic_val_trainId.json')) as f:
        ref = json.load(f)
    ours = _json(toy, 'cityscapes_panoptic_val.json')
    key = {c['id']: c for c in ref['categories']}
    assert sorted(ours['categories'], key=lambda c: c['id']) == \
        sorted(key.values(), key=lambda c: c['id'])
    ref_anns = {a['image_id']: a for a in ref['annotations']}
    for ann in ours['annotations']:
        ref_ann = ref_anns[ann['image_id']]
        assert ann['segments_info'] == ref_ann['segments_info']
        ours_png = _read(
            osp.join(toy, 'annotations', 'cityscapes_panoptic_val',
                     ann['file_name']))
        ref_png = _read(
            osp.join(out, 'cityscapes_panoptic_val_trainId',
                     ref_ann['file_name']))
        np.testing.assert_array_equal(ours_png, ref_png)


def test_instance_json(toy: str) -> None:
    with open(osp.join(toy, 'toy_meta.json')) as f:
        stats = json.load(f)['summary']['splits']
    for split, num in NUM.items():
        inst = _json(toy, f'instancesonly_filtered_gtFine_{split}.json')
        crowd = sum(a['iscrowd'] for a in inst['annotations'])
        assert crowd == stats[split]['num_crowd_regions']
        assert len(inst['annotations']) - crowd == \
            stats[split]['num_thing_instances']
        assert [c['id'] for c in inst['categories']
                ] == [c[1] for c in CITYSCAPES_THINGS]
        assert len(inst['images']) == num
        ann_ids = [a['id'] for a in inst['annotations']]
        assert ann_ids == list(range(1, len(ann_ids) + 1))
        images = {img['id']: img for img in inst['images']}
        for ann in inst['annotations']:
            img = images[ann['image_id']]
            city, name = img['file_name'].split('/')
            assert osp.isfile(
                osp.join(toy, 'leftImg8bit', split, img['file_name']))
            assert img['segm_file'] == \
                f'{city}/{name[:-16]}_gtFine_labelIds.png'
            ids = cv2_unchanged(
                osp.join(toy, 'gtFine', split,
                         img['segm_file'].replace('labelIds', 'instanceIds')))
            mask = mask_util.decode(ann['segmentation']).astype(bool)
            values = np.unique(ids[mask])
            assert len(values) == 1
            value = int(values[0])
            assert ann['iscrowd'] == int(value < 1000)
            assert ann['category_id'] == (
                value // 1000 if value >= 1000 else value)
            np.testing.assert_array_equal(mask, ids == value)
            assert ann['area'] == int(mask.sum())
    # mmdet's CityscapesDataset reads it
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = CityscapesDataset(
            data_root=toy,
            ann_file='annotations/instancesonly_filtered_gtFine_train.json',
            data_prefix=dict(img='leftImg8bit/train/'),
            filter_cfg=dict(filter_empty_gt=False),
            pipeline=[])
    assert len(ds) == NUM['train']
    assert all(osp.isfile(d['img_path']) for d in ds)
    assert sum(len(d['instances']) for d in ds) > 0


def _dataset(root: str, split: str = 'train', ann=None, **kwargs):
    return CityscapesPanopticDataset(
        data_root=root,
        ann_file=ann or f'annotations/cityscapes_panoptic_{split}.json',
        data_prefix=dict(
            img=f'leftImg8bit/{split}/',
            seg=f'annotations/cityscapes_panoptic_{split}/'),
        pipeline=[],
        **kwargs)


def test_dataset_parse(toy: str) -> None:
    pan = _json(toy, 'cityscapes_panoptic_train.json')
    ds = _dataset(toy, filter_cfg=dict(filter_empty_gt=False))
    assert len(ds) == NUM['train']
    cat_label = {c['id']: i for i, c in enumerate(pan['categories'])}
    for info, ann in zip(ds, pan['annotations']):
        assert info['img_id'] == ann['image_id']
        city = cityscapes_city(ann['file_name'])
        assert info['img_path'] == osp.join(
            toy, 'leftImg8bit', 'train', city, f'{ann["image_id"]}'
            '_leftImg8bit.png')
        assert osp.isfile(info['img_path'])
        assert info['seg_map_path'] == osp.join(toy, 'annotations',
                                                'cityscapes_panoptic_train',
                                                ann['file_name'])
        segs = ann['segments_info']
        assert [s['id'] for s in info['segments_info']] == \
            [s['id'] for s in segs]
        for s, ref in zip(info['segments_info'], segs):
            assert s['category'] == cat_label[ref['category_id']]
            thing = ref['category_id'] in {c[2] for c in CITYSCAPES_THINGS}
            assert s['is_thing'] == (thing and not ref['iscrowd'])
        assert len(info['instances']) == sum(s['is_thing']
                                             for s in info['segments_info'])
        assert all(0 <= i['bbox_label'] < 8 for i in info['instances'])
    # the scripted "crowd only" image (index 2) has no thing instance
    assert any(not info['instances'] for info in ds)
    filtered = _dataset(toy, filter_cfg=dict(filter_empty_gt=True))
    assert len(filtered) < len(ds)


def test_dataset_pipeline(toy: str) -> None:
    from mmdet.datasets.transforms import LoadPanopticAnnotations
    from mmdet.models.seg_heads import PanopticFPNHead

    from mmdr1.datasets.transforms import (GenerateThingSemanticSeg,
                                           PackDetInputsWithThingSem)
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = CityscapesPanopticDataset(
            data_root=toy,
            ann_file='annotations/cityscapes_panoptic_val.json',
            data_prefix=dict(
                img='leftImg8bit/val/',
                seg='annotations/cityscapes_panoptic_val/'),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type=LoadPanopticAnnotations),
                dict(
                    type=GenerateThingSemanticSeg,
                    source='panoptic',
                    num_things_classes=8),
                dict(type=PackDetInputsWithThingSem)
            ])
        head = PanopticFPNHead(
            num_things_classes=8, num_stuff_classes=11, in_channels=8)
    for idx in range(len(ds)):
        item = ds[idx]
        sample = item['data_samples']
        assert item['inputs'].shape == (3, *SIZE)
        sem = sample.gt_sem_seg.sem_seg[0].numpy()
        masks = sample.gt_instances.masks.to_ndarray().astype(bool)
        labels = sample.gt_instances.labels.numpy()
        assert set(np.unique(sem).tolist()) <= set(range(19)) | {255}
        for mask, label in zip(masks, labels):
            assert (sem[mask] == label).all()
        # things 0..7 (crowd regions included), stuff 8..18
        thing_px = sem < 8
        assert (masks.any(0) <= thing_px).all()
        # the semantic head's target: stuff 0..10, all things merged to 11
        merged = head._set_things_to_void(sample.gt_sem_seg.sem_seg)[0]
        merged = merged.numpy()
        np.testing.assert_array_equal(merged == 11, thing_px)
        np.testing.assert_array_equal(merged[sem == 255], 255)
        stuff = (sem >= 8) & (sem < 255)
        np.testing.assert_array_equal(merged[stuff], sem[stuff] - 8)
        # the thing-semantic target of the auxiliary losses: label + 1
        thing_sem = sample.gt_thing_sem_seg.sem_seg[0].numpy()
        np.testing.assert_array_equal(thing_sem,
                                      np.where(thing_px, sem + 1, 0))


def test_dataset_checks_annotation_file(toy: str, tmp_path) -> None:
    pan = _json(toy, 'cityscapes_panoptic_val.json')
    # cityscapesscripts' own order (train ids: stuff first) is refused
    raw = dict(
        pan, categories=sorted(pan['categories'], key=lambda c: c['id']))
    path = str(tmp_path / 'raw.json')
    with open(path, 'w') as f:
        json.dump(raw, f)
    with pytest.raises(ValueError, match='things first'):
        _dataset(toy, 'val', ann=path)
    # PNGs not named after the images: used, with a warning
    renamed = json.loads(json.dumps(pan))
    for ann in renamed['annotations']:
        ann['file_name'] = ann['file_name'].replace('_leftImg8bit',
                                                    '_gtFine_panoptic')
    with open(path, 'w') as f:
        json.dump(renamed, f)
    with pytest.warns(UserWarning, match='not named after its image'):
        ds = _dataset(toy, 'val', ann=path, test_mode=True)
    assert ds[0]['seg_map_path'].endswith('_gtFine_panoptic.png')


def test_converter_refuses_wrong_folders(toy: str, tmp_path) -> None:
    conv = _load_converter()
    error = conv.CityscapesLayoutError
    # the gtFine folder instead of the root
    with pytest.raises(error, match=r'gtFine/leftImg8bit is not a folder'):
        conv.collect_files(osp.join(toy, 'gtFine'), 'train')
    # a split without images
    empty = tmp_path / 'empty'
    (empty / 'leftImg8bit' / 'train').mkdir(parents=True)
    (empty / 'gtFine' / 'train').mkdir(parents=True)
    with pytest.raises(error, match=r'no <city>/\*_leftImg8bit.png images in'):
        conv.collect_files(str(empty), 'train')
    # an image without its annotation
    city = empty / 'leftImg8bit' / 'train' / 'aachen'
    city.mkdir()
    (city / 'aachen_000000_000019_leftImg8bit.png').write_bytes(b'')
    with pytest.raises(
            error,
            match='aachen_000000_000019_gtFine_instanceIds.png is '
            'missing'):
        conv.collect_files(str(empty), 'train')
    # the command line: exit status 1 and the message, nothing written
    proc = subprocess.run(
        [sys.executable,
         str(CONVERTER),
         str(tmp_path / 'nowhere')],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120)
    assert proc.returncode == 1
    assert f'error: {tmp_path / "nowhere" / "leftImg8bit"} is not a ' \
        'folder' in proc.stdout
    assert not (tmp_path / 'nowhere').exists()
