# Copyright (c) mmdr1 contributors. All rights reserved.
"""Panoptic BlendMask (blendmask spec section 12)."""
import copy
from typing import Dict, Tuple

from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from .blendmask import BlendMask

Feats = Tuple[Tensor, ...]


@MODELS.register_module()
class PanopticBlendMask(BlendMask):
    """BlendMask plus a Panoptic-FPN semantic branch and the fusion.

    Data flow (spec sections 3 and 12): the FPN gives P2..P7; the instance
    branch (FCOS head with attentions, basis, blender) is BlendMask
    unchanged on ``x[instance_start_level:]`` (P3..P7); the semantic head
    (:class:`SemSegFPNHead`, P2-P5 via its own ``start_level`` /
    ``end_level``) sees all levels. Losses are BlendMask's plus the
    semantic head's (``loss_sem_seg``, weight 0.5). At inference the
    instances (masks at ``ori_shape`` when ``rescale``) and the semantic
    logits are combined by ``panoptic_fusion_head``
    (:class:`ScoreThrHeuristicFusionHead`: score 0.45, overlap 0.4, stuff
    area 4096, spec 12.3) into ``pred_panoptic_seg`` (mmdet's format, read
    by :class:`CocoPanopticMetric`); the instances are kept as
    ``pred_instances``.

    Args:
        backbone (dict): Backbone config (ResNet with C2-C5).
        neck (dict): Neck config (FPN with P2-P7).
        bbox_head (dict): :class:`BlendMaskFCOSHead` config.
        mask_head (dict): :class:`BlendMaskHead` config (panoptic data:
            ``thing_sem_field='gt_thing_sem_seg'``).
        semantic_head (dict): :class:`SemSegFPNHead` config.
        panoptic_fusion_head (dict): Fusion head config; gets
            ``test_cfg.panoptic`` as its ``test_cfg``.
        instance_start_level (int): Index of the first neck output given to
            the instance branch. Defaults to 1 (P3 of P2..P7).
        train_cfg (dict, optional): Training config.
        test_cfg (dict, optional): FCOS test config plus ``panoptic``.
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 bbox_head: ConfigType,
                 mask_head: ConfigType,
                 semantic_head: ConfigType,
                 panoptic_fusion_head: ConfigType,
                 instance_start_level: int = 1,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            bbox_head=bbox_head,
            mask_head=mask_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if instance_start_level < 0:
            raise ValueError('instance_start_level must be >= 0, got '
                             f'{instance_start_level}')
        self.instance_start_level = instance_start_level
        self.semantic_head = MODELS.build(semantic_head)
        fusion = copy.deepcopy(panoptic_fusion_head)
        panoptic_cfg = (test_cfg or {}).get('panoptic', None)
        if panoptic_cfg is not None:
            fusion.update(test_cfg=copy.deepcopy(panoptic_cfg))
        self.panoptic_fusion_head = MODELS.build(fusion)

    def _split_feats(self, x: Feats) -> Tuple[Feats, Feats]:
        """(all levels, instance-branch levels) of the neck outputs."""
        inst = tuple(x[self.instance_start_level:])
        num_levels = len(self.bbox_head.strides)
        if len(inst) != num_levels:
            raise ValueError(
                f'PanopticBlendMask: the neck gives {len(x)} levels; from '
                f'instance_start_level={self.instance_start_level} that '
                f'leaves {len(inst)}, but bbox_head has {num_levels} '
                f'strides {tuple(self.bbox_head.strides)}')
        return tuple(x), inst

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList,
             **kwargs) -> Dict[str, Tensor]:
        """BlendMask losses plus ``loss_sem_seg``.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) normalised, padded images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_instances``, panoptic ``gt_sem_seg`` and the thing map.

        Returns:
            dict[str, Tensor]: All losses.
        """
        x, inst = self._split_feats(self.extract_feat(batch_inputs))
        losses = self.bbox_head.loss(inst, batch_data_samples, **kwargs)
        positive_infos = self.bbox_head.get_positive_infos()
        mask_losses = self.mask_head.loss(
            inst, batch_data_samples, positive_infos=positive_infos, **kwargs)
        sem_losses = self.semantic_head.loss(x, batch_data_samples)
        for part in (mask_losses, sem_losses):
            clash = set(part) & set(losses)
            assert not clash, f'duplicate loss names {sorted(clash)}'
            losses.update(part)
        return losses

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True,
                **kwargs) -> SampleList:
        """Instances, semantic logits and their panoptic combination.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                image metas.
            rescale (bool): Results at ``ori_shape`` (else ``img_shape``).
                Defaults to True.

        Returns:
            list[:obj:`DetDataSample`]: With ``pred_instances`` (``bboxes``,
            ``scores``, ``labels``, bool ``masks``) and
            ``pred_panoptic_seg.sem_seg`` (1, H, W).
        """
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        x, inst = self._split_feats(self.extract_feat(batch_inputs))
        results_list = self.bbox_head.predict(
            inst, batch_data_samples, rescale=False)
        results_list = self.mask_head.predict(
            inst,
            batch_data_samples,
            rescale=rescale,
            results_list=results_list)
        seg_preds = self.semantic_head.predict(x, batch_img_metas, rescale)
        pan_list = self.panoptic_fusion_head.predict(results_list, seg_preds)
        for sample, inst_res, pan in zip(batch_data_samples, results_list,
                                         pan_list):
            sample.pred_instances = inst_res
            sample.pred_panoptic_seg = pan
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, *args, **kwargs) -> tuple:
        """Raw outputs: FCOS head, basis (bases, None) and semantic logits.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.

        Returns:
            tuple: ``(cls_scores, bbox_preds, centernesses, top_feats)``,
            ``(bases, sem_logits)`` of the basis and the semantic head's
            (B, S + 1, H/4, W/4) logits (the head's own channel order).
        """
        x, inst = self._split_feats(self.extract_feat(batch_inputs))
        return (self.bbox_head.forward(inst), self.mask_head.forward(inst),
                self.semantic_head.forward(x)['seg_preds'])
