"""The conversion rule (trainer/method/rule.py): stem, stem pool, which convs are pooled, what is refused."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from trainer.method.dualmode import DualModeConv2d, is_dual_mode, mode_context
from trainer.method.models import MODEL_NAMES, STEMS, build_dual_mode_model
from trainer.method.rule import RULE, ConversionRule, NoConvertibleConvolution, convert, first_conv, plan, stem_pool


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_registry_presets_are_the_rule(name):
    """resnet_basic / resnet_bottleneck (name patterns + the max-pool skip) select exactly what the rule does."""
    for stem in STEMS:
        model, report = build_dual_mode_model(name, stem=stem)
        selected = plan(model)  # the rule reads a converted model the same way
        assert selected.convert == report.converted, (name, stem)
        assert selected.skip_in_low == report.skipped_in_low, (name, stem)
        assert selected.stem == ["conv1"] and not selected.unsupported


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)                      # pooled
        self.strided = nn.Conv2d(8, 8, 3, stride=2, padding=1)         # pooled (strided=True)
        self.depthwise = nn.Conv2d(8, 8, 5, padding=2, groups=8)       # pooled (depthwise=True)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)         # pooled (groups any)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2)       # pooled (dilation kept)
        self.pointwise = nn.Conv2d(8, 8, 1)                            # 1x1: nothing to pool
        self.patchify = nn.Conv2d(8, 8, 2, stride=2)                   # even: T is for odd sizes
        self.wide = nn.Conv2d(8, 8, 7, padding=3)                      # pooled to 3x3
        self.flat = nn.Conv2d(8, 8, (1, 3), padding=(0, 1))            # 1x3: not every dim is >= 3

    def forward(self, x):
        x = self.dilated(self.grouped(self.depthwise(self.conv(x))))
        return self.flat(self.wide(self.patchify(self.pointwise(self.strided(x)))))


def _net(stem: nn.Module, pool: bool = True) -> nn.Sequential:
    return nn.Sequential(stem, nn.MaxPool2d(3, 2, 1) if pool else nn.Identity(), _Block(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_which_convs_the_rule_pools():
    model = _net(nn.Conv2d(3, 8, 3, padding=1))
    selected = plan(model)
    assert selected.stem == ["0"] and selected.skip_in_low == ["1"] and stem_pool(model) == "1"
    assert selected.convert == ["2.conv", "2.strided", "2.depthwise", "2.grouped", "2.dilated", "2.wide"]
    assert plan(model, ConversionRule(strided=False)).convert == ["2.conv", "2.depthwise", "2.grouped", "2.dilated",
                                                                  "2.wide"]
    assert plan(model, ConversionRule(depthwise=False)).convert == ["2.conv", "2.strided", "2.grouped",
                                                                    "2.dilated", "2.wide"]
    assert plan(model, ConversionRule(kernel_sizes=(3,))).convert == ["2.conv", "2.strided", "2.grouped",
                                                                      "2.dilated"]
    report = convert(model)
    assert report.converted == selected.convert and report.skipped_in_low == ["1"]
    assert report.kernel_map["2.wide"] == "7x7->3x3" and report.kernel_map["2.depthwise"] == "5x5->3x3"
    model.eval()
    with torch.no_grad(), mode_context(model, "low"):
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 2)
    with pytest.raises(ValueError, match="odd sizes >= 3"):
        ConversionRule(kernel_sizes=(1, 3))
    assert RULE == ConversionRule()


def test_deep_stem_and_no_stem_pool():
    deep = _net(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)))
    selected = plan(deep)
    assert selected.stem == ["0.0", "0.2", "0.3"] and selected.skip_in_low == ["1"] and first_conv(deep) == "0.0"
    flat = _net(nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)), pool=False)
    selected = plan(flat)  # no stem pool: the stem is the first conv alone, nothing skipped
    assert selected.stem == ["0.0"] and selected.skip_in_low == [] and selected.convert[0] == "0.1"
    assert stem_pool(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(3, stride=1))) is None  # stride 1: no stem pool


class _OwnForwardConv(nn.Conv2d):
    """Like timm's StdConv2d: an nn.Conv2d subclass whose forward changes the weight first."""

    def forward(self, x):
        return self._conv_forward(x, self.weight - self.weight.mean(), self.bias)


def test_conv_subclasses_are_a_layer_type_the_low_path_cannot_run():
    model = _net(nn.Conv2d(3, 8, 3, padding=1))
    model[2].conv = _OwnForwardConv(8, 8, 3, padding=1)
    report = convert(model)
    assert "2.conv" not in report.converted and "own forward" in report.unsupported["2.conv"]
    assert type(model[2].conv) is _OwnForwardConv
    everything = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _OwnForwardConv(8, 8, 3, padding=1),
                               _OwnForwardConv(8, 8, 3, padding=1))
    with pytest.raises(NoConvertibleConvolution, match=r"Sequential has no convolution to pool in low mode: its 2 "
                                                       r"candidate conv\(s\) are a layer type the low path cannot "
                                                       r"run, e.g. '1' \(_OwnForwardConv"):
        convert(everything)
    assert not is_dual_mode(everything)  # refused before anything changed
    convert(everything, low_kernels="keep")  # keep needs no pooled conv
    assert is_dual_mode(everything)


def test_no_convertible_convolution_and_the_narrowing_options():
    pointwise = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.Conv2d(8, 8, 1), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(NoConvertibleConvolution, match=r"no nn.Conv2d outside the stem has an odd k x k kernel "
                                                       r"with k in \[3, 5, 7\].*low_kernels='keep'"):
        convert(pointwise)
    model = _net(nn.Conv2d(3, 8, 3, padding=1))
    report = convert(model, name_pattern=r"wide|depth", skip_in_low=())
    assert report.converted == ["2.depthwise", "2.wide"] and report.skipped_in_low == []
    assert all(isinstance(m, DualModeConv2d) == (n in report.converted) for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("policy", ["frozen", "shared", "separate", "private"])
def test_bn_policies_on_a_model_without_batchnorm(policy):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.GroupNorm(2, 8), nn.Conv2d(8, 8, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = convert(model, bn_policy=policy)
    assert report.bn_layers == [] and report.bn_policy == policy
    assert [str(w.message) for w in caught if "changes nothing" in str(w.message)] == (
        [f"convert: bn_policy={policy!r} changes nothing: Sequential has no BatchNorm layer (its norm layers keep "
         f"one set of parameters for both modes)"] if policy in ("separate", "private") else [])
