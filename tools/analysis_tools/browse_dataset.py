# Copyright (c) mmdr1 contributors. All rights reserved.
"""Draw the ground truth of a config's dataset after its pipeline.

Like MMDetection's ``tools/analysis_tools/browse_dataset.py`` (which the
mmdet package does not ship): every sample goes through the dataset's
pipeline (augmentation included) and is drawn by the config's visualizer
(mmdet's ``DetLocalVisualizer``). Panoptic datasets are drawn as panoptic
segmentations (one coloured, labelled region per thing instance and per
stuff class, crowd regions as a region of their class, unlabelled pixels
left as they are); instance datasets as boxes and masks. Examples::

    python tools/analysis_tools/browse_dataset.py \\
        configs/_base_/datasets/cityscapes_panoptic.py \\
        --output-dir work_dirs/browse_cityscapes --not-show
    python tools/analysis_tools/browse_dataset.py \\
        configs/toy/panoptic_fpn_r18_toy.py --split val --max-images 4 \\
        --output-dir work_dirs/browse_toy --not-show
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
from typing import Optional, Tuple

import numpy as np

if importlib.util.find_spec('mmdr1') is None:  # run from a source checkout
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmdet.evaluation.functional import INSTANCE_OFFSET  # noqa: E402
from mmdet.registry import DATASETS, VISUALIZERS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

import mmdr1  # noqa: E402,F401  (registers the mmdr1 components)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Browse a dataset')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--split',
        default='train',
        choices=['train', 'val', 'test'],
        help='which <split>_dataloader.dataset to draw (default: train)')
    parser.add_argument(
        '--output-dir',
        default=None,
        type=str,
        help='if given, write the pictures (PNG) into this folder')
    parser.add_argument(
        '--not-show',
        default=False,
        action='store_true',
        help='do not open a window for every picture')
    parser.add_argument(
        '--show-interval',
        type=float,
        default=2,
        help='seconds every picture is shown (default 2)')
    parser.add_argument(
        '--max-images',
        type=int,
        default=None,
        help='draw at most this many samples (default: all)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into the config file.')
    return parser.parse_args(argv)


def panoptic_gt(data_sample: DetDataSample, num_classes: int) -> np.ndarray:
    """Panoptic map of a packed panoptic sample, as models predict it.

    Args:
        data_sample (DetDataSample): A sample packed by ``PackDetInputs``
            after ``LoadPanopticAnnotations``: ``gt_sem_seg`` (things
            ``0..T-1``, stuff ``T..``, 255 unlabelled) and ``gt_instances``
            (the thing masks).
        num_classes (int): Number of classes (the VOID label).

    Returns:
        np.ndarray: (H, W) int64 map: ``label + k * INSTANCE_OFFSET`` for
        thing instance ``k >= 1``, the bare label for stuff and crowd
        regions, ``num_classes`` (VOID) for unlabelled pixels.
    """
    sem = np.asarray(data_sample.gt_sem_seg.sem_seg)[0].astype(np.int64)
    pan = np.where(sem == 255, num_classes, sem)
    instances = data_sample.get('gt_instances', None)
    if instances is not None and 'masks' in instances and len(instances):
        masks = instances.masks
        masks = masks.to_ndarray() if hasattr(masks, 'to_ndarray') else \
            np.asarray(masks)
        labels = np.asarray(instances.labels)
        for k, (mask, label) in enumerate(zip(masks.astype(bool), labels), 1):
            pan[mask[:pan.shape[0], :pan.shape[1]]] = (
                int(label) + k * INSTANCE_OFFSET)
    return pan


def drawable_sample(data_sample: DetDataSample, metainfo: dict,
                    img_shape: Tuple[int, int]) -> DetDataSample:
    """The ground truth to draw: panoptic, or instances (boxes, masks).

    Test pipelines load the ground truth after ``Resize``, at the original
    size; it is then scaled to the drawn image (nearest neighbour).

    Args:
        data_sample (DetDataSample): The packed sample (numpy).
        metainfo (dict): Dataset meta information.
        img_shape (tuple[int, int]): ``(h, w)`` of the drawn image.

    Returns:
        DetDataSample: ``gt_panoptic_seg`` for panoptic datasets (those with
        ``stuff_classes`` and a ``gt_sem_seg``), else ``gt_instances`` with
        plain box and bool mask arrays.
    """
    h, w = img_shape
    sample = DetDataSample(metainfo=data_sample.metainfo)
    if 'stuff_classes' in metainfo and 'gt_sem_seg' in data_sample:
        pan = panoptic_gt(data_sample, len(metainfo['classes']))
        if pan.shape != (h, w):  # nearest neighbour
            rows = ((np.arange(h) + 0.5) * pan.shape[0] / h).astype(int)
            cols = ((np.arange(w) + 0.5) * pan.shape[1] / w).astype(int)
            pan = pan[rows[:, None], cols[None, :]]
        sample.gt_panoptic_seg = PixelData(sem_seg=pan[None])
        return sample
    instances = data_sample.gt_instances.clone()
    masks = instances.get('masks', None)
    bboxes = instances.get('bboxes', None)
    if bboxes is not None and hasattr(bboxes, 'tensor'):
        bboxes = np.asarray(bboxes.tensor)
    if masks is not None and hasattr(masks, 'to_ndarray'):
        if (masks.height, masks.width) != (h, w):
            scale = np.array([w / masks.width, h / masks.height] * 2)
            masks = masks.resize((h, w))
            if bboxes is not None:
                bboxes = bboxes * scale
        instances.masks = masks.to_ndarray().astype(bool)
    if bboxes is not None:
        instances.bboxes = bboxes
    sample.gt_instances = instances
    return sample


def main(argv: Optional[list] = None) -> None:
    """Entry point.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))

    loader = cfg.get(f'{args.split}_dataloader', None)
    if loader is None:
        raise ValueError(f'{args.config} has no {args.split}_dataloader')
    dataset = DATASETS.build(loader.dataset)
    vis_cfg = cfg.get('visualizer', None) or dict(
        type='DetLocalVisualizer', name='browse_dataset')
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)

    num = len(dataset)
    if args.max_images is not None:
        num = min(num, args.max_images)
    progress_bar = ProgressBar(num)
    for idx in range(num):
        item = dataset[idx]
        # packed images are (3, H, W) BGR; the visualizer draws on RGB
        img = item['inputs'].permute(1, 2, 0).numpy()[..., [2, 1, 0]]
        data_sample = item['data_samples'].numpy()
        name = osp.splitext(osp.basename(data_sample.img_path))[0]
        out_file = osp.join(args.output_dir,
                            f'{name}.png') if args.output_dir else None
        visualizer.add_datasample(
            name,
            img,
            data_sample=drawable_sample(data_sample, dataset.metainfo,
                                        img.shape[:2]),
            draw_pred=False,
            show=not args.not_show,
            wait_time=args.show_interval,
            out_file=out_file)
        progress_bar.update()


if __name__ == '__main__':
    main()
