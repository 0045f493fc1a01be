"""BatchNorm subclasses with a forward of their own (timm's BatchNormAct2d: BN, then an activation) keep
that forward in low mode, with each policy's statistics and affine parameters: compared with a plain
BatchNorm2d of the same state followed by the same activation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.integrations import need
from trainer.method.bn_policy import BN_POLICIES, LOW_BUFFERS, convert_batchnorm, has_own_forward


class BatchNormTwiceReLU(nn.BatchNorm2d):
    """A BN subclass in timm's style: nn.BatchNorm's forward, then more (here 2·relu)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * torch.relu(super().forward(x))


def _pair(kind: str, momentum):
    torch.manual_seed(0)
    if kind == "timm":
        need("timm")
        from timm.layers import BatchNormAct2d

        layer, act = BatchNormAct2d(4, momentum=momentum, act_layer=nn.ReLU), torch.relu
    else:
        layer, act = BatchNormTwiceReLU(4, momentum=momentum), lambda y: 2 * torch.relu(y)
    plain = nn.BatchNorm2d(4, momentum=momentum)
    with torch.no_grad():
        for bn in (layer, plain):
            bn.weight.copy_(torch.linspace(0.5, 1.5, 4))
            bn.bias.copy_(torch.linspace(-0.2, 0.3, 4))
            bn.running_mean.copy_(torch.linspace(-1, 1, 4))
            bn.running_var.copy_(torch.linspace(0.5, 2, 4))
    return layer, plain, act


def _state(bn: nn.Module) -> dict[str, torch.Tensor]:
    names = ["running_mean", "running_var", "num_batches_tracked", *LOW_BUFFERS, "weight", "bias", "weight_low",
             "bias_low"]
    return {n: getattr(bn, n).detach().clone() for n in names if hasattr(bn, n)}


@pytest.mark.parametrize("kind", ["subclass", "timm"])
@pytest.mark.parametrize("policy", BN_POLICIES)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_low_mode_runs_the_subclass_forward_with_the_policy(kind, policy, momentum):
    layer, plain, act = _pair(kind, momentum)
    assert has_own_forward(type(layer)) and not has_own_forward(nn.BatchNorm2d)
    assert not has_own_forward(nn.SyncBatchNorm)  # keeps the plain mixin, as before
    for bn in (layer, plain):
        convert_batchnorm(bn, policy)
        bn.low_mode = True
    x = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(1)) * 2 + 0.5
    for training in (True, True, False):  # two training steps (statistics move), then eval
        layer.train(training)
        plain.train(training)
        assert torch.equal(layer(x), act(plain(x))), (policy, training)
        mine, reference = _state(layer), _state(plain)
        assert mine.keys() == reference.keys()
        for name in mine:
            assert torch.equal(mine[name], reference[name]), (policy, training, name)
    # private: the low step's gradient reaches weight_low / bias_low, never weight / bias
    if policy == "private":
        layer.train()
        layer(x).sum().backward()
        assert layer.weight_low.grad is not None and layer.weight.grad is None
    # full mode is the subclass's own forward, untouched
    fresh, _, _ = _pair(kind, momentum)
    reference = copy.deepcopy(fresh)
    convert_batchnorm(fresh, policy)
    fresh.train()
    reference.train()
    assert torch.equal(fresh(x), reference(x))


def test_swaps_are_undone_when_the_forward_fails():
    layer, _, _ = _pair("subclass", 0.1)
    convert_batchnorm(layer, "private")
    layer.low_mode = True
    layer.train()
    weight, mean = layer.weight, layer.running_mean
    with pytest.raises(ValueError, match="4D input"):
        layer(torch.zeros(2, 4, 3))
    assert layer.weight is weight and layer.running_mean is mean and layer.track_running_stats
