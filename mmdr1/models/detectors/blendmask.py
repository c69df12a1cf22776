# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask detector (blendmask spec section 3)."""
from mmdet.models.detectors.single_stage_instance_seg import \
    SingleStageInstanceSegmentor
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor


@MODELS.register_module()
class BlendMask(SingleStageInstanceSegmentor):
    """BlendMask: FCOS with attentions + ProtoNet bases + blender.

    Chen et al., "BlendMask: Top-Down Meets Bottom-Up for Instance
    Segmentation", CVPR 2020. The flow of
    :class:`SingleStageInstanceSegmentor` is used unchanged:

    - ``loss``: ``bbox_head.loss`` (FCOS losses; caches the positives with
      their ``top_feats`` attentions, assigned GT indices and centerness
      targets), then ``mask_head.loss(x, samples, positive_infos=...)``
      (``loss_mask`` on the assigned GT boxes and ``loss_basis_sem``).
    - ``predict``: ``bbox_head.predict(rescale=False)`` gives unclipped
      boxes in the input frame with their ``top_feats``; ``mask_head``
      pools on them, then scales / clips the boxes and pastes the masks
      (at ``ori_shape`` when ``rescale``).

    Args:
        backbone (dict): Backbone config.
        neck (dict): Neck config (FPN producing p3-p7).
        bbox_head (dict): :class:`BlendMaskFCOSHead` config.
        mask_head (dict): :class:`BlendMaskHead` config.
        train_cfg (dict, optional): Training config.
        test_cfg (dict, optional): Testing config of the bbox head.
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 bbox_head: ConfigType,
                 mask_head: ConfigType,
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

    def _forward(self, batch_inputs: Tensor, *args, **kwargs) -> tuple:
        """Raw dense outputs, without post-processing or ground truth.

        The export-friendly outputs the reference's users ask for (spec
        section 16 item 4): the FCOS head's per-level ``cls_scores``,
        ``bbox_preds``, ``centernesses`` and ``top_feats`` (attentions), and
        the basis module's ``(bases, sem_logits)``. mmdet's
        :class:`SingleStageInstanceSegmentor` would run the bbox head's
        loss here, which needs ground truth.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.

        Returns:
            tuple: ``(bbox_head outputs, mask_head outputs)``.
        """
        x = self.extract_feat(batch_inputs)
        return self.bbox_head.forward(x), self.mask_head.forward(x)
