# Copyright (c) mmdr1 contributors. All rights reserved.
"""Dataset classes for the synthetic toy set of :mod:`.toy_data`."""
from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmdet.registry import DATASETS

from .toy_data import TOY_PANOPTIC_CATEGORIES

_THING_CATS = [c for c in TOY_PANOPTIC_CATEGORIES if c['isthing']]
_STUFF_CATS = [c for c in TOY_PANOPTIC_CATEGORIES if not c['isthing']]


@DATASETS.register_module()
class ToyPanopticDataset(CocoPanopticDataset):
    """Toy panoptic dataset written by :func:`make_toy_panoptic`.

    The annotations are plain COCO panoptic files, so this is
    :class:`mmdet.datasets.CocoPanopticDataset` with the toy categories
    (3 things, then 3 stuff classes). A config in the layout of
    ``make_toy_panoptic`` reads::

        dataset=dict(
            type='ToyPanopticDataset',
            data_root='data/toy_panoptic/',
            ann_file='annotations/panoptic_train.json',
            data_prefix=dict(
                img='train/', seg='annotations/panoptic_train/'))

    and is evaluated by ``CocoPanopticMetric(
    ann_file='data/toy_panoptic/annotations/panoptic_val.json',
    seg_prefix='data/toy_panoptic/annotations/panoptic_val/')``.
    """

    METAINFO = {
        'classes': tuple(c['name'] for c in TOY_PANOPTIC_CATEGORIES),
        'thing_classes': tuple(c['name'] for c in _THING_CATS),
        'stuff_classes': tuple(c['name'] for c in _STUFF_CATS),
        'palette': [tuple(c['color']) for c in TOY_PANOPTIC_CATEGORIES],
    }


@DATASETS.register_module()
class ToyInstanceDataset(CocoDataset):
    """Thing classes of the toy set as a COCO instance dataset.

    Reads ``annotations/instances_{train,val}.json`` written by
    :func:`make_toy_panoptic` (RLE masks, crowd regions with
    ``iscrowd=1``), for detection and instance-segmentation configs.
    """

    METAINFO = {
        'classes': tuple(c['name'] for c in _THING_CATS),
        'palette': [tuple(c['color']) for c in _THING_CATS],
    }
