# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask with the one-layer unified panoptic head (paper section 3.3)."""
import copy
from typing import Dict, List, Optional

import torch
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.structures import InstanceData
from torch import Tensor

from .dr1mask import DR1Mask


@MODELS.register_module()
class DR1MaskPanoptic(DR1Mask):
    """DR1Mask plus :class:`UnifiedPanopticHead` on the basis.

    The same network as :class:`DR1Mask` (vector embeddings of width C by
    default, paper Table 7) and one 1x1 layer over the C-channel basis:
    static rows for the stuff classes and one dynamic row per instance
    (dr1mask spec section 5):

    - training: the row of GT instance i is the mean of the embeddings of
      the FCOS positives assigned to it; GT instances without positives
      have no row and their pixels are ignored; softmax cross entropy over
      stuff + instance channels (``loss_panoptic``). With
      ``with_instance_loss`` (choice, default on) the instance module's
      mask loss (and the auxiliary semantic loss) are added too, so the
      model also predicts instance masks.
    - inference: the detections after NMS; the row of a detection is the
      mean of the embeddings of the candidates it absorbed in NMS
      (``bbox_head.merge_embeds='mean'``; ``'own'`` uses its own); per
      pixel argmax gives a stuff class or an instance; small stuff becomes
      void. Output: ``pred_panoptic_seg`` (mmdet's format, read by
      ``CocoPanopticMetric``) and ``pred_instances`` (masks of the instance
      module), like mmdet's Panoptic FPN.

    Args:
        panoptic_head (dict): :class:`UnifiedPanopticHead` config.
        with_instance_loss (bool): Add the mask (and basis semantic)
            losses. Defaults to True.
        instance_score_thr (float): Detections scoring below it get no
            panoptic row (they stay in ``pred_instances``). The paper uses
            "the detections after score threshold and NMS" without giving
            the threshold (choice). Defaults to 0.0 (the FCOS test
            ``score_thr`` only).
        row_embed (str): Where the panoptic rows come from (choice, for
            the paper's Table 7 ablation). ``'shared'`` (default, the
            paper's panoptic model): the rows are the instance embeddings
            themselves, so the instance module must take C-dim vector
            embeddings (``bbox_head.embed_dim`` = C). ``'separate'``: the
            FCOS top layer predicts ``[e_inst, e_row]``, the instance
            module's embedding (e.g. factored attention, C*K + K*d
            numbers) followed by a C-dim panoptic row
            (``bbox_head.embed_dim`` = module's + C); the paper does not
            say how factored embeddings become rows, so this keeps the
            one-layer head unchanged and lets the instance module's mask
            loss shape the shared basis, which is the effect Table 7
            measures.
        **kwargs: :class:`DR1Mask` / :class:`BlendMask` arguments.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 bbox_head: ConfigType,
                 mask_head: ConfigType,
                 panoptic_head: ConfigType,
                 with_instance_loss: bool = True,
                 instance_score_thr: float = 0.0,
                 row_embed: str = 'shared',
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
        self.panoptic_head = MODELS.build(copy.deepcopy(panoptic_head))
        self.with_instance_loss = with_instance_loss
        self.instance_score_thr = instance_score_thr
        if self.bbox_head.merge_embeds is None:
            raise ValueError(
                "DR1MaskPanoptic needs bbox_head.merge_embeds='mean' (or "
                "'own') for the instance rows at inference")
        if row_embed not in ('shared', 'separate'):
            raise ValueError(f"DR1MaskPanoptic: row_embed must be 'shared' "
                             f"or 'separate', got {row_embed!r}")
        self.row_embed = row_embed
        embed_dim = self.bbox_head.embed_dim
        channels = self.panoptic_head.in_channels
        module_dim = self.mask_head.blender.embed_dim
        if row_embed == 'shared' and embed_dim != channels:
            raise ValueError(
                f'DR1MaskPanoptic: the panoptic rows are the embeddings '
                f'({embed_dim} numbers) but the panoptic head takes '
                f'{channels}-channel bases: use vector embeddings '
                "(embed_dim = basis channels) or row_embed='separate'")
        if row_embed == 'separate' and embed_dim != module_dim + channels:
            raise ValueError(
                "DR1MaskPanoptic(row_embed='separate'): bbox_head.embed_dim "
                f'must be the instance module\'s {module_dim} plus the '
                f'{channels}-dim panoptic row = {module_dim + channels}, '
                f'got {embed_dim}')
        self._module_dim = module_dim if row_embed == 'separate' else None
        if (getattr(self.panoptic_head, 'thing_void_thr', None) is not None
                and getattr(self.mask_head, 'sem_head', None) is None):
            raise ValueError(
                'DR1MaskPanoptic: panoptic_head.thing_void_thr takes the '
                'thing probabilities from the auxiliary semantic head, so '
                'mask_head.with_sem_head must be True')

    def thing_probs(self, basis: Tensor) -> List[Tensor]:
        """Per-pixel thing probability from the auxiliary semantic head.

        ``1 - softmax(sem_logits)[background]`` of
        :attr:`DR1MaskHead.sem_head` (the BlendMask-style thing-semantic
        head on the basis, channel 0 = not a thing), for
        ``panoptic_head.thing_void_thr``.

        Args:
            basis (Tensor): (N, C, h, w) raw basis.

        Returns:
            list[Tensor]: N maps (h, w).
        """
        sem_logits = self.mask_head.sem_head(basis)
        return list(1 - sem_logits.softmax(dim=1)[:, 0])

    def _instance_part(self, infos: List[InstanceData]) -> List[InstanceData]:
        """Copies of ``infos`` for ``row_embed='separate'``.

        ``top_feats`` keeps the instance module's part of ``[e_inst,
        e_row]``; ``merged_top_feats`` (the NMS-merged embeddings at
        inference, which become the panoptic rows) keeps the row part.
        """
        out = []
        for info in infos:
            new = InstanceData(metainfo=info.metainfo)
            for key, value in info.items():
                new[key] = value
            new.top_feats = info.top_feats[:, :self._module_dim]
            if 'merged_top_feats' in info:
                new.merged_top_feats = \
                    info.merged_top_feats[:, self._module_dim:]
            out.append(new)
        return out

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList,
             **kwargs) -> Dict[str, Tensor]:
        """FCOS losses, ``loss_panoptic`` (and the instance losses).

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples with
                ``gt_instances``, panoptic ``gt_sem_seg`` and (for the
                auxiliary semantic loss) the thing map.

        Returns:
            dict[str, Tensor]: Losses.
        """
        x = self.extract_feat(batch_inputs)
        losses = self.bbox_head.loss(
            self.instance_feats(x), batch_data_samples)
        positive_infos = self.bbox_head.get_positive_infos()
        row_infos = positive_infos
        if self._module_dim is not None:
            row_infos = [
                InstanceData(
                    top_feats=p.top_feats[:, self._module_dim:],
                    pos_assigned_gt_inds=p.pos_assigned_gt_inds)
                for p in positive_infos
            ]
            positive_infos = self._instance_part(positive_infos)
        bases, sem_logits, basis = self.mask_head(
            x,
            self.bbox_head.get_contexts(),
            output_size=self.basis_size(batch_inputs),
            return_raw=True)
        if self.with_instance_loss:
            losses.update(
                self.mask_head.loss_from_outputs(bases, sem_logits,
                                                 batch_data_samples,
                                                 positive_infos))
        gt_instances, _, _ = unpack_gt_instances(batch_data_samples)
        rows, valid, boxes = [], [], []
        for pos, gt in zip(row_infos, gt_instances):
            r, v = self.panoptic_head.instance_rows(pos.top_feats,
                                                    pos.pos_assigned_gt_inds,
                                                    len(gt))
            rows.append(r[v])
            valid.append(v)
            boxes.append(get_box_tensor(gt.bboxes)[v])
        targets = self.panoptic_head.get_targets(
            batch_data_samples, valid, tuple(batch_inputs.shape[-2:]))
        targets = self._compact_instance_targets(targets, valid)
        losses.update(
            self.panoptic_head.loss(basis, rows, targets, inst_boxes=boxes))
        return losses

    def _compact_instance_targets(self, targets: Tensor,
                                  valid: List[Tensor]) -> Tensor:
        """Renumber instance targets to the rows of valid instances only.

        :meth:`UnifiedPanopticHead.get_targets` labels GT instance ``i`` as
        ``S + i`` (its pixels ignored when it has no positive, i.e. no row);
        the rows kept are those of the valid instances, in order.
        """
        num_stuff = self.panoptic_head.num_stuff_classes
        ignore = self.panoptic_head.ignore_index
        for t, v in zip(targets, valid):
            if v.numel() == 0 or bool(v.all()):
                continue
            lut = torch.full((len(v), ),
                             ignore,
                             dtype=t.dtype,
                             device=t.device)
            lut[v] = num_stuff + torch.arange(
                int(v.sum()), dtype=t.dtype, device=t.device)
            inst = (t >= num_stuff) & (t != ignore)
            t[inst] = lut[t[inst] - num_stuff]
        return targets

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True,
                **kwargs) -> SampleList:
        """``pred_panoptic_seg`` and ``pred_instances``.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples.
            rescale (bool): Results at ``ori_shape``. Defaults to True.

        Returns:
            list[:obj:`DetDataSample`]: With ``pred_panoptic_seg.sem_seg``
            (1, H, W) and ``pred_instances``.
        """
        metas = [s.metainfo for s in batch_data_samples]
        x = self.extract_feat(batch_inputs)
        results_list = self.bbox_head.predict(
            self.instance_feats(x), batch_data_samples, rescale=False)
        if self._module_dim is not None:
            results_list = self._instance_part(results_list)
        bases, _, basis = self.mask_head(
            x,
            self.bbox_head.get_contexts(),
            output_size=self.basis_size(batch_inputs),
            return_raw=True)
        instances = self.mask_head.predict_by_feat(
            bases,
            None,
            batch_img_metas=metas,
            results_list=results_list,
            rescale=rescale)
        kept = [i[i.scores >= self.instance_score_thr] for i in instances]
        rows: List[Optional[Tensor]] = [k.merged_top_feats for k in kept]
        thing_probs = None
        if getattr(self.panoptic_head, 'thing_void_thr', None) is not None:
            thing_probs = self.thing_probs(basis)
        pans = self.panoptic_head.predict(
            basis, rows, kept, metas, rescale, thing_probs=thing_probs)
        for sample, inst, pan in zip(batch_data_samples, instances, pans):
            inst.pop('merged_top_feats')
            sample.pred_instances = inst
            sample.pred_panoptic_seg = pan
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, *args, **kwargs) -> tuple:
        """Raw outputs: FCOS head, (bases, None, basis) and stuff logits."""
        x = self.extract_feat(batch_inputs)
        bbox_outs = self.bbox_head.forward(self.instance_feats(x))
        mask_outs = self.mask_head.forward(
            x,
            self.bbox_head.get_contexts(),
            output_size=self.basis_size(batch_inputs),
            return_raw=True)
        return bbox_outs, mask_outs, self.panoptic_head.conv_stuff(
            mask_outs[2])
