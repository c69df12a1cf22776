# Copyright (c) mmdr1 contributors. All rights reserved.
"""On-the-fly thing-semantic labels for BlendMask's auxiliary basis loss.

Blendmask spec section 6.4: the reference precomputes
``thing_train2017/<id>.npz`` maps offline; here the same map is made from
the ground-truth instance masks inside the data pipeline, so no separate
label files are needed.
"""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class GenerateThingSemanticSeg(BaseTransform):
    """Build a thing-semantic map from the instance masks.

    The map is uint8 (H, W): 0 is background and ``label + 1`` covers the
    pixels of every instance with contiguous label ``label``. As the
    reference's ``prepare_thing_sem_from_instance.py`` (spec section 6.4),
    all instances are painted, ignored / crowd ones included
    (``gt_ignore_flags`` is not consulted), and later instances overwrite
    earlier ones.

    Place it after the geometric transforms (resize, crop, flip, pad): it
    reads the already transformed masks, which replaces the reference's
    nearest-interpolated transform of the label files.

    Required Keys:

    - gt_masks (BitmapMasks | PolygonMasks)
    - gt_bboxes_labels (np.ndarray)
    - img_shape (optional; used when ``gt_masks`` is absent)

    Added Keys:

    - ``seg_key`` (np.uint8 (H, W)), ``'gt_thing_sem_seg'`` by default.

    Args:
        seg_key (str): Key of the output map. ``'gt_seg_map'`` lets mmdet's
            ``PackDetInputs`` pack it as ``data_sample.gt_sem_seg``.
            Defaults to ``'gt_thing_sem_seg'``.
    """

    def __init__(self, seg_key: str = 'gt_thing_sem_seg') -> None:
        self.seg_key = seg_key

    def transform(self, results: dict) -> Optional[dict]:
        """Add the thing-semantic map to ``results``.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: ``results`` with ``results[seg_key]`` of shape (H, W).
        """
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
        results[self.seg_key] = sem
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(seg_key='{self.seg_key}')"
