# Copyright (c) mmdr1 contributors. All rights reserved.
"""Dynamic rank-1 convolution (DR1Conv).

DR1Mask paper section 3.1, Eq. 2-4; dr1mask spec section 1.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.model import BaseModule, constant_init, kaiming_init
from torch import Tensor


@MODELS.register_module()
class DR1Conv(BaseModule):
    """Dynamic rank-1 convolution: a static conv modulated per pixel.

    DR1Mask paper section 3.1, Eq. 2-4; dr1mask spec section 1. With a
    static ``k x k`` weight ``W`` (and optional bias), a dynamic "pre"
    factor map ``A`` (N, C_in, H, W) and a dynamic "post" factor map ``B``
    (N, C_out, H_out, W_out)::

        Y = (W * (X ⊙ f(A)) + bias) ⊙ f(B)       # Eq. 4
        Y = activation(norm(Y))                   # when configured

    where ``*`` is the ordinary convolution and ``⊙`` the element-wise
    product. Rank-1 view (Eq. 2-3): for a 1x1 kernel at one pixel this is
    ``y = b ⊙ (W (a ⊙ x)) = (W ⊙ b aᵀ) x``, i.e. the static matrix ``W`` is
    modulated by the rank-1 matrix ``b aᵀ`` built from that pixel's
    factors, a different dynamic kernel at every location, yet computed as
    two element-wise products around one static convolution. For a
    ``k x k`` kernel the pre factor scales every input pixel of the patch
    by its own ``a`` (Eq. 3).

    The raw maps are turned into factors by ``f`` (spec section 1, the
    paper does not say; ``factor_mode``):

    - ``'residual'`` (default): ``f(a) = 1 + a``; zero maps give the plain
      convolution, so a freshly initialised model is the static decoder.
    - ``'direct'``: ``f(a) = a``.
    - ``'sigmoid'``: ``f(a) = 2 * sigmoid(a)`` (1 at ``a = 0``).

    A factor switched off (``use_pre`` / ``use_post`` False) or passed as
    None is the constant 1 (the multiply is skipped); with both off DR1Conv
    is a plain ``ConvModule``-like conv -> norm -> act block (paper Table 1
    baseline).

    State-dict keys: ``conv.weight``, ``conv.bias`` (if any) and the norm
    layer's under ``norm.*``.

    Args:
        in_channels (int): Input channels ``C_in``.
        out_channels (int): Output channels ``C_out``.
        kernel_size (int | tuple[int, int]): Kernel size. Defaults to 3.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int], optional): Zero padding. Defaults
            to None, meaning ``kernel_size // 2``.
        dilation (int | tuple[int, int]): Dilation. Defaults to 1.
        bias (bool | str): Whether the conv has a bias; ``'auto'`` means
            True without a norm layer and False with one (as mmcv's
            ``ConvModule``). Defaults to ``'auto'``.
        use_pre (bool): Whether the pre factor ``A`` is used. Defaults to
            True.
        use_post (bool): Whether the post factor ``B`` is used. Defaults to
            True.
        factor_mode (str): ``'residual'``, ``'direct'`` or ``'sigmoid'``,
            see above. Defaults to ``'residual'``.
        norm_cfg (dict, optional): Norm layer after the modulation.
            Defaults to None (no norm).
        act_cfg (dict, optional): Activation after the norm. Defaults to
            None (no activation).
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None: the conv gets ``kaiming_init`` as in mmcv's
            ``ConvModule`` (``leaky_relu`` gain for a LeakyReLU activation,
            ``relu`` gain otherwise) and the norm weight 1 / bias 0, applied
            at construction.
    """

    FACTOR_MODES = ('residual', 'direct', 'sigmoid')

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]] = 3,
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Optional[Union[int, Tuple[int, int]]] = None,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 bias: Union[bool, str] = 'auto',
                 use_pre: bool = True,
                 use_post: bool = True,
                 factor_mode: str = 'residual',
                 norm_cfg: OptConfigType = None,
                 act_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if factor_mode not in self.FACTOR_MODES:
            raise ValueError(
                f'DR1Conv factor_mode must be one of {self.FACTOR_MODES}, '
                f'got {factor_mode!r}')
        if not (bias == 'auto' or isinstance(bias, bool)):
            raise ValueError(
                f"DR1Conv bias must be a bool or 'auto', got {bias!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.use_pre = bool(use_pre)
        self.use_post = bool(use_post)
        self.factor_mode = factor_mode
        self.with_norm = norm_cfg is not None
        self.with_activation = act_cfg is not None
        self.act_cfg = act_cfg
        if bias == 'auto':
            bias = not self.with_norm
        if padding is None:
            if isinstance(kernel_size, int):
                padding = kernel_size // 2
            else:
                padding = tuple(k // 2 for k in kernel_size)

        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias)
        if self.with_norm:
            self.norm = build_norm_layer(norm_cfg, out_channels)[1]
        else:
            self.norm = None
        if self.with_activation:
            self.activate = build_activation_layer(act_cfg.copy())
        else:
            self.activate = None
        self._init_conv_norm()

    def _init_conv_norm(self) -> None:
        """``ConvModule``'s default init: kaiming conv, constant norm."""
        if self.with_activation and self.act_cfg['type'] == 'LeakyReLU':
            nonlinearity = 'leaky_relu'
            a = self.act_cfg.get('negative_slope', 0.01)
        else:
            nonlinearity = 'relu'
            a = 0
        kaiming_init(self.conv, a=a, nonlinearity=nonlinearity)
        if self.with_norm:
            constant_init(self.norm, 1, bias=0)

    def factor(self, raw: Tensor) -> Tensor:
        """Turn a raw factor map into the multiplicative factor ``f(raw)``.

        Args:
            raw (Tensor): Raw map of any shape.

        Returns:
            Tensor: ``1 + raw``, ``raw`` or ``2 * sigmoid(raw)`` for
            ``factor_mode`` ``'residual'``, ``'direct'``, ``'sigmoid'``.
        """
        if self.factor_mode == 'residual':
            return 1 + raw
        if self.factor_mode == 'direct':
            return raw
        return 2 * torch.sigmoid(raw)

    def forward(self,
                x: Tensor,
                a: Optional[Tensor] = None,
                b: Optional[Tensor] = None) -> Tensor:
        """Modulated convolution, then norm and activation.

        Args:
            x (Tensor): Input of shape (N, C_in, H, W).
            a (Tensor, optional): Raw pre factor of shape (N, C_in, H, W),
                the shape of ``x``. None means the constant factor 1.
                Must be None when ``use_pre`` is False.
            b (Tensor, optional): Raw post factor of shape
                (N, C_out, H_out, W_out), the shape of the conv output.
                None means the constant factor 1. Must be None when
                ``use_post`` is False.

        Returns:
            Tensor: Output of shape (N, C_out, H_out, W_out).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'DR1Conv: x must have shape (N, {self.in_channels}, H, W), '
                f'got {tuple(x.shape)}')
        if a is not None:
            if not self.use_pre:
                raise ValueError('DR1Conv: use_pre=False but a was given')
            if a.shape != x.shape:
                raise ValueError(
                    f'DR1Conv: a must have the shape of x {tuple(x.shape)}, '
                    f'got {tuple(a.shape)}')
            x = x * self.factor(a)
        if b is not None and not self.use_post:
            raise ValueError('DR1Conv: use_post=False but b was given')
        y = self.conv(x)
        if b is not None:
            if b.shape != y.shape:
                raise ValueError(
                    'DR1Conv: b must have the shape of the conv output '
                    f'{tuple(y.shape)} (N, out_channels, H_out, W_out), got '
                    f'{tuple(b.shape)}')
            y = y * self.factor(b)
        if self.norm is not None:
            y = self.norm(y)
        if self.activate is not None:
            y = self.activate(y)
        return y

    def extra_repr(self) -> str:
        return (f'use_pre={self.use_pre}, use_post={self.use_post}, '
                f'factor_mode={self.factor_mode!r}')
