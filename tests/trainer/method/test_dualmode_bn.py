"""BatchNorm policies: which running statistics a low step touches, and recalibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.method.bn_policy import load_low_bn_state_dict, low_bn_state_dict
from trainer.method.dualmode import convert_to_dual_mode, get_mode, mode_context, recalibrate_bn, set_mode


def _net(policy: str) -> nn.Sequential:
    """conv(3×3) → BN: the BN sees exactly what low mode changes."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3))
    report = convert_to_dual_mode(net, bn_policy=policy)
    assert report.bn_policy == policy
    assert report.bn_layers == ([] if policy == "shared" else ["1"])
    return net.train()


def _stats(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, int]:
    return bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)


def _low_step(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    with mode_context(net, "low"):
        return net(x)


def _batch_mean(net: nn.Sequential, x: torch.Tensor, mode: str) -> torch.Tensor:
    with torch.no_grad(), mode_context(net, mode):
        return net[0](x).mean(dim=(0, 2, 3))


def test_shared_low_step_updates_the_running_statistics():
    net = _net("shared")
    x = torch.randn(4, 2, 4, 4) + 1.0
    expected = 0.1 * _batch_mean(net, x, "low")  # momentum 0.1 from mean 0
    _low_step(net, x)
    mean, _, count = _stats(net[1])
    assert torch.allclose(mean, expected, atol=1e-6) and count == 1


def test_frozen_low_step_uses_batch_statistics_and_leaves_running_ones():
    net = _net("frozen")
    before = _stats(net[1])
    out = _low_step(net, torch.randn(4, 2, 4, 4) * 3 + 2)
    after = _stats(net[1])
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert after[2] == before[2] == 0
    # normalised with the batch's own statistics (BN weight 1, bias 0 at init)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    net(torch.randn(4, 2, 4, 4))  # a full step still updates them
    assert int(net[1].num_batches_tracked) == 1


def test_separate_keeps_one_set_of_statistics_per_mode():
    net = _net("separate")
    bn = net[1]
    x_low, x_full = torch.randn(4, 2, 4, 4) + 2.0, torch.randn(4, 2, 4, 4) - 1.0
    expected_low = 0.1 * _batch_mean(net, x_low, "low")
    expected_full = 0.1 * _batch_mean(net, x_full, "full")
    _low_step(net, x_low)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    assert torch.allclose(bn.running_mean_low, expected_low, atol=1e-6)
    assert int(bn.num_batches_tracked_low) == 1
    net(x_full)
    assert torch.allclose(bn.running_mean, expected_full, atol=1e-6)
    assert torch.allclose(bn.running_mean_low, expected_low, atol=1e-6)
    # eval in low mode normalises with the low statistics
    net.eval()
    with torch.no_grad(), mode_context(net, "low"):
        conv_out = net[0](x_low)
        expected = (conv_out - bn.running_mean_low[None, :, None, None]) / torch.sqrt(
            bn.running_var_low[None, :, None, None] + bn.eps
        )
        assert torch.allclose(bn(conv_out), expected, atol=1e-5)


def test_separate_state_dict_keys_unchanged_and_low_stats_roundtrip():
    net = _net("separate")
    plain = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3))
    assert list(net.state_dict()) == list(plain.state_dict())
    _low_step(net, torch.randn(4, 2, 4, 4) + 1)
    saved = low_bn_state_dict(net)
    assert sorted(saved) == ["1.num_batches_tracked_low", "1.running_mean_low", "1.running_var_low"]
    other = _net("separate")
    load_low_bn_state_dict(other, saved)
    assert torch.equal(other[1].running_mean_low, net[1].running_mean_low)
    with pytest.raises(KeyError, match="mismatch"):
        load_low_bn_state_dict(other, {})


def test_recalibrate_bn_reestimates_full_mode_statistics():
    net = _net("shared")
    for _ in range(3):
        _low_step(net, torch.randn(4, 2, 4, 4) * 5)  # corrupt the shared statistics
    batches = [torch.randn(4, 2, 4, 4) + i for i in range(3)]
    set_mode(net, "low")
    net.eval()
    used = recalibrate_bn(net, [(b, None) for b in batches])
    assert used == 3
    expected = torch.stack([_batch_mean(net, b, "full") for b in batches]).mean(0)
    assert torch.allclose(net[1].running_mean, expected, atol=1e-5)
    assert net[1].momentum == 0.1 and not net.training and get_mode(net) == "low"
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(net, [])
    assert torch.allclose(net[1].running_mean, expected, atol=1e-5)  # left as it was


def test_reconverting_switches_the_policy():
    net = _net("frozen")
    report = convert_to_dual_mode(net, bn_policy="shared")
    assert report.bn_layers == ["1"]
    _low_step(net, torch.randn(4, 2, 4, 4))
    assert int(net[1].num_batches_tracked) == 1  # shared: the low step counted
