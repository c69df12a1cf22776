# Copyright (c) mmdr1 contributors. All rights reserved.
"""Small synthetic inputs for tests (as :mod:`mmdet.testing`)."""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.structures import InstanceData, PixelData
from torch import Tensor


def _thing_map(masks: np.ndarray, labels: Sequence[int], h: int,
               w: int) -> Tensor:
    """(1, H, W) uint8 thing map: 0 background, ``label + 1`` on things."""
    thing = np.zeros((h, w), dtype=np.uint8)
    for mask, label in zip(masks, labels):
        thing[mask.astype(bool)] = label + 1
    return torch.from_numpy(thing)[None]


def demo_panoptic_sample(h: int,
                         w: int,
                         num_things: int,
                         num_things_classes: int,
                         seed: int = 0,
                         min_size: int = 8) -> Tuple[Tensor, Any]:
    """A random image with panoptic ground truth.

    Stuff class 0 covers the top half and stuff class 1 the bottom half,
    the first two rows are void (255); ``num_things`` random rectangles
    (sides ``min_size`` to half the image, labels ``i % T``) are painted on
    top. The sample holds ``gt_instances`` (boxes, labels, bitmap masks),
    the mmdet panoptic ``gt_sem_seg`` (things ``0..T-1``, stuff ``T..``)
    and ``gt_thing_sem_seg``.

    Args:
        h (int): Image height.
        w (int): Image width.
        num_things (int): Thing instances.
        num_things_classes (int): ``T``.
        seed (int): Random seed. Defaults to 0.
        min_size (int): Smallest rectangle side. Defaults to 8.

    Returns:
        tuple: uint8 image (3, H, W) and a :obj:`DetDataSample`.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    t = num_things_classes
    rng = np.random.RandomState(seed)
    img = torch.from_numpy(rng.randint(0, 255, (3, h, w)).astype(np.uint8))
    sem = np.full((h, w), t, dtype=np.int64)
    sem[h // 2:] = t + 1
    sem[:2] = 255
    masks = np.zeros((num_things, h, w), dtype=np.uint8)
    boxes, labels = [], []
    for i in range(num_things):
        y, x = rng.randint(0, h // 2), rng.randint(0, w // 2)
        dy = rng.randint(min_size, h // 2)
        dx = rng.randint(min_size, w // 2)
        masks[i, y:y + dy, x:x + dx] = 1
        boxes.append([x, y, x + dx, y + dy])
        labels.append(i % t)
        sem[masks[i].astype(bool)] = i % t
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            pad_shape=(h, w),
            scale_factor=(1., 1.),
            batch_input_shape=(h, w)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=BitmapMasks(masks, h, w))
    sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
    sample.gt_thing_sem_seg = PixelData(
        sem_seg=_thing_map(masks, labels, h, w))
    return img, sample


def demo_coco_batch(
    panoptic: bool,
    h: int = 96,
    w: int = 128,
    boxes: Optional[Sequence[Sequence[float]]] = None,
    labels: Sequence[int] = (3, 17)
) -> dict:
    """One image in COCO's label space, for the COCO configs' models.

    Masks fill their boxes minus a 4 px border. Instance data put the
    thing map in ``gt_sem_seg``; panoptic data put the panoptic map there
    (things ``0..79``, stuff 85 top half / 120 bottom half, 255 in the top
    three rows) and the thing map in ``gt_thing_sem_seg``.

    Args:
        panoptic (bool): Panoptic ground truth.
        h (int): Image height. Defaults to 96.
        w (int): Image width. Defaults to 128.
        boxes (list, optional): Boxes ``x1, y1, x2, y2``. Defaults to
            ``[[8, 10, 60, 80], [50, 30, 120, 90]]``.
        labels (Sequence[int]): Thing labels. Defaults to (3, 17).

    Returns:
        dict: ``inputs`` and ``data_samples`` for a data preprocessor.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    if boxes is None:
        boxes = [[8, 10, 60, 80], [50, 30, 120, 90]]
    rng = np.random.RandomState(0)
    img = torch.from_numpy(rng.randint(0, 256, (3, h, w)).astype(np.uint8))
    boxes = np.array(boxes, np.float32)
    labels = np.array(labels)
    masks = np.zeros((len(boxes), h, w), np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        m[y1 + 4:y2 - 4, x1 + 4:x2 - 4] = 1
    thing = _thing_map(masks, labels, h, w)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            scale_factor=(1., 1.),
            flip=False))
    sample.gt_instances = InstanceData(
        bboxes=torch.from_numpy(boxes),
        labels=torch.from_numpy(labels),
        masks=BitmapMasks(masks, h, w))
    if panoptic:
        sem = np.full((h, w), 80 + 5, np.int64)
        sem[h // 2:] = 80 + 40
        sem[:3] = 255
        for m, label in zip(masks, labels):
            sem[m.astype(bool)] = label
        sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        sample.gt_thing_sem_seg = PixelData(sem_seg=thing)
    else:
        sample.gt_sem_seg = PixelData(sem_seg=thing)
    return dict(inputs=[img], data_samples=[sample])


def no_sync_bn(cfg: Any) -> Any:
    """Replace ``SyncBN`` by ``BN`` in a (nested) config, in place.

    Args:
        cfg: A config dict / list (e.g. ``cfg.model``).

    Returns:
        The same object, for chaining.
    """
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'type' and value == 'SyncBN':
                cfg[key] = 'BN'
            else:
                no_sync_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            no_sync_bn(value)
    return cfg


def type_name(cfg: dict) -> str:
    """The ``type`` of a config dict by name (imported classes too)."""
    t = cfg['type']
    return t if isinstance(t, str) else t.__name__


def flatten_config(obj: Any, prefix: str = '') -> Dict[str, Any]:
    """Nested dicts / lists -> ``{'a.b.0.c': leaf}``; classes by name.

    For comparing configs key by key (e.g. an ablation against its parent).
    """
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten_config(value, f'{prefix}{key}.'))
        if not obj:
            out[prefix[:-1]] = {}
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            out.update(flatten_config(value, f'{prefix}{i}.'))
        if not obj:
            out[prefix[:-1]] = ()
    else:
        out[prefix[:-1]] = obj.__name__ if isinstance(obj, type) else obj
    return out


def toy_cityscapes_batch(
    dataset_cfg: Any,
    data_root: str,
    num: int = 2,
    scale: Tuple[int, int] = (256, 128),
    crop_size: Tuple[int, int] = (128, 64)
) -> dict:
    """A collated batch from a Cityscapes train dataset config on toy data.

    The config's own pipeline runs with the random rescale and the crop
    scaled down (``RandomResize.scale``, ``RandomCrop.crop_size``, both
    (w, h)), so that a full-size model config can take a training step on
    a converted toy Cityscapes set (``make_toy_cityscapes`` + the
    converter) in a test.

    Args:
        dataset_cfg (dict): ``train_dataloader.dataset`` of a config.
        data_root (str): Root of the converted toy set.
        num (int): Samples in the batch (the dataset repeats if smaller).
        scale (tuple[int, int]): ``RandomResize`` scale.
        crop_size (tuple[int, int]): ``RandomCrop`` size.

    Returns:
        dict: ``inputs`` and ``data_samples`` (``pseudo_collate``).
    """
    import copy

    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope

    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg.data_root = data_root
    for t in dataset_cfg.pipeline:
        if type_name(t) == 'RandomResize':
            t.scale = scale
        elif type_name(t) == 'RandomCrop':
            t.crop_size = crop_size
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_cfg)
    return pseudo_collate([dataset[i % len(dataset)] for i in range(num)])
