# Copyright (c) mmdr1 contributors. All rights reserved.
"""SpatialFlow's RetinaNet head with four sub-networks and the flows.

See ``shared/spec/spatialflow.md`` sections 2.2 (the four parallel
sub-networks), 2.3 (the exact wiring of the spatial information flows),
2.4 (the deformable variant) and 8 (checkpoint key names); paper (Chen et
al., "SpatialFlow: Bridging All Tasks for Panoptic Segmentation", TCSVT
2020) sections III-B and III-C.
"""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.ops import ModulatedDeformConv2d
from mmdet.models.dense_heads import RetinaHead
from mmdet.models.utils import multi_apply
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from torch import Tensor

#: Channels of a DCNv2 offset/mask conv for a 3x3 kernel, one deform group:
#: 9 x-offsets, 9 y-offsets and 9 modulation logits (spec 2.4).
DCN_OFFSET_CHANNELS = 27


class DeformFlowConvModule(nn.Module):
    """3x3 DCNv2 conv (+ optional norm) + ReLU with external offsets.

    The tower stage of the deformable variant (spec 2.4): mmcv's stock
    :class:`ConvModule` does not forward ``offset`` / ``mask`` to its conv
    (the reference patched mmcv for that), so this small module calls
    :class:`mmcv.ops.ModulatedDeformConv2d` itself. The conv sits under
    ``.conv`` as in a :class:`ConvModule`, so the reference's checkpoint
    keys (``cls_convs.{i}.conv.weight``) keep their suffix.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict, optional): Norm after the conv (the conv then has
            no bias). Defaults to None (bias, no norm; the reference).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: OptConfigType = None) -> None:
        super().__init__()
        self.conv = ModulatedDeformConv2d(
            in_channels,
            out_channels,
            3,
            padding=1,
            deform_groups=1,
            bias=norm_cfg is None)
        self.norm = None
        if norm_cfg is not None:
            _, self.norm = build_norm_layer(norm_cfg, out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        """``ReLU(norm(MDCN(x, offset, mask)))``.

        Args:
            x (Tensor): (N, C_in, H, W) input.
            offset (Tensor): (N, 18, H, W) offsets (y, x per kernel tap, as
                mmcv's ``ModulatedDeformConv2dPack`` orders them).
            mask (Tensor): (N, 9, H, W) modulation in [0, 1].

        Returns:
            Tensor: (N, C_out, H, W).
        """
        x = self.conv(x, offset, mask)
        if self.norm is not None:
            x = self.norm(x)
        return self.activate(x)


@MODELS.register_module()
class SpatialFlowHead(RetinaHead):
    """RetinaNet head with SpatialFlow's four sub-networks and flows.

    Sub-networks (spec 2.2): ``reg`` and ``cls`` (``stacked_convs`` 3x3
    conv + ReLU stages on every level, as :class:`RetinaHead`), ``stuff``
    (``stacked_stuff_convs`` stages) and ``thing`` (``stacked_thing_convs``
    stages), the last two on the first ``num_seg_levels`` levels only
    (P3-P5). Weights are shared across levels.

    Flows (spec 2.3): each flow is a 3x3 conv with bias and no norm or
    activation, whose output is added to the input of the receiving
    sub-network's conv. The source is the reg feature after the reg conv of
    the same stage (post-ReLU). Per level, with ``reg_0 = x``::

        reg_i   = ReLU(RegConv_i(reg_{i-1}))                   i = 1..R
        cls_i   = ReLU(ClsConv_i(cls_{i-1} + A_cls_i(reg_i)))  cls_0 = x
        stuff_j = ReLU(StuffConv_j(stuff_{j-1} + A_st_j(reg_{R-S+j})))
        thing_0 = x + S(stuff_S)                               (semantic flow)
        thing_k = ReLU(ThingConv_k(thing_{k-1} + A_th_k(reg_{R-T+k})))

    with ``R = stacked_convs``, ``S = stacked_stuff_convs`` and
    ``T = stacked_thing_convs``: the stuff and thing towers are aligned to
    the LAST stages of the reg tower. For the reference's ``R = S = 4``,
    ``T = 1`` this is exactly its wiring (stuff stage i takes reg_i; the
    single thing conv takes the final reg and the final stuff feature,
    ``thing = ReLU(W (x + T(reg_4) + S(stuff_4)))``); other depths are a
    generalisation (the reference silently mis-wires them, spec 11). There
    is no flow into reg and none from cls; nothing is detached, so the reg
    tower gets gradients from every consumer.

    A flow exists when its switch is on and its receiving tower has at
    least one conv (the semantic flow: when the thing tower has one; with
    ``stacked_stuff_convs=0`` its source is ``x``). A tower with 0 convs
    outputs ``x`` (as :class:`RetinaHead` with ``stacked_convs=0``), so
    ``stacked_stuff_convs=0, stacked_thing_convs=0`` is "RetinaNet with
    flows" (only the reg -> cls flow; spec 2.3, paper Table X), usable in
    mmdet's stock ``RetinaNet``.

    Deformable variant (spec 2.4): for the stage indices in
    ``dcn_{cls,stuff,thing}_convs_idx`` the tower conv is a DCNv2
    (:class:`DeformFlowConvModule`) and that stage's flow conv outputs 27
    channels computed from ``feat + reg``; ``o1, o2, m = chunk(out, 3)``,
    ``offset = cat(o1, o2)``, ``mask = sigmoid(m)`` (mmcv's
    ``ModulatedDeformConv2dPack`` convention), and ``reg`` is NOT added to
    the feature. For the first thing stage the offsets are computed from
    ``x + reg`` before the (still additive) semantic flow is added. A DCN
    stage needs its tower's reg flow (the offsets come from it).

    Forward split (mmdet 3.x): :meth:`forward` returns only
    ``(cls_scores, bbox_preds)`` and skips the stuff / thing towers, so the
    stock ``loss`` / ``predict`` / ``loss_and_predict`` of
    :class:`BaseDenseHead` (which call ``self(x)`` and hand the outputs to
    ``loss_by_feat`` / ``predict_by_feat``) work unchanged;
    :meth:`forward_all` additionally returns the stuff and thing features
    and is what :class:`SpatialFlow` calls (once), feeding its first two
    outputs to ``loss_by_feat`` / ``predict_by_feat`` itself.

    Module names (for checkpoint conversion, spec 8; reference name in
    brackets): ``reg_convs``, ``cls_convs``, ``stuff_convs``,
    ``thing_convs`` [``mask_convs``], ``cls_flow_convs``
    [``cls_spatial_flow_convs``], ``stuff_flow_convs``
    [``stuff_spatial_flow_convs``], ``thing_flow_convs``
    [``mask_spatial_flow_convs``], ``semantic_flow_convs.0``
    [``stuff_mask_flow_convs.0``], ``retina_cls``, ``retina_reg``; every
    conv is a :class:`ConvModule` (or :class:`DeformFlowConvModule`) with
    its weights under ``.conv``, as in the reference.

    Init (spec 2.2, 2.1): all tower and flow convs normal std 0.01 and bias
    0 (the DCN convs too, via ``init_cfg``'s layer list), ``retina_cls``
    bias ``bias_init_with_prob(0.01)``.

    Args:
        num_classes (int): Thing classes (80 on COCO).
        in_channels (int): FPN channels.
        stacked_convs (int): Stages of the reg and cls towers. Defaults
            to 4.
        stacked_stuff_convs (int): Stages of the stuff tower. Defaults to
            4 (spec 2.2).
        stacked_thing_convs (int): Stages of the thing tower. Defaults to
            1 (spec 2.2).
        num_seg_levels (int): Leading levels (P3, P4, P5) with stuff and
            thing towers. Defaults to 3.
        with_reg_cls_flow (bool): reg -> cls flow at every cls stage.
            Defaults to True.
        with_reg_stuff_flow (bool): reg -> stuff flow at every stuff stage.
            Defaults to True.
        with_reg_thing_flow (bool): reg -> thing flow at every thing stage.
            Defaults to True.
        with_semantic_flow (bool): stuff -> thing flow (a 3x3 conv on the
            final stuff feature added to the thing tower's input).
            Defaults to True.
        dcn_cls_convs_idx (Sequence[int], optional): cls stages that are
            DCNv2 with flow-driven offsets. Defaults to None (none; the DCN
            config uses ``(0, 1, 2, 3)``).
        dcn_stuff_convs_idx (Sequence[int], optional): Same for stuff.
            Defaults to None (DCN config: ``(0, 1, 2, 3)``).
        dcn_thing_convs_idx (Sequence[int], optional): Same for thing.
            Defaults to None (DCN config: ``(0, )``).
        conv_cfg (dict, optional): Conv config of the plain tower convs.
            Defaults to None.
        norm_cfg (dict, optional): Norm of the tower convs (never of the
            flows). Defaults to None (the reference: no norm).
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None: :attr:`DEFAULT_INIT_CFG` (RetinaNet's, normal
            0.01 and ``retina_cls`` prior 0.01, extended to
            ``ModulatedDeformConv2d``).
        **kwargs: :class:`RetinaHead` / :class:`AnchorHead` arguments
            (``feat_channels``, ``anchor_generator``, ``bbox_coder``,
            ``loss_cls``, ``loss_bbox``, ``train_cfg``, ``test_cfg``...).
    """

    #: RetinaNet's init (spec 2.1, 2.2) extended to the DCN convs: normal
    #: std 0.01, bias 0; ``retina_cls`` bias ``bias_init_with_prob(0.01)``.
    DEFAULT_INIT_CFG = dict(
        type='Normal',
        layer=['Conv2d', 'ModulatedDeformConv2d'],
        std=0.01,
        override=dict(
            type='Normal', name='retina_cls', std=0.01, bias_prob=0.01))

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 stacked_convs: int = 4,
                 stacked_stuff_convs: int = 4,
                 stacked_thing_convs: int = 1,
                 num_seg_levels: int = 3,
                 with_reg_cls_flow: bool = True,
                 with_reg_stuff_flow: bool = True,
                 with_reg_thing_flow: bool = True,
                 with_semantic_flow: bool = True,
                 dcn_cls_convs_idx: Optional[Sequence[int]] = None,
                 dcn_stuff_convs_idx: Optional[Sequence[int]] = None,
                 dcn_thing_convs_idx: Optional[Sequence[int]] = None,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 **kwargs) -> None:
        if init_cfg is None:
            init_cfg = copy.deepcopy(self.DEFAULT_INIT_CFG)
        for name, value in (('stacked_stuff_convs', stacked_stuff_convs),
                            ('stacked_thing_convs', stacked_thing_convs),
                            ('num_seg_levels', num_seg_levels)):
            if value < 0:
                raise ValueError(f'{name} must be >= 0, got {value}')
        self.stacked_stuff_convs = stacked_stuff_convs
        self.stacked_thing_convs = stacked_thing_convs
        self.num_seg_levels = num_seg_levels
        self.with_reg_cls_flow = with_reg_cls_flow
        self.with_reg_stuff_flow = with_reg_stuff_flow
        self.with_reg_thing_flow = with_reg_thing_flow
        self.with_semantic_flow = with_semantic_flow
        check = self._check_dcn_idx
        self.dcn_cls_convs_idx = check('cls', dcn_cls_convs_idx, stacked_convs,
                                       with_reg_cls_flow)
        self.dcn_stuff_convs_idx = check('stuff', dcn_stuff_convs_idx,
                                         stacked_stuff_convs,
                                         with_reg_stuff_flow)
        self.dcn_thing_convs_idx = check('thing', dcn_thing_convs_idx,
                                         stacked_thing_convs,
                                         with_reg_thing_flow)
        for name, depth, flow in (('stacked_stuff_convs', stacked_stuff_convs,
                                   with_reg_stuff_flow),
                                  ('stacked_thing_convs', stacked_thing_convs,
                                   with_reg_thing_flow)):
            if flow and depth > stacked_convs:
                raise ValueError(
                    f'{name}={depth} > stacked_convs={stacked_convs}: the '
                    'reg flows need a reg stage per receiving stage')
        super().__init__(
            num_classes,
            in_channels,
            stacked_convs=stacked_convs,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            init_cfg=init_cfg,
            **kwargs)

    @staticmethod
    def _check_dcn_idx(name: str, idx: Optional[Sequence[int]], depth: int,
                       with_flow: bool) -> Tuple[int, ...]:
        """Validated DCN stage indices of one tower (empty when None)."""
        if idx is None:
            return ()
        idx = tuple(int(i) for i in idx)
        bad = [i for i in idx if not 0 <= i < depth]
        if bad:
            raise ValueError(f'dcn_{name}_convs_idx {bad} out of range for '
                             f'a {name} tower of {depth} stages')
        if idx and not with_flow:
            raise ValueError(
                f'dcn_{name}_convs_idx needs with_reg_{name}_flow=True: the '
                'DCN offsets come from the reg flow (spec 2.4)')
        return idx

    # ------------------------------------------------------------- layers
    def _tower(self, depth: int, dcn_idx: Sequence[int]) -> nn.ModuleList:
        """``depth`` 3x3 conv (+ norm) + ReLU stages, DCN at ``dcn_idx``."""
        convs = nn.ModuleList()
        chn = self.in_channels
        for i in range(depth):
            if i in dcn_idx:
                convs.append(
                    DeformFlowConvModule(chn, self.feat_channels,
                                         self.norm_cfg))
            else:
                convs.append(
                    ConvModule(
                        chn,
                        self.feat_channels,
                        3,
                        stride=1,
                        padding=1,
                        conv_cfg=self.conv_cfg,
                        norm_cfg=self.norm_cfg))
            chn = self.feat_channels
        return convs

    def _flows(self, depth: int, dcn_idx: Sequence[int],
               enabled: bool) -> Optional[nn.ModuleList]:
        """One adaptation conv per receiving stage (None when off).

        256 -> 256 (added to the stage's input), or 256 -> 27 at DCN
        stages (offsets and modulation); 3x3, bias, no norm or activation.
        """
        if not enabled or depth == 0:
            return None
        return nn.ModuleList(
            ConvModule(
                self.feat_channels,
                DCN_OFFSET_CHANNELS if i in dcn_idx else self.feat_channels,
                3,
                padding=1,
                norm_cfg=None,
                act_cfg=None) for i in range(depth))

    def _init_layers(self) -> None:
        """Towers, flows and the RetinaNet predictors."""
        if self.in_channels != self.feat_channels and (
                self.with_reg_cls_flow or self.with_reg_stuff_flow
                or self.with_reg_thing_flow or self.with_semantic_flow):
            # flows are added to x (stage 0 input) and computed from x + reg
            raise ValueError('SpatialFlowHead: the flows need in_channels '
                             f'({self.in_channels}) == feat_channels '
                             f'({self.feat_channels})')
        self.relu = nn.ReLU(inplace=True)
        self.reg_convs = self._tower(self.stacked_convs, ())
        self.cls_convs = self._tower(self.stacked_convs,
                                     self.dcn_cls_convs_idx)
        self.stuff_convs = self._tower(self.stacked_stuff_convs,
                                       self.dcn_stuff_convs_idx)
        self.thing_convs = self._tower(self.stacked_thing_convs,
                                       self.dcn_thing_convs_idx)
        self.cls_flow_convs = self._flows(self.stacked_convs,
                                          self.dcn_cls_convs_idx,
                                          self.with_reg_cls_flow)
        self.stuff_flow_convs = self._flows(self.stacked_stuff_convs,
                                            self.dcn_stuff_convs_idx,
                                            self.with_reg_stuff_flow)
        self.thing_flow_convs = self._flows(self.stacked_thing_convs,
                                            self.dcn_thing_convs_idx,
                                            self.with_reg_thing_flow)
        # a one-entry list (reference key ``stuff_mask_flow_convs.0``): a
        # ConvModule as a direct child would be re-initialised by its own
        # ``init_weights`` (Kaiming) after ``init_cfg``'s normal init
        self.semantic_flow_convs = None
        if self.with_semantic_flow and self.stacked_thing_convs > 0:
            self.semantic_flow_convs = nn.ModuleList([
                ConvModule(
                    self.feat_channels,
                    self.feat_channels,
                    3,
                    padding=1,
                    norm_cfg=None,
                    act_cfg=None)
            ])
        pred_chn = self.feat_channels if self.stacked_convs else \
            self.in_channels
        self.retina_cls = nn.Conv2d(
            pred_chn,
            self.num_base_priors * self.cls_out_channels,
            3,
            padding=1)
        self.retina_reg = nn.Conv2d(
            pred_chn,
            self.num_base_priors * self.bbox_coder.encode_size,
            3,
            padding=1)

    # ------------------------------------------------------------ forward
    @staticmethod
    def _stage(feat: Tensor,
               reg: Tensor,
               conv: nn.Module,
               flow: Optional[nn.Module],
               extra: Optional[Tensor] = None) -> Tensor:
        """One receiving stage: its flow, then its conv.

        Args:
            feat (Tensor): (N, C, H, W) the stage's input (previous output
                of the same tower).
            reg (Tensor): (N, C, H, W) the reg feature of the aligned stage
                (after its conv and ReLU).
            conv (nn.Module): The tower conv (ConvModule or
                :class:`DeformFlowConvModule`).
            flow (nn.Module, optional): The adaptation conv, None when the
                flow is off.
            extra (Tensor, optional): (N, C, H, W) added to the input after
                the DCN offsets are computed (the semantic flow).

        Returns:
            Tensor: (N, C, H, W) the stage's output.
        """
        if isinstance(conv, DeformFlowConvModule):
            out = flow(feat + reg)
            o1, o2, m = torch.chunk(out, 3, dim=1)
            if extra is not None:
                feat = feat + extra
            return conv(feat, torch.cat((o1, o2), dim=1), m.sigmoid())
        if extra is not None:  # spec 2.3 order: (x + S(stuff)) + A(reg)
            feat = feat + extra
        if flow is not None:
            feat = feat + flow(reg)
        return conv(feat)

    def _flow_tower(self,
                    x: Tensor,
                    regs: List[Tensor],
                    convs: nn.ModuleList,
                    flows: Optional[nn.ModuleList],
                    first_extra: Optional[Tensor] = None) -> Tensor:
        """Run a receiving tower aligned to the last reg stages.

        Args:
            x (Tensor): (N, C, H, W) FPN feature.
            regs (list[Tensor]): ``[reg_1, ..., reg_R]`` of this level.
            convs (nn.ModuleList): The tower's stages.
            flows (nn.ModuleList, optional): Its flow convs.
            first_extra (Tensor, optional): Added to the first stage's input
                (the semantic flow of the thing tower).

        Returns:
            Tensor: (N, C, H, W) the tower's output (``x`` (+ extra) when
            it has no stage).
        """
        feat = x
        offset = len(regs) - len(convs)
        for i, conv in enumerate(convs):
            flow = flows[i] if flows is not None else None
            reg = regs[offset + i] if flow is not None else None
            feat = self._stage(feat, reg, conv, flow,
                               first_extra if i == 0 else None)
        if len(convs) == 0 and first_extra is not None:
            feat = feat + first_extra
        return feat

    def _reg_tower(self, x: Tensor) -> List[Tensor]:
        """``[reg_1, ..., reg_R]``: every reg stage's output."""
        regs = []
        feat = x
        for conv in self.reg_convs:
            feat = conv(feat)
            regs.append(feat)
        return regs

    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Dense outputs of one level (reg and cls towers only).

        Args:
            x (Tensor): (N, C, H, W) FPN feature.

        Returns:
            tuple[Tensor, Tensor]: ``cls_score`` (N, A * K, H, W) and
            ``bbox_pred`` (N, A * 4, H, W).
        """
        regs = self._reg_tower(x)
        cls_feat = self._flow_tower(x, regs, self.cls_convs,
                                    self.cls_flow_convs)
        reg_feat = regs[-1] if regs else x
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat)

    def forward_single_all(self,
                           x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """All four sub-networks on one level (spec 2.3 pseudo-code).

        Args:
            x (Tensor): (N, C, H, W) FPN feature (P3-P5).

        Returns:
            tuple[Tensor]: ``cls_score`` (N, A * K, H, W), ``bbox_pred``
            (N, A * 4, H, W), ``stuff_feat`` (N, C, H, W) and
            ``thing_feat`` (N, C, H, W).
        """
        regs = self._reg_tower(x)
        cls_feat = self._flow_tower(x, regs, self.cls_convs,
                                    self.cls_flow_convs)
        stuff_feat = self._flow_tower(x, regs, self.stuff_convs,
                                      self.stuff_flow_convs)
        semantic = None
        if self.semantic_flow_convs is not None:
            semantic = self.semantic_flow_convs[0](stuff_feat)
        thing_feat = self._flow_tower(x, regs, self.thing_convs,
                                      self.thing_flow_convs, semantic)
        reg_feat = regs[-1] if regs else x
        return (self.retina_cls(cls_feat), self.retina_reg(reg_feat),
                stuff_feat, thing_feat)

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], ...]:
        """Dense outputs only, for the stock :class:`BaseDenseHead` API.

        Args:
            x (tuple[Tensor]): FPN features P3-P7, each (N, C, H_l, W_l).

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``cls_scores`` (per level
            (N, A * K, H_l, W_l)) and ``bbox_preds`` ((N, A * 4, H_l, W_l)).
        """
        return multi_apply(self.forward_single, x)

    def forward_all(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], ...]:
        """All outputs: dense predictions and the segmentation features.

        Args:
            x (tuple[Tensor]): FPN features P3-P7, each (N, C, H_l, W_l).

        Returns:
            tuple[list[Tensor]]: ``cls_scores`` and ``bbox_preds`` on every
            level as :meth:`forward`, and ``stuff_feats`` / ``thing_feats``
            (N, C, H_l, W_l) on the first ``num_seg_levels`` levels (strides
            8, 16, 32).
        """
        if len(x) < self.num_seg_levels:
            raise ValueError(f'SpatialFlowHead: {len(x)} levels given, '
                             f'num_seg_levels={self.num_seg_levels}')
        cls_scores, bbox_preds, stuff_feats, thing_feats = [], [], [], []
        for level, feat in enumerate(x):
            if level < self.num_seg_levels:
                cls_score, bbox_pred, stuff, thing = \
                    self.forward_single_all(feat)
                stuff_feats.append(stuff)
                thing_feats.append(thing)
            else:
                cls_score, bbox_pred = self.forward_single(feat)
            cls_scores.append(cls_score)
            bbox_preds.append(bbox_pred)
        return cls_scores, bbox_preds, stuff_feats, thing_feats
