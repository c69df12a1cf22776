# Copyright (c) mmdr1 contributors. All rights reserved.
"""Convert Cityscapes fine annotations to COCO panoptic and COCO instances.

From the official download (``leftImg8bit_trainvaltest.zip`` and
``gtFine_trainvaltest.zip`` unpacked into one folder)::

    data/cityscapes/leftImg8bit/{train,val}/<city>/<id>_leftImg8bit.png
    data/cityscapes/gtFine/{train,val}/<city>/<id>_gtFine_instanceIds.png

the command::

    python tools/dataset_converters/cityscapes.py data/cityscapes --nproc 8

writes into ``data/cityscapes/annotations/`` (``--out-dir``):

- ``cityscapes_panoptic_{train,val}.json`` and the PNG folders
  ``cityscapes_panoptic_{train,val}/``: COCO panoptic made by
  cityscapesscripts' ``createPanopticImgs`` with train ids as category ids
  (``--use-train-id``; segment ids ``label_id * 1000 + k``, crowd groups
  ``iscrowd=1``, not-evaluated classes void), with two changes for mmdet:
  the categories are listed things first (person, rider, car, truck, bus,
  train, motorcycle, bicycle, then the 11 stuff classes), the label order
  of :class:`mmdr1.datasets.CityscapesPanopticDataset` and of mmdet's
  ``CocoPanopticMetric``; and every panoptic PNG is named after its image
  (``<id>_leftImg8bit.png``, in ``images[].file_name`` and
  ``annotations[].file_name``), the name ``CocoPanopticMetric`` reads the
  ground truth under and writes its predictions under. Image ids are
  strings (``frankfurt_000000_000294``);
- ``instancesonly_filtered_gtFine_{train,val}.json``: COCO instance
  annotations of the 8 thing classes (RLE masks, crowd groups with
  ``iscrowd=1``, label ids as category ids, image names with the city
  folder), the format of mmdet's own Cityscapes converter, for mmdet's
  ``CityscapesDataset``.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from glob import glob
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from mmengine.utils import track_parallel_progress, track_progress
from PIL import Image

if importlib.util.find_spec('mmdr1') is None:  # run from a source checkout
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmdr1.datasets import cityscapes as cs_meta  # noqa: E402

try:
    from cityscapesscripts.helpers.labels import id2label
    from cityscapesscripts.preparation.createPanopticImgs import \
        convert2panoptic
except ImportError:  # pragma: no cover - reported in main()
    id2label = convert2panoptic = None

IMG_SUFFIX = '_leftImg8bit.png'
INST_SUFFIX = '_gtFine_instanceIds.png'
LABEL_SUFFIX = '_gtFine_labelIds.png'


class CityscapesLayoutError(Exception):
    """The input folder is not an unpacked Cityscapes download."""


def collect_files(root: str,
                  split: str,
                  img_dir: str = 'leftImg8bit',
                  gt_dir: str = 'gtFine') -> List[Tuple[str, str]]:
    """Pairs ``(image, *_gtFine_instanceIds.png)`` of one split.

    Args:
        root (str): Cityscapes root, holding ``img_dir`` and ``gt_dir``.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        img_dir (str): Image folder under ``root``.
        gt_dir (str): Fine annotation folder under ``root``.

    Returns:
        list[tuple[str, str]]: Sorted by image path.

    Raises:
        CityscapesLayoutError: If a folder is missing or holds no image, or
            an image has no ``*_gtFine_instanceIds.png``.
    """
    hint = ('the Cityscapes root must hold the unpacked leftImg8bit/ and '
            'gtFine/ folders of the official download '
            '(leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip), e.g. '
            'data/cityscapes/leftImg8bit/train/aachen/'
            'aachen_000000_000019_leftImg8bit.png')
    for sub in (img_dir, gt_dir):
        if not osp.isdir(osp.join(root, sub)):
            raise CityscapesLayoutError(
                f'{osp.join(root, sub)} is not a folder: {hint}')
    img_split = osp.join(root, img_dir, split)
    images = sorted(glob(osp.join(img_split, '*', f'*{IMG_SUFFIX}')))
    if not images:
        raise CityscapesLayoutError(
            f'no <city>/*{IMG_SUFFIX} images in {img_split}: {hint}')
    pairs = []
    for img in images:
        rel = osp.relpath(img, img_split)
        inst = osp.join(root, gt_dir, split,
                        rel[:-len(IMG_SUFFIX)] + INST_SUFFIX)
        if not osp.isfile(inst):
            raise CityscapesLayoutError(
                f'{inst} is missing (the fine annotation of {img}): {hint}')
        pairs.append((img, inst))
    return pairs


def _link_or_copy(src: str, dst: str) -> None:
    """Symlink ``src`` to ``dst``, or copy it where links are not allowed."""
    try:
        os.symlink(osp.abspath(src), dst)
    except OSError:
        shutil.copyfile(src, dst)


def _panoptic_one(inst_file: str, split: str, png_dir: str, tmp_root: str,
                  img_name: str) -> Tuple[dict, dict, List[dict]]:
    """Run cityscapesscripts' ``convert2panoptic`` on one annotation.

    ``convert2panoptic`` converts whole ``gtFine/<split>/`` folders; here it
    sees a temporary folder with a link to the single file, so that the
    images can be converted in parallel. Its console output is dropped.

    Args:
        inst_file (str): A ``*_gtFine_instanceIds.png``.
        split (str): Split name.
        png_dir (str): Output folder of the panoptic PNGs.
        tmp_root (str): Folder for the temporary files (same file system as
            ``png_dir``).
        img_name (str): Name of the image, ``<id>_leftImg8bit.png``.

    Returns:
        tuple: The image entry, the panoptic annotation (PNG named after
        the image) and the categories, as ``convert2panoptic`` writes them.
    """
    city = osp.basename(osp.dirname(inst_file))
    work = tempfile.mkdtemp(dir=tmp_root)
    try:
        gt_dir = osp.join(work, 'gtFine')
        os.makedirs(osp.join(gt_dir, split, city))
        _link_or_copy(inst_file,
                      osp.join(gt_dir, split, city, osp.basename(inst_file)))
        out_dir = osp.join(work, 'out')
        os.makedirs(out_dir)
        with contextlib.redirect_stdout(io.StringIO()):
            convert2panoptic(
                cityscapesPath=gt_dir,
                outputFolder=out_dir,
                useTrainId=True,
                setNames=[split])
        base = f'cityscapes_panoptic_{split}_trainId'
        with open(osp.join(out_dir, f'{base}.json')) as f:
            pan = json.load(f)
        image, ann = pan['images'][0], pan['annotations'][0]
        if img_name != f'{image["id"]}{IMG_SUFFIX}':
            raise CityscapesLayoutError(
                f'{inst_file}: the image id {image["id"]!r} does not match '
                f'the image {img_name}')
        # cityscapesscripts 2.x writes '<id>_gtFine_leftImg8bit.png' (no
        # such file): use the image's real name, and name the panoptic PNG
        # after it, as CocoPanopticMetric expects
        image['file_name'] = img_name
        shutil.move(
            osp.join(out_dir, base, ann['file_name']),
            osp.join(png_dir, img_name))
        ann['file_name'] = img_name
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image, ann, pan['categories']


def _instances_one(inst_file: str) -> List[dict]:
    """COCO instance annotations (RLE) of the evaluated thing classes.

    Args:
        inst_file (str): A ``*_gtFine_instanceIds.png``.

    Returns:
        list[dict]: ``iscrowd``, ``category_id`` (label id), ``bbox``
        (``x, y, w, h``), ``area`` and ``segmentation``, without ids.
    """
    ids = np.array(Image.open(inst_file))
    anns = []
    for inst_id in np.unique(ids).tolist():
        label = id2label.get(inst_id // 1000 if inst_id >= 1000 else inst_id)
        if label is None or not label.hasInstances or label.ignoreInEval:
            continue
        mask = np.asfortranarray((ids == inst_id).astype(np.uint8))
        rle = mask_util.encode(mask)
        anns.append(
            dict(
                iscrowd=int(inst_id < 1000),
                category_id=int(label.id),
                bbox=[float(v) for v in mask_util.toBbox(rle)],
                area=int(mask_util.area(rle)),
                segmentation=dict(
                    size=[int(s) for s in rle['size']],
                    counts=rle['counts'].decode('ascii'))))
    return anns


def convert_image(task: Tuple[str, str, str, str, str]) -> dict:
    """Convert one image's annotation (a worker of the progress bar).

    Args:
        task (tuple): ``(image, instanceIds PNG, split, panoptic PNG
            folder, temporary folder)``.

    Returns:
        dict: ``image``, ``annotation``, ``categories`` (panoptic) and
        ``instances``, plus ``city``.
    """
    img_file, inst_file, split, png_dir, tmp_root = task
    image, ann, categories = _panoptic_one(inst_file, split, png_dir, tmp_root,
                                           osp.basename(img_file))
    return dict(
        image=image,
        annotation=ann,
        categories=categories,
        instances=_instances_one(inst_file),
        city=osp.basename(osp.dirname(img_file)))


def thing_first_categories(categories: Sequence[dict]) -> List[dict]:
    """Reorder ``convert2panoptic``'s categories: things, then stuff.

    Args:
        categories (Sequence[dict]): Categories with train ids as ids.

    Returns:
        list[dict]: Things then stuff, each in train-id order: the class
        order of :class:`mmdr1.datasets.CityscapesPanopticDataset`.

    Raises:
        RuntimeError: If the result does not match the dataset's classes.
    """
    cats = sorted(categories, key=lambda c: (-c['isthing'], c['id']))
    expected = [
        c[0] for c in cs_meta.CITYSCAPES_THINGS + cs_meta.CITYSCAPES_STUFF
    ]
    names = [c['name'] for c in cats]
    if names != expected:
        raise RuntimeError(f'cityscapesscripts gave the categories {names}; '
                           f'CityscapesPanopticDataset expects {expected}')
    return [dict(c) for c in cats]


def _write_json(path: str, obj: dict) -> None:
    """Write ``obj`` as compact JSON."""
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def convert_split(root: str,
                  out_dir: str,
                  split: str,
                  nproc: int = 1,
                  img_dir: str = 'leftImg8bit',
                  gt_dir: str = 'gtFine') -> Dict[str, int]:
    """Convert one split; see the module docstring for the output.

    Args:
        root (str): Cityscapes root.
        out_dir (str): Output folder.
        split (str): Split name.
        nproc (int): Worker processes. Defaults to 1.
        img_dir (str): Image folder under ``root``.
        gt_dir (str): Fine annotation folder under ``root``.

    Returns:
        dict: ``images``, ``segments``, ``instances`` and ``crowd`` counts.
    """
    pairs = collect_files(root, split, img_dir, gt_dir)
    png_dir = osp.join(out_dir, f'cityscapes_panoptic_{split}')
    os.makedirs(png_dir, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix='.cityscapes_tmp_', dir=out_dir)
    tasks = [(img, inst, split, png_dir, tmp_root) for img, inst in pairs]
    print(f'Converting {len(tasks)} {split} images of '
          f'{osp.join(root, gt_dir, split)}')
    try:
        if nproc > 1:
            results = track_parallel_progress(convert_image, tasks, nproc)
        else:
            results = track_progress(convert_image, tasks)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    info = dict(description=f'Cityscapes fine {split}, converted by mmdr1 '
                'tools/dataset_converters/cityscapes.py')
    categories = thing_first_categories(results[0]['categories'])
    _write_json(
        osp.join(out_dir, f'cityscapes_panoptic_{split}.json'),
        dict(
            info=info,
            images=[r['image'] for r in results],
            annotations=[r['annotation'] for r in results],
            categories=categories))

    images, anns = [], []
    for img_id, r in enumerate(results, 1):
        stem = r['image']['file_name'][:-len(IMG_SUFFIX)]
        images.append(
            dict(
                id=img_id,
                file_name=f'{r["city"]}/{r["image"]["file_name"]}',
                height=r['image']['height'],
                width=r['image']['width'],
                segm_file=f'{r["city"]}/{stem}{LABEL_SUFFIX}'))
        for ann in r['instances']:
            anns.append(dict(ann, id=len(anns) + 1, image_id=img_id))
    thing_cats = [
        dict(id=label_id, name=name)
        for name, label_id, _, _ in cs_meta.CITYSCAPES_THINGS
    ]
    _write_json(
        osp.join(out_dir, f'instancesonly_filtered_gtFine_{split}.json'),
        dict(
            info=info, images=images, annotations=anns, categories=thing_cats))
    return dict(
        images=len(results),
        segments=sum(len(r['annotation']['segments_info']) for r in results),
        instances=sum(not a['iscrowd'] for a in anns),
        crowd=sum(a['iscrowd'] for a in anns))


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Convert Cityscapes fine annotations to COCO panoptic '
        '(cityscapesscripts createPanopticImgs, train ids, things first) '
        'and COCO instance JSON.')
    parser.add_argument(
        'cityscapes_path',
        help='Cityscapes root holding leftImg8bit/ and gtFine/')
    parser.add_argument(
        '-o',
        '--out-dir',
        help='output folder (default: <cityscapes_path>/annotations)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train', 'val'],
        help='splits to convert (default: train val)')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes (default 1)')
    parser.add_argument(
        '--img-dir',
        default='leftImg8bit',
        help='image folder under the root (default: leftImg8bit)')
    parser.add_argument(
        '--gt-dir',
        default='gtFine',
        help='fine annotation folder under the root (default: gtFine)')
    return parser.parse_args()


def main() -> None:
    """Convert the requested splits and print a summary."""
    args = parse_args()
    if convert2panoptic is None:
        sys.exit('cityscapesscripts is needed: pip install cityscapesscripts')
    out_dir = args.out_dir or osp.join(args.cityscapes_path, 'annotations')
    try:
        # check every split before writing anything
        for split in args.splits:
            collect_files(args.cityscapes_path, split, args.img_dir,
                          args.gt_dir)
        os.makedirs(out_dir, exist_ok=True)
        for split in args.splits:
            start = time.perf_counter()
            counts = convert_split(args.cityscapes_path, out_dir, split,
                                   args.nproc, args.img_dir, args.gt_dir)
            written = [
                f'cityscapes_panoptic_{split}.json',
                f'cityscapes_panoptic_{split}/',
                f'instancesonly_filtered_gtFine_{split}.json'
            ]
            print(f'\n{split}: ' + ', '.join(f'{k}={v}'
                                             for k, v in counts.items()) +
                  f' in {time.perf_counter() - start:.1f} s -> ' +
                  ', '.join(osp.join(out_dir, name) for name in written))
    except CityscapesLayoutError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
