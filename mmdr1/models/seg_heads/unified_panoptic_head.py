# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask's unified panoptic segmentation layer.

DR1Mask paper section 3.3, Eq. 9 and dr1mask spec section 5: one 1x1
convolution over the DR1Basis features whose weight ``W = [W_stuff;
W_inst]`` stacks ``S`` static rows (the stuff classes) and one dynamic row
per instance (the mean of the instance's embeddings), so stuff and things
compete in a single softmax per pixel.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_overlaps
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule, normal_init
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from mmdr1.models.layers.aligned_upsample import AlignedUpsample


@MODELS.register_module()
class UnifiedPanopticHead(BaseModule):
    """Unified panoptic layer (paper section 3.3 Eq. 9, spec section 5).

    Per image the panoptic logits are ``W . basis`` with
    ``W = [W_stuff; W_inst]``: ``W_stuff`` (S x C) is the static 1x1
    convolution :attr:`conv_stuff`, ``W_inst`` (n x C, no bias) holds one
    dynamic row per instance. Channel ``j < S`` is stuff class ``j``
    (dataset label ``T + j``), channel ``S + k`` is instance ``k``.

    - Training: ``n`` = the ground-truth thing instances of the image; row
      ``i`` is the mean of the embeddings of the locations assigned to
      instance ``i`` (:meth:`instance_rows`). Targets come from
      :meth:`get_targets`; :meth:`loss` is softmax cross entropy over the
      ``S + n`` channels at the input resolution.
    - Inference: ``n`` = the detections kept by NMS; row ``k`` is the mean
      of the embeddings of detection ``k`` and of the candidates it
      suppressed (:meth:`merge_nms_rows`). :meth:`predict` takes the
      per-pixel argmax and writes mmdet's panoptic ids.

    Panoptic id convention (mmdet's, as :class:`HeuristicFusionHead`):
    a thing segment has id ``label + instance_id * INSTANCE_OFFSET``
    (``INSTANCE_OFFSET = 1000``, ``instance_id`` from 1), stuff class ``j``
    has id ``T + j`` and void is ``T + S`` (``num_classes``), so mmdet's
    ``CocoPanopticMetric`` evaluates the output unchanged.

    Args:
        in_channels (int): Basis channels ``C`` (= the embedding width).
            Defaults to 64 (spec section 3, panoptic model).
        num_things_classes (int): Thing classes ``T``. Defaults to 80.
        num_stuff_classes (int): Stuff classes ``S``. Defaults to 53.
        upsample (str): How the stride-4 logits reach the input resolution
            in :meth:`loss` and :meth:`predict`: ``'aligned'``
            (:class:`AlignedUpsample` x4 cropped to the target, spec
            sections 5 and 6, default) or ``'bilinear'``
            (``F.interpolate``, ``align_corners=False``, to the target
            size).
        loss_weight (float): Weight of ``loss_panoptic``. Defaults to 1.0.
        ignore_index (int): Ignored target value. Defaults to 255.
        stuff_area_limit (int): Stuff segments with fewer pixels (at the
            output resolution) become void in :meth:`predict`. Defaults to
            4096 (spec section 5, COCO).
        restrict_to_boxes (bool): Not in the paper (choice, default off):
            outside its box an instance channel's logit is pushed to
            ``-1e4`` after upsampling (GT boxes in training, detected boxes
            at inference), so an instance can only win pixels in its box.
            The paper's layer is the plain global 1x1 product.
        instance_overlap (float, optional): Not in the paper (choice,
            default None: the plain argmax). At inference, before the
            argmax, the instances are visited by descending score; the
            standalone mask of an instance (the pixels where its logit
            beats every stuff logit, after ``restrict_to_boxes``) is
            rejected when it is empty or when more than this fraction of
            it is already in the standalone masks of the accepted,
            higher-scoring instances. Rejected instances lose their
            channel, so a duplicate detection cannot split an object with
            the detection it duplicates (the overlap test of mmdet's
            ``HeuristicFusionHead`` / BlendMask's fusion, applied to the
            unified layer's own masks). E.g. 0.5.
        thing_void_thr (float, optional): Not in the paper (choice,
            default None: off). With per-pixel thing probabilities given
            to :meth:`predict` (``DR1MaskPanoptic`` takes them from the
            auxiliary thing-semantic head of the basis), pixels whose
            argmax is a stuff class but whose thing probability exceeds
            this value become void: the layer has no "things" channel, so
            thing pixels that no instance row claims (missed or rejected
            detections) would otherwise be labelled as some stuff class.
            Applied before ``stuff_area_limit``. E.g. 0.5.
        init_cfg (dict, optional): Initialization config. The default
            (None) keeps this layer's own init. Choice (the paper is
            silent): ``conv_stuff`` weight N(0, 0.01), bias 0, as mmdet's
            and BlendMask's prediction layers.
    """

    UPSAMPLE_MODES = ('aligned', 'bilinear')
    ROW_MODES = ('mean', 'own')

    def __init__(self,
                 in_channels: int = 64,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 upsample: str = 'aligned',
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 stuff_area_limit: int = 4096,
                 restrict_to_boxes: bool = False,
                 instance_overlap: Optional[float] = None,
                 thing_void_thr: Optional[float] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if upsample not in self.UPSAMPLE_MODES:
            raise ValueError('UnifiedPanopticHead: upsample must be one of '
                             f'{self.UPSAMPLE_MODES}, got {upsample!r}')
        if num_stuff_classes < 0 or num_things_classes < 0:
            raise ValueError('UnifiedPanopticHead: class counts must be >= 0')
        self.in_channels = in_channels
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.upsample = upsample
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self.stuff_area_limit = stuff_area_limit
        self.restrict_to_boxes = restrict_to_boxes
        for name, value in (('instance_overlap', instance_overlap),
                            ('thing_void_thr', thing_void_thr)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f'UnifiedPanopticHead: {name} must be None '
                                 f'or in [0, 1], got {value!r}')
        self.instance_overlap = instance_overlap
        self.thing_void_thr = thing_void_thr
        self.conv_stuff = nn.Conv2d(in_channels, num_stuff_classes, 1)
        normal_init(self.conv_stuff, mean=0, std=0.01, bias=0)
        self.upsampler = AlignedUpsample(4)

    def forward(self, basis: Tensor, inst_rows: List[Tensor]) -> List[Tensor]:
        """Panoptic logits ``[W_stuff; W_inst] . basis`` per image (Eq. 9).

        Args:
            basis (Tensor): DR1Basis output (N, C, h, w), stride 4.
            inst_rows (list[Tensor]): N dynamic weights, image ``i`` of
                shape (n_i, C), one row per instance.

        Returns:
            list[Tensor]: N logits (S + n_i, h, w): stuff channels first,
            then one channel per instance, in ``inst_rows`` order.
        """
        if basis.dim() != 4 or basis.shape[1] != self.in_channels:
            raise ValueError(
                'UnifiedPanopticHead: basis must be (N, '
                f'{self.in_channels}, h, w), got {tuple(basis.shape)}')
        if len(inst_rows) != basis.shape[0]:
            raise ValueError(
                f'UnifiedPanopticHead: {len(inst_rows)} inst_rows for '
                f'{basis.shape[0]} images')
        stuff = self.conv_stuff(basis)
        logits = []
        for i, rows in enumerate(inst_rows):
            if rows.dim() != 2 or rows.shape[1] != self.in_channels:
                raise ValueError(
                    'UnifiedPanopticHead: inst_rows must be (n_i, '
                    f'{self.in_channels}), got {tuple(rows.shape)}')
            inst = torch.einsum('kc,chw->khw', rows.to(basis.dtype), basis[i])
            logits.append(torch.cat([stuff[i], inst], dim=0))
        return logits

    @staticmethod
    def instance_rows(embeds: Tensor, inst_inds: Tensor,
                      num_instances: int) -> Tuple[Tensor, Tensor]:
        """Mean embedding per instance: the dynamic rows of training.

        Paper section 3.3: "we map them into a single embedding by
        computing their mean" (spec section 5).

        Args:
            embeds (Tensor): (P, C) embeddings of the positive locations.
            inst_inds (Tensor): (P,) long, the instance (in ``[0, n)``)
                each location is assigned to.
            num_instances (int): Number of instances ``n``.

        Returns:
            tuple[Tensor, Tensor]: ``rows`` (n, C), row ``i`` the mean of
            the embeddings with ``inst_inds == i`` (zero when there are
            none), and ``valid`` (n,) bool, True where instance ``i`` has
            at least one embedding.
        """
        if embeds.dim() != 2 or inst_inds.shape != embeds.shape[:1]:
            raise ValueError(
                'instance_rows: embeds must be (P, C) and inst_inds (P,), '
                f'got {tuple(embeds.shape)} and {tuple(inst_inds.shape)}')
        inst_inds = inst_inds.long()
        num_c = embeds.shape[1]
        ones = embeds.new_ones(inst_inds.shape)
        sums = embeds.new_zeros((num_instances, num_c))
        sums = sums.index_add(0, inst_inds, embeds)
        counts = embeds.new_zeros((num_instances, ))
        counts = counts.index_add(0, inst_inds, ones)
        valid = counts > 0
        rows = sums / counts.clamp(min=1)[:, None]
        return rows, valid

    @classmethod
    def merge_nms_rows(cls,
                       boxes: Tensor,
                       scores: Tensor,
                       labels: Tensor,
                       embeds: Tensor,
                       keep: Tensor,
                       iou_thr: float,
                       mode: str = 'mean') -> Tensor:
        """Dynamic rows of the detections kept by NMS (inference).

        Spec section 5: the row of a kept detection is the mean of the
        embeddings of the detections it absorbed in NMS (``mode='mean'``,
        default) or its own embedding (``mode='own'``, the configurable
        alternative). A candidate ``j`` that was not kept is assigned to
        the highest-scoring kept detection of the same label with IoU
        ``> iou_thr`` and score ``>= scores[j]``: the box that suppressed it
        in greedy (batched) NMS. Candidates matching no kept detection
        (e.g. suppressed by a box later dropped by ``max_per_img``) are
        ignored.

        Args:
            boxes (Tensor): (M, 4) pre-NMS candidate boxes (x1, y1, x2, y2).
            scores (Tensor): (M,) candidate scores.
            labels (Tensor): (M,) candidate labels.
            embeds (Tensor): (M, C) candidate embeddings.
            keep (Tensor): (K,) long indices into the candidates of the
                kept detections, in output order (mmcv's ``batched_nms``
                returns them by descending score).
            iou_thr (float): The NMS IoU threshold.
            mode (str): ``'mean'`` or ``'own'``. Defaults to ``'mean'``.

        Returns:
            Tensor: (K, C) rows, row ``k`` for detection ``keep[k]``.
        """
        if mode not in cls.ROW_MODES:
            raise ValueError(f'merge_nms_rows: mode must be one of '
                             f'{cls.ROW_MODES}, got {mode!r}')
        keep = keep.long()
        if mode == 'own' or keep.numel() == 0:
            return embeds[keep]
        num_keep = keep.numel()
        kept_scores = scores[keep]
        ious = bbox_overlaps(boxes[keep], boxes)  # (K, M)
        match = ((ious > iou_thr) & (labels[keep][:, None] == labels[None])
                 & (kept_scores[:, None] >= scores[None]))
        # highest-scoring matching kept detection: first match in score order
        order = torch.argsort(kept_scores, descending=True, stable=True)
        first = match[order].int().argmax(dim=0)
        assigned = order[first]
        has_match = match.any(dim=0)
        # a kept detection always belongs to itself
        assigned[keep] = torch.arange(num_keep, device=keep.device)
        has_match[keep] = True
        rows, _ = cls.instance_rows(embeds[has_match], assigned[has_match],
                                    num_keep)
        return rows

    def get_targets(self, batch_data_samples: SampleList,
                    valid_list: Optional[Sequence[Optional[Tensor]]],
                    pad_shape: Sequence[int]) -> Tensor:
        """Per-pixel panoptic targets at the padded input resolution.

        Spec section 5: stuff pixels (``gt_sem_seg`` label in
        ``[T, T + S)``) get ``label - T``; pixels of ground-truth instance
        ``i`` (``gt_instances.masks[i]``, in ``gt_instances`` order) get
        ``S + i`` when ``valid[i]`` (the instance has a row) else
        ``ignore_index``; thing pixels of ``gt_sem_seg`` covered by no
        instance mask (crowd regions), void (255) and padding get
        ``ignore_index``. Instance masks take precedence over
        ``gt_sem_seg``; where masks overlap, the later instance wins.

        Args:
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_sem_seg`` (1, H, W) and ``gt_instances`` (``masks`` as
                :obj:`BitmapMasks`, non-crowd things), as
                ``LoadPanopticAnnotations`` gives them; maps smaller than
                ``pad_shape`` are placed at the top left.
            valid_list (list[Tensor | None], optional): Per image (n_i,)
                bool, the ``valid`` of :meth:`instance_rows`; None (or a
                None entry) means every instance is valid.
            pad_shape (Sequence[int]): Padded input size ``(H, W)``.

        Returns:
            Tensor: (N, H, W) long targets.
        """
        pad_h, pad_w = int(pad_shape[0]), int(pad_shape[1])
        num_t, num_s = self.num_things_classes, self.num_stuff_classes
        targets = []
        for i, sample in enumerate(batch_data_samples):
            sem = sample.gt_sem_seg.sem_seg
            sem = sem.reshape(sem.shape[-2:]).long()
            device = sem.device
            target = sem.new_full((pad_h, pad_w), self.ignore_index)
            h, w = min(sem.shape[0], pad_h), min(sem.shape[1], pad_w)
            sem = sem[:h, :w]
            stuff = (sem >= num_t) & (sem < num_t + num_s)
            target[:h, :w] = torch.where(stuff, sem - num_t, target[:h, :w])
            masks = sample.gt_instances.masks if 'masks' in \
                sample.gt_instances else None
            num_inst = 0 if masks is None else len(masks)
            if num_inst > 0:
                if isinstance(masks, Tensor):
                    mask_t = masks.to(device=device, dtype=torch.bool)
                else:
                    mask_t = masks.to_tensor(dtype=torch.bool, device=device)
                mh = min(mask_t.shape[1], pad_h)
                mw = min(mask_t.shape[2], pad_w)
                mask_t = mask_t[:, :mh, :mw]
                valid = None if valid_list is None else valid_list[i]
                if valid is None:
                    valid = torch.ones(
                        num_inst, dtype=torch.bool, device=device)
                valid = valid.to(device=device, dtype=torch.bool)
                if valid.shape != (num_inst, ):
                    raise ValueError(
                        f'get_targets: image {i} has {num_inst} instance '
                        f'masks but valid has shape {tuple(valid.shape)}')
                # index of the last instance covering each pixel
                last = num_inst - 1 - mask_t.flip(0).int().argmax(dim=0)
                covered = mask_t.any(dim=0)
                values = torch.where(valid[last], last + num_s,
                                     torch.full_like(last, self.ignore_index))
                target[:mh, :mw] = torch.where(covered, values,
                                               target[:mh, :mw])
            targets.append(target)
        if not targets:
            return torch.zeros((0, pad_h, pad_w), dtype=torch.long)
        return torch.stack(targets)

    @staticmethod
    def box_restrict(logits: Tensor, boxes: Tensor, num_stuff: int) -> Tensor:
        """Push instance logits outside their boxes to ``-1e4``.

        Args:
            logits (Tensor): (1, S + n, H, W) logits in the boxes' frame.
            boxes (Tensor): (n, 4) boxes ``x1, y1, x2, y2`` in pixels.
            num_stuff (int): ``S``.

        Returns:
            Tensor: The restricted logits (same shape).
        """
        if boxes.numel() == 0:
            return logits
        h, w = logits.shape[-2:]
        ys = torch.arange(h, device=logits.device, dtype=boxes.dtype) + 0.5
        xs = torch.arange(w, device=logits.device, dtype=boxes.dtype) + 0.5
        inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])
        inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])
        inside = inside_y[:, :, None] & inside_x[:, None, :]
        inst = logits[0, num_stuff:]
        inst = torch.where(inside, inst, inst.new_full((), -1e4))
        return torch.cat([logits[:, :num_stuff], inst[None]], dim=1)

    @staticmethod
    def overlap_filter(logits: Tensor, scores: Tensor, num_stuff: int,
                       overlap: float) -> Tensor:
        """Instances kept by the score-ordered overlap test.

        See ``instance_overlap``: the standalone mask of instance ``k`` is
        ``logits[S + k] > max_j logits[j]`` over the stuff channels ``j``
        (every pixel when there are no stuff channels); visiting the
        instances by descending score (ties: lower index first), an
        instance is kept when its standalone mask is not empty and at most
        ``overlap`` of it lies in the union of the kept ones' masks.

        Args:
            logits (Tensor): (S + n, H, W) logits at the output resolution.
            scores (Tensor): (n,) detection scores.
            num_stuff (int): ``S``.
            overlap (float): The largest overlap fraction accepted.

        Returns:
            Tensor: (n,) bool, True for the kept instances.
        """
        inst = logits[num_stuff:]
        if num_stuff > 0:
            alone = inst > logits[:num_stuff].max(dim=0).values[None]
        else:
            alone = torch.ones_like(inst, dtype=torch.bool)
        keep = torch.zeros(inst.shape[0], dtype=torch.bool, device=inst.device)
        used = torch.zeros(
            inst.shape[1:], dtype=torch.bool, device=inst.device)
        order = torch.argsort(scores, descending=True, stable=True)
        for k in order.tolist():
            area = alone[k].sum()
            if area == 0 or (alone[k] & used).sum() > overlap * area:
                continue
            keep[k] = True
            used |= alone[k]
        return keep

    def _upsample(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Upsample (1, K, h, w) logits x4 to ``size`` (``upsample``)."""
        size = (int(size[0]), int(size[1]))
        if self.upsample == 'aligned':
            return self.upsampler(logits, size=size)
        return F.interpolate(
            logits, size=size, mode='bilinear', align_corners=False)

    def loss(self,
             basis: Tensor,
             inst_rows: List[Tensor],
             targets: Tensor,
             inst_boxes: Optional[List[Tensor]] = None) -> Dict[str, Tensor]:
        """Softmax cross entropy over the ``S + n_i`` channels.

        The logits of each image are upsampled x4 to the target size
        (``upsample``); the cross entropy is summed over the non-ignored
        pixels of every image and divided by their total count in the
        batch (0, still connected to the graph, when nothing is labelled),
        then multiplied by ``loss_weight`` (spec section 5).

        Args:
            basis (Tensor): (N, C, h, w) basis features.
            inst_rows (list[Tensor]): N rows (n_i, C).
            targets (Tensor): (N, H, W) long, from :meth:`get_targets`,
                ``H <= 4h`` and ``W <= 4w``.
            inst_boxes (list[Tensor], optional): N (n_i, 4) GT boxes in the
                input frame, used with ``restrict_to_boxes``.

        Returns:
            dict[str, Tensor]: ``loss_panoptic``.
        """
        logits = self(basis, inst_rows)
        if targets.shape[0] != len(logits):
            raise ValueError(
                f'UnifiedPanopticHead.loss: {targets.shape[0]} targets for '
                f'{len(logits)} images')
        size = targets.shape[-2:]
        total = basis.new_zeros(())
        count = targets.new_zeros(())
        for i, (logit, target) in enumerate(zip(logits, targets)):
            target = target.long()
            labelled = target != self.ignore_index
            bad = labelled & ((target < 0) | (target >= logit.shape[0]))
            if bool(bad.any()):
                raise ValueError(
                    'UnifiedPanopticHead.loss: targets outside the '
                    f'{logit.shape[0]} channels (S + n_i); check that the '
                    'rows and the instance masks match')
            up = self._upsample(logit[None], size)
            if self.restrict_to_boxes and inst_boxes is not None:
                up = self.box_restrict(up, inst_boxes[i].to(up.dtype),
                                       self.num_stuff_classes)
            total = total + F.cross_entropy(
                up,
                target[None],
                ignore_index=self.ignore_index,
                reduction='sum')
            count = count + labelled.sum()
        loss = total / count.clamp(min=1).to(total.dtype)
        return dict(loss_panoptic=loss * self.loss_weight)

    def predict(self,
                basis: Tensor,
                inst_rows: List[Tensor],
                det_results: List[InstanceData],
                batch_img_metas: List[dict],
                rescale: bool = True,
                thing_probs: Optional[List[Tensor]] = None) -> List[PixelData]:
        """Panoptic maps by per-pixel argmax over stuff and instances.

        Per image, as mmdet's :meth:`BaseSemanticHead.predict`: the logits
        are upsampled to ``batch_input_shape`` (``upsample``), cropped to
        ``img_shape`` and, when ``rescale``, resized bilinearly to
        ``ori_shape``; then the argmax over channels. Channel ``j < S``
        gives stuff id ``T + j``; channel ``S + k`` gives
        ``labels[k] + id_k * INSTANCE_OFFSET`` where ``id_k`` counts from
        1 over the instances (in ``det_results`` order) that own at least
        one pixel; stuff segments below ``stuff_area_limit`` pixels become
        void ``T + S`` (spec section 5, paper section 3.3 Eq. 9). The
        choices ``restrict_to_boxes``, ``instance_overlap`` (before the
        argmax) and ``thing_void_thr`` (after it) apply when set.

        Args:
            basis (Tensor): (N, C, h, w) basis features.
            inst_rows (list[Tensor]): N rows (n_i, C), e.g. from
                :meth:`merge_nms_rows`.
            det_results (list[:obj:`InstanceData`]): N detections, n_i each
                in ``inst_rows`` order, with ``labels`` (``scores``, used
                with ``instance_overlap``; ``bboxes`` in the output frame,
                used with ``restrict_to_boxes``; ``masks`` unused).
            batch_img_metas (list[dict]): Metas with ``batch_input_shape``,
                ``img_shape`` and ``ori_shape``.
            rescale (bool): Resize to ``ori_shape``. Defaults to True.
            thing_probs (list[Tensor], optional): N (h, w) maps at the
                basis resolution, the probability that a pixel belongs to
                a thing; resized like the logits and used with
                ``thing_void_thr`` (required then).

        Returns:
            list[:obj:`PixelData`]: ``sem_seg`` (1, H, W) int32 panoptic
            ids; metainfo ``instance_areas`` (list[int], n_i) is the
            number of pixels each detection owns (0: no segment).
        """
        if self.thing_void_thr is not None and thing_probs is None:
            raise ValueError(
                'UnifiedPanopticHead.predict: thing_void_thr is set, so '
                'thing_probs (one (h, w) map per image) must be given')
        logits = self(basis, inst_rows)
        num_t, num_s = self.num_things_classes, self.num_stuff_classes
        results = []
        for i, (logit, dets,
                meta) in enumerate(zip(logits, det_results, batch_img_metas)):
            labels = dets.labels.long()
            num_inst = logit.shape[0] - num_s
            if labels.numel() != num_inst:
                raise ValueError(
                    f'UnifiedPanopticHead.predict: {labels.numel()} '
                    f'detections for {num_inst} instance rows')
            use_probs = self.thing_void_thr is not None
            if use_probs:
                probs = thing_probs[i]
                if tuple(probs.shape) != tuple(logit.shape[-2:]):
                    raise ValueError(
                        'UnifiedPanopticHead.predict: thing_probs of image '
                        f'{i} must be {tuple(logit.shape[-2:])} (the basis '
                        f'size), got {tuple(probs.shape)}')
                logit = torch.cat([logit, probs[None].to(logit.dtype)])
            seg = self._to_output(logit[None], meta, rescale)
            if use_probs:
                seg, probs = seg[:, :-1], seg[0, -1]
            if self.restrict_to_boxes and 'bboxes' in dets:
                seg = self.box_restrict(seg, dets.bboxes.to(seg.dtype), num_s)
            if self.instance_overlap is not None and num_inst > 0:
                keep = self.overlap_filter(seg[0], dets.scores, num_s,
                                           self.instance_overlap)
                drop = torch.cat([keep.new_zeros(num_s), ~keep])
                seg = seg.masked_fill(drop[None, :, None, None], -1e4)
            seg = seg[0].argmax(dim=0)
            if use_probs:
                void_stuff = (seg < num_s) & (probs > self.thing_void_thr)
                seg = torch.where(void_stuff, seg.new_full(
                    (), num_s + num_inst), seg)
            counts = torch.bincount(
                seg.flatten(), minlength=num_s + num_inst + 1)
            stuff_ids = torch.arange(num_t, num_t + num_s, device=seg.device)
            stuff_ids[counts[:num_s] < self.stuff_area_limit] = (
                self.num_classes)
            inst_areas = counts[num_s:num_s + num_inst]
            inst_ids = torch.cumsum((inst_areas > 0).long(), dim=0)
            lut = torch.cat([
                stuff_ids,
                labels.to(seg.device) + inst_ids * INSTANCE_OFFSET,
                stuff_ids.new_full((1, ), self.num_classes)
            ])
            pan = lut[seg]
            results.append(
                PixelData(
                    sem_seg=pan[None].int(),
                    metainfo=dict(instance_areas=inst_areas.tolist())))
        return results

    def _to_output(self, logits: Tensor, meta: dict, rescale: bool) -> Tensor:
        """(1, K, h, w) maps to the output frame (see :meth:`predict`)."""
        pad = meta.get('batch_input_shape',
                       (4 * logits.shape[-2], 4 * logits.shape[-1]))
        seg = self._upsample(logits, pad)
        if rescale:
            h, w = meta['img_shape'][:2]
            seg = seg[:, :, :h, :w]
            seg = F.interpolate(
                seg,
                size=tuple(meta['ori_shape'][:2]),
                mode='bilinear',
                align_corners=False)
        return seg
