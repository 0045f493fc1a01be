"""Conversion by rule: which convolutions of *any* CNN get the pooled kernel, which modules low mode skips.

The rule (:class:`ConversionRule`, default :data:`RULE`), read off the model's modules in registration
order (``named_modules()``: the forward order of the stems of torchvision's and timm's CNNs):

1. **Stem.** If the model has an ``nn.MaxPool2d`` with stride ≥ 2, the first one is the *stem pool* and
   the stem is every module registered before it (ResNet: ``conv1``; timm's deep stems: their 3 convs);
   otherwise the stem is the first ``nn.Conv2d`` (the one that reads the image).
2. **Skipped in low mode: the stem pool.** A low-mode input is already r× smaller, so the layers after
   the stem see the feature-map sizes of full mode (the paper drops the CIFAR ResNets' stem max-pool).
   No stem pool (MobileNet, EfficientNet, RegNet, ConvNeXt): nothing is skipped and low mode runs the
   whole network at 1/r of full mode's sizes.
3. **Pooled kernel T(W).** Every ``nn.Conv2d`` outside the stem whose kernel is k×k with each k odd,
   ≥ 3 and in ``kernel_sizes`` (3, 5, 7), with zero or 'same'-style padding — whatever its stride
   (``strided``), groups and dilation, depthwise included (``depthwise``). Everything else keeps its
   kernel in low mode: the stem (it reads the raw image: a 1×1 stem would be a per-pixel colour map,
   and it is cheap with its 1–3 input channels), 1×1 and even kernels (ConvNeXt's 4×4 patchify and
   2×2 downsampling: T is defined for odd sizes), and layers whose type the low path cannot run: an
   ``nn.Conv2d`` *subclass* with a forward of its own (timm's ``Conv2dSame``, ``StdConv2d``): swapping
   its class would drop that forward, so it is kept and reported (``ConversionReport.unsupported``).

Why strided and depthwise convs are pooled by default: it is the paper's own choice for ResNets
(both 3×3 convs of every basic block, each stage's stride-2 one included), so the registry presets are
this rule exactly (``resnet_basic`` and ``resnet_bottleneck`` select the same convs, tested on every
registry model and stem); and in depthwise-separable networks (MobileNet, EfficientNet, ConvNeXt) the
depthwise convs are the only k×k convolutions, so keeping them would leave nothing to pool — for
ConvNeXt's 7×7 → 3×3 the paper's receptive-field argument holds per channel. ``strided=False`` /
``depthwise=False`` keep those kernels instead (then a pooled 1×1 stride-2 conv no longer reads only one
input pixel in four; not measured here).

BatchNorm policies (:mod:`trainer.method.bn_policy`) act on ``_BatchNorm`` layers only. A model without
any (ConvNeXt: LayerNorm) has no running statistics to freeze or separate: every policy then runs the
same network, low and full steps sharing the norm layers' affine parameters (the ``shared`` behaviour,
harmless there because LayerNorm normalises each sample by itself); ``separate`` and ``private`` warn
that they change nothing.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from trainer.method.dualmode import ConversionReport, DualModeConv2d, convert_to_dual_mode, unwrap


class NoConvertibleConvolution(ValueError):
    """``convert`` found no convolution the rule gives a pooled kernel (with ``low_kernels="pool"``)."""


@dataclass(frozen=True)
class ConversionRule:
    """Which convolutions get T(W) in low mode (module docstring). The default, :data:`RULE`, is the paper's."""

    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    """Odd kernel sizes ≥ 3 that are pooled (every spatial dimension must be one of them)."""
    strided: bool = True
    """Pool convs with a stride > 1 too (the paper's ResNets: yes)."""
    depthwise: bool = True
    """Pool depthwise convs (groups == in_channels > 1) too."""

    def __post_init__(self) -> None:
        sizes = tuple(int(k) for k in self.kernel_sizes)
        if not sizes or any(k < 3 or k % 2 == 0 for k in sizes):
            raise ValueError(f"ConversionRule.kernel_sizes: odd sizes >= 3, got {self.kernel_sizes!r}")
        object.__setattr__(self, "kernel_sizes", sizes)


RULE = ConversionRule()
"""The rule: the paper's choice (registry presets included), for any CNN."""


@dataclass
class RulePlan:
    """What a rule selects in one model (names as in ``named_modules()``)."""

    convert: list[str] = field(default_factory=list)
    """Convolutions that get T(W) in low mode."""
    skip_in_low: list[str] = field(default_factory=list)
    """The stem pool (empty without one)."""
    stem: list[str] = field(default_factory=list)
    """Convolutions of the stem (they keep their kernels)."""
    unsupported: dict[str, str] = field(default_factory=dict)
    """Convolutions the rule would pool but whose layer type the low path cannot run → why."""


