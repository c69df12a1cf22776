# Copyright (c) mmdr1 contributors. All rights reserved.
"""Deterministic synthetic toy panoptic dataset.

:func:`make_toy_panoptic` renders small RGB scenes of textured background
regions ("stuff": stripes, checkerboard, speckle) with coloured shapes on
top ("things": disks, boxes, triangles) and writes them in COCO panoptic
format, together with a matching COCO instance file::

    <out_dir>/train/<name>.jpg, <out_dir>/val/<name>.jpg
    <out_dir>/annotations/panoptic_{train,val}.json
    <out_dir>/annotations/panoptic_{train,val}/<name>.png
    <out_dir>/annotations/instances_{train,val}.json
    <out_dir>/toy_meta.json

Every panoptic PNG is named after its image (same stem), which is what
mmdet's ``CocoPanopticDataset`` and ``CocoPanopticMetric`` expect.

The scenes are built to exercise a panoptic model: things overlap in a
random occlusion order, range from ~10 px to half the image, cross the
image borders; some images hold no things at all, and a few hold a crowd
region (a cluster of small shapes annotated as a single ``iscrowd=1``
segment), one of them with the crowd as its only thing. Every image is
rendered from its own seeded ``numpy.random.Generator`` and JPEGs are
written at a fixed quality, so a rerun with the same arguments writes the
same bytes.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util

#: Category definitions, things first, then stuff (the label order of the
#: dataset). Ids are COCO-like and deliberately non-contiguous. ``color`` is
#: the palette colour and the base colour used to render the category.
TOY_PANOPTIC_CATEGORIES: Tuple[dict, ...] = (
    dict(
        id=1,
        name='disk',
        supercategory='shape',
        isthing=1,
        color=(220, 40, 50)),
    dict(
        id=3,
        name='box',
        supercategory='shape',
        isthing=1,
        color=(40, 80, 220)),
    dict(
        id=7,
        name='triangle',
        supercategory='shape',
        isthing=1,
        color=(40, 175, 70)),
    dict(
        id=92,
        name='stripes',
        supercategory='texture',
        isthing=0,
        color=(215, 185, 120)),
    dict(
        id=101,
        name='checker',
        supercategory='texture',
        isthing=0,
        color=(150, 110, 175)),
    dict(
        id=125,
        name='speckle',
        supercategory='texture',
        isthing=0,
        color=(105, 150, 150)),
)

#: Bump when the rendering changes, so that cached sets are regenerated.
TOY_FORMAT_VERSION = 1

_THINGS = [c for c in TOY_PANOPTIC_CATEGORIES if c['isthing']]
_STUFF = [c for c in TOY_PANOPTIC_CATEGORIES if not c['isthing']]
_SPLIT_CODES = {'train': 0, 'val': 1}
_META_FILE = 'toy_meta.json'


def _smooth_noise(rng: np.random.Generator,
                  h: int,
                  w: int,
                  grid: int = 5) -> np.ndarray:
    """Smooth random field in [-1, 1] (smoothstep-interpolated grid).

    Args:
        rng (np.random.Generator): Random generator.
        h (int): Output height.
        w (int): Output width.
        grid (int): Number of random control values per axis.

    Returns:
        np.ndarray: Field of shape (h, w), float64.
    """
    coarse = rng.uniform(-1., 1., (grid, grid))

    def _axis(n: int) -> Tuple[np.ndarray, np.ndarray]:
        pos = np.linspace(0., grid - 1., n)
        idx = np.minimum(np.floor(pos).astype(np.int64), grid - 2)
        frac = pos - idx
        return idx, frac * frac * (3. - 2. * frac)

    iy, fy = _axis(h)
    ix, fx = _axis(w)
    fy, fx = fy[:, None], fx[None, :]
    top = coarse[iy][:, ix] * (1 - fx) + coarse[iy][:, ix + 1] * fx
    bottom = coarse[iy + 1][:, ix] * (1 - fx) + coarse[iy + 1][:, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _stuff_layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """Split the image into irregular regions, each of one stuff class.

    Regions are the cells of a Voronoi diagram whose distances are warped
    by smooth noise, which gives wavy borders.

    Args:
        rng (np.random.Generator): Random generator.
        size (int): Image side length.

    Returns:
        np.ndarray: (size, size) int map of indices into the stuff classes.
    """
    num_regions = int(rng.integers(2, 5))
    seeds = rng.uniform(0, size, (num_regions, 2))
    classes = rng.integers(0, len(_STUFF), num_regions)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    dists = np.stack([
        np.hypot(xs - sx, ys - sy) +
        0.3 * size * _smooth_noise(rng, size, size) for sx, sy in seeds
    ])
    return classes[np.argmin(dists, axis=0)]


def _stuff_texture(rng: np.random.Generator, stuff_idx: int,
                   size: int) -> np.ndarray:
    """Render the full-frame texture of one stuff class.

    Args:
        rng (np.random.Generator): Random generator.
        stuff_idx (int): Index into the stuff classes.
        size (int): Image side length.

    Returns:
        np.ndarray: (size, size, 3) float RGB image.
    """
    scale = size / 256.
    base = np.array(_STUFF[stuff_idx]['color'], dtype=np.float64)
    base = base + rng.uniform(-12, 12, 3)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    name = _STUFF[stuff_idx]['name']
    if name == 'stripes':
        period = max(3., rng.uniform(8., 14.) * scale)
        theta = rng.uniform(0, np.pi)
        phase = xs * np.cos(theta) + ys * np.sin(theta)
        dark = (phase % period) < period / 2
        factor = np.where(dark, 0.6, 1.)[..., None]
        return base * factor
    if name == 'checker':
        cell = max(2., rng.uniform(6., 12.) * scale)
        parity = (np.floor(xs / cell) + np.floor(ys / cell)) % 2
        light = base * 0.45 + 255 * 0.55
        return np.where(parity[..., None] > 0, light, base)
    # speckle: per-pixel grey noise around the base colour
    noise = rng.normal(0., 35., (size, size, 1))
    return base + noise


def _shape_mask(shape: str, cx: float, cy: float, diam: float, angle: float,
                aspect: float, jitter: Sequence[float],
                size: int) -> np.ndarray:
    """Rasterise one thing shape on pixel centres.

    Args:
        shape (str): ``'disk'``, ``'box'`` or ``'triangle'``.
        cx (float): Centre x in pixels.
        cy (float): Centre y in pixels.
        diam (float): Extent (diameter of the enclosing circle) in pixels.
        angle (float): Rotation in radians.
        aspect (float): Box height / width.
        jitter (Sequence[float]): Six values in [0, 1) that perturb the
            triangle's vertices.
        size (int): Image side length.

    Returns:
        np.ndarray: (size, size) bool mask.
    """
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = xs - cx, ys - cy
    radius = diam / 2.
    if shape == 'disk':
        return dx * dx + dy * dy <= radius * radius
    if shape == 'box':
        half_w = radius / np.sqrt(1. + aspect * aspect)
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        return (np.abs(u) <= half_w) & (np.abs(v) <= half_w * aspect)
    # triangle: three vertices around the centre, slightly irregular
    angles = angle + np.arange(3) * 2 * np.pi / 3 + (np.asarray(jitter[:3]) -
                                                     0.5) * 0.5
    radii = radius * (0.8 + 0.3 * np.asarray(jitter[3:6]))
    px = radii * np.cos(angles)
    py = radii * np.sin(angles)
    signs = []
    for i in range(3):
        j = (i + 1) % 3
        signs.append((px[j] - px[i]) * (dy - py[i]) - (py[j] - py[i]) *
                     (dx - px[i]))
    signs = np.stack(signs)
    return np.all(signs >= 0, axis=0) | np.all(signs <= 0, axis=0)


def _random_part(rng: np.random.Generator, thing_idx: int, diam: float,
                 cx: float, cy: float,
                 size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw the geometry and the colour of one shape.

    Args:
        rng (np.random.Generator): Random generator.
        thing_idx (int): Index into the thing classes.
        diam (float): Extent in pixels.
        cx (float): Centre x in pixels.
        cy (float): Centre y in pixels.
        size (int): Image side length.

    Returns:
        tuple[np.ndarray, np.ndarray]: (size, size) bool mask and its RGB
        colour (3,).
    """
    angle = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.5, 1.)
    jitter = rng.uniform(0, 1, 6)
    mask = _shape_mask(_THINGS[thing_idx]['name'], cx, cy, diam, angle, aspect,
                       jitter, size)
    base = np.array(_THINGS[thing_idx]['color'], dtype=np.float64)
    colour = np.clip(base + rng.uniform(-30, 30, 3), 0, 255)
    return mask, colour


