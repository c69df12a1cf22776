# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow's multi-scale and flip test (spatialflow spec section 5.2)."""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import batched_nms
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip, get_box_tensor
from mmengine.config import ConfigDict
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor

_FLIP_DIMS = dict(horizontal=(-1, ), vertical=(-2, ), diagonal=(-2, -1))


@MODELS.register_module()
class SpatialFlowTTAModel(BaseTTAModel):
    """Multi-scale + flip test of :class:`SpatialFlow` (spec 5.2).

    Used through mmdet's ``TestTimeAug`` pipeline: the config holds
    ``tta_model = dict(type='SpatialFlowTTAModel', tta_cfg=...)`` and a
    ``tta_pipeline`` whose ``TestTimeAug`` makes one view per
    (scale, flip), e.g. the reference's 3 scales x {no flip, flip} with
    ``PackDetInputs`` keeping ``flip`` / ``flip_direction``;
    ``tools/test.py --tta`` wraps the model. Unlike mmdet's
    :class:`DetTTAModel`, which merges the final predictions of each view,
    SpatialFlow merges at three levels, so :meth:`test_step` runs the
    views itself:

    1. Boxes: each view's pre-NMS RetinaNet candidates
       (``bbox_head.predict_by_feat(..., with_nms=False)`` with the model's
       ``test_cfg``: top ``nms_pre`` per level, ``score_thr``) are mapped
       back to the original frame (un-flipped, divided by
       ``scale_factor``) and CONCATENATED; one class-aware NMS
       (``tta_cfg.nms``, IoU 0.4) keeps ``tta_cfg.max_per_img`` (100).
    2. Masks: the merged boxes are mapped into every view; the thing head's
       sigmoid probabilities (N, K, 28, 28) on that view's thing features
       are un-flipped and AVERAGED, then pasted at ``ori_shape`` and
       thresholded (``mask_thr_binary``).
    3. Stuff: every view's logits are cropped to ``img_shape``, un-flipped,
       resized to ``ori_shape`` with ``stuff_resize_cfg`` (bilinear,
       ``align_corners=True``) and AVERAGED; the fusion head then combines
       them with the merged instances.

    The reference's quirk of mutating ``test_cfg`` is not reproduced. The
    outputs are the first view's data samples (metainfo of that view) with
    ``pred_instances`` and, for a panoptic model, ``pred_panoptic_seg`` at
    the original resolution.

    Args:
        module (dict or nn.Module): The :class:`SpatialFlow` model.
        tta_cfg (dict, optional): ``nms`` (default: the model's
            ``test_cfg.nms``), ``max_per_img`` (default: its
            ``test_cfg.max_per_img``) and ``stuff_resize_cfg`` (default
            ``dict(mode='bilinear', align_corners=True)``).
        data_preprocessor (dict or nn.Module, optional): Overrides the
            model's data preprocessor.
    """

    def __init__(self,
                 module,
                 tta_cfg: Optional[dict] = None,
                 data_preprocessor=None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        for name in ('forward_heads', 'thing_head'):
            if not hasattr(self.module, name):
                raise TypeError('SpatialFlowTTAModel wraps a SpatialFlow '
                                f'model, got {type(self.module).__name__}')
        cfg = dict(stuff_resize_cfg=dict(mode='bilinear', align_corners=True))
        cfg.update(copy.deepcopy(tta_cfg or {}))
        head_cfg = self.module.bbox_head.test_cfg or {}
        cfg.setdefault('nms', copy.deepcopy(head_cfg.get('nms')))
        cfg.setdefault('max_per_img', head_cfg.get('max_per_img', 100))
        if cfg['nms'] is None:
            raise ValueError('SpatialFlowTTAModel: no nms in tta_cfg nor in '
                             "the model's test_cfg")
        self.tta_cfg = ConfigDict(cfg)

    def merge_preds(self, data_samples_list):
        """Not used: the views are merged on features (:meth:`test_step`)."""
        raise NotImplementedError(
            'SpatialFlowTTAModel merges candidates, mask probabilities and '
            'stuff logits inside test_step')

    # ------------------------------------------------------ frame mapping
    @staticmethod
    def _flip_dir(meta: dict) -> Optional[str]:
        """The view's flip direction, None when not flipped."""
        if not meta.get('flip', False):
            return None
        return meta.get('flip_direction', 'horizontal')

    @staticmethod
    def _scale(meta: dict, bboxes: Tensor) -> Tensor:
        """(1, 4) ``scale_factor`` as ``(w, h, w, h)``."""
        return bboxes.new_tensor(meta['scale_factor']).repeat((1, 2))

    def _to_original(self, bboxes: Tensor, meta: dict) -> Tensor:
        """View (network-input) frame -> original frame."""
        direction = self._flip_dir(meta)
        if direction is not None:
            bboxes = bbox_flip(bboxes, meta['img_shape'], direction)
        return bboxes / self._scale(meta, bboxes)

    def _to_view(self, bboxes: Tensor, meta: dict) -> Tensor:
        """Original frame -> view (network-input) frame."""
        bboxes = bboxes * self._scale(meta, bboxes)
        direction = self._flip_dir(meta)
        if direction is not None:
            bboxes = bbox_flip(bboxes, meta['img_shape'], direction)
        return bboxes

    def _unflip_map(self, maps: Tensor, meta: dict) -> Tensor:
        """Undo the view's flip on (..., H, W) maps."""
        direction = self._flip_dir(meta)
        if direction is None:
            return maps
        return maps.flip(_FLIP_DIMS[direction])

    # ----------------------------------------------------------- the test
    @staticmethod
    def _split_views(data) -> List:
        """One batch per view, as :meth:`BaseTTAModel.test_step`."""
        if isinstance(data, dict):
            keys = list(data)
            return [
                dict(zip(keys, views))
                for views in zip(*(data[key] for key in keys))
            ]
        if isinstance(data, (tuple, list)):
            return [[d[idx] for d in data] for idx in range(len(data[0]))]
        raise TypeError('data given by the dataloader should be a dict, '
                        f'tuple or list, got {type(data)}')

    def _run_view(self, data) -> Dict:
        """Candidates, thing features and stuff logits of one view."""
        model = self.module
        data = model.data_preprocessor(data, False)
        samples = data['data_samples']
        metas = [s.metainfo for s in samples]
        cls_scores, bbox_preds, stuff_feats, thing_feats = \
            model.forward_heads(data['inputs'])
        cands = model.bbox_head.predict_by_feat(
            cls_scores,
            bbox_preds,
            batch_img_metas=metas,
            rescale=False,
            with_nms=False)
        for cand, meta in zip(cands, metas):
            cand.bboxes = self._to_original(get_box_tensor(cand.bboxes), meta)
        segs = None
        if model.with_panoptic:
            segs = []
            crops = model.stuff_head.predict(stuff_feats, metas, rescale=False)
            for seg, meta in zip(crops, metas):
                seg = self._unflip_map(seg, meta)
                segs.append(
                    F.interpolate(
                        seg[None],
                        size=tuple(meta['ori_shape'][:2]),
                        **self.tta_cfg.stuff_resize_cfg)[0])
        return dict(
            samples=samples,
            metas=metas,
            cands=cands,
            thing=thing_feats,
            segs=segs)

    def _merge_boxes(self, cands: Sequence[InstanceData]) -> InstanceData:
        """Concatenate the views' candidates, one class-aware NMS."""
        bboxes = torch.cat([c.bboxes for c in cands])
        scores = torch.cat([c.scores for c in cands])
        labels = torch.cat([c.labels for c in cands])
        results = InstanceData()
        if bboxes.numel() == 0:
            results.bboxes = bboxes.reshape(0, 4)
            results.scores = scores
            results.labels = labels
            return results
        dets, keep = batched_nms(bboxes, scores, labels, self.tta_cfg.nms)
        num = self.tta_cfg.max_per_img
        results.bboxes = bboxes[keep][:num]
        results.scores = dets[:num, -1]
        results.labels = labels[keep][:num]
        return results

    def test_step(self, data) -> List[DetDataSample]:
        """Merged prediction of all views of each image (spec 5.2).

        Args:
            data (dict or list): A ``TestTimeAug`` batch: per key, one
                entry per view, each a batch of images.

        Returns:
            list[:obj:`DetDataSample`]: Per image, ``pred_instances``
            (``bboxes``, ``scores``, ``labels``, bool ``masks`` at
            ``ori_shape``) and, for a panoptic model,
            ``pred_panoptic_seg``.
        """
        model = self.module
        views = [self._run_view(d) for d in self._split_views(data)]
        num_imgs = len(views[0]['metas'])
        merged = [
            self._merge_boxes([v['cands'][i] for v in views])
            for i in range(num_imgs)
        ]
        probs: List[Optional[Tensor]] = [None] * num_imgs
        for view in views:
            boxes = [
                self._to_view(res.bboxes, meta)
                for res, meta in zip(merged, view['metas'])
            ]
            view_probs = model.thing_head.predict_mask_probs(
                view['thing'], boxes)
            for i, (prob, meta) in enumerate(zip(view_probs, view['metas'])):
                prob = self._unflip_map(prob, meta)
                probs[i] = prob if probs[i] is None else probs[i] + prob
        probs = [p / len(views) for p in probs]
        ori_metas = [
            dict(ori_shape=meta['ori_shape'], scale_factor=(1., 1.))
            for meta in views[0]['metas']
        ]
        merged = model.thing_head.paste_masks(
            merged, probs, ori_metas, rescale=True, activate_map=True)
        pan_list = None
        if model.with_panoptic:
            segs = [
                torch.stack([v['segs'][i] for v in views]).mean(0)
                for i in range(num_imgs)
            ]
            pan_list = model.panoptic_fusion_head.predict(merged, segs)
        outputs = []
        for i, sample in enumerate(views[0]['samples']):
            sample.pred_instances = merged[i]
            if pan_list is not None:
                sample.pred_panoptic_seg = pan_list[i]
            outputs.append(sample)
        return outputs
