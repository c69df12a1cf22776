# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow detector (spatialflow spec sections 2, 3, 4.4 and 5.1)."""
import copy
from typing import Dict, List, Optional, Tuple

from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from torch import Tensor

#: Training detections fed to the thing head (spec 3.2 step 2).
DEFAULT_THING_PROPOSAL = dict(
    nms_pre=1000,
    min_bbox_size=0,
    score_thr=0.05,
    nms=dict(type='nms', iou_threshold=0.4),
    max_per_img=100)


@MODELS.register_module()
class SpatialFlow(SingleStageDetector):
    """SpatialFlow: RetinaNet + thing and stuff sub-networks and flows.

    Chen et al., "SpatialFlow: Bridging All Tasks for Panoptic
    Segmentation", TCSVT 2020. Data flow:

    - backbone + FPN give P3-P7; :class:`SpatialFlowHead`
      (``bbox_head``) runs once through :meth:`SpatialFlowHead.forward_all`
      and gives the RetinaNet outputs on P3-P7 and the stuff and thing
      sub-network features on P3-P5 (spec 2.2, 2.3).
    - ``loss`` (spec 3.2, 4.4): RetinaNet's ``loss_cls`` / ``loss_bbox``
      (``bbox_head.loss_by_feat``); the detached detections of the same
      outputs (``bbox_head.predict_by_feat`` with
      ``train_cfg.thing_proposal``: top-1000 per level, score > 0.05,
      class-aware NMS 0.4, 100 per image, ``rescale=False`` i.e. in the
      network-input frame) are the thing head's RoIs (GTs prepended there),
      giving ``loss_mask``; the stuff head on the stuff features gives
      ``loss_stuff``.
    - ``predict`` (spec 5.1): RetinaNet detections (``test_cfg``: score
      0.05, NMS 0.4, 100), masks by the thing head (pasted at
      ``ori_shape`` when ``rescale``, threshold 0.5) as ``pred_instances``;
      with a stuff head and a fusion head, the stuff logits and the
      instances are fused into ``pred_panoptic_seg`` (mmdet's format, read
      by ``CocoPanopticMetric``).
    - ``_forward`` (tensor mode): the head's four outputs and, with a stuff
      head, its (N, S + 1, H, W) logits; no post-processing.

    Multi-scale / flip test (spec 5.2) is :class:`SpatialFlowTTAModel`
    (``tta_model`` config key), which uses :meth:`extract_feat` and the
    heads directly.

    Config layout: ``train_cfg`` is RetinaNet's (``assigner``,
    ``sampler``, ``allowed_border``, ``pos_weight``, ``debug``; given to
    ``bbox_head`` whole, as :class:`SingleStageDetector` does) plus
    ``thing_proposal`` (default :data:`DEFAULT_THING_PROPOSAL`) and
    optionally ``thing`` (the thing head's ``train_cfg``: ``assigner``,
    ``mask_size``). ``test_cfg`` is RetinaNet's plus optionally ``thing``
    (``mask_thr_binary``) and ``panoptic`` (the fusion head's
    ``test_cfg``).

    Args:
        backbone (dict): Backbone config.
        neck (dict): Neck config (FPN P3-P7).
        bbox_head (dict): :class:`SpatialFlowHead` config.
        thing_head (dict): :class:`SpatialFlowThingHead` config.
        stuff_head (dict, optional): :class:`SpatialFlowStuffHead` config;
            None for an instance-only model (no ``loss_stuff``, no panoptic
            output). Defaults to None.
        panoptic_fusion_head (dict, optional): :class:`BoxFillFusionHead`
            config; gets ``test_cfg.panoptic`` as its ``test_cfg``. Needs a
            stuff head. Defaults to None (no ``pred_panoptic_seg``).
        train_cfg (dict, optional): Training config (see above).
        test_cfg (dict, optional): Testing config (see above).
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 bbox_head: ConfigType,
                 thing_head: ConfigType,
                 stuff_head: OptConfigType = None,
                 panoptic_fusion_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not hasattr(self.bbox_head, 'forward_all'):
            raise TypeError('SpatialFlow: bbox_head must provide forward_all '
                            '(SpatialFlowHead), got '
                            f'{type(self.bbox_head).__name__}')
        train_cfg = train_cfg or {}
        test_cfg = test_cfg or {}
        self.thing_proposal_cfg = ConfigDict(
            copy.deepcopy(
                train_cfg.get('thing_proposal', DEFAULT_THING_PROPOSAL)))
        thing_head = copy.deepcopy(thing_head)
        if train_cfg.get('thing') is not None:
            thing_head.update(train_cfg=copy.deepcopy(train_cfg['thing']))
        if test_cfg.get('thing') is not None:
            thing_head.update(test_cfg=copy.deepcopy(test_cfg['thing']))
        self.thing_head = MODELS.build(thing_head)
        self.stuff_head = None
        if stuff_head is not None:
            self.stuff_head = MODELS.build(stuff_head)
        self.panoptic_fusion_head = None
        if panoptic_fusion_head is not None:
            if self.stuff_head is None:
                raise ValueError('SpatialFlow: panoptic_fusion_head needs '
                                 'a stuff_head')
            fusion = copy.deepcopy(panoptic_fusion_head)
            if test_cfg.get('panoptic') is not None:
                fusion.update(test_cfg=copy.deepcopy(test_cfg['panoptic']))
            self.panoptic_fusion_head = MODELS.build(fusion)

    @property
    def with_stuff(self) -> bool:
        """Whether the model has a stuff head."""
        return self.stuff_head is not None

    @property
    def with_panoptic(self) -> bool:
        """Whether the model outputs ``pred_panoptic_seg``."""
        return self.panoptic_fusion_head is not None

    def forward_heads(self, batch_inputs: Tensor) -> Tuple[List[Tensor], ...]:
        """Backbone, neck and :meth:`SpatialFlowHead.forward_all`.

        Args:
            batch_inputs (Tensor): (N, 3, H, W) normalised, padded images.

        Returns:
            tuple[list[Tensor]]: ``cls_scores``, ``bbox_preds`` (P3-P7),
            ``stuff_feats`` and ``thing_feats`` (P3-P5).
        """
        return self.bbox_head.forward_all(self.extract_feat(batch_inputs))

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """RetinaNet, mask and stuff losses (spec 3.2, 4.4).

        Args:
            batch_inputs (Tensor): (N, 3, H, W) normalised, padded images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_instances`` (``bboxes``, ``labels``, ``masks``),
                optionally ``ignored_instances`` (crowds; used by the
                RetinaNet assigner only) and, with a stuff head, the
                panoptic ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_mask``
            and (with a stuff head) ``loss_stuff``.
        """
        cls_scores, bbox_preds, stuff_feats, thing_feats = \
            self.forward_heads(batch_inputs)
        (batch_gt_instances, batch_gt_instances_ignore,
         batch_img_metas) = unpack_gt_instances(batch_data_samples)
        losses = self.bbox_head.loss_by_feat(cls_scores, bbox_preds,
                                             batch_gt_instances,
                                             batch_img_metas,
                                             batch_gt_instances_ignore)
        # detached (predict_by_feat detaches), network-input frame
        proposals = self.bbox_head.predict_by_feat(
            cls_scores,
            bbox_preds,
            batch_img_metas=batch_img_metas,
            cfg=self.thing_proposal_cfg,
            rescale=False)
        parts = [
            self.thing_head.loss(thing_feats, proposals, batch_data_samples)
        ]
        if self.with_stuff:
            parts.append(self.stuff_head.loss(stuff_feats, batch_data_samples))
        for part in parts:
            clash = set(part) & set(losses)
            assert not clash, f'duplicate loss names {sorted(clash)}'
            losses.update(part)
        return losses

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Instances and, with stuff and fusion heads, panoptic output.

        Args:
            batch_inputs (Tensor): (N, 3, H, W) images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                image metas.
            rescale (bool): Results at ``ori_shape`` (else ``img_shape``).
                Defaults to True.

        Returns:
            list[:obj:`DetDataSample`]: With ``pred_instances`` (``bboxes``,
            ``scores``, ``labels``, bool ``masks`` (n, H, W)) and, when the
            fusion head is present, ``pred_panoptic_seg.sem_seg`` (1, H, W).
        """
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds, stuff_feats, thing_feats = \
            self.forward_heads(batch_inputs)
        results_list = self.bbox_head.predict_by_feat(
            cls_scores,
            bbox_preds,
            batch_img_metas=batch_img_metas,
            rescale=False)
        results_list = self.thing_head.predict(
            thing_feats, results_list, batch_img_metas, rescale=rescale)
        pan_list: Optional[list] = None
        if self.with_panoptic:
            seg_preds = self.stuff_head.predict(stuff_feats, batch_img_metas,
                                                rescale)
            pan_list = self.panoptic_fusion_head.predict(
                results_list, seg_preds)
        for i, sample in enumerate(batch_data_samples):
            sample.pred_instances = results_list[i]
            if pan_list is not None:
                sample.pred_panoptic_seg = pan_list[i]
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, *args, **kwargs) -> tuple:
        """Raw outputs, without post-processing or ground truth.

        Args:
            batch_inputs (Tensor): (N, 3, H, W) images.

        Returns:
            tuple: ``(cls_scores, bbox_preds, stuff_feats, thing_feats)``
            of :meth:`SpatialFlowHead.forward_all`, plus the stuff head's
            (N, S + 1, H, W) logits when there is a stuff head. The thing
            head's masks need the post-processed boxes and are not run.
        """
        outs = tuple(self.forward_heads(batch_inputs))
        if self.with_stuff:
            outs = outs + (self.stuff_head.forward(outs[2])['seg_preds'], )
        return outs