def _thing_layer(rng: np.random.Generator,
                 size: int,
                 thing_idx: Optional[int] = None,
                 diam: Optional[float] = None,
                 centre: Optional[Tuple[float, float]] = None) -> dict:
    """Build one thing instance, random where not given.

    Args:
        rng (np.random.Generator): Random generator.
        size (int): Image side length.
        thing_idx (int, optional): Index into the thing classes.
        diam (float, optional): Extent in pixels.
        centre (tuple[float, float], optional): Centre (x, y) in pixels.

    Returns:
        dict: Layer with ``thing_idx``, ``iscrowd``, ``mask``, ``parts``
        (list of (mask, colour)), ``centre`` and ``diam``.
    """
    if thing_idx is None:
        thing_idx = int(rng.integers(0, len(_THINGS)))
    if diam is None:
        diam = _random_diam(rng, size)
    if centre is None:
        centre = tuple(rng.uniform(0, size, 2))
    mask, colour = _random_part(rng, thing_idx, diam, centre[0], centre[1],
                                size)
    return dict(
        thing_idx=thing_idx,
        iscrowd=0,
        mask=mask,
        parts=[(mask, colour)],
        centre=centre,
        diam=diam)


def _crowd_layer(rng: np.random.Generator, size: int) -> dict:
    """Build a crowd: a cluster of small shapes of one class.

    Args:
        rng (np.random.Generator): Random generator.
        size (int): Image side length.

    Returns:
        dict: Layer like :func:`_thing_layer`, with ``iscrowd=1`` and one
        part per shape of the cluster.
    """
    thing_idx = int(rng.integers(0, len(_THINGS)))
    d_min = _size_range(size)[0]
    cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
    parts = []
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(8, 15))):
        px, py = rng.normal((cx, cy), 0.08 * size)
        diam = rng.uniform(d_min, 1.6 * d_min)
        part_mask, colour = _random_part(rng, thing_idx, diam, px, py, size)
        parts.append((part_mask, colour))
        mask |= part_mask
    return dict(
        thing_idx=thing_idx,
        iscrowd=1,
        mask=mask,
        parts=parts,
        centre=(cx, cy),
        diam=0.3 * size)


