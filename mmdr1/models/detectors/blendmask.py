# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask detector (blendmask spec section 3)."""
from mmdet.models.detectors.single_stage_instance_seg import \
    SingleStageInstanceSegmentor
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig


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
