# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow's panoptic merge with box fill (spatialflow spec 5.3)."""
from typing import Dict, List, Optional

import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.models.seg_heads import BasePanopticFusionHead
from mmdet.registry import MODELS
from mmdet.utils import InstanceList, OptConfigType, OptMultiConfig, PixelList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData, PixelData
from torch import Tensor


@MODELS.register_module()
class BoxFillFusionHead(BasePanopticFusionHead):
    """Panoptic fusion of SpatialFlow: things, stuff, then box fill.

    The reference's ``combine_panoptic.py`` (spec 5.3) on tensors, for one
    image at the original resolution:

    1. Things: instances with ``score >= instance_score_thr`` in descending
       score order (stable). An empty mask is skipped; a mask whose overlap
       with the union of the previously ACCEPTED masks exceeds
       ``overlap_thr`` of its area is skipped; otherwise its unassigned
       pixels become a new instance segment.
    2. Stuff: the argmax of ``seg_preds`` (channels: stuff ``0..S-1``, then
       the "things"/"other" channel, as :class:`SpatialFlowStuffHead`
       returns them); for each stuff class (never "other"), its unassigned
       pixels become a segment if there are at least ``stuff_area_limit``
       of them, else they stay unassigned (void).
    3. Box fill (``use_bbox_fill``): in the same order, every box with
       ``score >= bbox_score_thr`` gives the region ``[int(y1):int(y2),
       int(x1):int(x2)]`` (truncation, clamped to the image); if at least
       ``bbox_overlap_thr`` of it is unassigned, the unassigned pixels are
       painted with the instance's id when its mask was accepted in step 1,
       else with a new instance of the box's class.

    Differences from the reference, all of which only affect degenerate
    cases:

    * A box of zero integer area is skipped. The reference computes
      ``0 / 0 = NaN``, which passes ``NaN < thr == False``, and writes a
      segment with no pixels (with a new id ``pq_compute`` then fails with
      "segment in JSON not in PNG").
    * The reference reads boxes from the COCO ``xywh`` JSON and truncates
      ``x1 + w``, which may differ from ``x2`` by one ulp; here ``x2`` is
      truncated directly. Negative coordinates are clamped to 0 (NumPy
      slicing would wrap them; mmdet clips boxes to the image anyway).
    * A new segment is only created with at least one pixel (the reference
      cannot create an empty one either, except for the NaN case).

    Output (mmdet's convention): ``label + k * INSTANCE_OFFSET`` for the
    ``k``-th thing segment (``k >= 1``), ``num_things_classes + j`` for
    stuff class ``j``, ``num_classes`` (= T + S) for void. Segments never
    overlap.

    Thresholds are constructor arguments; a ``test_cfg`` (the detector
    passes its ``test_cfg.panoptic``, as mmdet's panoptic detectors do)
    overrides them key by key. The resolved values are in
    ``self.test_cfg`` and read at prediction time.

    Args:
        num_things_classes (int): Thing classes T. Defaults to 80.
        num_stuff_classes (int): Stuff classes S. Defaults to 53.
        instance_score_thr (float): Reference ``confidence_thr``.
            Defaults to 0.37.
        overlap_thr (float): Max fraction of a mask covered by accepted
            masks. Defaults to 0.37.
        stuff_area_limit (int): Min pixels of a stuff segment. Defaults to
            4900.
        use_bbox_fill (bool): Reference ``using_bbox``. Defaults to True.
        bbox_overlap_thr (float): Min unassigned fraction of a box.
            Defaults to 0.5.
        bbox_score_thr (float, optional): Score threshold of step 3; None
            (the reference) means ``instance_score_thr``.
        test_cfg (dict, optional): Overrides of the arguments above.
        init_cfg (dict, optional): Initialization config.
    """

    CFG_KEYS = ('instance_score_thr', 'overlap_thr', 'stuff_area_limit',
                'use_bbox_fill', 'bbox_overlap_thr', 'bbox_score_thr')

    def __init__(self,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 instance_score_thr: float = 0.37,
                 overlap_thr: float = 0.37,
                 stuff_area_limit: int = 4900,
                 use_bbox_fill: bool = True,
                 bbox_overlap_thr: float = 0.5,
                 bbox_score_thr: Optional[float] = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 **kwargs) -> None:
        cfg = dict(
            instance_score_thr=instance_score_thr,
            overlap_thr=overlap_thr,
            stuff_area_limit=stuff_area_limit,
            use_bbox_fill=use_bbox_fill,
            bbox_overlap_thr=bbox_overlap_thr,
            bbox_score_thr=bbox_score_thr)
        unknown = set(test_cfg or {}) - set(self.CFG_KEYS)
        if unknown:
            raise KeyError(
                'BoxFillFusionHead: unknown test_cfg keys '
                f'{sorted(unknown)}; expected {list(self.CFG_KEYS)}')
        cfg.update(test_cfg or {})
        super().__init__(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            test_cfg=ConfigDict(cfg),
            loss_panoptic=None,
            init_cfg=init_cfg,
            **kwargs)

    def loss(self, **kwargs) -> dict:
        """The fusion has no training loss."""
        return dict()

    def _thresholds(self) -> Dict[str, float]:
        """The current thresholds (``bbox_score_thr`` resolved)."""
        cfg = dict(self.test_cfg)
        if cfg.get('bbox_score_thr') is None:
            cfg['bbox_score_thr'] = cfg['instance_score_thr']
        return cfg

    def _predict_single(self, mask_results: InstanceData,
                        seg_preds: Tensor) -> PixelData:
        """Fuse one image (spec 5.3, steps 1-3).

        Args:
            mask_results (:obj:`InstanceData`): ``bboxes`` (K, 4) xyxy at
                the original resolution, ``labels`` (K, ), ``scores``
                (K, ) and ``masks`` (K, H, W) bool.
            seg_preds (Tensor): (S + 1, H, W) stuff logits, "other" last.

        Returns:
            :obj:`PixelData`: ``sem_seg`` (1, H, W) int32 panoptic ids.
        """
        cfg = self._thresholds()
        height, width = seg_preds.shape[-2:]
        device = seg_preds.device
        void = self.num_classes
        pan = torch.full((height, width),
                         void,
                         dtype=torch.long,
                         device=device)
        assigned = torch.zeros((height, width),
                               dtype=torch.bool,
                               device=device)
        next_inst = 1

        scores = mask_results.scores
        order = torch.sort(scores, descending=True, stable=True)[1].tolist()
        score_list = scores.tolist()
        labels = mask_results.labels.tolist()
        masks = mask_results.masks if len(mask_results) else None
        if masks is not None and masks.shape[-2:] != (height, width):
            raise ValueError(
                f'BoxFillFusionHead: masks {tuple(masks.shape[-2:])} and '
                f'seg_preds {(height, width)} differ in size')

        # 1. things
        accepted: Dict[int, int] = {}  # instance index -> panoptic id
        used = torch.zeros_like(assigned)  # union of accepted masks
        for i in order:
            if score_list[i] < cfg['instance_score_thr']:
                break
            mask = masks[i].bool()
            area = int(mask.sum())
            if area == 0:
                continue
            if int((mask & used).sum()) / area > cfg['overlap_thr']:
                continue
            used |= mask
            left = mask & ~assigned
            if not bool(left.any()):  # cannot happen with overlap_thr < 1
                continue
            seg_id = labels[i] + next_inst * INSTANCE_OFFSET
            next_inst += 1
            pan[left] = seg_id
            assigned |= left
            accepted[i] = seg_id

        # 2. stuff ("other" = channel S is never a segment)
        sem = seg_preds.argmax(dim=0)
        for j in torch.unique(sem).tolist():
            if j >= self.num_stuff_classes:
                continue
            left = (sem == j) & ~assigned
            if int(left.sum()) < cfg['stuff_area_limit']:
                continue
            pan[left] = self.num_things_classes + j
            assigned |= left

        # 3. box fill
        if cfg['use_bbox_fill'] and len(mask_results):
            boxes = mask_results.bboxes.tolist()
            for i in order:
                if score_list[i] < cfg['bbox_score_thr']:
                    break
                x1, y1, x2, y2 = (int(v) for v in boxes[i][:4])
                x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
                y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
                region = max(y2 - y1, 0) * max(x2 - x1, 0)
                if region == 0:  # the reference's 0 / 0 = NaN is accepted
                    continue
                left = ~assigned[y1:y2, x1:x2]
                num_left = int(left.sum())
                if num_left / region < cfg['bbox_overlap_thr'] or \
                        num_left == 0:
                    continue
                seg_id = accepted.get(i)
                if seg_id is None:
                    seg_id = labels[i] + next_inst * INSTANCE_OFFSET
                    next_inst += 1
                pan[y1:y2, x1:x2][left] = seg_id
                assigned[y1:y2, x1:x2] |= left

        return PixelData(sem_seg=pan[None].int())

    def predict(self, mask_results_list: InstanceList,
                seg_preds_list: List[Tensor], **kwargs) -> PixelList:
        """Fuse instances and stuff logits image by image.

        Same signature as :meth:`HeuristicFusionHead.predict`.

        Args:
            mask_results_list (list[:obj:`InstanceData`]): Per image
                ``bboxes``, ``labels``, ``scores``, ``masks`` (K, H, W) at
                the original resolution.
            seg_preds_list (list[Tensor]): Per image (S + 1, H, W) stuff
                logits at the same resolution.

        Returns:
            list[:obj:`PixelData`]: ``sem_seg`` (1, H, W) panoptic ids.
        """
        pairs = zip(mask_results_list, seg_preds_list)
        return [self._predict_single(res, seg) for res, seg in pairs]