def _size_range(size: int) -> Tuple[float, float]:
    """Smallest and largest thing extent for an image side length."""
    return max(6., 0.04 * size), 0.5 * size


def _random_diam(rng: np.random.Generator, size: int) -> float:
    """Log-uniform thing extent between the bounds of :func:`_size_range`.
    """
    d_min, d_max = _size_range(size)
    return float(np.exp(rng.uniform(np.log(d_min), np.log(d_max))))


def _scenario_layers(rng: np.random.Generator, size: int,
                     index: int) -> List[dict]:
    """Thing layers of one image, back to front.

    The first images of every split are scripted so that even a tiny split
    covers the corner cases: 0 = a large, a border-crossing and a small
    overlapping thing; 1 = no things; 2 = a crowd only; 3 = a crowd behind
    random things. Later images are random.

    Args:
        rng (np.random.Generator): Random generator.
        size (int): Image side length.
        index (int): Index of the image in its split.

    Returns:
        list[dict]: Layers, see :func:`_thing_layer`.
    """
    d_min, d_max = _size_range(size)
    if index == 0:
        cx, cy = rng.uniform(0.4 * size, 0.6 * size, 2)
        big = _thing_layer(rng, size, diam=d_max, centre=(cx, cy))
        edge_y = rng.uniform(0.2 * size, 0.8 * size)
        border = _thing_layer(
            rng, size, diam=0.3 * size, centre=(0.02 * size, edge_y))
        # a small thing on top of the big one, a bit off its centre
        small = _thing_layer(
            rng, size, diam=d_min, centre=(cx + 0.1 * size, cy))
        return [big, border, small]
    if index == 1:
        return []
    if index == 2:
        return [_crowd_layer(rng, size)]
    layers = []
    if index == 3:
        layers.append(_crowd_layer(rng, size))
    else:
        draw = rng.uniform()
        if draw < 0.08:
            return []
        if draw < 0.14:
            layers.append(_crowd_layer(rng, size))
    for _ in range(int(rng.integers(1, 7))):
        diam = _random_diam(rng, size)
        centre = tuple(rng.uniform(0, size, 2))
        if layers and rng.uniform() < 0.4:
            # put it next to an earlier thing so that it partly covers it
            other = layers[int(rng.integers(0, len(layers)))]
            direction = rng.uniform(0, 2 * np.pi)
            dist = 0.4 * (other['diam'] + diam) / 2
            centre = (other['centre'][0] + dist * np.cos(direction),
                      other['centre'][1] + dist * np.sin(direction))
        layers.append(_thing_layer(rng, size, diam=diam, centre=centre))
    return layers


