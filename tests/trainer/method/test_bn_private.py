"""bn_policy="private" (RS-Nets): own BN affine parameters and running statistics in low mode."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.integrations import need
from trainer.method.bn_policy import BN_POLICIES, LOW_PARAMETERS, low_bn_state_dict
from trainer.method.dualmode import (
    LOW_KERNELS,
    convert_to_dual_mode,
    has_mode_specific_parameters,
    mode_context,
    set_mode,
)
from trainer.method.models import build_dual_mode_model, build_model, default_preset

LABELS = torch.tensor([0, 1, 2, 3])


def _bns(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _sgd_step(model, opt, mode: str) -> None:
    set_mode(model, mode)
    size = 32 if mode == "full" else 16
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(torch.randn(4, 3, size, size)), LABELS).backward()
    opt.step()


def test_private_in_bn_policies_and_parameters_at_conversion():
    assert "private" in BN_POLICIES
    model, report = build_dual_mode_model("resnet8", bn_policy="private")
    assert report.bn_policy == "private" and len(report.bn_layers) == 9
    for name, bn in _bns(model).items():
        assert isinstance(bn.weight_low, nn.Parameter) and isinstance(bn.bias_low, nn.Parameter)
        assert torch.equal(bn.weight_low, bn.weight) and torch.equal(bn.bias_low, bn.bias)
        assert bn.weight_low.data_ptr() != bn.weight.data_ptr()  # copies, not aliases
        assert hasattr(bn, "running_mean_low")
    assert has_mode_specific_parameters(model)


@pytest.mark.parametrize("low_kernels", LOW_KERNELS)
def test_private_low_step_moves_only_low_affine_and_full_step_only_full(low_kernels):
    torch.manual_seed(0)
    model, _ = build_dual_mode_model("resnet8", bn_policy="private", low_kernels=low_kernels)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # no momentum / weight decay: untouched = equal
    bns = _bns(model)
    before = _snapshot(model)
    _sgd_step(model, opt, "low")
    after_low = _snapshot(model)
    for name in bns:
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(after_low[f"{name}.{key}"], before[f"{name}.{key}"]), (name, key)
        for key in LOW_PARAMETERS:
            assert not torch.equal(after_low[f"{name}.{key}"], before[f"{name}.{key}"]), (name, key)
        assert int(bns[name].num_batches_tracked_low) == 1
    low_stats = low_bn_state_dict(model)
    _sgd_step(model, opt, "full")
    after_full = _snapshot(model)
    for name in bns:
        for key in LOW_PARAMETERS:
            assert torch.equal(after_full[f"{name}.{key}"], after_low[f"{name}.{key}"]), (name, key)
        for key in ("weight", "bias", "running_mean"):
            assert not torch.equal(after_full[f"{name}.{key}"], after_low[f"{name}.{key}"]), (name, key)
    for key, value in low_bn_state_dict(model).items():
        assert torch.equal(value, low_stats[key]), key  # full steps leave the low statistics alone


def test_separate_low_step_still_moves_the_shared_affine_parameters():
    torch.manual_seed(0)
    model, _ = build_dual_mode_model("resnet8", bn_policy="separate")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = _snapshot(model)
    _sgd_step(model, opt, "low")
    assert not torch.equal(model.bn1.weight, before["bn1.weight"])
    assert not has_mode_specific_parameters(model)


def test_private_eval_in_low_mode_uses_low_statistics_and_affine():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3))
    convert_to_dual_mode(net, bn_policy="private")
    bn = net[1]
    with torch.no_grad():
        bn.weight_low.copy_(torch.tensor([2.0, 3.0, 4.0]))
        bn.bias_low.copy_(torch.tensor([-1.0, 0.5, 1.0]))
    with mode_context(net, "low"):
        net(torch.randn(4, 2, 4, 4) + 2.0)  # train: updates the low statistics only
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    net.eval()
    with torch.no_grad(), mode_context(net, "low"):
        feats = net[0](torch.randn(4, 2, 4, 4))
        expected = (feats - bn.running_mean_low[None, :, None, None]) / torch.sqrt(
            bn.running_var_low[None, :, None, None] + bn.eps
        ) * bn.weight_low[None, :, None, None] + bn.bias_low[None, :, None, None]
        assert torch.allclose(bn(feats), expected, atol=1e-5)


def test_private_state_dict_has_low_keys_only_for_private_and_roundtrips():
    plain = list(build_model("resnet8").state_dict())
    for policy in BN_POLICIES:
        keys = list(build_dual_mode_model("resnet8", bn_policy=policy)[0].state_dict())
        low = [k for k in keys if k.endswith(("weight_low", "bias_low"))]
        if policy == "private":
            assert sorted(set(keys) - set(plain)) == sorted(low) and len(low) == 18
        else:
            assert keys == plain and low == []
    torch.manual_seed(0)
    model, _ = build_dual_mode_model("resnet8", bn_policy="private")
    _sgd_step(model, torch.optim.SGD(model.parameters(), lr=0.1), "low")
    fresh, _ = build_dual_mode_model("resnet8", bn_policy="private")
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(fresh.bn1.weight_low, model.bn1.weight_low)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(clone.bn1.bias_low, model.bn1.bias_low)
    assert isinstance(copy.deepcopy(model).bn1.weight_low, nn.Parameter)
    # re-converting to another policy restores the original keys
    convert_to_dual_mode(model, bn_policy="frozen")
    assert list(model.state_dict()) == plain and not has_mode_specific_parameters(model)


def test_private_without_affine_has_no_low_parameters():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3, affine=False))
    convert_to_dual_mode(net, bn_policy="private")
    assert not hasattr(net[1], "weight_low") and not has_mode_specific_parameters(net)
    with mode_context(net, "low"):
        assert net(torch.randn(2, 2, 4, 4)).shape == (2, 3, 4, 4)
    assert int(net[1].num_batches_tracked_low) == 1


@pytest.mark.parametrize("low_kernels", LOW_KERNELS)
@pytest.mark.parametrize("policy", BN_POLICIES)
def test_full_mode_bit_identical_for_every_policy(policy, low_kernels):
    torch.manual_seed(0)
    original = build_model("resnet8")
    converted = copy.deepcopy(original)
    convert_to_dual_mode(converted, preset=default_preset("resnet8"), bn_policy=policy, low_kernels=low_kernels)
    x = torch.randn(3, 3, 32, 32)
    for train in (True, False):
        original.train(train)
        converted.train(train)
        assert torch.equal(converted(x), original(x))
    state = converted.state_dict()
    for key, value in original.state_dict().items():
        assert torch.equal(state[key], value), key


# Low mode feeds the (unconverted) 1×1 downsample convs channels_last activations on CPU, so their
# weight gradients have channels_last strides; DDP warns once and copies them into its buckets.
@pytest.mark.filterwarnings("ignore:Grad strides do not match bucket view strides")
def test_private_under_ddp_with_find_unused_parameters(tmp_path):
    need("ddp")
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model, _ = build_dual_mode_model("resnet8", bn_policy="private")
        assert has_mode_specific_parameters(model)
        ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        # momentum and weight decay too: a parameter unused in a step must keep grad None (DDP leaves
        # globally unused parameters' gradients undefined), or SGD would still move it
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        for mode in ("low", "full", "low", "full"):
            before = _snapshot(model)
            _sgd_step(ddp, opt, mode)
            moved, kept = ("weight_low", "weight") if mode == "low" else ("weight", "weight_low")
            assert not torch.equal(model.bn1.get_parameter(moved), before[f"bn1.{moved}"])
            assert torch.equal(model.bn1.get_parameter(kept), before[f"bn1.{kept}"])
    finally:
        dist.destroy_process_group()
