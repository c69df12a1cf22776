# Copyright (c) mmdr1 contributors. All rights reserved.
"""mmdet's ``CocoPanopticMetric`` without its in-place edit of predictions."""
from typing import Sequence

from mmdet.evaluation import CocoPanopticMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class SafeCocoPanopticMetric(CocoPanopticMetric):
    """``CocoPanopticMetric`` that leaves the predictions untouched.

    mmdet 3.3's ``CocoPanopticMetric._parse_predictions`` reads the
    prediction with ``pred_panoptic_seg.sem_seg.cpu().numpy()`` and then
    writes panopticapi's VOID (0) into that array. On a CPU tensor
    ``.cpu().numpy()`` shares memory, so the model's own output is changed:
    the visualization hook, which runs after the metric, then draws VOID
    pixels as label 0 (the first thing class) in the ``--show-dir``
    overlays. PQ itself is not affected. This subclass hands the parent a
    copy of every panoptic map and is otherwise identical (same arguments,
    same results); the data configs of mmdr1 use it.
    """

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Process a batch like the parent, on copies of the panoptic maps.

        Args:
            data_batch (dict): A batch from the dataloader.
            data_samples (Sequence[dict]): Model outputs as dicts (with
                ``pred_panoptic_seg.sem_seg`` (1, H, W)).
        """
        copies = []
        for sample in data_samples:
            sample = dict(sample)
            pan = dict(sample['pred_panoptic_seg'])
            pan['sem_seg'] = pan['sem_seg'].clone()
            sample['pred_panoptic_seg'] = pan
            copies.append(sample)
        super().process(data_batch, copies)
