# Copyright (c) mmdr1 contributors. All rights reserved.
"""FCOS head as BlendMask's reference uses it, plus the top (attention) layer.

See ``shared/spec/blendmask.md`` sections 5 (FCOS as used by BlendMask),
7 (top layer) and 14 items 1-5 (parity checklist).
"""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import FCOSHead
from mmdet.models.utils import (filter_scores_and_topk, multi_apply,
                                select_single_mlvl)
from mmdet.registry import MODELS
from mmdet.utils import (ConfigType, InstanceList, OptInstanceList, RangeType,
                         reduce_mean)
from mmengine.config import ConfigDict
from mmengine.model import normal_init
from mmengine.structures import InstanceData
from torch import Tensor

INF = 1e8


def smoothed_giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Per-location ``1 - GIoU`` on ltrb distances with +1 smoothing.

    The formula of the reference (spec 5.4, spec 14 item 4), on distances
    ``(l, t, r, b)`` measured from the same location (stride-normalised when
    ``norm_on_bbox=True``)::

        A_p = (l_p + r_p) * (t_p + b_p)
        A_t = (l_t + r_t) * (t_t + b_t)
        I   = (min(l_p, l_t) + min(r_p, r_t)) * (min(t_p, t_t) + min(b_p, b_t))
        U   = A_p + A_t - I
        C   = (max(l_p, l_t) + max(r_p, r_t)) * (max(t_p, t_t) + max(b_p, b_t))
        iou  = (I + 1) / (U + 1)
        giou = iou - (C - U) / C
        loss = 1 - giou

    Only the IoU term is smoothed; the enclosing-area term is not.

    Args:
        pred (Tensor): Predicted distances, shape (P, 4) as (l, t, r, b).
        target (Tensor): Target distances, shape (P, 4) as (l, t, r, b).

    Returns:
        Tensor: Unreduced loss, shape (P, ).
    """
    pl, pt, pr, pb = pred.unbind(-1)
    tl, tt, tr, tb = target.unbind(-1)
    pred_area = (pl + pr) * (pt + pb)
    target_area = (tl + tr) * (tt + tb)
    inter = (torch.min(pl, tl) + torch.min(pr, tr)) * (
        torch.min(pt, tt) + torch.min(pb, tb))
    enclose = (torch.max(pl, tl) + torch.max(pr, tr)) * (
        torch.max(pt, tt) + torch.max(pb, tb))
    union = pred_area + target_area - inter
    ious = (inter + 1.0) / (union + 1.0)
    gious = ious - (enclose - union) / enclose
    return 1.0 - gious


@MODELS.register_module()
class BlendMaskFCOSHead(FCOSHead):
    """FCOS head with BlendMask's top layer and the reference FCOS options.

    Differences from mmdet's :class:`FCOSHead` (spec 5.6), each an argument
    defaulting to the reference:

    - ``top_layer``: a 3x3 conv ``feat_channels -> K*M*M`` (spec 7), shared
      across levels, applied to the box-tower output of every level.
    - no per-level ``Scale`` (``use_scale=False``, spec 14 item 2).
    - final score ``sqrt(cls * ctr)`` (``score_sqrt``, spec 5.5 / 14.1).
    - candidate threshold and ``nms_pre`` top-k on ``cls * ctr``
      (``thresh_with_ctr``, spec 5.5).
    - GIoU with +1 smoothing on ltrb (``giou_smoothing``, spec 5.4 / 14.4).
    - no box clipping at decode (``clip_boxes=False``, spec 5.5 / 14.5).

    Args:
        num_classes (int): Number of foreground classes.
        in_channels (int): Channels of the input feature maps.
        num_bases (int): Number of bases K. Defaults to 4.
        attn_size (int): Attention resolution M. Defaults to 14.
        use_scale (bool): Create learnable per-level ``Scale`` modules.
            Defaults to False (replaced by ``nn.Identity``).
        score_sqrt (bool): Final score ``sqrt(cls * ctr)`` instead of
            ``cls * ctr``. Defaults to True.
        thresh_with_ctr (bool): Apply ``score_thr`` and the ``nms_pre``
            top-k to ``cls * ctr``; otherwise to ``cls`` (mmdet behaviour).
            Defaults to True.
        giou_smoothing (bool): Use :func:`smoothed_giou_loss` (weighted by
            ``loss_bbox.loss_weight``) instead of ``loss_bbox`` on decoded
            boxes. Defaults to True.
        clip_boxes (bool): Clip decoded boxes to the image. Defaults to
            False.
        num_share_convs (int): Convs of the tower shared by the class and
            box branches, run before them (``FCOS.NUM_SHARE_CONVS``, spec
            5.1; 3 in the 550 and RT configs, section 11.3, which also set
            ``stacked_convs=0``). Same conv / norm / bias as the branch
            towers; the top layer then sees the shared tower's output when
            ``stacked_convs=0`` (spec 7). Needs ``in_channels ==
            feat_channels``. Defaults to 0.
        strides (tuple[int]): FPN strides of P3-P7. Defaults to
            (8, 16, 32, 64, 128) (spec 5.1).
        regress_ranges (RangeType): Size-of-interest ranges (spec 5.3).
        center_sampling (bool): Centre sampling. Defaults to True.
        center_sample_radius (float): Defaults to 1.5.
        norm_on_bbox (bool): Stride-normalised regression. Defaults to True.
        centerness_on_reg (bool): Centerness on the box branch. Defaults to
            True.
        conv_bias (bool | str): Bias in tower convs. Defaults to True.
        norm_cfg (ConfigType): Tower norm. Defaults to GN(32).
        loss_bbox (ConfigType): Box loss used when ``giou_smoothing=False``;
            its ``loss_weight`` is used in both cases.
        test_cfg (ConfigType, optional): Defaults to ``nms_pre=1000,
            score_thr=0.05, nms iou 0.6, max_per_img=100`` (spec 5.1).
        **kwargs: Passed to :class:`FCOSHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_bases: int = 4,
                 attn_size: int = 14,
                 use_scale: bool = False,
                 score_sqrt: bool = True,
                 thresh_with_ctr: bool = True,
                 giou_smoothing: bool = True,
                 clip_boxes: bool = False,
                 num_share_convs: int = 0,
                 strides: Tuple[int, ...] = (8, 16, 32, 64, 128),
                 regress_ranges: RangeType = ((-1, 64), (64, 128), (128, 256),
                                              (256, 512), (512, INF)),
                 center_sampling: bool = True,
                 center_sample_radius: float = 1.5,
                 norm_on_bbox: bool = True,
                 centerness_on_reg: bool = True,
                 conv_bias: bool = True,
                 norm_cfg: ConfigType = dict(
                     type='GN', num_groups=32, requires_grad=True),
                 loss_bbox: ConfigType = dict(
                     type='GIoULoss', loss_weight=1.0),
                 test_cfg: Optional[ConfigType] = dict(
                     nms_pre=1000,
                     score_thr=0.05,
                     nms=dict(type='nms', iou_threshold=0.6),
                     max_per_img=100),
                 **kwargs) -> None:
        self.num_bases = num_bases
        self.attn_size = attn_size
        self.attn_len = num_bases * attn_size * attn_size
        self.use_scale = use_scale
        self.score_sqrt = score_sqrt
        self.thresh_with_ctr = thresh_with_ctr
        self.giou_smoothing = giou_smoothing
        self.clip_boxes = clip_boxes
        if num_share_convs < 0:
            raise ValueError(
                f'num_share_convs must be >= 0, got {num_share_convs}')
        self.num_share_convs = num_share_convs
        super().__init__(
            num_classes=num_classes,
            in_channels=in_channels,
            strides=strides,
            regress_ranges=regress_ranges,
            center_sampling=center_sampling,
            center_sample_radius=center_sample_radius,
            norm_on_bbox=norm_on_bbox,
            centerness_on_reg=centerness_on_reg,
            conv_bias=conv_bias,
            norm_cfg=norm_cfg,
            loss_bbox=loss_bbox,
            test_cfg=test_cfg,
            **kwargs)
        self._positive_infos: Optional[InstanceList] = None

    def _init_layers(self) -> None:
        """Build FCOS layers, drop the ``Scale`` s if asked, add top layer."""
        if (self.num_share_convs > 0 or self.stacked_convs == 0) and \
                self.in_channels != self.feat_channels:
            raise ValueError(
                'BlendMaskFCOSHead: a shared tower (num_share_convs='
                f'{self.num_share_convs}) or stacked_convs=0 needs '
                f'in_channels ({self.in_channels}) == feat_channels '
                f'({self.feat_channels})')
        super()._init_layers()
        self.share_convs = nn.ModuleList([
            ConvModule(
                self.feat_channels,
                self.feat_channels,
                3,
                stride=1,
                padding=1,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                bias=self.conv_bias) for _ in range(self.num_share_convs)
        ])
        if not self.use_scale:
            # Parameter-free stand-ins keep FCOSHead.forward unchanged.
            self.scales = nn.ModuleList([nn.Identity() for _ in self.strides])
        self.top_layer = nn.Conv2d(
            self.feat_channels, self.attn_len, 3, stride=1, padding=1)

    def init_weights(self) -> None:
        """Init as FCOS, then ``top_layer`` ~ N(0, 0.01), bias 0 (spec 7)."""
        super().init_weights()
        normal_init(self.top_layer, mean=0, std=0.01, bias=0)

    def forward(
        self, x: Tuple[Tensor, ...]
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """Forward all levels.

        Args:
            x (tuple[Tensor]): FPN features, level ``l`` of shape
                (N, in_channels, H_l, W_l).

        Returns:
            tuple[list[Tensor]]: ``cls_scores`` (N, C, H_l, W_l),
            ``bbox_preds`` (N, 4, H_l, W_l), ``centernesses``
            (N, 1, H_l, W_l) and ``top_feats`` (N, K*M*M, H_l, W_l).
        """
        return multi_apply(self.forward_single, x, self.scales, self.strides)

    def forward_single(self, x: Tensor, scale: nn.Module,
                       stride: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Forward one level (spec 5.2, 7).

        Args:
            x (Tensor): Feature map, shape (N, in_channels, H, W).
            scale (nn.Module): ``Scale`` or ``nn.Identity``.
            stride (int): Level stride, multiplies ltrb at inference when
                ``norm_on_bbox``.

        Returns:
            tuple[Tensor]: cls score (N, C, H, W), bbox pred (N, 4, H, W),
            centerness (N, 1, H, W), top feats (N, K*M*M, H, W).
        """
        cls_score, bbox_pred, centerness, _, reg_feat = self._forward_towers(
            x, scale, stride)
        top_feat = self.top_layer(reg_feat)
        return cls_score, bbox_pred, centerness, top_feat

    def _forward_towers(self, x: Tensor, scale: nn.Module,
                        stride: int) -> Tuple[Tensor, ...]:
        """Shared tower, class / box towers and the FCOS predictors.

        Args:
            x (Tensor): Feature map, shape (N, in_channels, H, W).
            scale (nn.Module): ``Scale`` or ``nn.Identity``.
            stride (int): Level stride.

        Returns:
            tuple[Tensor]: cls score (N, C, H, W), bbox pred (N, 4, H, W),
            centerness (N, 1, H, W), class-tower output and box-tower
            output (N, feat_channels, H, W).
        """
        for share_layer in self.share_convs:
            x = share_layer(x)
        cls_score, bbox_pred, cls_feat, reg_feat = super(
            FCOSHead, self).forward_single(x)
        if self.centerness_on_reg:
            centerness = self.conv_centerness(reg_feat)
        else:
            centerness = self.conv_centerness(cls_feat)
        bbox_pred = scale(bbox_pred).float()
        if self.norm_on_bbox:
            bbox_pred = bbox_pred.clamp(min=0)
            if not self.training:
                bbox_pred = bbox_pred * stride
        else:
            bbox_pred = bbox_pred.exp()
        return cls_score, bbox_pred, centerness, cls_feat, reg_feat

    def get_targets(
        self, points: List[Tensor], batch_gt_instances: InstanceList
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """FCOS targets plus the assigned GT index of every location.

        Reuses :meth:`FCOSHead.get_targets` unchanged by feeding it GTs whose
        labels are their (negative-shifted) indices ``i - num_gts``; FCOS
        marks background with ``num_classes >= 0``, so negative outputs are
        positives and ``out + num_gts`` is the assigned GT index.

        Args:
            points (list[Tensor]): Points of each level, (n_l, 2).
            batch_gt_instances (list[:obj:`InstanceData`]): GTs per image.

        Returns:
            tuple[list[Tensor]]: Per level, concatenated over images:
            labels (N*n_l, ), bbox targets (N*n_l, 4) and assigned GT
            indices (N*n_l, ) (-1 for background).
        """
        proxies = []
        for gt in batch_gt_instances:
            n = len(gt)
            proxies.append(
                InstanceData(
                    bboxes=gt.bboxes,
                    labels=torch.arange(
                        n, dtype=torch.long, device=gt.bboxes.device) - n))
        lvl_codes, lvl_bbox_targets = super().get_targets(points, proxies)
        num_imgs = len(batch_gt_instances)
        lvl_labels, lvl_gt_inds = [], []
        for codes in lvl_codes:
            labels_img, inds_img = [], []
            for gt, code in zip(batch_gt_instances, codes.chunk(num_imgs)):
                pos = code < 0
                gt_inds = torch.where(pos, code + len(gt),
                                      code.new_full(code.shape, -1))
                labels = code.new_full(code.shape, self.num_classes)
                labels[pos] = gt.labels[gt_inds[pos]].to(labels.dtype)
                labels_img.append(labels)
                inds_img.append(gt_inds)
            lvl_labels.append(torch.cat(labels_img))
            lvl_gt_inds.append(torch.cat(inds_img))
        return lvl_labels, lvl_bbox_targets, lvl_gt_inds

    def loss_by_feat(
        self,
        cls_scores: List[Tensor],
        bbox_preds: List[Tensor],
        centernesses: List[Tensor],
        top_feats: List[Tensor],
        batch_gt_instances: InstanceList,
        batch_img_metas: List[dict],
        batch_gt_instances_ignore: OptInstanceList = None
    ) -> Dict[str, Tensor]:
        """FCOS losses (spec 5.4) and caching of positives (spec 8).

        ``loss_bbox = loss_weight * sum((1 - giou) * ctr_t) / loss_denorm``
        with ``loss_denorm = max(reduce_mean(sum(ctr_t)), 1e-6)``;
        ``loss_cls`` and ``loss_centerness`` are normalised by
        ``max(reduce_mean(#pos), 1)``, as in :class:`FCOSHead`.

        Args:
            cls_scores (list[Tensor]): (N, C, H_l, W_l) per level.
            bbox_preds (list[Tensor]): (N, 4, H_l, W_l) per level.
            centernesses (list[Tensor]): (N, 1, H_l, W_l) per level.
            top_feats (list[Tensor]): (N, K*M*M, H_l, W_l) per level.
            batch_gt_instances (list[:obj:`InstanceData`]): GTs with
                ``bboxes`` and ``labels``.
            batch_img_metas (list[dict]): Image metas.
            batch_gt_instances_ignore (list, optional): Unused.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``,
            ``loss_centerness``.
        """
        assert len(cls_scores) == len(bbox_preds) == len(centernesses) \
            == len(top_feats)
        device, dtype = bbox_preds[0].device, bbox_preds[0].dtype
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        points_strides = self.prior_generator.grid_priors(
            featmap_sizes, dtype=dtype, device=device, with_stride=True)
        all_level_points = [p[:, :2] for p in points_strides]
        labels, bbox_targets, gt_inds = self.get_targets(
            all_level_points, batch_gt_instances)

        num_imgs = cls_scores[0].size(0)
        flat_cls = torch.cat([
            c.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
            for c in cls_scores
        ])
        flat_bbox = torch.cat(
            [b.permute(0, 2, 3, 1).reshape(-1, 4) for b in bbox_preds])
        flat_ctr = torch.cat(
            [c.permute(0, 2, 3, 1).reshape(-1) for c in centernesses])
        flat_top = torch.cat([
            t.permute(0, 2, 3, 1).reshape(-1, self.attn_len) for t in top_feats
        ])
        flat_labels = torch.cat(labels)
        flat_bbox_targets = torch.cat(bbox_targets)
        flat_gt_inds = torch.cat(gt_inds)
        flat_points_strides = torch.cat(
            [ps.repeat(num_imgs, 1) for ps in points_strides])
        flat_img_ids = torch.cat([
            torch.arange(num_imgs, device=device).repeat_interleave(len(ps))
            for ps in points_strides
        ])

        pos_inds = ((flat_labels >= 0) &
                    (flat_labels < self.num_classes)).nonzero().reshape(-1)
        num_pos = torch.tensor(len(pos_inds), dtype=torch.float, device=device)
        num_pos = max(reduce_mean(num_pos), 1.0)
        loss_cls = self.loss_cls(flat_cls, flat_labels, avg_factor=num_pos)

        pos_bbox_preds = flat_bbox[pos_inds]
        pos_ctr = flat_ctr[pos_inds]
        pos_bbox_targets = flat_bbox_targets[pos_inds]
        pos_ctr_targets = self.centerness_target(pos_bbox_targets)
        centerness_denorm = max(
            reduce_mean(pos_ctr_targets.sum().detach()), 1e-6)
        pos_points_strides = flat_points_strides[pos_inds]

        if len(pos_inds) > 0:
            if self.giou_smoothing:
                loss_bbox = self.loss_bbox.loss_weight * (
                    smoothed_giou_loss(pos_bbox_preds, pos_bbox_targets) *
                    pos_ctr_targets).sum() / centerness_denorm
            else:
                pos_points = pos_points_strides[:, :2]
                loss_bbox = self.loss_bbox(
                    self.bbox_coder.decode(pos_points, pos_bbox_preds),
                    self.bbox_coder.decode(pos_points, pos_bbox_targets),
                    weight=pos_ctr_targets,
                    avg_factor=centerness_denorm)
            loss_centerness = self.loss_centerness(
                pos_ctr, pos_ctr_targets, avg_factor=num_pos)
        else:
            loss_bbox = pos_bbox_preds.sum()
            loss_centerness = pos_ctr.sum()

        pos_img_ids = flat_img_ids[pos_inds]
        pos_top = flat_top[pos_inds]
        infos = []
        for img_id in range(num_imgs):
            m = pos_img_ids == img_id
            infos.append(
                InstanceData(
                    pos_assigned_gt_inds=flat_gt_inds[pos_inds][m],
                    labels=flat_labels[pos_inds][m],
                    top_feats=pos_top[m],
                    centerness_targets=pos_ctr_targets[m],
                    bbox_targets=pos_bbox_targets[m],
                    points=pos_points_strides[m, :2],
                    strides=pos_points_strides[m, 2]))
        self._positive_infos = infos

        return dict(
            loss_cls=loss_cls,
            loss_bbox=loss_bbox,
            loss_centerness=loss_centerness)

    def get_positive_infos(self) -> Optional[InstanceList]:
        """Positives cached by the last :meth:`loss_by_feat` (spec 8).

        Returns:
            list[:obj:`InstanceData`] | None: Per image, with P_i positives
            (ordered level-major, then row-major within a level):
            ``pos_assigned_gt_inds`` (P_i, ) index into that image's
            ``gt_instances``; ``labels`` (P_i, ); ``top_feats``
            (P_i, K*M*M), with grad; ``centerness_targets`` (P_i, ) in
            (0, 1]; ``bbox_targets`` (P_i, 4) ltrb (stride-normalised when
            ``norm_on_bbox``); ``points`` (P_i, 2); ``strides`` (P_i, ).
        """
        return self._positive_infos

    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        score_factors: List[Tensor],
                        top_feats: List[Tensor],
                        batch_img_metas: List[dict],
                        cfg: Optional[ConfigDict] = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Decode detections (spec 5.5).

        Args:
            cls_scores (list[Tensor]): (N, C, H_l, W_l) logits per level.
            bbox_preds (list[Tensor]): (N, 4, H_l, W_l) ltrb in pixels.
            score_factors (list[Tensor]): (N, 1, H_l, W_l) centerness logits.
            top_feats (list[Tensor]): (N, K*M*M, H_l, W_l) per level.
            batch_img_metas (list[dict]): Image metas (``img_shape``,
                ``scale_factor`` when ``rescale``).
            cfg (ConfigDict, optional): Defaults to ``self.test_cfg``.
            rescale (bool): Map boxes back to the original image.
            with_nms (bool): Run class-wise NMS.

        Returns:
            list[:obj:`InstanceData`]: Per image ``bboxes`` (n, 4),
            ``scores`` (n, ), ``labels`` (n, ), ``top_feats`` (n, K*M*M).
        """
        assert len(cls_scores) == len(bbox_preds) == len(score_factors) \
            == len(top_feats)
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        mlvl_points = self.prior_generator.grid_priors(
            featmap_sizes,
            dtype=bbox_preds[0].dtype,
            device=bbox_preds[0].device)
        results = []
        for img_id, img_meta in enumerate(batch_img_metas):
            results.append(
                self._predict_by_feat_single(
                    select_single_mlvl(cls_scores, img_id, detach=True),
                    select_single_mlvl(bbox_preds, img_id, detach=True),
                    select_single_mlvl(score_factors, img_id, detach=True),
                    select_single_mlvl(top_feats, img_id, detach=True),
                    mlvl_points, img_meta, cfg, rescale, with_nms))
        return results

    def _predict_by_feat_single(self,
                                cls_score_list: List[Tensor],
                                bbox_pred_list: List[Tensor],
                                score_factor_list: List[Tensor],
                                top_feat_list: List[Tensor],
                                mlvl_points: List[Tensor],
                                img_meta: dict,
                                cfg: Optional[ConfigDict],
                                rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        """Decode one image.

        Per level: ``cls = sigmoid``, ``ctr = sigmoid``; candidates are
        ``cls * ctr > score_thr`` (``cls`` alone if not ``thresh_with_ctr``),
        at most ``nms_pre`` by top-k on that score; boxes ``point +- ltrb``,
        clipped only if ``clip_boxes``; score ``sqrt(cls * ctr)`` (or
        ``cls * ctr``). Then rescale, NMS and ``max_per_img``.

        Args:
            cls_score_list (list[Tensor]): (C, H_l, W_l) per level.
            bbox_pred_list (list[Tensor]): (4, H_l, W_l) per level.
            score_factor_list (list[Tensor]): (1, H_l, W_l) per level.
            top_feat_list (list[Tensor]): (K*M*M, H_l, W_l) per level.
            mlvl_points (list[Tensor]): (H_l*W_l, 2) per level.
            img_meta (dict): Image meta.
            cfg (ConfigDict, optional): Test config.
            rescale (bool): Rescale boxes to the original image.
            with_nms (bool): Run NMS.

        Returns:
            :obj:`InstanceData`: ``bboxes``, ``scores``, ``labels``,
            ``top_feats``.
        """
        cfg = ConfigDict(copy.deepcopy(self.test_cfg if cfg is None else cfg))
        nms_pre = cfg.get('nms_pre', -1)
        score_thr = cfg.get('score_thr', 0)
        mlvl_bbox, mlvl_pts, mlvl_scores, mlvl_labels, mlvl_top = \
            [], [], [], [], []
        for cls_score, bbox_pred, ctr, top_feat, points in zip(
                cls_score_list, bbox_pred_list, score_factor_list,
                top_feat_list, mlvl_points):
            cls = cls_score.permute(1, 2, 0).reshape(
                -1, self.cls_out_channels).sigmoid()
            ctr = ctr.permute(1, 2, 0).reshape(-1).sigmoid()
            cand = cls * ctr[:, None] if self.thresh_with_ctr else cls
            _, labels, keep, filtered = filter_scores_and_topk(
                cand, score_thr, nms_pre,
                dict(
                    bbox_pred=bbox_pred.permute(1, 2, 0).reshape(-1, 4),
                    points=points,
                    ctr=ctr,
                    cls=cls,
                    top=top_feat.permute(1, 2, 0).reshape(-1, self.attn_len)))
            scores = filtered['cls'][torch.arange(len(keep)),
                                     labels] * filtered['ctr']
            if self.score_sqrt:
                scores = scores.sqrt()
            mlvl_bbox.append(filtered['bbox_pred'])
            mlvl_pts.append(filtered['points'])
            mlvl_scores.append(scores)
            mlvl_labels.append(labels)
            mlvl_top.append(filtered['top'])

        max_shape = img_meta['img_shape'] if self.clip_boxes else None
        results = InstanceData()
        results.bboxes = self.bbox_coder.decode(
            torch.cat(mlvl_pts), torch.cat(mlvl_bbox), max_shape=max_shape)
        results.scores = torch.cat(mlvl_scores)
        results.labels = torch.cat(mlvl_labels)
        results.top_feats = torch.cat(mlvl_top)
        return self._bbox_post_process(
            results=results,
            cfg=cfg,
            rescale=rescale,
            with_nms=with_nms,
            img_meta=img_meta)
