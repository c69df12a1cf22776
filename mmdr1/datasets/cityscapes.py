# Copyright (c) mmdr1 contributors. All rights reserved.
"""Cityscapes panoptic segmentation in COCO panoptic format.

The annotation files are written by ``tools/dataset_converters/
cityscapes.py`` (from the official ``leftImg8bit/`` and ``gtFine/``
folders, with cityscapesscripts' ``createPanopticImgs``)::

    <root>/leftImg8bit/{train,val}/<city>/<id>_leftImg8bit.png
    <root>/annotations/cityscapes_panoptic_{train,val}.json
    <root>/annotations/cityscapes_panoptic_{train,val}/<id>_leftImg8bit.png

Image ids are strings (``<city>_<sequence>_<frame>``, e.g.
``frankfurt_000000_000294``); ``images[].file_name`` is the bare image
name, without the city folder.
"""
import os.path as osp
import warnings
from typing import List

from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path

#: Evaluated Cityscapes classes as ``(name, label id, train id, colour)``:
#: the 8 thing classes first, then the 11 stuff classes (mmdet's panoptic
#: label order). Values of ``cityscapesscripts.helpers.labels`` (a test
#: checks they agree), kept here so that importing mmdr1 does not need
#: cityscapesscripts.
CITYSCAPES_THINGS = (
    ('person', 24, 11, (220, 20, 60)),
    ('rider', 25, 12, (255, 0, 0)),
    ('car', 26, 13, (0, 0, 142)),
    ('truck', 27, 14, (0, 0, 70)),
    ('bus', 28, 15, (0, 60, 100)),
    ('train', 31, 16, (0, 80, 100)),
    ('motorcycle', 32, 17, (0, 0, 230)),
    ('bicycle', 33, 18, (119, 11, 32)),
)
CITYSCAPES_STUFF = (
    ('road', 7, 0, (128, 64, 128)),
    ('sidewalk', 8, 1, (244, 35, 232)),
    ('building', 11, 2, (70, 70, 70)),
    ('wall', 12, 3, (102, 102, 156)),
    ('fence', 13, 4, (190, 153, 153)),
    ('pole', 17, 5, (153, 153, 153)),
    ('traffic light', 19, 6, (250, 170, 30)),
    ('traffic sign', 20, 7, (220, 220, 0)),
    ('vegetation', 21, 8, (107, 142, 35)),
    ('terrain', 22, 9, (152, 251, 152)),
    ('sky', 23, 10, (70, 130, 180)),
)

_IMG_SUFFIX = '_leftImg8bit.png'


def cityscapes_city(file_name: str) -> str:
    """City folder of a Cityscapes image (or annotation) file name.

    Names are ``<city>_<sequence>_<frame>_<suffix>``; the city itself may
    contain an underscore (``stuttgart_00`` of the demo videos), so it is
    everything before the last three ``_``-separated fields.

    Args:
        file_name (str): e.g. ``'frankfurt_000000_000294_leftImg8bit.png'``.

    Returns:
        str: e.g. ``'frankfurt'``.

    Raises:
        ValueError: If the name has fewer than four ``_``-separated fields.
    """
    parts = osp.basename(file_name).split('_')
    if len(parts) < 4:
        raise ValueError(f'{file_name!r} is not a Cityscapes file name '
                         '(<city>_<sequence>_<frame>_<suffix>, e.g. '
                         "'frankfurt_000000_000294_leftImg8bit.png')")
    return '_'.join(parts[:-3])


