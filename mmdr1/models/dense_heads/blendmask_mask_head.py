# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask mask head: basis module + blender, training loss and inference.

Composes :class:`~mmdr1.models.seg_heads.ProtoNetBasis` (bottom module) and
:class:`~mmdr1.models.layers.Blender` with the positives / detections of
:class:`~mmdr1.models.dense_heads.BlendMaskFCOSHead`. See
``shared/spec/blendmask.md`` sections 3, 8, 9 and 14 items 5-7.
"""
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.models.dense_heads.base_mask_head import BaseMaskHead
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import (ConfigType, InstanceList, OptConfigType,
                         OptInstanceList, OptMultiConfig, reduce_mean)
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class BlendMaskHead(BaseMaskHead):
    """BlendMask mask head (blendmask spec sections 8 and 9).

    ``forward(x)`` runs the basis module on the FPN features and returns
    ``(bases, sem_logits)``; ``bases`` are at stride 4 (the blender's
    ``spatial_scale``), ``sem_logits`` are the auxiliary thing-semantic
    logits (None at inference or when the basis has no seg head).

    Training (spec section 8, section 14 items 6 and 7): every FCOS positive
    of :meth:`BlendMaskFCOSHead.get_positive_infos` is a proposal whose RoI
    is its **assigned GT box**; its attention is its ``top_feats``. With
    ``m_p`` the blended ``R x R`` logits and ``t_p`` the GT mask cropped and
    resized to ``R x R`` in the GT box (``crop_and_resize``, binarised)::

        bce_p     = mean_{R*R} BCEWithLogits(m_p, t_p)
        loss_mask = loss_weight * sum_p(bce_p * ctr_p)
                    / max(reduce_mean(sum_p ctr_p), 1e-6)

    where ``ctr_p`` is the FCOS centerness target of the location. With no
    positive in the batch ``loss_mask`` is a zero connected to ``bases``
    and ``top_feats``.

    The auxiliary ``loss_basis_sem`` (spec section 6.3) is added when the
    basis returns semantic logits. Its target is a thing-semantic map per
    image at the padded batch input shape (0 = background, ``label + 1``
    = thing, padding 0): the data sample's ``thing_sem_field`` (a
    ``PixelData`` with ``sem_seg``) when it has one (it must then follow
    that convention; a label beyond the thing classes raises), otherwise
    painted here from
    ``gt_instances.masks`` / ``labels`` in instance order, later instances
    overwriting earlier ones (as the reference's
    ``prepare_thing_sem_from_instance.py``; ignored/crowd instances are
    not painted since they are not in ``gt_instances``).

    Inference (spec section 9, section 14 item 5): RoIs are the detections'
    **unclipped** boxes in the network input frame (the bbox head must
    predict with ``rescale=False``, as :class:`SingleStageInstanceSegmentor`
    does); the sigmoid of the blended logits is pasted
    (``_do_paste_mask``, detectron2's ``paste_masks_in_image`` equivalent)
    into the boxes **clipped** to the output image, then thresholded at
    ``mask_thr``. With ``rescale=True`` boxes are divided by
    ``scale_factor`` and the output image is ``ori_shape``; otherwise it is
    ``img_shape``. Detections whose clipped box is empty are dropped (as
    detectron2's ``detector_postprocess``). The returned ``bboxes`` are the
    scaled, clipped boxes.

    Args:
        basis (dict): Config of the basis module. Defaults to
            ``dict(type='ProtoNetBasis')``.
        blender (dict): Config of the blender. Defaults to
            ``dict(type='Blender')``.
        loss_weight (float): ``INSTANCE_LOSS_WEIGHT``. Defaults to 1.0.
        mask_thr (float): Binarisation threshold of pasted masks.
            Defaults to 0.5.
        thing_sem_field (str): Data-sample field holding the thing-semantic
            target map. ``'gt_sem_seg'`` (default) suits instance data with
            :class:`GenerateThingSemanticSeg` ``(seg_key='gt_seg_map')``;
            panoptic data keeps its panoptic labels in ``gt_sem_seg``, so
            panoptic configs use ``'gt_thing_sem_seg'`` (packed by
            :class:`PackDetInputsWithThingSem`).
        train_cfg (dict, optional): Unused; accepted from the detector.
        test_cfg (dict, optional): Unused; accepted from the detector.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    #: Detection fields copied to the predicted instances besides
    #: ``bboxes``, ``scores``, ``labels`` and ``masks``.
    extra_result_fields: Tuple[str, ...] = ('merged_top_feats', )

    def __init__(self,
                 basis: ConfigType = dict(type='ProtoNetBasis'),
                 blender: ConfigType = dict(type='Blender'),
                 loss_weight: float = 1.0,
                 mask_thr: float = 0.5,
                 thing_sem_field: str = 'gt_sem_seg',
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.basis = MODELS.build(basis)
        self.blender = MODELS.build(blender)
        self.loss_weight = loss_weight
        self.mask_thr = mask_thr
        self.thing_sem_field = thing_sem_field
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def forward(
        self,
        x: Union[List[Tensor], Tuple[Tensor, ...]],
        positive_infos: OptInstanceList = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Run the basis module.

        Args:
            x (tuple[Tensor]): FPN features (p3, p4, p5, ...), each
                (B, C, H_l, W_l).
            positive_infos (list[:obj:`InstanceData`], optional): Ignored;
                accepted because :class:`BaseMaskHead` and
                :class:`SingleStageInstanceSegmentor` pass it.

        Returns:
            tuple[Tensor, Tensor | None]: ``bases`` (B, K, H/4, W/4) and
            ``sem_logits`` (B, C + 1, H/8, W/8) or None.
        """
        return self.basis(x)

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def loss(self,
             x: Union[List[Tensor], Tuple[Tensor, ...]],
             batch_data_samples: SampleList,
             positive_infos: OptInstanceList = None,
             **kwargs) -> Dict[str, Tensor]:
        """Compute ``loss_mask`` (and ``loss_basis_sem``).

        Args:
            x (tuple[Tensor]): FPN features.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_instances`` (``bboxes``, ``labels``, ``masks``) and
                optionally ``gt_sem_seg``.
            positive_infos (list[:obj:`InstanceData`]): Per-image positives
                of the bbox head (``pos_assigned_gt_inds``, ``top_feats``,
                ``centerness_targets``).

        Returns:
            dict[str, Tensor]: ``loss_mask`` and, when the basis gives
            semantic logits, ``loss_basis_sem``.
        """
        assert positive_infos is not None, \
            'BlendMaskHead needs the positives of the bbox head'
        bases, sem_logits = self(x, **kwargs)
        return self.loss_from_outputs(bases, sem_logits, batch_data_samples,
                                      positive_infos)

    def loss_from_outputs(self, bases: Tensor, sem_logits: Optional[Tensor],
                          batch_data_samples: SampleList,
                          positive_infos: InstanceList) -> Dict[str, Tensor]:
        """Losses from the outputs of :meth:`forward` (see :meth:`loss`).

        Args:
            bases (Tensor): (B, K, H/4, W/4) bases.
            sem_logits (Tensor | None): Auxiliary semantic logits.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples.
            positive_infos (list[:obj:`InstanceData`]): Positives.

        Returns:
            dict[str, Tensor]: ``loss_mask`` (and ``loss_basis_sem``).
        """
        batch_gt_instances, _, batch_img_metas = unpack_gt_instances(
            batch_data_samples)
        losses = self.loss_by_feat(
            bases,
            batch_gt_instances=batch_gt_instances,
            batch_img_metas=batch_img_metas,
            positive_infos=positive_infos)
        if sem_logits is not None:
            sem_targets = self.get_sem_targets(
                batch_data_samples,
                batch_gt_instances,
                batch_img_metas,
                bases.device,
                field=self.thing_sem_field)
            num_sem = sem_logits.shape[1]
            if sem_targets.numel() and int(sem_targets.max()) >= num_sem:
                raise ValueError(
                    f'BlendMaskHead: the thing-semantic target (data-sample '
                    f'field {self.thing_sem_field!r}) holds label '
                    f'{int(sem_targets.max())}, but the basis predicts '
                    f'{num_sem} classes (background + things). Panoptic data '
                    "keep panoptic labels in 'gt_sem_seg': set "
                    "mask_head.thing_sem_field='gt_thing_sem_seg' and pack "
                    'it with PackDetInputsWithThingSem.')
            losses.update(self.sem_loss(sem_logits, sem_targets))
        return losses

    def sem_loss(self, sem_logits: Tensor,
                 sem_targets: Tensor) -> Dict[str, Tensor]:
        """Auxiliary thing-semantic loss of the basis (spec section 6.3).

        Args:
            sem_logits (Tensor): (B, num_things + 1, h, w) logits.
            sem_targets (Tensor): (B, H, W) maps at the batch input shape.

        Returns:
            dict[str, Tensor]: ``{'loss_basis_sem': loss}``.
        """
        return self.basis.loss(sem_logits, sem_targets)

    @staticmethod
    def get_sem_targets(batch_data_samples: SampleList,
                        batch_gt_instances: InstanceList,
                        batch_img_metas: List[dict],
                        device: torch.device,
                        field: str = 'gt_sem_seg') -> Tensor:
        """Thing-semantic maps at the batch input shape (see class doc).

        Args:
            batch_data_samples (list[:obj:`DetDataSample`]): Samples.
            batch_gt_instances (list[:obj:`InstanceData`]): GTs per image.
            batch_img_metas (list[dict]): Metas with ``batch_input_shape``.
            device (torch.device): Output device.
            field (str): Data-sample field of a given map. Defaults to
                ``'gt_sem_seg'``.

        Returns:
            Tensor: (B, H, W) long maps, 0 = background, ``label + 1`` =
            thing, 0 in the padding.
        """
        pad_h, pad_w = batch_img_metas[0]['batch_input_shape']
        targets = torch.zeros((len(batch_img_metas), pad_h, pad_w),
                              dtype=torch.long,
                              device=device)
        for i, (sample,
                gt) in enumerate(zip(batch_data_samples, batch_gt_instances)):
            if field in sample:
                sem = sample.get(field).sem_seg.to(device)
                sem = sem.reshape(sem.shape[-2:])[:pad_h, :pad_w]
                targets[i, :sem.shape[0], :sem.shape[1]] = sem.long()
                continue
            if len(gt) == 0:
                continue
            masks = gt.masks.to_tensor(dtype=torch.bool, device=device)
            masks = masks[:, :pad_h, :pad_w]
            h, w = masks.shape[-2:]
            for mask, label in zip(masks, gt.labels):
                targets[i, :h, :w][mask] = int(label) + 1
        return targets

    def get_mask_targets(self, batch_gt_instances: InstanceList,
                         positive_infos: InstanceList,
                         device: torch.device) -> Tuple[Tensor, Tensor]:
        """RoIs (assigned GT boxes) and ``R x R`` mask targets of positives.

        Args:
            batch_gt_instances (list[:obj:`InstanceData`]): GTs per image
                with ``bboxes`` and ``masks`` (instance masks in the input
                frame).
            positive_infos (list[:obj:`InstanceData`]): Positives per image
                with ``pos_assigned_gt_inds``.
            device (torch.device): Output device.

        Returns:
            tuple[Tensor, Tensor]: ``rois`` (P, 5) as ``[batch_index, x1,
            y1, x2, y2]`` and binary float ``targets`` (P, R, R).
        """
        res = self.blender.bottom_resolution
        rois, targets = [], []
        for img_id, (gt, pos) in enumerate(
                zip(batch_gt_instances, positive_infos)):
            gt_inds = pos.pos_assigned_gt_inds.long().to(device)
            if gt_inds.numel() == 0:
                continue
            boxes = get_box_tensor(gt.bboxes).to(device=device).float()
            # Crop every GT once, then gather per positive (same values as
            # cropping per positive, without P copies of the full masks).
            crops = gt.masks.crop_and_resize(
                boxes.detach().cpu().numpy(), (res, res),
                np.arange(len(gt)),
                device=device).to_tensor(
                    dtype=torch.float32, device=device)
            targets.append(crops[gt_inds])
            pos_boxes = boxes[gt_inds]
            rois.append(
                torch.cat(
                    [pos_boxes.new_full((len(gt_inds), 1), img_id), pos_boxes],
                    dim=1))
        if not rois:
            return (torch.zeros((0, 5), device=device),
                    torch.zeros((0, res, res), device=device))
        return torch.cat(rois), torch.cat(targets)

    def loss_by_feat(self, bases: Tensor, batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict], positive_infos: InstanceList,
                     **kwargs) -> Dict[str, Tensor]:
        """Centerness-weighted blended-mask BCE (spec section 8).

        Args:
            bases (Tensor): (B, K, H/4, W/4).
            batch_gt_instances (list[:obj:`InstanceData`]): GTs per image.
            batch_img_metas (list[dict]): Image metas (unused).
            positive_infos (list[:obj:`InstanceData`]): Positives per image
                with ``pos_assigned_gt_inds``, ``top_feats`` (with grad) and
                ``centerness_targets``.

        Returns:
            dict[str, Tensor]: ``{'loss_mask': loss}``.
        """
        top_feats = torch.cat([p.top_feats for p in positive_infos])
        ctr = torch.cat([p.centerness_targets for p in positive_infos])
        ctr = ctr.detach().to(bases.dtype)
        # All-reduced on every rank (with or without positives) so that
        # distributed ranks stay in step.
        loss_denorm = max(reduce_mean(ctr.sum()), 1e-6)
        if top_feats.size(0) == 0:
            # Keep the graph: zero gradients for bases and attentions.
            return dict(loss_mask=bases.sum() * 0 + top_feats.sum() * 0)
        rois, targets = self.get_mask_targets(batch_gt_instances,
                                              positive_infos, bases.device)
        logits = self.blender(bases, rois.to(bases.dtype),
                              top_feats.to(bases.dtype))
        bce = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction='none')
        bce = bce.flatten(1).mean(dim=1)
        loss = (bce * ctr).sum() / loss_denorm * self.loss_weight
        return dict(loss_mask=loss)

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def predict_by_feat(self,
                        bases: Tensor,
                        sem_logits: Optional[Tensor],
                        batch_img_metas: List[dict],
                        results_list: InstanceList,
                        rescale: bool = False,
                        **kwargs) -> InstanceList:
        """Blend and paste the masks of the detections (spec section 9).

        Args:
            bases (Tensor): (B, K, H/4, W/4).
            sem_logits (Tensor | None): Unused.
            batch_img_metas (list[dict]): Metas with ``img_shape``,
                ``ori_shape`` and ``scale_factor``.
            results_list (list[:obj:`InstanceData`]): Detections per image,
                ``bboxes`` unclipped in the input frame, ``scores``,
                ``labels`` and ``top_feats``.
            rescale (bool): Paste at ``ori_shape`` (boxes divided by
                ``scale_factor``) instead of ``img_shape``.

        Returns:
            list[:obj:`InstanceData`]: Per image ``bboxes`` (clipped, in the
            output frame), ``scores``, ``labels`` and bool ``masks``
            (n, H_out, W_out).
        """
        assert results_list is not None, \
            'BlendMaskHead needs the detections of the bbox head'
        outputs = []
        for img_id, (results,
                     meta) in enumerate(zip(results_list, batch_img_metas)):
            outputs.append(
                self._predict_by_feat_single(bases[img_id:img_id + 1], results,
                                             meta, rescale))
        return outputs

    def _predict_by_feat_single(self, bases: Tensor, results: InstanceData,
                                img_meta: dict, rescale: bool) -> InstanceData:
        """Masks for one image; ``bases`` is (1, K, h, w)."""
        out_h, out_w = img_meta['ori_shape'] if rescale \
            else img_meta['img_shape']
        out_h, out_w = int(out_h), int(out_w)
        boxes = get_box_tensor(results.bboxes).to(bases.dtype)
        attns = results.top_feats.to(bases.dtype)
        res = self.blender.bottom_resolution

        if len(results) > 0:
            rois = torch.cat([boxes.new_zeros((len(boxes), 1)), boxes], 1)
            mask_probs = self.blender(bases, rois, attns).sigmoid()
        else:
            mask_probs = bases.new_zeros((0, res, res))

        out_boxes = boxes.clone()
        if rescale and len(results) > 0:
            scale_factor = out_boxes.new_tensor(
                img_meta['scale_factor']).repeat(2)
            out_boxes = out_boxes / scale_factor
        out_boxes[:, 0::2] = out_boxes[:, 0::2].clamp(min=0, max=out_w)
        out_boxes[:, 1::2] = out_boxes[:, 1::2].clamp(min=0, max=out_h)
        keep = (out_boxes[:, 2] > out_boxes[:, 0]) & (
            out_boxes[:, 3] > out_boxes[:, 1])

        results = results[keep]
        out_boxes = out_boxes[keep]
        mask_probs = mask_probs[keep]
        if len(results) > 0:
            pasted, _ = _do_paste_mask(
                mask_probs[:, None], out_boxes, out_h, out_w, skip_empty=False)
            masks = pasted >= self.mask_thr
        else:
            masks = torch.zeros((0, out_h, out_w),
                                dtype=torch.bool,
                                device=bases.device)
        output = InstanceData(metainfo=results.metainfo)
        output.bboxes = out_boxes
        output.scores = results.scores
        output.labels = results.labels
        output.masks = masks
        for key in self.extra_result_fields:
            if key in results:
                output[key] = results[key]
        return output
