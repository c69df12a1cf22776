# Copyright (c) mmdr1 contributors. All rights reserved.
"""BlendMask basis module (ProtoNet) with the auxiliary thing-semantic loss.

BlendMask paper (Chen et al., CVPR 2020) section 3.2 "Bottom module";
blendmask spec section 6. The reference implementation's only basis module
is a YOLACT-style FPN-fusion decoder ("ProtoNet"), not the paper's
DeepLabV3+ decoder (spec section 6.1); this module follows the reference.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor


def _conv_block(in_channels: int, out_channels: int,
                norm_cfg: ConfigType) -> nn.Sequential:
    """3x3 conv (no bias, ``kaiming_uniform_(a=1)``) -> norm -> ReLU.

    The equivalent of detectron2's ``conv_with_kaiming_uniform(norm, True)``
    (spec section 6.1). A plain ``nn.Sequential`` keeps the reference's
    state-dict layout ``{0: conv, 1: norm}`` (spec section 6.2), which
    mmcv's ``ConvModule`` (``conv``/``bn``/``gn`` names) would not.
    """
    conv = nn.Conv2d(
        in_channels, out_channels, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    norm = build_norm_layer(norm_cfg, out_channels)[1]
    return nn.Sequential(conv, norm, nn.ReLU(inplace=True))


@MODELS.register_module()
class ProtoNetBasis(BaseModule):
    """ProtoNet basis module of BlendMask (blendmask spec section 6).

    Structure (spec section 6.1)::

        refine[i] = conv_block(in_channels -> convs_dim)   for p3, p4, p5
        x = refine[0](p3) + up(refine[1](p4)) + up(refine[2](p5))
            # up: bilinear, align_corners=False, to p3's exact size
        tower = num_convs x conv_block(convs_dim -> convs_dim)
                + Upsample(x2, bilinear, align_corners=False)
                + conv_block(convs_dim -> convs_dim)
                + Conv2d(convs_dim -> num_bases, 1x1, bias)
        bases = tower(x)    # stride(p3) / 2 = 4, no activation

    ``conv_block`` is a 3x3 conv without bias (``kaiming_uniform_(a=1)``
    init), a norm layer and a ReLU; the final 1x1 conv keeps PyTorch's
    default init.

    The auxiliary thing-semantic head (spec section 6.3) runs on p3 only,
    and only in training mode when ``loss_on`` is True::

        seg_head = Conv3x3(in_channels -> convs_dim, no bias) BN ReLU
                   Conv3x3(convs_dim -> convs_dim, no bias) BN ReLU
                   Conv1x1(convs_dim -> num_things_classes + 1)

    It always uses plain ``BatchNorm2d`` (not SyncBN) and PyTorch's default
    init, as the reference.

    State-dict layout (matches the reference checkpoint's
    ``basis_module.*`` keys, spec section 6.2, so a converter only strips
    the prefix):

    - ``refine.{0,1,2}.{0: conv, 1: norm}``
    - ``tower.{0..num_convs-1}.{0: conv, 1: norm}``; ``tower.{num_convs}``:
      the Upsample (no parameters); ``tower.{num_convs+1}.{0,1}``: the
      last conv block; ``tower.{num_convs+2}``: the 1x1 conv to the bases.
    - ``seg_head.{0: conv, 1: BN, 3: conv, 4: BN, 6: conv1x1}``.

    Args:
        in_channels (int): Channels of the FPN levels. Defaults to 256.
        in_indices (Sequence[int]): Indices of p3, p4 and p5 in the feature
            tuple given to :meth:`forward`. The first one is the fusion
            level (and the seg head's input). Defaults to (0, 1, 2).
        convs_dim (int): Channels of the refine / tower convs.
            Defaults to 128.
        num_convs (int): Conv blocks in the tower before the upsample
            (3 in the reference; 2 in its 550 / RT configs). Defaults to 3.
        num_bases (int): Number of bases ``K``. Defaults to 4.
        norm_cfg (dict): Norm of the refine and tower conv blocks. The
            reference uses SyncBN; multi-GPU configs should set
            ``dict(type='SyncBN', requires_grad=True)``. Defaults to
            ``dict(type='BN', requires_grad=True)`` so that single-process
            (CPU) runs work.
        num_things_classes (int): Thing classes; the seg head predicts
            ``num_things_classes + 1`` channels, class 0 being background.
            Defaults to 80.
        loss_on (bool): Whether to build and run the auxiliary
            thing-semantic head. Defaults to True (``Base-BlendMask.yaml``;
            the detectron2 default is False).
        loss_weight (float): Weight of ``loss_basis_sem``. Defaults to 0.3.
        common_stride (int): Stride of p3 relative to the input, used to
            downsample the thing-semantic targets. Defaults to 8.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None (the init described above, applied at
            construction).
    """

    def __init__(self,
                 in_channels: int = 256,
                 in_indices: Sequence[int] = (0, 1, 2),
                 convs_dim: int = 128,
                 num_convs: int = 3,
                 num_bases: int = 4,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 num_things_classes: int = 80,
                 loss_on: bool = True,
                 loss_weight: float = 0.3,
                 common_stride: int = 8,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.in_indices = tuple(in_indices)
        self.convs_dim = convs_dim
        self.num_convs = num_convs
        self.num_bases = num_bases
        self.num_things_classes = num_things_classes
        self.loss_on = loss_on
        self.loss_weight = loss_weight
        self.common_stride = common_stride

        self.refine = nn.ModuleList([
            _conv_block(in_channels, convs_dim, norm_cfg)
            for _ in self.in_indices
        ])
        tower = [
            _conv_block(convs_dim, convs_dim, norm_cfg)
            for _ in range(num_convs)
        ]
        tower.append(
            nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False))
        tower.append(_conv_block(convs_dim, convs_dim, norm_cfg))
        tower.append(nn.Conv2d(convs_dim, num_bases, 1))
        self.tower = nn.Sequential(*tower)

        if loss_on:
            self.seg_head = nn.Sequential(
                nn.Conv2d(in_channels, convs_dim, 3, padding=1, bias=False),
                nn.BatchNorm2d(convs_dim), nn.ReLU(),
                nn.Conv2d(convs_dim, convs_dim, 3, padding=1, bias=False),
                nn.BatchNorm2d(convs_dim), nn.ReLU(),
                nn.Conv2d(convs_dim, num_things_classes + 1, 1))
        else:
            self.seg_head = None

    def forward(self,
                feats: Sequence[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """Compute the bases (and the thing-semantic logits in training).

        Args:
            feats (Sequence[Tensor]): FPN levels; ``feats[in_indices[i]]``
                has shape (B, in_channels, H_i, W_i), the first one being
                p3 of shape (B, in_channels, H3, W3). Sizes may be odd:
                the coarser levels are resized to p3's exact size.

        Returns:
            tuple[Tensor, Tensor | None]:

            - bases (Tensor): (B, num_bases, 2 * H3, 2 * W3), stride 4.
            - sem_logits (Tensor | None): (B, num_things_classes + 1, H3,
              W3) in training mode with ``loss_on``, otherwise None.
        """
        p3 = feats[self.in_indices[0]]
        x = self.refine[0](p3)
        for refine, idx in zip(self.refine[1:], self.in_indices[1:]):
            y = refine(feats[idx])
            x = x + F.interpolate(
                y, size=x.shape[-2:], mode='bilinear', align_corners=False)
        bases = self.tower(x)
        sem_logits = None
        if self.training and self.seg_head is not None:
            sem_logits = self.seg_head(p3)
        return bases, sem_logits

    def get_targets(self, thing_sem_targets: Tensor,
                    feat_size: Tuple[int, int]) -> Tensor:
        """Downsample thing-semantic maps to the logits' grid.

        The reference pads the label map to a multiple of 32 with 0 and
        takes ``F.interpolate(scale_factor=1/common_stride)`` (nearest),
        i.e. the top-left pixel of every ``common_stride`` cell (spec
        sections 6.3 and 6.5). Here the maps come at the padded batch size
        of the data preprocessor; they are padded with 0 (background, not
        255) up to ``feat_size * common_stride`` (or cropped to it), which
        is a no-op when the batch is padded to a multiple of 32.

        Args:
            thing_sem_targets (Tensor): (B, H, W) integer maps, 0 =
                background, ``label + 1`` = thing.
            feat_size (tuple[int, int]): (H3, W3) of the logits.

        Returns:
            Tensor: (B, H3, W3) long targets.
        """
        s = self.common_stride
        h, w = feat_size[0] * s, feat_size[1] * s
        t = thing_sem_targets[:, :h, :w]
        pad_h, pad_w = h - t.shape[-2], w - t.shape[-1]
        if pad_h > 0 or pad_w > 0:
            t = F.pad(t, (0, pad_w, 0, pad_h), value=0)
        t = F.interpolate(t[:, None].float(), scale_factor=1. / s)
        return t[:, 0].long()

    def loss(self, sem_logits: Tensor,
             thing_sem_targets: Tensor) -> Dict[str, Tensor]:
        """Auxiliary thing-semantic loss (spec section 6.3).

        Cross-entropy averaged over all pixels, background (class 0)
        included as a real class, no ``ignore_index``, times
        ``loss_weight``.

        Args:
            sem_logits (Tensor): (B, num_things_classes + 1, H3, W3).
            thing_sem_targets (Tensor): (B, H, W) integer maps at the
                (padded) input resolution; see :meth:`get_targets`.

        Returns:
            dict[str, Tensor]: ``{'loss_basis_sem': loss}``.
        """
        targets = self.get_targets(thing_sem_targets, sem_logits.shape[-2:])
        loss = F.cross_entropy(sem_logits, targets) * self.loss_weight
        return dict(loss_basis_sem=loss)