def stem_pool(model: nn.Module) -> str | None:
    """Name of the model's stem pool: its first ``nn.MaxPool2d`` with stride ≥ 2 (None without one)."""
    for name, module in unwrap(model).named_modules():
        if isinstance(module, nn.MaxPool2d) and _max_stride(module) >= 2:
            return name
    return None


def first_conv(model: nn.Module) -> str | None:
    """Name of the model's first ``nn.Conv2d`` (any subclass) in registration order: the one reading the image."""
    return next((name for name, module in unwrap(model).named_modules() if isinstance(module, nn.Conv2d)), None)


def _max_stride(pool: nn.MaxPool2d) -> int:
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return max(stride) if isinstance(stride, tuple) else int(stride)


def plan(model: nn.Module, rule: ConversionRule = RULE) -> RulePlan:
    """Apply ``rule`` to ``model`` without changing it (see the module docstring)."""
    root = unwrap(model)
    pool = stem_pool(root)
    first = first_conv(root)
    result = RulePlan(skip_in_low=[pool] if pool is not None else [])
    in_stem = True
    for name, module in root.named_modules():
        if name == pool:
            in_stem = False
            continue
        if not isinstance(module, nn.Conv2d):
            continue
        if pool is None and name != first:
            in_stem = False
        if in_stem:
            result.stem.append(name)
            continue
        if not _shape_selected(module, rule):
            continue
        if type(module) not in (nn.Conv2d, DualModeConv2d):
            result.unsupported[name] = (f"{type(module).__name__} is an nn.Conv2d subclass with its own forward, "
                                        f"a layer type the low path cannot run (kept: its full kernel runs in low mode)")
            continue
        result.convert.append(name)
    return result


def _shape_selected(conv: nn.Conv2d, rule: ConversionRule) -> bool:
    if not all(k in rule.kernel_sizes for k in conv.kernel_size):
        return False
    if not rule.strided and any(s > 1 for s in conv.stride):
        return False
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    return rule.depthwise or not depthwise


def convert(model: nn.Module, rule: ConversionRule = RULE, *, bn_policy: str = "frozen", ratio: int = 2,
            low_kernels: str = "pool", name_pattern: str | None = None,
            skip_in_low: tuple[str, ...] | None = None) -> ConversionReport:
    """Convert any CNN for low mode by ``rule``, in place (:func:`~trainer.method.dualmode.convert_to_dual_mode`
    with the convs and skips the rule selects); returns the report.

    ``name_pattern`` (a regex searched in conv names) narrows the rule's convs; ``skip_in_low`` (regexes)
    replaces its stem-pool skip. ``low_kernels="keep"`` converts no conv and skips nothing (the rule only
    decides what "pool" would do). Raises :class:`NoConvertibleConvolution` (a ValueError naming the model,
    and any layer the low path cannot run) when "pool" would convert nothing, leaving the model unchanged.
    Warns when ``bn_policy`` is "separate" or "private" on a model without BatchNorm (nothing to apply).
    """
    selected = plan(model, rule)
    convs = selected.convert
    if name_pattern is not None:
        pattern = re.compile(name_pattern)
        convs = [name for name in convs if pattern.search(name)]
    if low_kernels == "pool" and not convs:
        kind = type(unwrap(model)).__name__
        if selected.unsupported:
            name = next(iter(selected.unsupported))
            conv_type = type(unwrap(model).get_submodule(name)).__name__
            why = (f"its {len(selected.unsupported)} candidate conv(s) are a layer type the low path cannot run, "
                   f"e.g. {name!r} ({conv_type}: an nn.Conv2d subclass with its own forward)")
        else:
            why = f"no nn.Conv2d outside the stem has an odd k x k kernel with k in {list(rule.kernel_sizes)}"
        if name_pattern is not None:
            why += f" and matches name_pattern {name_pattern!r}" if not selected.unsupported else ""
        raise NoConvertibleConvolution(f"{kind} has no convolution to pool in low mode: {why}; "
                                       f"use low_kernels='keep' for the same kernels on the downsampled image")
    if skip_in_low is None:
        skip_in_low = tuple(f"^{re.escape(name)}$" for name in selected.skip_in_low)
    exact = "^(?:" + "|".join(re.escape(name) for name in convs) + ")$" if convs else "^$"
    report = convert_to_dual_mode(model, name_pattern=exact, kernel_sizes=rule.kernel_sizes, skip_in_low=skip_in_low,
                                  bn_policy=bn_policy, ratio=ratio, low_kernels=low_kernels)
    if low_kernels == "pool":
        for name, reason in selected.unsupported.items():
            report.unsupported.setdefault(name, reason)
    if bn_policy in ("separate", "private") and not any(isinstance(m, _BatchNorm) for m in unwrap(model).modules()):
        warnings.warn(f"convert: bn_policy={bn_policy!r} changes nothing: {type(unwrap(model)).__name__} has no "
                      f"BatchNorm layer (its norm layers keep one set of parameters for both modes)",
                      UserWarning, stacklevel=2)
    return report
