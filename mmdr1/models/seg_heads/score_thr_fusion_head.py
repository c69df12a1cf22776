# Copyright (c) mmdr1 contributors. All rights reserved.
"""The reference's panoptic combination (blendmask spec section 12.3)."""
from mmdet.models.seg_heads.panoptic_fusion_heads import HeuristicFusionHead
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData, PixelData
from torch import Tensor


@MODELS.register_module()
class ScoreThrHeuristicFusionHead(HeuristicFusionHead):
    """:class:`HeuristicFusionHead` with an instance score threshold.

    detectron2's ``combine_semantic_and_instance_outputs`` as panoptic
    BlendMask uses it (spec sections 12.3 and 12.4): instances are taken
    by descending score while ``score >= score_thr`` (0.45); an instance is
    skipped when more than ``mask_overlap`` (0.4) of its mask is already
    taken, otherwise its untaken pixels get a new segment; then each stuff
    class keeps its pixels not covered by instances if there are at least
    ``stuff_area_limit`` (4096) of them. mmdet's fusion has no score
    threshold (hence this subclass) and defaults to overlap 0.5.

    The semantic logits must be in mmdet's channel order (stuff classes,
    then "things" last), as :meth:`SemSegFPNHead.predict` returns them.

    Args:
        num_things_classes (int): Defaults to 80.
        num_stuff_classes (int): Defaults to 53.
        test_cfg (dict, optional): ``score_thr`` (default 0.45),
            ``mask_overlap`` (0.4) and ``stuff_area_limit`` (4096); the
            detector passes its ``test_cfg.panoptic``.
        init_cfg (dict, optional): Initialization config.
    """

    DEFAULTS = dict(score_thr=0.45, mask_overlap=0.4, stuff_area_limit=4096)

    def __init__(self,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 **kwargs) -> None:
        cfg = dict(self.DEFAULTS)
        cfg.update(test_cfg or {})
        unknown = set(cfg) - set(self.DEFAULTS)
        if unknown:
            raise KeyError('ScoreThrHeuristicFusionHead: unknown test_cfg '
                           f'keys {sorted(unknown)}; expected '
                           f'{sorted(self.DEFAULTS)}')
        super().__init__(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            test_cfg=ConfigDict(cfg),
            init_cfg=init_cfg,
            **kwargs)

    def _predict_single(self, mask_results: InstanceData, seg_preds: Tensor,
                        **kwargs) -> PixelData:
        """Fuse one image after dropping instances below ``score_thr``.

        Args:
            mask_results (:obj:`InstanceData`): ``bboxes``, ``labels``,
                ``scores`` and bool ``masks`` (N, H, W).
            seg_preds (Tensor): (num_stuff + 1, H, W) semantic logits.

        Returns:
            :obj:`PixelData`: ``sem_seg`` (1, H, W) panoptic ids
            (``label + instance_id * INSTANCE_OFFSET`` for things, the
            class id for stuff, ``num_classes`` for void).
        """
        keep = mask_results.scores >= self.test_cfg.score_thr
        return super()._predict_single(mask_results[keep], seg_preds, **kwargs)
