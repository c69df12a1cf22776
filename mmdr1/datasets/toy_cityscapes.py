# Copyright (c) mmdr1 contributors. All rights reserved.
"""Deterministic synthetic street scenes in the official Cityscapes layout.

:func:`make_toy_cityscapes` writes what the Cityscapes download holds for
the fine annotations, in the same folders and file names::

    <out_dir>/leftImg8bit/{train,val}/<city>/<id>_leftImg8bit.png
    <out_dir>/gtFine/{train,val}/<city>/<id>_gtFine_labelIds.png
    <out_dir>/gtFine/{train,val}/<city>/<id>_gtFine_instanceIds.png
    <out_dir>/toy_meta.json

(``<id>`` = ``<city>_000000_<frame>``, frames numbered from 0 per split)

with the real Cityscapes label ids (``cityscapesscripts.helpers.labels``):
``*_labelIds.png`` is 8-bit with the label id of every pixel,
``*_instanceIds.png`` 16-bit with ``label_id * 1000 + k`` on the pixels of
thing instance ``k`` and the bare label id elsewhere (stuff, void, and the
crowd "groups" of thing classes). So the dataset converter, training and
evaluation run end to end on it (``tools/dataset_converters/
cityscapes.py``). The ``*_gtFine_color.png`` and ``*_gtFine_polygons.json``
files of the download are not written: the conversion does not read them.

A scene (wide image, 1:2 like Cityscapes) has sky, buildings, vegetation,
a wall, road and sidewalks, poles with traffic signs and lights, and, on
the ground, cars, trucks, buses, persons, riders on bicycles or
motorcycles, drawn back to front so that near objects occlude far ones.
Void and not-evaluated classes appear too: an ego-vehicle strip at the
bottom, parking areas, caravans (things that are ignored in evaluation).
The first images of every split are scripted: 0 = several overlapping
things of different classes; 1 = no things; 2 = a crowd (person group)
only; 3 = a car group behind single things. Every image is rendered from
its own seeded generator, so a rerun writes the same bytes.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .toy_data import _inner_edge, _smooth_noise

#: Bump when the rendering changes, so that cached sets are regenerated.
TOY_CITYSCAPES_VERSION = 1

#: Cities of each split (images alternate between them).
TOY_CITYSCAPES_CITIES = {
    'train': ('aachen', 'bochum'),
    'val': ('frankfurt', 'lindau'),
}

# Cityscapes label ids (cityscapesscripts.helpers.labels) and render colours.
_EGO, _STATIC = 1, 4
_ROAD, _SIDEWALK, _PARKING = 7, 8, 9
_BUILDING, _WALL = 11, 12
_POLE, _LIGHT, _SIGN = 17, 19, 20
_VEGETATION, _TERRAIN, _SKY = 21, 22, 23
_PERSON, _RIDER, _CAR, _TRUCK, _BUS, _CARAVAN = 24, 25, 26, 27, 28, 29
_MOTORCYCLE, _BICYCLE = 32, 33
_COLOURS = {
    _EGO: (35, 35, 40),
    _STATIC: (111, 100, 80),
    _ROAD: (128, 64, 128),
    _SIDEWALK: (244, 35, 232),
    _PARKING: (250, 170, 160),
    _BUILDING: (70, 70, 70),
    _WALL: (102, 102, 156),
    _POLE: (153, 153, 153),
    _LIGHT: (250, 170, 30),
    _SIGN: (220, 220, 0),
    _VEGETATION: (107, 142, 35),
    _TERRAIN: (152, 251, 152),
    _SKY: (70, 130, 180),
    _PERSON: (220, 20, 60),
    _RIDER: (255, 0, 0),
    _CAR: (0, 0, 142),
    _TRUCK: (0, 0, 70),
    _BUS: (0, 60, 100),
    _CARAVAN: (0, 0, 90),
    _MOTORCYCLE: (0, 0, 230),
    _BICYCLE: (119, 11, 32),
}
_SPLIT_CODES = {'train': 0, 'val': 1}
_META_FILE = 'toy_meta.json'


def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(ys, xs)`` of an (h, w) image."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return ys, xs


def _ellipse(h: int, w: int, cx: float, cy: float, rx: float,
             ry: float) -> np.ndarray:
    """Bool mask of an axis-aligned ellipse."""
    ys, xs = _grid(h, w)
    rx, ry = max(rx, 0.5), max(ry, 0.5)
    return ((xs - cx) / rx)**2 + ((ys - cy) / ry)**2 <= 1.


def _rect(h: int, w: int, x1: float, y1: float, x2: float,
          y2: float) -> np.ndarray:
    """Bool mask of the pixels whose centres lie in ``[x1, x2] x [y1, y2]``.
    """
    ys, xs = _grid(h, w)
    return (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)


def _background(rng: np.random.Generator, h: int,
                w: int) -> Tuple[np.ndarray, float]:
    """Label ids of the stuff and void layout (no things).

    Args:
        rng (np.random.Generator): Random generator.
        h (int): Image height.
        w (int): Image width.

    Returns:
        tuple[np.ndarray, float]: (h, w) uint8 label ids and the horizon
        row.
    """
    ys, xs = _grid(h, w)
    horizon = h * rng.uniform(0.4, 0.5)
    labels = np.full((h, w), _SKY, dtype=np.uint8)

    # buildings: blocks of random width and height above the horizon, one
    # of them vegetation (a park) now and then
    x = 0.
    while x < w:
        bw = w * rng.uniform(0.12, 0.3)
        top = horizon - h * rng.uniform(0.15, 0.4)
        cls = _VEGETATION if rng.uniform() < 0.2 else _BUILDING
        labels[_rect(h, w, x, top, x + bw, horizon)] = cls
        x += bw
    # a tree in front of the buildings
    for _ in range(int(rng.integers(0, 3))):
        tx = rng.uniform(0, w)
        labels[_ellipse(h, w, tx, horizon - 0.12 * h, 0.07 * w,
                        0.12 * h)] = _VEGETATION

    # ground: the road narrows towards a vanishing point on the horizon,
    # sidewalks (or terrain at the far sides) beside it
    below = np.clip((ys - horizon) / (h - horizon), 0., 1.)
    vx = w * rng.uniform(0.4, 0.6)
    half = (0.05 + 0.45 * below) * w
    ground = ys > horizon
    labels[ground] = _SIDEWALK
    labels[ground & (np.abs(xs - vx) <= half)] = _ROAD
    if rng.uniform() < 0.5:
        labels[ground & (xs < vx - 2.2 * half)] = _TERRAIN
    # a wall along the horizon, on one side
    if rng.uniform() < 0.6:
        side = rng.uniform() < 0.5
        x1, x2 = (0., w * 0.35) if side else (w * 0.65, float(w))
        labels[_rect(h, w, x1, horizon - 0.05 * h, x2, horizon)] = _WALL
    # not evaluated: a parking area on a sidewalk, static clutter
    if rng.uniform() < 0.4:
        px = rng.uniform(0, 0.2 * w)
        labels[_rect(h, w, px, horizon + 0.15 * h, px + 0.15 * w, h)
               & (labels == _SIDEWALK)] = _PARKING
    if rng.uniform() < 0.3:
        labels[_ellipse(h, w, rng.uniform(0, w), horizon + 0.05 * h, 0.03 * w,
                        0.03 * h)] = _STATIC
    # poles with a traffic sign or light on top, on the sidewalks
    for _ in range(int(rng.integers(1, 4))):
        side = -1 if rng.uniform() < 0.5 else 1
        py = rng.uniform(horizon + 0.05 * h, h * 0.9)
        frac = (py - horizon) / (h - horizon)
        px = vx + side * (0.05 + 0.45 * frac) * w * rng.uniform(1.1, 1.6)
        pw = max(1., 0.008 * w * (0.5 + frac))
        top = py - (0.2 + 0.4 * frac) * h
        labels[_rect(h, w, px - pw, top, px + pw, py)] = _POLE
        cls = _SIGN if rng.uniform() < 0.6 else _LIGHT
        sw, sh = (4 * pw, 4 * pw) if cls == _SIGN else (2 * pw, 5 * pw)
        labels[_rect(h, w, px - sw, top - sh, px + sw, top)] = cls
    # void: the ego vehicle's bonnet at the bottom of half the images
    if rng.uniform() < 0.5:
        bonnet = h * (0.93 + 0.03 * _smooth_noise(rng, 1, w, grid=4)[0])
        labels[ys >= bonnet[None, :]] = _EGO
    return labels, horizon


def _thing_parts(kind: int, h: int, w: int, x: float, y: float,
                 scale: float) -> List[Tuple[int, np.ndarray]]:
    """Masks of one object standing at ``(x, y)`` (bottom centre).

    Args:
        kind (int): Label id of the object (rider objects: the vehicle's).
        h (int): Image height.
        w (int): Image width.
        x (float): Bottom-centre x.
        y (float): Bottom-centre y (on the ground).
        scale (float): Perspective scale, 0 at the horizon, 1 at the
            bottom.

    Returns:
        list[tuple[int, np.ndarray]]: ``(label id, bool mask)`` per
        instance: one, or two for a rider on a two-wheeler (vehicle first).
    """
    s = 0.15 + scale
    if kind in (_CAR, _CARAVAN, _TRUCK, _BUS):
        bw = {_CAR: 0.22, _CARAVAN: 0.25, _TRUCK: 0.3, _BUS: 0.38}[kind]
        bw *= w * s
        bh = bw * {_CAR: 0.45, _CARAVAN: 0.55, _TRUCK: 0.7, _BUS: 0.6}[kind]
        body = _rect(h, w, x - bw / 2, y - bh * 0.75, x + bw / 2, y - bh * 0.1)
        top = _rect(h, w, x - bw * 0.3, y - bh, x + bw * 0.3, y - bh * 0.7)
        if kind != _CAR:  # boxy vehicles: full height
            top = _rect(h, w, x - bw / 2, y - bh, x + bw / 2, y - bh * 0.7)
        wheels = (
            _ellipse(h, w, x - bw * 0.3, y - bh * 0.12, bw * 0.1, bh * 0.12)
            | _ellipse(h, w, x + bw * 0.3, y - bh * 0.12, bw * 0.1, bh * 0.12))
        return [(kind, body | top | wheels)]
    if kind == _PERSON:
        ph = 0.55 * h * s
        body = _ellipse(h, w, x, y - ph * 0.42, ph * 0.14, ph * 0.42)
        head = _ellipse(h, w, x, y - ph * 0.9, ph * 0.08, ph * 0.09)
        return [(_PERSON, body | head)]
    # a rider on a bicycle or a motorcycle
    vw = 0.12 * w * s
    r = vw * 0.25
    wheels = (
        _ellipse(h, w, x - vw / 2 + r, y - r, r, r)
        | _ellipse(h, w, x + vw / 2 - r, y - r, r, r))
    frame = _rect(h, w, x - vw / 2 + r, y - 2.2 * r, x + vw / 2 - r, y - r)
    if kind == _MOTORCYCLE:
        frame |= _rect(h, w, x - vw * 0.3, y - 2.8 * r, x + vw * 0.3,
                       y - 1.5 * r)
    ph = 0.4 * h * s
    rider = (
        _ellipse(h, w, x, y - 2.2 * r - ph * 0.35, ph * 0.12, ph * 0.35)
        | _ellipse(h, w, x, y - 2.2 * r - ph * 0.8, ph * 0.08, ph * 0.09))
    return [(kind, wheels | frame), (_RIDER, rider)]


def _ground_point(rng: np.random.Generator, h: int, w: int,
                  horizon: float) -> Tuple[float, float, float]:
    """A random point on the ground and its perspective scale."""
    y = rng.uniform(horizon + 0.08 * (h - horizon), h * 0.98)
    return rng.uniform(0.02 * w, 0.98 * w), y, (y - horizon) / (h - horizon)


def _crowd(rng: np.random.Generator, h: int, w: int, horizon: float,
           kind: int) -> Tuple[int, np.ndarray]:
    """A group: several objects of one class annotated as one region."""
    x, y, scale = _ground_point(rng, h, w, horizon)
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(4, 8))):
        dx = rng.normal(0., 0.06 * w)
        dy = rng.normal(0., 0.03 * h)
        yy = float(np.clip(y + dy, horizon + 2, h - 1))
        for _, part in _thing_parts(kind, h, w, x + dx, yy, scale * 0.7):
            mask |= part
    return kind, mask


def _things(rng: np.random.Generator, h: int, w: int, horizon: float,
            index: int) -> List[dict]:
    """Thing layers of one image, sorted back (far) to front (near).

    Args:
        rng (np.random.Generator): Random generator.
        h (int): Image height.
        w (int): Image width.
        horizon (float): Horizon row.
        index (int): Index of the image in its split (scripted scenes).

    Returns:
        list[dict]: Layers with ``label`` (label id), ``mask``, ``iscrowd``
        and ``depth`` (bottom row).
    """
    layers = []

    def _add(kind: int, x: float, y: float, scale: float) -> None:
        for label, mask in _thing_parts(kind, h, w, x, y, scale):
            layers.append(dict(label=label, mask=mask, iscrowd=0, depth=y))

    kinds = (_CAR, _CAR, _CAR, _PERSON, _PERSON, _BICYCLE, _MOTORCYCLE, _TRUCK,
             _BUS, _CARAVAN)
    if index == 0:
        # a near car partly covering a person and a far bus, a cyclist
        x, y, scale = w * 0.45, h * 0.88, (0.88 * h - horizon) / (h - horizon)
        _add(_CAR, x, y, scale)
        _add(_PERSON, x + 0.1 * w, y - 0.08 * h, scale * 0.8)
        _add(_BUS, x - 0.05 * w, horizon + 0.2 * (h - horizon), 0.2)
        _add(_BICYCLE, w * 0.8, h * 0.8, 0.7)
    elif index == 1:
        pass
    elif index == 2:
        kind, mask = _crowd(rng, h, w, horizon, _PERSON)
        layers.append(dict(label=kind, mask=mask, iscrowd=1, depth=0.))
    else:
        if index == 3 or rng.uniform() < 0.15:
            kind = _CAR if index == 3 else _PERSON
            kind, mask = _crowd(rng, h, w, horizon, kind)
            layers.append(dict(label=kind, mask=mask, iscrowd=1, depth=0.))
        for _ in range(int(rng.integers(1, 7))):
            kind = kinds[int(rng.integers(0, len(kinds)))]
            _add(kind, *_ground_point(rng, h, w, horizon))
    return sorted(layers, key=lambda layer: layer['depth'])


def _compose(background: np.ndarray, layers: List[dict],
             min_area: int) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """Paint the things over the background, dropping (almost) hidden ones.

    Args:
        background (np.ndarray): (h, w) label ids without things.
        layers (list[dict]): Thing layers, back to front.
        min_area (int): Fewest visible pixels of a kept thing.

    Returns:
        tuple: ``labelIds`` (uint8), ``instanceIds`` (uint16) and the kept
        layers, each with its ``instance_id`` and its ``visible`` mask.
    """
    while True:
        owner = np.full(background.shape, -1, dtype=np.int64)
        for i, layer in enumerate(layers):
            owner[layer['mask']] = i
        visible = np.bincount(owner[owner >= 0], minlength=len(layers))
        kept = [ly for ly, v in zip(layers, visible) if v >= min_area]
        if len(kept) == len(layers):
            break
        layers = kept
    label_ids = background.copy()
    instance_ids = background.astype(np.uint16)
    counts: Dict[int, int] = {}
    for i, layer in enumerate(layers):
        vis = owner == i
        label_ids[vis] = layer['label']
        if layer['iscrowd']:
            layer['instance_id'] = layer['label']
        else:
            k = counts.get(layer['label'], 0)
            counts[layer['label']] = k + 1
            layer['instance_id'] = layer['label'] * 1000 + k
        instance_ids[vis] = layer['instance_id']
        layer['visible'] = vis
    return label_ids, instance_ids, layers


def _render(rng: np.random.Generator, label_ids: np.ndarray,
            layers: List[dict]) -> np.ndarray:
    """RGB image of a scene: class colours with shading and noise.

    Args:
        rng (np.random.Generator): Random generator.
        label_ids (np.ndarray): (h, w) label ids.
        layers (list[dict]): Kept thing layers (see :func:`_compose`).

    Returns:
        np.ndarray: (h, w, 3) uint8 RGB image.
    """
    h, w = label_ids.shape
    img = np.zeros((h, w, 3), dtype=np.float64)
    shade = 1. + 0.15 * _smooth_noise(rng, h, w, grid=6)
    for label in np.unique(label_ids).tolist():
        base = np.array(_COLOURS[label], dtype=np.float64)
        base = base + rng.uniform(-10, 10, 3)
        img[label_ids == label] = base
    img *= shade[..., None]
    edge = max(1, round(w / 256))
    for layer in layers:
        colour = np.array(_COLOURS[layer['label']], dtype=np.float64)
        colour = np.clip(colour + rng.uniform(-35, 35, 3), 0, 255)
        vis = layer['visible']
        img[vis] = colour
        img[_inner_edge(vis, edge)] = colour * 0.5
    img += rng.normal(0., 4., (h, w, 1))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _write_png(path: str, array: np.ndarray) -> None:
    """Write an image (RGB, or one channel of 8 or 16 bits) as PNG."""
    if array.ndim == 3:
        array = array[..., ::-1]  # RGB -> BGR for OpenCV
    ok, data = cv2.imencode('.png', array)
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
    with open(path, 'wb') as f:
        f.write(data.tobytes())


def _generate_split(out_dir: str, split: str, num_images: int,
                    size: Tuple[int, int], seed: int) -> dict:
    """Render one split in the Cityscapes layout.

    Args:
        out_dir (str): Output root.
        split (str): ``'train'`` or ``'val'``.
        num_images (int): Number of images.
        size (tuple[int, int]): ``(height, width)``.
        seed (int): Base seed.

    Returns:
        dict: Counts of this split.
    """
    h, w = size
    cities = TOY_CITYSCAPES_CITIES[split]
    for city in cities:
        for kind in ('leftImg8bit', 'gtFine'):
            folder = osp.join(out_dir, kind, split, city)
            os.makedirs(folder, exist_ok=True)
            # remove the files of an earlier, larger generation
            for name in sorted(os.listdir(folder)):
                if name.endswith('.png'):
                    os.remove(osp.join(folder, name))
    stats = dict(
        num_images=num_images,
        num_thing_instances=0,
        num_crowd_regions=0,
        num_ignored_instances=0,
        num_images_without_things=0)
    min_area = max(6, (h * w) // 2000)
    for index in range(num_images):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
        background, horizon = _background(rng, h, w)
        layers = _things(rng, h, w, horizon, index)
        label_ids, instance_ids, layers = _compose(background, layers,
                                                   min_area)
        img = _render(rng, label_ids, layers)
        city = cities[index % len(cities)]
        stem = f'{city}_000000_{index:06d}'
        _write_png(
            osp.join(out_dir, 'leftImg8bit', split, city,
                     f'{stem}_leftImg8bit.png'), img)
        gt_dir = osp.join(out_dir, 'gtFine', split, city)
        _write_png(osp.join(gt_dir, f'{stem}_gtFine_labelIds.png'), label_ids)
        _write_png(
            osp.join(gt_dir, f'{stem}_gtFine_instanceIds.png'), instance_ids)
        crowd = sum(layer['iscrowd'] for layer in layers)
        ignored = sum(layer['label'] == _CARAVAN for layer in layers)
        things = len(layers) - crowd - ignored
        stats['num_crowd_regions'] += crowd
        stats['num_ignored_instances'] += ignored
        stats['num_thing_instances'] += things
        if things == 0:
            stats['num_images_without_things'] += 1
    return stats


def make_toy_cityscapes(out_dir: str = 'data/toy_cityscapes',
                        num_train: int = 32,
                        num_val: int = 8,
                        img_size: Sequence[int] = (128, 256),
                        seed: int = 0,
                        force: bool = False) -> dict:
    """Generate a tiny dataset in the official Cityscapes layout.

    See the module docstring for the files. The generation arguments are
    stored in ``<out_dir>/toy_meta.json``; a call with the same arguments on
    a complete output skips the work and returns the stored summary (with
    ``skipped=True``) unless ``force``.

    Args:
        out_dir (str): Output root. Defaults to ``'data/toy_cityscapes'``.
        num_train (int): Training images. Defaults to 32.
        num_val (int): Validation images. Defaults to 8.
        img_size (Sequence[int]): ``(height, width)``, each at least 32.
            Defaults to ``(128, 256)`` (Cityscapes' 1024 x 2048 / 8).
        seed (int): Non-negative base seed. Defaults to 0.
        force (bool): Regenerate even if a matching set exists.

    Returns:
        dict: Summary with ``out_dir``, ``skipped``, ``args``, per-split
        counts under ``splits`` (images, evaluated thing instances, crowd
        regions, instances of not-evaluated classes (caravans), images
        without evaluated thing instances) and ``seconds``.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0')
    if len(img_size) != 2 or min(img_size) < 32:
        raise ValueError(f'img_size must be (height, width), each >= 32, '
                         f'got {img_size}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    args = dict(
        format_version=TOY_CITYSCAPES_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        img_size=[int(s) for s in img_size],
        seed=int(seed))
    meta_path = osp.join(out_dir, _META_FILE)
    if not force and osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get('args') == args:
            summary = dict(meta['summary'])
            summary.update(out_dir=out_dir, skipped=True, seconds=0.)
            return summary

    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    if osp.isfile(meta_path):
        # an interrupted run must not look complete
        os.remove(meta_path)
    splits = {
        split:
        _generate_split(out_dir, split, num, tuple(args['img_size']),
                        args['seed'])
        for split, num in (('train', args['num_train']), ('val',
                                                          args['num_val']))
    }
    summary = dict(args=args, splits=splits)
    with open(meta_path, 'w') as f:
        json.dump(dict(args=args, summary=summary), f, separators=(',', ':'))
    summary = dict(summary)
    summary.update(
        out_dir=out_dir,
        skipped=False,
        seconds=round(time.perf_counter() - start, 3))
    return summary
