# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow's thing (instance mask) head on RetinaNet detections.

See ``shared/spec/spatialflow.md`` sections 3.1 (RoI extractor and mask
head), 3.2 (training RoIs), 5.1 step 2 (test) and 9.2 item 4; paper
section III-A ("for the thing head, we apply it to each predicted box and
adopt the same design as Mask R-CNN").
"""
import copy
import warnings
from typing import List, Tuple

import torch
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmdet.utils import InstanceList, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class SpatialFlowThingHead(BaseModule):
    """RoIAlign on the thing features + mmdet's :class:`FCNMaskHead`.

    - RoIs (spec 3.1): mmdet's :class:`SingleRoIExtractor` (RoIAlign 14x14,
      ``sampling_ratio=0``, ``aligned=True``, ``finest_scale=56``) on the
      thing sub-network outputs at strides 8, 16, 32 (not the FPN).
    - Mask head (spec 3.1): :class:`FCNMaskHead`, 4 convs, deconv, 80
      class-specific 28x28 logits, per-pixel BCE on the GT class channel
      (its own ``get_targets`` / ``loss_and_target``).
    - Training RoIs (spec 3.2): the detector's detached RetinaNet
      detections (network-input frame) are assigned to the GT boxes with
      ``train_cfg.assigner`` (:class:`MaxIoUAssigner` pos 0.5 / neg 0.5 /
      min_pos 0.5); then, as the reference's patched
      ``PseudoSampler(add_gt_as_proposals=True)``, all GT boxes are
      prepended as positives of themselves (``add_gt_as_proposals``).
      Every positive is used; there is no sampling and negatives are
      ignored. Crowd GTs (``ignored_instances``) are not used.
    - Test (spec 5.1): masks for all detections, the predicted class's
      channel, sigmoid, pasted (at ``ori_shape`` when ``rescale``) and
      thresholded at ``test_cfg.mask_thr_binary`` (0.5). 0 detections
      give empty masks.

    Args:
        roi_extractor (dict, optional): RoI extractor config. Defaults to
            None: :attr:`DEFAULT_ROI_EXTRACTOR` (spec 3.1).
        mask_head (dict, optional): Mask head config. Defaults to None:
            :attr:`DEFAULT_MASK_HEAD` (``FCNMaskHead``, 80 classes).
        add_gt_as_proposals (bool): Prepend the GT boxes to the training
            RoIs. Defaults to True (spec 3.2).
        train_cfg (dict, optional): ``assigner`` and ``mask_size`` (read by
            :func:`mask_target`). Defaults to None:
            :attr:`DEFAULT_TRAIN_CFG`. The detector passes its
            ``train_cfg.thing`` here.
        test_cfg (dict, optional): ``mask_thr_binary``. Defaults to None:
            :attr:`DEFAULT_TEST_CFG`. The detector passes its
            ``test_cfg.thing`` here.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    DEFAULT_ROI_EXTRACTOR = dict(
        type='SingleRoIExtractor',
        roi_layer=dict(
            type='RoIAlign', output_size=14, sampling_ratio=0, aligned=True),
        out_channels=256,
        featmap_strides=[8, 16, 32],
        finest_scale=56)
    DEFAULT_MASK_HEAD = dict(
        type='FCNMaskHead',
        num_convs=4,
        in_channels=256,
        conv_out_channels=256,
        num_classes=80,
        class_agnostic=False,
        loss_mask=dict(
            type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))
    DEFAULT_TRAIN_CFG = dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.5,
            ignore_iof_thr=-1),
        mask_size=28)
    DEFAULT_TEST_CFG = dict(mask_thr_binary=0.5)

    def __init__(self,
                 roi_extractor: OptConfigType = None,
                 mask_head: OptConfigType = None,
                 add_gt_as_proposals: bool = True,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.roi_extractor = MODELS.build(
            copy.deepcopy(roi_extractor or self.DEFAULT_ROI_EXTRACTOR))
        self.mask_head = MODELS.build(
            copy.deepcopy(mask_head or self.DEFAULT_MASK_HEAD))
        self.add_gt_as_proposals = add_gt_as_proposals
        self.train_cfg = ConfigDict(
            copy.deepcopy(train_cfg or self.DEFAULT_TRAIN_CFG))
        self.test_cfg = ConfigDict(
            copy.deepcopy(test_cfg or self.DEFAULT_TEST_CFG))
        self.assigner = TASK_UTILS.build(self.train_cfg.assigner)

    @property
    def num_inputs(self) -> int:
        """Feature levels read (strides 8, 16, 32: 3)."""
        return self.roi_extractor.num_inputs

    def forward(self, thing_feats: Tuple[Tensor, ...], rois: Tensor) -> Tensor:
        """Mask logits of RoIs.

        Args:
            thing_feats (tuple[Tensor]): Thing features, (N, C, H_l, W_l)
                at strides 8, 16, 32.
            rois (Tensor): (R, 5) ``(batch index, x1, y1, x2, y2)`` in the
                network-input frame.

        Returns:
            Tensor: (R, K, 28, 28) mask logits.
        """
        roi_feats = self.roi_extractor(
            tuple(thing_feats[:self.num_inputs]), rois)
        return self.mask_head(roi_feats)

    def _sample(self, proposals: InstanceData,
                gt_instances: InstanceData) -> SamplingResult:
        """Assign one image's detections, prepend the GTs, keep positives.

        Args:
            proposals (:obj:`InstanceData`): Detections with ``bboxes``
                (P, 4), network-input frame.
            gt_instances (:obj:`InstanceData`): ``bboxes`` (G, 4) and
                ``labels`` (G, ) (crowds excluded).

        Returns:
            :obj:`SamplingResult`: All positives, no negatives.
        """
        priors = get_box_tensor(proposals.bboxes).detach()
        gt_bboxes = get_box_tensor(gt_instances.bboxes)
        gt_labels = gt_instances.labels
        assign_result = self.assigner.assign(
            InstanceData(priors=priors),
            InstanceData(bboxes=gt_bboxes, labels=gt_labels))
        gt_flags = priors.new_zeros((priors.shape[0], ), dtype=torch.uint8)
        if self.add_gt_as_proposals and len(gt_bboxes) > 0:
            priors = torch.cat([gt_bboxes.to(priors.dtype), priors])
            assign_result.add_gt_(gt_labels)
            gt_flags = torch.cat(
                [gt_flags.new_ones((gt_bboxes.shape[0], )), gt_flags])
        pos_inds = torch.nonzero(
            assign_result.gt_inds > 0, as_tuple=False).squeeze(-1)
        neg_inds = pos_inds.new_zeros((0, ))
        return SamplingResult(
            pos_inds=pos_inds,
            neg_inds=neg_inds,
            priors=priors,
            gt_bboxes=gt_bboxes,
            assign_result=assign_result,
            gt_flags=gt_flags,
            avg_factor_with_neg=False)

    def loss(self, thing_feats: Tuple[Tensor, ...], proposals: InstanceList,
             batch_data_samples: SampleList) -> dict:
        """``loss_mask`` on the detections + GTs (spec 3.2).

        Args:
            thing_feats (tuple[Tensor]): Thing features, (N, C, H_l, W_l)
                at strides 8, 16, 32.
            proposals (list[:obj:`InstanceData`]): Per image, detached
                detections with ``bboxes`` (P, 4) in the network-input frame
                (``rescale=False``).
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_instances`` (``bboxes``, ``labels``, ``masks`` in the
                network-input frame).

        Returns:
            dict[str, Tensor]: ``loss_mask`` (0 with a graph when there is
            no positive).
        """
        batch_gt_instances, _, _ = unpack_gt_instances(batch_data_samples)
        if len(proposals) != len(batch_gt_instances):
            raise ValueError(f'{len(proposals)} proposal lists for '
                             f'{len(batch_gt_instances)} images')
        sampling_results = [
            self._sample(props, gts)
            for props, gts in zip(proposals, batch_gt_instances)
        ]
        rois = bbox2roi([res.pos_priors for res in sampling_results])
        mask_preds = self.forward(thing_feats, rois)
        out = self.mask_head.loss_and_target(
            mask_preds=mask_preds,
            sampling_results=sampling_results,
            batch_gt_instances=batch_gt_instances,
            rcnn_train_cfg=self.train_cfg)
        return out['loss_mask']

    def predict_mask_probs(self, thing_feats: Tuple[Tensor, ...],
                           bboxes_list: List[Tensor]) -> List[Tensor]:
        """Sigmoid mask probabilities of boxes (for test-time augmentation).

        Args:
            thing_feats (tuple[Tensor]): Thing features of a batch.
            bboxes_list (list[Tensor]): Per image, (n_i, 4) boxes in the
                network-input frame.

        Returns:
            list[Tensor]: Per image, (n_i, K, 28, 28) probabilities.
        """
        rois = bbox2roi([get_box_tensor(b) for b in bboxes_list])
        # (0 RoIs run through too: empty (0, K, 28, 28) maps)
        probs = self.forward(thing_feats, rois).sigmoid()
        return list(probs.split([len(b) for b in bboxes_list], 0))

    def paste_masks(self,
                    results_list: InstanceList,
                    mask_preds: List[Tensor],
                    batch_img_metas: List[dict],
                    rescale: bool = True,
                    activate_map: bool = False) -> InstanceList:
        """Paste and threshold masks (mmdet's ``predict_by_feat``).

        Args:
            results_list (list[:obj:`InstanceData`]): Detections; with
                ``rescale`` their ``bboxes`` are scaled in place to the
                original frame.
            mask_preds (list[Tensor]): Per image (n_i, K, 28, 28) logits
                (probabilities when ``activate_map``).
            batch_img_metas (list[dict]): ``ori_shape``, ``scale_factor``.
            rescale (bool): Paste at ``ori_shape``. Defaults to True.
            activate_map (bool): ``mask_preds`` are probabilities.
                Defaults to False.

        Returns:
            list[:obj:`InstanceData`]: With bool ``masks`` (n_i, H, W).
        """
        with warnings.catch_warnings():
            # mmdet copies probabilities with ``new_tensor`` (harmless)
            warnings.filterwarnings(
                'ignore', message='To copy construct from a tensor')
            return self.mask_head.predict_by_feat(
                mask_preds=tuple(mask_preds),
                results_list=results_list,
                batch_img_metas=batch_img_metas,
                rcnn_test_cfg=self.test_cfg,
                rescale=rescale,
                activate_map=activate_map)

    def predict(self,
                thing_feats: Tuple[Tensor, ...],
                results_list: InstanceList,
                batch_img_metas: List[dict],
                rescale: bool = True) -> InstanceList:
        """Masks for the detections (spec 5.1 step 2).

        Args:
            thing_feats (tuple[Tensor]): Thing features, (N, C, H_l, W_l)
                at strides 8, 16, 32.
            results_list (list[:obj:`InstanceData`]): Per image, the
                RetinaNet detections (``bboxes`` in the network-input frame,
                i.e. predicted with ``rescale=False``, ``scores``,
                ``labels``).
            batch_img_metas (list[dict]): Image metas.
            rescale (bool): Boxes and masks in the original frame
                (``ori_shape``). Defaults to True.

        Returns:
            list[:obj:`InstanceData`]: ``bboxes``, ``scores``, ``labels``
            and bool ``masks`` (n_i, H, W).
        """
        bboxes = [get_box_tensor(res.bboxes) for res in results_list]
        rois = bbox2roi(bboxes)
        if rois.shape[0] == 0:
            return empty_instances(
                batch_img_metas,
                rois.device,
                task_type='mask',
                instance_results=results_list,
                mask_thr_binary=self.test_cfg.mask_thr_binary)
        mask_preds = self.forward(thing_feats, rois)
        mask_preds = mask_preds.split([len(b) for b in bboxes], 0)
        return self.paste_masks(results_list, mask_preds, batch_img_metas,
                                rescale)