@DATASETS.register_module()
class CityscapesPanopticDataset(CocoPanopticDataset):
    """Cityscapes panoptic segmentation (8 thing and 11 stuff classes).

    :class:`mmdet.datasets.CocoPanopticDataset` with three changes:

    - the image path takes the city folder from the image name:
      ``<data_prefix.img>/<city>/<id>_leftImg8bit.png`` (names that already
      hold a folder are used as they are);
    - the panoptic PNG path is ``<data_prefix.seg>/<annotation file_name>``
      (mmdet derives it from the image name). The converter names the PNGs
      after the images, which is what ``CocoPanopticMetric`` looks for: it
      reads ``<seg_prefix>/<image name>`` and writes its predictions under
      the same name; a warning says so when the names differ;
    - segments are taken per image from the panoptic API's image index:
      Cityscapes segment ids (``label_id * 1000 + k``) repeat in every
      image, and the stock per-segment-id lookup collects the segments of
      all images for every image: quadratic time, 88 s instead of 2 s to
      index the 2975 training images.

    Category ids are looked up by class name, so the ids of the annotation
    file (train ids with the converter; label ids with cityscapesscripts'
    default) do not matter, but the categories must be listed in the order
    of ``METAINFO['classes']`` (things first), as the converter writes
    them: mmdet's ``CocoPanopticMetric`` maps labels to category ids by
    that order.

    A config reads::

        dataset=dict(
            type='CityscapesPanopticDataset',
            data_root='data/cityscapes/',
            ann_file='annotations/cityscapes_panoptic_train.json',
            data_prefix=dict(
                img='leftImg8bit/train/',
                seg='annotations/cityscapes_panoptic_train/'))
    """

    METAINFO = {
        'classes': tuple(c[0] for c in CITYSCAPES_THINGS + CITYSCAPES_STUFF),
        'thing_classes': tuple(c[0] for c in CITYSCAPES_THINGS),
        'stuff_classes': tuple(c[0] for c in CITYSCAPES_STUFF),
        'palette': [c[3] for c in CITYSCAPES_THINGS + CITYSCAPES_STUFF],
    }

    def load_data_list(self) -> List[dict]:
        """Load the panoptic annotation file.

        Returns:
            list[dict]: One parsed data info per image, see
            :meth:`parse_data_info`.

        Raises:
            ValueError: If a class of ``metainfo['classes']`` is missing from
                the annotation file, or if the file lists the categories in
                another order (things first, as ``metainfo['classes']``).
        """
        with get_local_path(
                self.ann_file, backend_args=self.backend_args) as local_path:
            self.coco = self.COCOAPI(local_path)
        self._check_categories()
        self.cat_ids = self.coco.get_cat_ids(
            cat_names=self.metainfo['classes'])
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = dict(self.coco.cat_img_map)
        self._ann_file_names = {
            ann['image_id']: ann['file_name']
            for ann in self.coco.dataset.get('annotations', [])
        }
        self._warned_names = False

        data_list = []
        for img_id in self.coco.get_img_ids():
            raw_img_info = dict(self.coco.imgs[img_id])
            raw_img_info['img_id'] = img_id
            data_list.append(
                self.parse_data_info(
                    dict(
                        raw_img_info=raw_img_info,
                        raw_ann_info=list(self.coco.imgToAnns[img_id]))))
        del self.coco
        return data_list

    def _check_categories(self) -> None:
        """Check that the file lists the classes in the label order."""
        cats = self.coco.dataset.get('categories', [])
        names = [c['name'] for c in cats]
        missing = [n for n in self.metainfo['classes'] if n not in names]
        if missing:
            raise ValueError(
                f'{self.ann_file}: categories {missing} are missing '
                f'(found {names}); convert the annotations with '
                'tools/dataset_converters/cityscapes.py')
        listed = [n for n in names if n in self.metainfo['classes']]
        if listed != list(self.metainfo['classes']):
            raise ValueError(
                f'{self.ann_file}: the categories must be listed in the order '
                f'of the classes, things first: {self.metainfo["classes"]} '
                f'(found {listed}); mmdet\'s panoptic models and '
                'CocoPanopticMetric map labels to categories by this order. '
                'Convert the annotations with '
                'tools/dataset_converters/cityscapes.py')

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Parse one image: paths with the city folder, then the segments.

        Args:
            raw_data_info (dict): ``raw_img_info`` (with ``img_id``) and
                ``raw_ann_info`` (the image's segments).

        Returns:
            dict: As :meth:`CocoPanopticDataset.parse_data_info`:
            ``img_path``, ``img_id``, ``seg_map_path``, ``height``,
            ``width``, ``instances`` and ``segments_info``.
        """
        data_info = super().parse_data_info(raw_data_info)
        img_info = raw_data_info['raw_img_info']
        file_name = img_info['file_name']
        if osp.dirname(file_name) == '':
            file_name = osp.join(cityscapes_city(file_name), file_name)
        data_info['img_path'] = osp.join(self.data_prefix['img'], file_name)
        if data_info['seg_map_path'] is not None:
            # the name CocoPanopticMetric derives from the image path
            expected = osp.basename(img_info['file_name']).replace(
                '.jpg', '.png')
            seg_name = self._ann_file_names.get(img_info['img_id'], expected)
            if seg_name != expected and not self._warned_names:
                self._warned_names = True
                warnings.warn(
                    f'{self.ann_file}: the panoptic PNG {seg_name!r} is not '
                    f'named after its image ({expected!r}); training works, '
                    'but CocoPanopticMetric reads <seg_prefix>/<image name>. '
                    'Convert with tools/dataset_converters/cityscapes.py.')
            data_info['seg_map_path'] = osp.join(self.data_prefix['seg'],
                                                 seg_name)
        return data_info
