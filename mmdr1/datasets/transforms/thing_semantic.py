# Copyright (c) mmdr1 contributors. All rights reserved.
"""On-the-fly thing-semantic labels for BlendMask's auxiliary basis loss.

Blendmask spec section 6.4: the reference precomputes
``thing_train2017/<id>.npz`` maps offline; here the same map is made from
the ground-truth instance masks inside the data pipeline, so no separate
label files are needed.
"""
from typing import Optional, Union

import numpy as np
import pycocotools.mask as mask_utils
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class GenerateThingSemanticSeg(BaseTransform):
    """Build a thing-semantic map: 0 background, ``label + 1`` on things.

    The map is uint8 (H, W). As the reference's
    ``prepare_thing_sem_from_instance.py`` (spec section 6.4) every
    instance is painted, crowd ones included, later ones overwriting
    earlier ones. Three sources (``source``):

    - ``'annotations'`` (exact reference behaviour, COCO instance data):
      rasterise the raw annotations ``results['instances']`` (polygons or
      RLE, in annotation order, crowd included) at the original image
      size. Place it **before** the geometric transforms with
      ``seg_key='gt_seg_map'``: mmdet's resize / flip / crop then transform
      the map with nearest interpolation, as the reference transforms its
      label files.
    - ``'masks'`` (default): paint the already transformed ``gt_masks``
      (place it after the geometric transforms). Crowd instances are
      painted when the loader gave them a mask; mmdet's
      ``LoadAnnotations(poly2mask=False)`` gives crowd RLE an empty
      polygon, so use ``'annotations'`` there.
    - ``'panoptic'`` (panoptic data): thing pixels of the panoptic
      ``gt_seg_map`` (labels ``0..num_things_classes-1``, crowd segments
      included), anywhere in the pipeline after
      ``LoadPanopticAnnotations``.

    Required Keys:

    - instances (``'annotations'``), with ``mask`` and ``bbox_label``
    - gt_masks, gt_bboxes_labels (``'masks'``)
    - gt_seg_map (``'panoptic'``)
    - img_shape

    Added Keys:

    - ``seg_key`` (np.uint8 (H, W)), ``'gt_thing_sem_seg'`` by default.

    Args:
        seg_key (str): Key of the output map. ``'gt_seg_map'`` lets mmdet's
            transforms and ``PackDetInputs`` handle it (``gt_sem_seg``).
            Defaults to ``'gt_thing_sem_seg'``.
        source (str): ``'masks'``, ``'annotations'`` or ``'panoptic'``.
            Defaults to ``'masks'``.
        num_things_classes (int, optional): Needed by ``'panoptic'``.
    """

    SOURCES = ('masks', 'annotations', 'panoptic')

    def __init__(self,
                 seg_key: str = 'gt_thing_sem_seg',
                 source: str = 'masks',
                 num_things_classes: Optional[int] = None) -> None:
        if source not in self.SOURCES:
            raise ValueError(f'GenerateThingSemanticSeg: source must be one '
                             f'of {self.SOURCES}, got {source!r}')
        if source == 'panoptic' and num_things_classes is None:
            raise ValueError("GenerateThingSemanticSeg: source='panoptic' "
                             'needs num_things_classes')
        if source == 'panoptic' and seg_key == 'gt_seg_map':
            raise ValueError("GenerateThingSemanticSeg: source='panoptic' "
                             "reads 'gt_seg_map'; choose another seg_key")
        self.seg_key = seg_key
        self.source = source
        self.num_things_classes = num_things_classes

    def transform(self, results: dict) -> Optional[dict]:
        """Add the thing-semantic map to ``results``.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: ``results`` with ``results[seg_key]`` of shape (H, W).
        """
        if self.source == 'annotations':
            sem = self._from_annotations(results)
        elif self.source == 'panoptic':
            pan = results.get('gt_seg_map', None)
            if pan is None:
                raise KeyError("GenerateThingSemanticSeg(source='panoptic') "
                               "needs 'gt_seg_map' from "
                               'LoadPanopticAnnotations(with_seg=True)')
            things = pan < self.num_things_classes
            sem = np.where(things, pan + 1, 0).astype(np.uint8)
        else:
            sem = self._from_masks(results)
        results[self.seg_key] = sem
        return results

    @staticmethod
    def _from_masks(results: dict) -> np.ndarray:
        masks = results.get('gt_masks', None)
        if masks is not None:
            height, width = masks.height, masks.width
        else:
            height, width = results['img_shape'][:2]
        sem = np.zeros((height, width), dtype=np.uint8)
        if masks is not None and len(masks) > 0:
            labels = np.asarray(results['gt_bboxes_labels'])
            assert len(labels) == len(masks), (
                f'{len(labels)} labels for {len(masks)} masks')
            assert labels.max() + 1 <= 255, 'labels + 1 must fit in uint8'
            arrays = masks.to_ndarray()
            for mask, label in zip(arrays, labels):
                sem[mask.astype(bool)] = label + 1
        return sem

    @staticmethod
    def _from_annotations(results: dict) -> np.ndarray:
        if 'scale_factor' in results or 'flip' in results:
            raise RuntimeError(
                "GenerateThingSemanticSeg(source='annotations') rasterises "
                'the raw annotations at the original size: place it before '
                'the geometric transforms (resize, flip, crop), with '
                "seg_key='gt_seg_map' so that they transform the map")
        height, width = results['img_shape'][:2]
        sem = np.zeros((height, width), dtype=np.uint8)
        for i, instance in enumerate(results.get('instances', [])):
            if 'mask' not in instance:
                raise KeyError(
                    f'GenerateThingSemanticSeg: instance {i} of '
                    f"{results.get('img_path', 'the image')} has no 'mask' "
                    "(source='annotations' needs segmentations)")
            label = int(instance['bbox_label'])
            if label + 1 > 255:
                raise ValueError('labels + 1 must fit in uint8')
            sem[_rasterise(instance['mask'], height, width)] = label + 1
        return sem

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(seg_key='{self.seg_key}', "
                f"source='{self.source}', "
                f'num_things_classes={self.num_things_classes})')


def _rasterise(segm: Union[list, dict], height: int, width: int) -> np.ndarray:
    """COCO polygons / RLE (compressed or not) -> bool (H, W) mask."""
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
        if not polys:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm, dict) and isinstance(segm.get('counts'), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    elif isinstance(segm, dict):
        rle = segm
    else:
        raise TypeError(f'unknown segmentation format {type(segm)}')
    return mask_utils.decode(rle).astype(bool)