def _owner_map(stuff_map: np.ndarray, layers: List[dict]) -> np.ndarray:
    """Pixel owner: layer index for things, ``-1 - stuff_idx`` for stuff."""
    owner = -1 - stuff_map.astype(np.int64)
    for i, layer in enumerate(layers):
        owner[layer['mask']] = i
    return owner


def _keep_visible(stuff_map: np.ndarray, layers: List[dict],
                  size: int) -> Tuple[List[dict], np.ndarray]:
    """Drop things that are (almost) hidden, out of view or too tiny.

    A plain thing needs at least ``min_area`` visible pixels and a quarter
    of its in-image area; a crowd needs ``min_area`` pixels. Dropping only
    uncovers other layers, so a few passes converge.

    Args:
        stuff_map (np.ndarray): Stuff layout, see :func:`_stuff_layout`.
        layers (list[dict]): Thing layers, back to front.
        size (int): Image side length.

    Returns:
        tuple[list[dict], np.ndarray]: The kept layers and their owner map.
    """
    min_area = max(6., (0.02 * size)**2)
    while True:
        owner = _owner_map(stuff_map, layers)
        visible = np.bincount(
            owner[owner >= 0], minlength=len(layers)) if layers else []
        kept = [
            layer for layer, vis in zip(layers, visible)
            if vis >= min_area and (layer['iscrowd'] or vis >= 0.25 *
                                    layer['mask'].sum())
        ]
        if len(kept) == len(layers):
            return layers, owner
        layers = kept


