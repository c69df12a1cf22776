# Copyright (c) mmdr1 contributors. All rights reserved.
"""Tests of DR1Conv (dr1mask spec section 1, paper section 3.1)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS

from mmdr1.models.layers.dr1conv import DR1Conv


def plain_conv_like(module):
    conv = nn.Conv2d(
        module.conv.in_channels,
        module.conv.out_channels,
        module.conv.kernel_size,
        stride=module.conv.stride,
        padding=module.conv.padding,
        dilation=module.conv.dilation,
        bias=module.conv.bias is not None)
    conv.load_state_dict(module.conv.state_dict())
    return conv


@pytest.mark.parametrize('kwargs', [
    dict(use_pre=False, use_post=False),
    dict(),
    dict(kernel_size=1, bias=False),
    dict(stride=2, dilation=2, padding=2),
])
def test_unmodulated_equals_plain_conv(kwargs):
    module = DR1Conv(3, 5, **kwargs)
    conv = plain_conv_like(module)
    x = torch.randn(2, 3, 7, 6)
    torch.testing.assert_close(module(x), conv(x))


def test_residual_zero_factors_equal_plain_conv():
    module = DR1Conv(3, 4)
    x = torch.randn(2, 3, 5, 6)
    out = module(x, torch.zeros(2, 3, 5, 6), torch.zeros(2, 4, 5, 6))
    torch.testing.assert_close(out, plain_conv_like(module)(x))


def test_one_by_one_is_rank1_modulated_matrix():
    module = DR1Conv(3, 4, kernel_size=1, factor_mode='direct', bias=False)
    x = torch.randn(2, 3, 4, 5)
    a = torch.randn(2, 3, 4, 5)
    b = torch.randn(2, 4, 4, 5)
    weight = module.conv.weight[:, :, 0, 0]  # (C_out, C_in)
    # per pixel: y = (W ⊙ b aᵀ) x = b ⊙ (W (a ⊙ x))
    expected = torch.einsum('oi,nohw,nihw,nihw->nohw', weight, b, a, x)
    torch.testing.assert_close(module(x, a, b), expected)


@pytest.mark.parametrize('mode', ['residual', 'direct', 'sigmoid'])
def test_factor_modes(mode):
    module = DR1Conv(3, 4, factor_mode=mode)
    x = torch.randn(1, 3, 5, 5)
    a = torch.randn(1, 3, 5, 5)
    b = torch.randn(1, 4, 5, 5)
    f = dict(
        residual=lambda t: 1 + t,
        direct=lambda t: t,
        sigmoid=lambda t: 2 * torch.sigmoid(t))[mode]
    conv = plain_conv_like(module)
    torch.testing.assert_close(module(x, a, b), conv(x * f(a)) * f(b))
    torch.testing.assert_close(module(x, a=a), conv(x * f(a)))
    torch.testing.assert_close(module(x, b=b), conv(x) * f(b))


def test_gradcheck():
    torch.manual_seed(0)
    module = DR1Conv(2, 3).double()
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    a = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    weight = module.conv.weight.detach().clone().requires_grad_(True)
    bias = module.conv.bias.detach().clone().requires_grad_(True)

    def run(x, a, b, weight, bias):
        params = {'conv.weight': weight, 'conv.bias': bias}
        return torch.func.functional_call(module, params, (x, a, b))

    assert torch.autograd.gradcheck(run, (x, a, b, weight, bias))


def test_norm_and_act_after_modulation():
    module = DR1Conv(3, 4, norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'))
    assert module.conv.bias is None
    assert set(module.state_dict()) >= {
        'conv.weight', 'norm.weight', 'norm.bias', 'norm.running_mean'
    }
    with torch.no_grad():
        module.norm.running_mean.uniform_(-1, 1)
        module.norm.running_var.uniform_(0.5, 2)
        module.norm.weight.uniform_(0.5, 2)
        module.norm.bias.uniform_(-1, 1)
    module.eval()
    x = torch.randn(2, 3, 5, 4)
    a = torch.randn(2, 3, 5, 4)
    b = torch.randn(2, 4, 5, 4)
    y = plain_conv_like(module)(x * (1 + a)) * (1 + b)
    bn = module.norm
    expected = F.relu(
        F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                     False, 0., bn.eps))
    torch.testing.assert_close(module(x, a, b), expected)


def test_stride2_odd_size():
    module = DR1Conv(3, 4, stride=2)
    x = torch.randn(1, 3, 7, 9)
    a = torch.randn(1, 3, 7, 9)
    b = torch.randn(1, 4, 4, 5)  # ceil(7 / 2), ceil(9 / 2)
    out = module(x, a, b)
    assert out.shape == (1, 4, 4, 5)
    torch.testing.assert_close(out,
                               plain_conv_like(module)(x * (1 + a)) * (1 + b))


def test_shape_validation():
    module = DR1Conv(3, 4, stride=2)
    x = torch.randn(1, 3, 7, 9)
    with pytest.raises(ValueError, match='x must have shape'):
        module(torch.randn(1, 2, 7, 9))
    with pytest.raises(ValueError, match='a must have the shape of x'):
        module(x, a=torch.randn(1, 3, 7, 8))
    with pytest.raises(ValueError, match='b must have the shape'):
        module(x, b=torch.randn(1, 4, 7, 9))
    with pytest.raises(ValueError, match='use_pre=False but a was given'):
        DR1Conv(3, 4, use_pre=False)(x, a=torch.randn(1, 3, 7, 9))
    with pytest.raises(ValueError, match='use_post=False but b was given'):
        DR1Conv(3, 4, use_post=False)(x, b=torch.randn(1, 4, 7, 9))
    with pytest.raises(ValueError, match='factor_mode'):
        DR1Conv(3, 4, factor_mode='exp')
    with pytest.raises(ValueError, match='bias'):
        DR1Conv(3, 4, bias='yes')


def test_build_from_registry():
    module = MODELS.build(
        dict(
            type='DR1Conv',
            in_channels=3,
            out_channels=4,
            use_pre=False,
            factor_mode='sigmoid',
            norm_cfg=dict(type='GN', num_groups=2),
            act_cfg=dict(type='ReLU')))
    assert isinstance(module, DR1Conv)
    assert module.conv.kernel_size == (3, 3) and module.conv.padding == (1, 1)
    assert module.conv.bias is None
    assert "use_pre=False, use_post=True, factor_mode='sigmoid'" in repr(
        module)
    assert torch.equal(module.norm.weight, torch.ones(4))
    assert module(torch.randn(1, 3, 4, 4)).min() >= 0
