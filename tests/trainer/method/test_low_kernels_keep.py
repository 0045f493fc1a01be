"""low_kernels="keep": the same kernels on the downsampled image, the root mark, check_low_mode_input."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

from trainer.method.dualmode import (
    _DUAL_TYPES,
    LOW_KERNELS,
    check_low_mode_input,
    convert_to_dual_mode,
    get_mode,
    is_dual_mode,
    mode_context,
    set_mode,
    unwrap,
)
from trainer.method.models import build_dual_mode_model, build_model, default_preset


def _keep_pair(name: str = "resnet8", bn_policy: str = "frozen", **options):
    torch.manual_seed(0)
    original = build_model(name, **options)
    converted = copy.deepcopy(original)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keep converts no conv on purpose: no warning
        report = convert_to_dual_mode(converted, preset=default_preset(name), bn_policy=bn_policy,
                                      low_kernels="keep")
    return original, converted, report


def _stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}


def test_low_kernels_choices():
    assert LOW_KERNELS == ("pool", "keep")
    with pytest.raises(ValueError, match="low_kernels"):
        convert_to_dual_mode(build_model("resnet8"), preset="resnet_basic", low_kernels="pooled")


def test_keep_report_converts_nothing_and_skips_nothing():
    _, model, report = _keep_pair()
    assert report.low_kernels == "keep" and report.converted == [] and report.kernel_map == {}
    assert report.skipped_in_low == []  # the preset's max-pool skip is ignored: the max-pool is kept
    assert len(report.bn_layers) == 9 and report.bn_policy == "frozen"
    assert report.to_dict()["low_kernels"] == "keep" and "low_kernels=keep" in report.summary()
    _, pool_report = build_dual_mode_model("resnet8")
    assert pool_report.low_kernels == "pool" and pool_report.to_dict()["low_kernels"] == "pool"
    with mode_context(model, "low"):
        assert model.maxpool(torch.ones(1, 1, 4, 4)).shape == (1, 1, 2, 2)  # still pools
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a given skip_in_low is ignored too, without a warning
        report = convert_to_dual_mode(build_model("resnet8"), skip_in_low=("nope",), low_kernels="keep")
    assert report.skipped_in_low == []


def test_keep_refuses_a_pool_converted_model():
    model, _ = build_dual_mode_model("resnet8")
    with pytest.raises(ValueError, match="already converted"):
        convert_to_dual_mode(model, low_kernels="keep")


@pytest.mark.parametrize("stem, size", [("cifar_maxpool", 16), ("cifar", 16), ("imagenet", 16)])
def test_keep_low_mode_is_exactly_the_unconverted_model_in_eval(stem, size):
    original, converted, _ = _keep_pair("resnet8", stem=stem)
    original.eval()
    converted.eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad(), mode_context(converted, "low"):
        assert torch.equal(converted(x), original(x))


def test_keep_frozen_train_mode_same_output_and_running_stats_untouched():
    original, converted, _ = _keep_pair("resnet8")
    original.train()
    converted.train()
    before = _stats(converted)
    x = torch.randn(4, 3, 16, 16)
    set_mode(converted, "low")
    assert torch.equal(converted(x), original(x))
    for key, value in _stats(converted).items():
        assert torch.equal(value, before[key]), key
    assert not torch.equal(_stats(original)["bn1.running_mean"], before["bn1.running_mean"])


def test_keep_shared_is_the_unconverted_model_in_both_modes_and_set_mode_works():
    original, converted, report = _keep_pair("resnet8", bn_policy="shared")
    assert report.bn_layers == [] and not any(isinstance(m, _DUAL_TYPES) for m in converted.modules())
    assert list(converted.state_dict()) == list(original.state_dict())  # the mark is no state
    assert is_dual_mode(converted) and not is_dual_mode(original)
    assert get_mode(converted) == "full"
    set_mode(converted, "low")
    assert get_mode(converted) == "low"
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(converted(x), original(x))  # train mode: shared statistics move alike
    for a, b in zip(converted.state_dict().values(), original.state_dict().values()):
        assert torch.equal(a, b)
    with mode_context(converted, "full"):
        assert get_mode(converted) == "full"
    assert get_mode(converted) == "low"
    # through wrappers, pickle and deepcopy
    ddp_like = nn.Module()
    ddp_like.module = converted
    set_mode(ddp_like, "full")
    assert get_mode(converted) == "full" and is_dual_mode(ddp_like)
    compiled = torch.compile(converted, backend="eager")
    assert unwrap(compiled) is converted
    set_mode(compiled, "low")
    assert get_mode(converted) == "low" and get_mode(compiled) == "low"
    assert get_mode(pickle.loads(pickle.dumps(converted))) == "low"
    assert get_mode(copy.deepcopy(converted)) == "low"
    # an unconverted model still refuses low mode
    with pytest.raises(ValueError, match="convert_to_dual_mode first"):
        set_mode(original, "low")


def test_reconversion_starts_in_full_mode():
    _, model, _ = _keep_pair("resnet8", bn_policy="shared")
    set_mode(model, "low")
    convert_to_dual_mode(model, bn_policy="frozen", low_kernels="keep")
    assert get_mode(model) == "full"


def _tiny_pool_resnet8() -> nn.Module:
    """resnet8 whose stem max-pool is an unpadded 4×4 pool: a 2×2 low input shrinks to 0×0 there."""
    torch.manual_seed(0)
    model = build_model("resnet8", in_channels=1)
    model.maxpool = nn.MaxPool2d(4)
    return model


def test_check_low_mode_input_names_the_module_where_the_input_vanishes():
    model = _tiny_pool_resnet8()
    convert_to_dual_mode(model, preset="resnet_basic", low_kernels="keep")
    with pytest.raises(ValueError, match=r"'maxpool' \(MaxPool2d\) fails on its 2x2 input") as info:
        check_low_mode_input(model, 1, 2, 2)
    assert "low-mode input 2x2" in str(info.value)
    check_low_mode_input(model, 1, 14, 14)  # 14 → 3 after the pool, then 3 → 2 → 1: fine
    # pool skips the max-pool in low mode, so 2×2 is fine there
    pooled = _tiny_pool_resnet8()
    convert_to_dual_mode(pooled, preset="resnet_basic")
    check_low_mode_input(pooled, 1, 2, 2)


def test_check_low_mode_input_registry_resnets_never_vanish():
    """Every conv and pool of the registry ResNets is padded: down to a 1×1 input, nothing shrinks to 0."""
    for stem in ("cifar_maxpool", "imagenet"):
        for low_kernels in LOW_KERNELS:
            model, _ = build_dual_mode_model("resnet8", stem=stem, in_channels=1, low_kernels=low_kernels)
            check_low_mode_input(model, 1, 1, 1)
            check_low_mode_input(model, 1, 14, 14)


class _Crop(nn.Module):
    """Drops a 1-pixel border: an empty output on a 2×2 input, without any error from torch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 1:-1, 1:-1]


def test_check_low_mode_input_catches_empty_outputs_and_restores_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2),
                          nn.Sequential(_Crop(), nn.ReLU()), nn.AdaptiveAvgPool2d(1))
    convert_to_dual_mode(model, bn_policy="separate", low_kernels="keep")
    model.train()
    model[1].eval()  # a per-module flag that must survive
    set_mode(model, "full")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"'2\.0' \(_Crop\) turns its 2x2 input into a 0x0 output"):
        check_low_mode_input(model, 1, 2, 2)
    check_low_mode_input(model, 1, 3, 3)
    assert get_mode(model) == "full" and model.training and model[0].training and not model[1].training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    set_mode(model, "low")
    check_low_mode_input(model.double(), 1, 3, 3)  # the model's dtype
    assert get_mode(model) == "low"


def test_check_low_mode_input_bad_arguments():
    model, _ = build_dual_mode_model("resnet8")
    with pytest.raises(ValueError, match="low_height"):
        check_low_mode_input(model, 3, 0, 4)
    with pytest.raises(TypeError, match="convert_to_dual_mode"):
        check_low_mode_input(build_model("resnet8"), 3, 16, 16)
