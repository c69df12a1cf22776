# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Basis: the DR1Conv inverted pyramid that computes the basis features.

DR1Mask paper section 3.2.2, Eq. 6, Figure 3; dr1mask spec section 3.
"""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from mmdr1.models.layers.aligned_upsample import AlignedUpsample
from mmdr1.models.layers.dr1conv import DR1Conv


@MODELS.register_module()
class DR1Basis(BaseModule):
    """Bottom-up branch of DR1Mask: FPN levels + contexts -> basis.

    DR1Mask paper section 3.2.2, Eq. 6, Figure 3; dr1mask spec section 3.
    An inverted pyramid from the coarsest FPN level to the finest (P7 ...
    P3 with the default 5 levels) of constant width ``C = channels``::

        F^top = DR1Conv_{A^top, B^top}(Reduce^top(P^top))
        F^l   = DR1Conv_{A^l, B^l}(Reduce^l(P^l) + Up2(F^{l+1}))
                for the other levels, coarse to fine
        basis = FinalConv(Up2(F^first))        # stride 4 for P3 first

    - ``Reduce^l``: a ``ConvModule`` (``in_channels -> C``,
      ``reduce_kernel_size``, norm, act), one per level, not shared
      (spec choice; the paper only says "a convolution").
    - ``DR1Conv_{A^l, B^l}``: a 3x3 :class:`DR1Conv` (``C -> C``) with norm
      and act after the modulation, one per level. ``A^l`` / ``B^l`` are
      the first / last ``C`` channels of the level's context map ``Ctx^l``
      (2C channels, from the top layer on the FCOS box tower, spec section
      2). A factor switched off with ``use_pre`` / ``use_post`` is the
      constant 1 and its half of the context is ignored.
    - ``Up2``: x2 upsampling cropped at the right / bottom to the finer
      level's size (the sizes differ by one for odd maps since levels are
      ``ceil`` halves). ``'aligned'`` is :class:`AlignedUpsample` (spec
      section 6, for inputs padded to a multiple of 4); ``'bilinear'`` is
      ``F.interpolate(scale_factor=2, mode='bilinear',
      align_corners=False)``, the size-divisibility-32 ablation (paper
      Table 5).
    - ``FinalConv``: an optional 3x3 conv-norm-act (spec choice, default
      on).

    With ``contexts=None`` (or ``use_pre=use_post=False``) every DR1Conv is
    a static conv and the module is the paper's plain FPN-style baseline
    decoder (Table 1 "baseline", Table 2 "w/o A, B"). The paper uses
    ``channels=32`` for instance and 64 for panoptic segmentation
    (Table 6).

    Args:
        in_channels (int): Channels of every FPN level. Defaults to 256.
        channels (int): Basis width ``C``. Defaults to 32.
        num_levels (int): Number of FPN levels used, finest first.
            Defaults to 5 (P3-P7).
        reduce_kernel_size (int): Kernel size of the ``Reduce`` convs
            (padding ``k // 2``). Defaults to 3.
        norm_cfg (dict, optional): Norm of every conv block. Defaults to
            ``dict(type='BN', requires_grad=True)``; multi-GPU configs
            should use SyncBN.
        act_cfg (dict, optional): Activation of every conv block. Defaults
            to ``dict(type='ReLU')``.
        use_pre (bool): Use the pre factors ``A^l``. Defaults to True.
        use_post (bool): Use the post factors ``B^l``. Defaults to True.
        factor_mode (str): :class:`DR1Conv` factor parametrisation,
            ``'residual'`` (``1 + raw``), ``'direct'`` or ``'sigmoid'``.
            Defaults to ``'residual'``.
        upsample (str): ``'aligned'`` or ``'bilinear'``, see above.
            Defaults to ``'aligned'``.
        final_conv (bool): Add the final 3x3 conv-norm-act after the last
            upsample. Defaults to True.
        fine_level (bool): Not in the paper (choice, default off: the
            paper's ``basis = Up2(F^3)``). Also take the stride-4 FPN level
            ``P2``, given first in ``fpn_feats`` (``num_levels + 1`` maps),
            through its own ``Reduce`` conv and add it to the upsampled
            finest level: ``basis = FinalConv(Up2(F^3) + Reduce^2(P2))``.
            No DR1Conv there (the FCOS head makes no context at stride 4).
            The skip that a Panoptic-FPN / BlendMask semantic head has; it
            sharpens region boundaries on small images.
        output_size (tuple[int, int], optional): Default size of the basis,
            at most twice the first level's size; e.g. the padded input
            size // 4. Defaults to None (twice the first level's size).
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None (``ConvModule``'s kaiming / constant init,
            applied at construction).
    """

    UPSAMPLE_MODES = ('aligned', 'bilinear')

    def __init__(self,
                 in_channels: int = 256,
                 channels: int = 32,
                 num_levels: int = 5,
                 reduce_kernel_size: int = 3,
                 norm_cfg: OptConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: OptConfigType = dict(type='ReLU'),
                 use_pre: bool = True,
                 use_post: bool = True,
                 factor_mode: str = 'residual',
                 upsample: str = 'aligned',
                 final_conv: bool = True,
                 output_size: Optional[Sequence[int]] = None,
                 fine_level: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_levels < 1:
            raise ValueError(
                f'DR1Basis num_levels must be >= 1, got {num_levels}')
        if upsample not in self.UPSAMPLE_MODES:
            raise ValueError(
                f'DR1Basis upsample must be one of {self.UPSAMPLE_MODES}, '
                f'got {upsample!r}')
        self.in_channels = in_channels
        self.channels = channels
        self.num_levels = num_levels
        self.use_pre = use_pre
        self.use_post = use_post
        self.factor_mode = factor_mode
        self.upsample = upsample
        self.with_final_conv = final_conv
        self.output_size = self._check_size(output_size, 'output_size')

        self.reduce_convs = nn.ModuleList([
            ConvModule(
                in_channels,
                channels,
                reduce_kernel_size,
                padding=reduce_kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for _ in range(num_levels)
        ])
        self.dr1_convs = nn.ModuleList([
            DR1Conv(
                channels,
                channels,
                3,
                use_pre=use_pre,
                use_post=use_post,
                factor_mode=factor_mode,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for _ in range(num_levels)
        ])
        if upsample == 'aligned':
            self.aligned_up = AlignedUpsample(2)
        else:
            self.aligned_up = None
        self.fine_level = fine_level
        self.fine_reduce = None
        if fine_level:
            self.fine_reduce = ConvModule(
                in_channels,
                channels,
                reduce_kernel_size,
                padding=reduce_kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        if final_conv:
            self.final_conv = ConvModule(
                channels,
                channels,
                3,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        else:
            self.final_conv = None

    @staticmethod
    def _check_size(size: Optional[Sequence[int]],
                    name: str) -> Optional[Tuple[int, int]]:
        if size is None:
            return None
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise ValueError(
                f'DR1Basis {name} must be (H, W) with positive sizes, got '
                f'{size!r}')
        return int(size[0]), int(size[1])

    def up2(self, x: Tensor, size: Sequence[int]) -> Tensor:
        """x2 upsampling cropped at the right / bottom to ``size``.

        Args:
            x (Tensor): Input of shape (N, C, H, W).
            size (Sequence[int]): Target ``(H_out, W_out)``, at most
                ``(2 * H, 2 * W)``.

        Returns:
            Tensor: Shape (N, C, H_out, W_out).
        """
        if self.aligned_up is not None:
            return self.aligned_up(x, size)
        out_h, out_w = int(size[0]), int(size[1])
        height, width = x.shape[-2:]
        if not (0 < out_h <= 2 * height and 0 < out_w <= 2 * width):
            raise ValueError(
                f'DR1Basis cannot upsample {(height, width)} x2 and crop to '
                f'{(out_h, out_w)}')
        x = F.interpolate(
            x, scale_factor=2, mode='bilinear', align_corners=False)
        return x[:, :, :out_h, :out_w]

    def _check_inputs(self, fpn_feats: Sequence[Tensor],
                      contexts: Optional[Sequence[Tensor]]) -> None:
        if len(fpn_feats) != self.num_levels:
            raise ValueError(
                f'DR1Basis expects {self.num_levels} FPN levels (finest '
                f'first), got {len(fpn_feats)}')
        batch = fpn_feats[0].shape[0]
        for lvl, feat in enumerate(fpn_feats):
            if (feat.dim() != 4 or feat.shape[0] != batch
                    or feat.shape[1] != self.in_channels):
                raise ValueError(
                    f'DR1Basis: FPN level {lvl} must have shape ({batch}, '
                    f'{self.in_channels}, H, W), got {tuple(feat.shape)}')
        for lvl in range(self.num_levels - 1):
            fine = fpn_feats[lvl].shape[-2:]
            coarse = fpn_feats[lvl + 1].shape[-2:]
            if not all(2 * c - 1 <= f <= 2 * c for f, c in zip(fine, coarse)):
                raise ValueError(
                    f'DR1Basis: FPN level {lvl} has size {tuple(fine)} and '
                    f'level {lvl + 1} {tuple(coarse)}; each level must be '
                    'the ceil half of the previous one (finest first)')
        if contexts is None:
            return
        if len(contexts) != self.num_levels:
            raise ValueError(
                f'DR1Basis expects {self.num_levels} context maps, got '
                f'{len(contexts)}')
        for lvl, (ctx, feat) in enumerate(zip(contexts, fpn_feats)):
            expected = (batch, 2 * self.channels) + tuple(feat.shape[-2:])
            if tuple(ctx.shape) != expected:
                raise ValueError(
                    f'DR1Basis: context of level {lvl} must have shape '
                    f'{expected} (N, 2 * channels, H, W of the FPN level), '
                    f'got {tuple(ctx.shape)}')

    def forward(self,
                fpn_feats: Sequence[Tensor],
                contexts: Optional[Sequence[Tensor]] = None,
                output_size: Optional[Sequence[int]] = None) -> Tensor:
        """Compute the basis features (Eq. 6).

        Args:
            fpn_feats (Sequence[Tensor]): ``num_levels`` FPN maps, finest
                first (P3, P4, ...), level ``l`` of shape
                (N, in_channels, H_l, W_l) with
                ``H_{l+1} = ceil(H_l / 2)`` (same for W); with
                ``fine_level`` one more map first (P2, whose size is the
                basis size).
            contexts (Sequence[Tensor], optional): ``num_levels`` raw
                context maps ``Ctx^l`` of shape (N, 2 * channels, H_l, W_l):
                channels ``[:C]`` are ``A^l`` (pre factor), ``[C:]`` are
                ``B^l`` (post factor). None: no modulation (the plain
                decoder). Defaults to None.
            output_size (Sequence[int], optional): ``(H_out, W_out)`` of the
                basis, at most ``(2 * H_0, 2 * W_0)``. Defaults to None:
                the constructor's ``output_size``, else
                ``(2 * H_0, 2 * W_0)``.

        Returns:
            Tensor: Basis of shape (N, channels, H_out, W_out).
        """
        fine = None
        if self.fine_level:
            if len(fpn_feats) != self.num_levels + 1:
                raise ValueError(
                    f'DR1Basis(fine_level=True) expects {self.num_levels + 1}'
                    f' FPN levels (P2 first), got {len(fpn_feats)}')
            fine, fpn_feats = fpn_feats[0], tuple(fpn_feats[1:])
        self._check_inputs(fpn_feats, contexts)
        output_size = self._check_size(output_size, 'output_size')
        if output_size is None:
            output_size = self.output_size
        if output_size is None:
            h0, w0 = fpn_feats[0].shape[-2:]
            output_size = (2 * h0, 2 * w0)
            if fine is not None:
                output_size = tuple(fine.shape[-2:])
        if fine is not None:
            p3 = fpn_feats[0].shape[-2:]
            if (fine.dim() != 4 or fine.shape[:2] != fpn_feats[0].shape[:2]
                    or tuple(fine.shape[-2:]) != tuple(output_size)
                    or not all(2 * c - 1 <= f <= 2 * c
                               for f, c in zip(fine.shape[-2:], p3))):
                raise ValueError(
                    'DR1Basis: the fine level (P2) must have shape (N, '
                    f'{self.in_channels}, H, W) with (H, W) the basis size '
                    f'{tuple(output_size)} and the ceil double of the size '
                    f'{tuple(p3)} of P3, got {tuple(fine.shape)}')

        c = self.channels
        out = None
        for lvl in range(self.num_levels - 1, -1, -1):
            feat = fpn_feats[lvl]
            x = self.reduce_convs[lvl](feat)
            if out is not None:
                x = x + self.up2(out, feat.shape[-2:])
            a = b = None
            if contexts is not None:
                if self.use_pre:
                    a = contexts[lvl][:, :c]
                if self.use_post:
                    b = contexts[lvl][:, c:]
            out = self.dr1_convs[lvl](x, a, b)

        basis = self.up2(out, output_size)
        if fine is not None:
            basis = basis + self.fine_reduce(fine)
        if self.final_conv is not None:
            basis = self.final_conv(basis)
        return basis

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, channels={self.channels}, '
                f'num_levels={self.num_levels}, use_pre={self.use_pre}, '
                f'use_post={self.use_post}, '
                f'factor_mode={self.factor_mode!r}, '
                f'upsample={self.upsample!r}, '
                f'output_size={self.output_size}, '
                f'fine_level={self.fine_level}')
