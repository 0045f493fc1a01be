"""The kernel transform T and the converted conv's low-mode path (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from trainer.method.dualmode import DualModeConv2d, convert_to_dual_mode, set_mode
from trainer.method.kernel_pool import pool_kernel, pool_matrix, pool_windows, pooled_size


@pytest.mark.parametrize(
    "k, r, expected",
    [(3, 2, 1), (5, 2, 3), (7, 2, 3), (9, 2, 5), (2, 2, 1), (1, 2, 1), (3, 3, 1), (7, 3, 3)],
)
def test_pooled_size_rule(k, r, expected):
    assert pooled_size(k, r) == expected


def test_windows_match_the_documented_rule():
    assert pool_windows(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]  # 2×2 s2, pad at end
    assert pool_windows(7, 2) == [range(0, 3), range(2, 5), range(4, 7)]  # adaptive, overlapping
    assert pool_windows(3, 2) == [range(0, 3)]


def test_T_3x3_is_the_kernel_mean():
    weight = torch.arange(18, dtype=torch.float32).view(2, 1, 3, 3)
    pooled = pool_kernel(weight)
    assert pooled.shape == (2, 1, 1, 1)
    assert torch.allclose(pooled.flatten(), torch.tensor([4.0, 13.0]), rtol=0, atol=1e-6)


def test_T_5x5_hand_computed():
    weight = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5)
    pooled = pool_kernel(weight, pool_matrix(5, 2, torch.float64), pool_matrix(5, 2, torch.float64))
    expected = torch.tensor(
        [
            [(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2],
            [(10 + 11 + 15 + 16) / 4, (12 + 13 + 17 + 18) / 4, (14 + 19) / 2],
            [(20 + 21) / 2, (22 + 23) / 2, 24.0],
        ],
        dtype=torch.float64,
    )
    assert torch.equal(pooled[0, 0], expected)


def test_T_keeps_a_constant_kernel_constant():
    weight = torch.full((3, 2, 7, 7), 0.5)
    pooled = pool_kernel(weight, pool_matrix(7, 2), pool_matrix(7, 2))
    assert pooled.shape == (3, 2, 3, 3)
    assert torch.allclose(pooled, torch.full_like(pooled, 0.5))


def _converted_conv(kernel: int, groups: int = 1, dtype=torch.float64, channels=(4, 6)) -> nn.Conv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(*channels, kernel, padding=kernel // 2, groups=groups, bias=True).to(dtype)
    holder = nn.Sequential(conv)
    report = convert_to_dual_mode(holder, kernel_sizes=(kernel,))
    assert report.converted == ["0"]
    set_mode(holder, "low")
    return conv


@pytest.mark.parametrize("kernel, groups", [(3, 1), (5, 2), (7, 1)])
def test_gradcheck_low_mode_conv(kernel, groups):
    conv = _converted_conv(kernel, groups, channels=(2, 4))
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_(True)
    bias = conv.bias.detach().clone().requires_grad_(True)

    def f(x, weight, bias):
        return functional_call(conv, {"weight": weight, "bias": bias}, (x,))

    assert f(x, weight, bias).shape == (1, 4, 5, 5)  # 'same'-style padding for the pooled size
    assert torch.autograd.gradcheck(f, (x, weight, bias))


def test_full_kernel_gradient_is_the_chain_rule_3x3():
    conv = _converted_conv(3)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    g = torch.randn(2, 6, 6, 6, dtype=torch.float64)
    (conv(x) * g).sum().backward()
    # By hand: gradient of the 1×1 kernel, then ∂Ŵ/∂W = 1/9 on every tap.
    w_hat = conv.weight.detach().mean(dim=(2, 3), keepdim=True).requires_grad_(True)
    (F.conv2d(x, w_hat, conv.bias.detach()) * g).sum().backward()
    expected = (w_hat.grad / 9).expand_as(conv.weight)
    assert torch.allclose(conv.weight.grad, expected, atol=1e-12)


def test_full_kernel_gradient_is_the_chain_rule_5x5():
    conv = _converted_conv(5)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    g = torch.randn(2, 6, 6, 6, dtype=torch.float64)
    (conv(x) * g).sum().backward()
    p = pool_matrix(5, 2, torch.float64)
    w_hat = (p @ conv.weight.detach() @ p.T).requires_grad_(True)
    (F.conv2d(x, w_hat, conv.bias.detach(), padding=1) * g).sum().backward()
    expected = p.T @ w_hat.grad @ p  # ∂L/∂W = Pᵀ (∂L/∂Ŵ) P
    assert torch.allclose(conv.weight.grad, expected, atol=1e-12)


def test_low_mode_keeps_stride_dilation_and_groups():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=4)
    holder = nn.Sequential(conv)
    convert_to_dual_mode(holder)
    set_mode(holder, "low")
    x = torch.randn(1, 4, 9, 9)
    w_hat = conv.weight.mean(dim=(2, 3), keepdim=True)
    expected = F.conv2d(x, w_hat, conv.bias, stride=2, groups=4)
    assert isinstance(conv, DualModeConv2d)
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_unsupported_padding_is_reported_not_converted():
    holder = nn.Sequential(nn.Conv2d(2, 2, 5, padding=1))
    with pytest.warns(UserWarning, match="no convolution matched"):
        report = convert_to_dual_mode(holder)
    assert report.converted == []
    assert "padding" in report.unsupported["0"]
    assert type(holder[0]) is nn.Conv2d