def _inner_edge(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` px (4-connected) of its edge."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def _render_image(rng: np.random.Generator, size: int,
                  index: int) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """Render one scene.

    Args:
        rng (np.random.Generator): Random generator of this image.
        size (int): Image side length.
        index (int): Index of the image in its split.

    Returns:
        tuple: The RGB uint8 image (size, size, 3), the int64 owner map
        (size, size) (see :func:`_owner_map`), the kept thing layers.
    """
    stuff_map = _stuff_layout(rng, size)
    img = np.zeros((size, size, 3), dtype=np.float64)
    for stuff_idx in np.unique(stuff_map).tolist():
        texture = _stuff_texture(rng, stuff_idx, size)
        img[stuff_map == stuff_idx] = texture[stuff_map == stuff_idx]
    layers = _scenario_layers(rng, size, index)
    layers, owner = _keep_visible(stuff_map, layers, size)
    edge_width = max(1, round(size / 128))
    for layer in layers:
        for part_mask, colour in layer['parts']:
            img[part_mask] = colour
            img[_inner_edge(part_mask, edge_width)] = colour * 0.55
    img += rng.normal(0., 3., (size, size, 1))
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img, owner, layers


def _mask_bbox(mask: np.ndarray) -> List[int]:
    """COCO ``[x, y, w, h]`` box of a non-empty mask (inclusive pixels)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return [
        int(xs[0]),
        int(ys[0]),
        int(xs[-1] - xs[0] + 1),
        int(ys[-1] - ys[0] + 1)
    ]


def _id_to_rgb(id_map: np.ndarray) -> np.ndarray:
    """Encode segment ids as RGB (``id = R + 256 * G + 256**2 * B``)."""
    return np.stack([(id_map >> (8 * i)) & 255 for i in range(3)],
                    axis=-1).astype(np.uint8)


def _segment_id(rng: np.random.Generator, colour: Sequence[int],
                used: set) -> int:
    """A fresh non-zero segment id whose RGB code is near ``colour``."""
    while True:
        rgb = np.clip(np.asarray(colour) + rng.integers(-40, 41, 3), 0, 255)
        seg_id = int(rgb[0] + 256 * rgb[1] + 256 * 256 * rgb[2])
        if seg_id != 0 and seg_id not in used:
            used.add(seg_id)
            return seg_id


def _write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``."""
    with open(path, 'wb') as f:
        f.write(data)


def _write_json(path: str, obj: dict) -> None:
    """Write ``obj`` as compact, deterministic JSON."""
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def _generate_split(out_dir: str, split: str, num_images: int, size: int,
                    seed: int, jpeg_quality: int) -> dict:
    """Render one split and write its images, PNGs and JSON files.

    Args:
        out_dir (str): Output root.
        split (str): ``'train'`` or ``'val'``.
        num_images (int): Number of images.
        size (int): Image side length.
        seed (int): Base seed.
        jpeg_quality (int): JPEG quality.

    Returns:
        dict: Counts of this split.
    """
    img_dir = osp.join(out_dir, split)
    png_dir = osp.join(out_dir, 'annotations', f'panoptic_{split}')
    for folder, ext in ((img_dir, '.jpg'), (png_dir, '.png')):
        os.makedirs(folder, exist_ok=True)
        # remove stale images of an earlier, larger generation
        for name in sorted(os.listdir(folder)):
            if name.startswith(f'{split}_') and name.endswith(ext):
                os.remove(osp.join(folder, name))

    images, pan_anns, inst_anns = [], [], []
    stats = dict(
        num_images=num_images,
        num_thing_segments=0,
        num_crowd_segments=0,
        num_stuff_segments=0,
        num_images_without_things=0,
        num_occluded_things=0,
        num_border_things=0)
    for index in range(num_images):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
        img, owner, layers = _render_image(rng, size, index)
        stem = f'{split}_{index:05d}'
        img_id = index + 1
        images.append(
            dict(id=img_id, file_name=f'{stem}.jpg', height=size, width=size))

        segments, seg_ids = [], np.zeros((size, size), dtype=np.int64)
        used: set = set()
        units = [(i, _THINGS[layer['thing_idx']], layer)
                 for i, layer in enumerate(layers)]
        units += [(-1 - i, cat, None) for i, cat in enumerate(_STUFF)]
        for owner_value, cat, layer in units:
            mask = owner == owner_value
            if not mask.any():
                continue
            seg_id = _segment_id(rng, cat['color'], used)
            seg_ids[mask] = seg_id
            iscrowd = layer['iscrowd'] if layer is not None else 0
            segment = dict(
                id=seg_id,
                category_id=cat['id'],
                iscrowd=iscrowd,
                bbox=_mask_bbox(mask),
                area=int(mask.sum()))
            segments.append(segment)
            if layer is None:
                stats['num_stuff_segments'] += 1
                continue
            stats[
                'num_crowd_segments' if iscrowd else 'num_thing_segments'] += 1
            if not iscrowd:
                if segment['area'] < layer['mask'].sum():
                    stats['num_occluded_things'] += 1
                if (mask[0].any() or mask[-1].any() or mask[:, 0].any()
                        or mask[:, -1].any()):
                    stats['num_border_things'] += 1
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            inst_anns.append(
                dict(
                    id=len(inst_anns) + 1,
                    image_id=img_id,
                    category_id=cat['id'],
                    segmentation=dict(
                        size=[int(s) for s in rle['size']],
                        counts=rle['counts'].decode('ascii')),
                    area=segment['area'],
                    bbox=list(segment['bbox']),
                    iscrowd=iscrowd))
        if not any(layer['iscrowd'] == 0 for layer in layers):
            stats['num_images_without_things'] += 1
        pan_anns.append(
            dict(
                image_id=img_id,
                file_name=f'{stem}.png',
                segments_info=segments))

        ok, jpg = cv2.imencode('.jpg', img[..., ::-1],
                               [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        assert ok, 'JPEG encoding failed'
        _write_bytes(osp.join(img_dir, f'{stem}.jpg'), jpg.tobytes())
        ok, png = cv2.imencode('.png', _id_to_rgb(seg_ids)[..., ::-1])
        assert ok, 'PNG encoding failed'
        _write_bytes(osp.join(png_dir, f'{stem}.png'), png.tobytes())

    info = dict(
        description=f'mmdr1 toy panoptic dataset ({split})',
        version=str(TOY_FORMAT_VERSION))
    categories = [
        dict(
            id=c['id'],
            name=c['name'],
            supercategory=c['supercategory'],
            isthing=c['isthing'],
            color=list(c['color'])) for c in TOY_PANOPTIC_CATEGORIES
    ]
    ann_dir = osp.join(out_dir, 'annotations')
    _write_json(
        osp.join(ann_dir, f'panoptic_{split}.json'),
        dict(
            info=info,
            licenses=[],
            images=images,
            annotations=pan_anns,
            categories=categories))
    _write_json(
        osp.join(ann_dir, f'instances_{split}.json'),
        dict(
            info=info,
            licenses=[],
            images=images,
            annotations=inst_anns,
            categories=[c for c in categories if c['isthing']]))
    return stats


def _expected_files(out_dir: str) -> List[str]:
    """Annotation files whose presence lets a rerun skip generation."""
    ann_dir = osp.join(out_dir, 'annotations')
    return [
        osp.join(ann_dir, f'{kind}_{split}.json') for split in _SPLIT_CODES
        for kind in ('panoptic', 'instances')
    ]


def make_toy_panoptic(out_dir: str = 'data/toy_panoptic',
                      num_train: int = 160,
                      num_val: int = 40,
                      img_size: int = 256,
                      seed: int = 0,
                      jpeg_quality: int = 90,
                      force: bool = False) -> Dict:
    """Generate the toy panoptic dataset (COCO panoptic + instance format).

    The generation arguments are stored in ``<out_dir>/toy_meta.json``; a
    call with the same arguments on a complete output skips the work and
    returns the stored summary (with ``skipped=True``) unless ``force``.

    Args:
        out_dir (str): Output root. Defaults to ``'data/toy_panoptic'``.
        num_train (int): Number of training images. Defaults to 160.
        num_val (int): Number of validation images. Defaults to 40.
        img_size (int): Side length of the square images. Defaults to 256.
        seed (int): Non-negative base seed. Defaults to 0.
        jpeg_quality (int): JPEG quality (1-100). Defaults to 90.
        force (bool): Regenerate even if a matching set exists.
            Defaults to False.

    Returns:
        dict: Summary with ``out_dir``, ``skipped``, ``args``, per-split
        counts under ``splits`` (images, thing / crowd / stuff segments,
        images without things, occluded and border-touching things),
        ``categories`` and ``seconds`` spent generating.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0')
    if img_size < 32:
        raise ValueError(f'img_size must be >= 32, got {img_size}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality must be in [1, 100], '
                         f'got {jpeg_quality}')
    args = dict(
        format_version=TOY_FORMAT_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        img_size=int(img_size),
        seed=int(seed),
        jpeg_quality=int(jpeg_quality))
    meta_path = osp.join(out_dir, _META_FILE)
    if not force and osp.isfile(meta_path) and all(
            osp.isfile(p) for p in _expected_files(out_dir)):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get('args') == args:
            summary = dict(meta['summary'])
            summary.update(out_dir=out_dir, skipped=True, seconds=0.)
            return summary

    start = time.perf_counter()
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    if osp.isfile(meta_path):
        # an interrupted run must not look complete
        os.remove(meta_path)
    splits = {
        split:
        _generate_split(out_dir, split, num, args['img_size'], args['seed'],
                        args['jpeg_quality'])
        for split, num in (('train', args['num_train']), ('val',
                                                          args['num_val']))
    }
    summary = dict(
        args=args,
        splits=splits,
        categories=dict(
            thing=[c['name'] for c in _THINGS],
            stuff=[c['name'] for c in _STUFF]))
    _write_json(meta_path, dict(args=args, summary=summary))
    summary = dict(summary)
    summary.update(
        out_dir=out_dir,
        skipped=False,
        seconds=round(time.perf_counter() - start, 3))
    return summary
