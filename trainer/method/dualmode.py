"""Dual-mode model surgery: give selected convolutions a pooled-kernel low-mode path.

``convert_to_dual_mode(model, ...)`` changes a model in place, the way composer's
``apply_blurpool`` does: each selected ``nn.Conv2d`` becomes a :class:`DualModeConv2d` (its
``__class__`` is swapped, so parameters, hooks and ``state_dict`` keys stay exactly the original's),
modules to skip in low mode (the stem max-pool) become pass-through in low mode, and BatchNorm layers
get the chosen low-mode policy (:mod:`trainer.method.bn_policy`). In full mode every converted module runs
its original ``forward``, so outputs are bit-identical to the unconverted model.

``low_kernels`` (:data:`LOW_KERNELS`) chooses what low mode does with the selected convolutions:
``"pool"`` (the paper, default) as above; ``"keep"`` (progressive resizing's low step) converts no
convolution and skips nothing (the stem max-pool is kept), so low mode runs the same kernels on the
downsampled image; only the BN policy differs from the unconverted model.
:func:`check_low_mode_input` dry-runs low mode at a given input size and names the module where the
feature map would shrink below one pixel or that fails (:func:`check_full_mode_input`: the same in full
mode, on any model). :mod:`trainer.method.rule` chooses the convs and skips for any CNN by one rule.

The mode is a plain attribute on each converted module and on the converted root module (which
:func:`convert_to_dual_mode` marks, so a model with nothing swapped, e.g. ``keep`` + ``shared``, still
has a mode), set by :func:`set_mode` / :func:`mode_context` through DDP (``.module``) and
``torch.compile`` (``._orig_mod``) wrappers.
Under ``torch.compile`` Dynamo guards on that attribute: one graph per mode, compiled once each
(use ``dynamic=False`` so the 16×16 low-mode input gets a static graph of its own rather than a
dynamic-shape one). Build order: construct → convert → device / memory format → compile → DDP.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from trainer.method.bn_policy import (
    BN_POLICIES,
    DualModeBatchNormMixin,
    convert_batchnorm,
    has_mode_specific_parameters,
    load_low_bn_state_dict,
    low_bn_state_dict,
)
from pipeline.schedule import FULL, LOW, MODES
from trainer.method.class_swap import mixin_subclass
from trainer.method.kernel_pool import pool_kernel, pool_matrix, pooled_size

# On CPU, a low-mode conv whose pooled kernel is 1×1 runs on a channels_last input (one copy at the
# first such conv; BN, ReLU and the following convs keep the format, so later ones copy nothing).
# oneDNN's 1×1 convolution, its backward above all, is much faster in channels_last than in NCHW:
# ResNet-18, batch 125, one thread: low step 380 → 300-320 ms, full step unchanged (NCHW stays
# the faster format for the 3×3 full mode). Only low-mode activations are affected.
LOW_CHANNELS_LAST_ON_CPU = True

__all__ = [
    "BN_POLICIES",
    "LOW_KERNELS",
    "MODES",
    "PRESETS",
    "ConversionPreset",
    "ConversionReport",
    "DualModeConv2d",
    "check_full_mode_input",
    "check_low_mode_input",
    "convert_to_dual_mode",
    "get_mode",
    "has_mode_specific_parameters",
    "is_dual_mode",
    "load_low_bn_state_dict",
    "low_bn_state_dict",
    "mode_context",
    "recalibrate_bn",
    "set_mode",
    "unwrap",
]


LOW_KERNELS = ("pool", "keep")
"""What selected convolutions do in low mode: "pool" (the paper: T(W), e.g. 3x3 -> 1x1, and the stem
max-pool skipped) or "keep" (progressive resizing's low step: the same kernels, max-pool kept)."""


@dataclass(frozen=True)
class ConversionPreset:
    """Which convolutions a model family converts and which modules low mode skips.

    name_pattern: regex searched in each conv's qualified module name (e.g. ``layer1.0.conv2``).
    skip_in_low: regexes of module names that become pass-through in low mode.
    """

    name_pattern: str
    skip_in_low: tuple[str, ...]


# The paper's rule (Sec. 4): ResNet-18 converts both 3×3 convs of each basic block, ResNet-50
# only each bottleneck's 3×3 conv2; the max-pool after the stem is dropped in low mode.
PRESETS: dict[str, ConversionPreset] = {
    "resnet_basic": ConversionPreset(r"^layer\d+\.\d+\.conv[12]$", (r"^maxpool$",)),
    "resnet_bottleneck": ConversionPreset(r"^layer\d+\.\d+\.conv2$", (r"^maxpool$",)),
}


@dataclass
class ConversionReport:
    """What :func:`convert_to_dual_mode` changed (module names as in ``model.named_modules()``).

    converted: convs given a low-mode path; kernel_map: name → "3x3->1x1" style change.
    skipped_in_low: modules that pass their input through in low mode.
    unsupported: name → why a selected conv was left alone.
    bn_policy / bn_layers: the BatchNorm policy and the layers it was applied to.
    low_kernels: "pool" or "keep" (:data:`LOW_KERNELS`); with "keep", converted and skipped_in_low
    are empty by design.
    """

    converted: list[str] = field(default_factory=list)
    kernel_map: dict[str, str] = field(default_factory=dict)
    skipped_in_low: list[str] = field(default_factory=list)
    unsupported: dict[str, str] = field(default_factory=dict)
    bn_policy: str = "frozen"
    bn_layers: list[str] = field(default_factory=list)
    ratio: int | float = 2
    low_kernels: str = "pool"

    def summary(self) -> str:
        """One log line: counts and the distinct kernel changes."""
        changes = sorted(set(self.kernel_map.values()))
        return (
            f"dual-mode: {len(self.converted)} convs converted ({', '.join(changes) or 'none'}), "
            f"{len(self.skipped_in_low)} skipped in low mode, {len(self.unsupported)} unsupported, "
            f"bn_policy={self.bn_policy} on {len(self.bn_layers)} BN layers, ratio={self.ratio}, "
            f"low_kernels={self.low_kernels}"
        )

    def to_dict(self) -> dict:
        """JSON-ready form (for the run directory / W&B config)."""
        return {
            "converted": list(self.converted),
            "kernel_map": dict(self.kernel_map),
            "skipped_in_low": list(self.skipped_in_low),
            "unsupported": dict(self.unsupported),
            "bn_policy": self.bn_policy,
            "bn_layers": len(self.bn_layers),
            "ratio": self.ratio,
            "low_kernels": self.low_kernels,
        }


class DualModeConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that, in low mode, convolves with T(weight) instead of weight.

    Created only by swapping the class of an existing conv (:func:`convert_to_dual_mode`). Low mode
    keeps stride, dilation, groups and bias; padding is 'same'-style for the pooled size when the
    original was 'same'-style, 0 when it was 0. T runs inside forward, so the gradient reaches the
    full kernel; the pooling matrices (only for targets larger than 1×1) are non-persistent buffers.
    """

    low_mode: bool = False
    low_padding: tuple[int, int] = (0, 0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        if not self.low_mode:
            return super().forward(input)
        weight = pool_kernel(
            self.weight, getattr(self, "lowmode_pool_h", None), getattr(self, "lowmode_pool_w", None)
        )
        padding = self.low_padding
        if LOW_CHANNELS_LAST_ON_CPU and input.device.type == "cpu" and weight.shape[2:] == (1, 1):
            input = input.contiguous(memory_format=torch.channels_last)
        if self.padding_mode != "zeros" and padding != (0, 0):
            pad = (padding[1], padding[1], padding[0], padding[0])
            input = F.pad(input, pad, mode=self.padding_mode)
            padding = (0, 0)
        return F.conv2d(input, weight, self.bias, self.stride, padding, self.dilation, self.groups)


class _SkipInLowMixin:
    """Mixed into a module class: in low mode the module returns its input unchanged."""

    low_mode: bool = False

    def forward(self, input, *args, **kwargs):  # noqa: A002 - torch's name
        if self.low_mode:
            return input
        return super().forward(input, *args, **kwargs)


def _skip_class(cls: type) -> type:
    """The skip-in-low subclass of ``cls`` (cached; registered here so it pickles)."""
    return mixin_subclass(_SkipInLowMixin, cls, "SkipInLow", __name__)


_DUAL_TYPES = (DualModeConv2d, _SkipInLowMixin, DualModeBatchNormMixin)

# Set by convert_to_dual_mode on the converted root module: its presence marks a dual-mode model
# (even one where nothing was swapped, e.g. low_kernels="keep" + bn_policy="shared"), its value is
# the root's mode. A plain instance attribute: not in state_dict, kept by pickle / deepcopy, never
# read by forward (so torch.compile does not guard on it).
_ROOT_MODE_ATTR = "lowmode_root_mode"


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP / FSDP-style (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(
            model, (nn.parallel.DistributedDataParallel, nn.DataParallel)
        ):
            inner = model.module
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def convert_to_dual_mode(
    model: nn.Module,
    *,
    preset: str | None = None,
    name_pattern: str | None = None,
    kernel_sizes: Iterable[int] = (3, 5, 7),
    skip_in_low: tuple[str, ...] | None = None,
    bn_policy: str = "frozen",
    ratio: int | float = 2,
    low_kernels: str = "pool",
) -> ConversionReport:
    """Give ``model``'s selected convolutions a low-mode path, in place; return what changed.

    Args:
        model: any module (wrappers are unwrapped; convert before compile / DDP).
        preset: a key of :data:`PRESETS` supplying name_pattern and skip_in_low defaults.
        name_pattern: regex searched in qualified conv names; None selects every conv.
        kernel_sizes: spatial sizes (both dims must be listed) eligible for pooling.
        skip_in_low: regexes of modules (e.g. the stem max-pool) that pass input through in low
            mode; None means the preset's, or none.
        bn_policy: one of :data:`BN_POLICIES` (see :mod:`trainer.method.bn_policy`).
        ratio: the input downsampling ratio r, which sets the pooled kernel size (an integer; "keep" also
            takes a non-integer ratio, e.g. 128 -> 96 px, which it only records).
        low_kernels: "pool" (the paper: selected convs use T(W) in low mode, skip_in_low modules
            pass through) or "keep" (no conv converted, nothing skipped — skip_in_low and the
            preset's are ignored —, only the BN policy applied: low mode runs the same kernels on
            the downsampled image). "keep" refuses a model already converted with "pool".

    Warns (``UserWarning``) when no convolution was converted (with "pool") or a skip pattern matched
    nothing. The root module (``unwrap(model)``) is marked as converted, see :func:`is_dual_mode`.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if bn_policy not in BN_POLICIES:
        raise ValueError(f"bn_policy must be one of {BN_POLICIES}, got {bn_policy!r}")
    # "keep" pools nothing, so any downsampling ratio runs (a 128 -> 96 ladder rung); it is only recorded.
    any_ratio = low_kernels == "keep" and isinstance(ratio, float) and ratio > 1
    if not any_ratio and (isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 2):
        raise ValueError(f"ratio must be an integer >= 2 (with low_kernels='keep': any number > 1), got {ratio!r}")
    if low_kernels not in LOW_KERNELS:
        raise ValueError(f"low_kernels must be one of {LOW_KERNELS}, got {low_kernels!r}")
    chosen = PRESETS[preset] if preset is not None else None
    if name_pattern is None and chosen is not None:
        name_pattern = chosen.name_pattern
    if skip_in_low is None:
        skip_in_low = chosen.skip_in_low if chosen is not None else ()
    sizes = frozenset(int(k) for k in kernel_sizes)

    root = unwrap(model)
    report = ConversionReport(bn_policy=bn_policy, ratio=ratio, low_kernels=low_kernels)
    pattern = re.compile(name_pattern) if name_pattern is not None else None
    if low_kernels == "pool":
        for name, module in root.named_modules():
            if type(module) in (nn.Conv2d, DualModeConv2d) and _selected(name, module, pattern, sizes):
                _convert_conv(name, module, ratio, report)
        _mark_skips(root, skip_in_low, report)
    else:
        pooled = [n for n, m in root.named_modules() if isinstance(m, (DualModeConv2d, _SkipInLowMixin))]
        if pooled:
            raise ValueError(f"low_kernels='keep': the model was already converted with 'pool' "
                             f"(e.g. {pooled[0]!r}); convert a fresh model")
    for name, module in root.named_modules():
        if isinstance(module, _BatchNorm) and convert_batchnorm(module, bn_policy):
            report.bn_layers.append(name)
    setattr(root, _ROOT_MODE_ATTR, FULL)
    set_mode(root, FULL)  # a (re-)converted model starts in full mode everywhere
    if low_kernels == "pool" and not report.converted:
        warnings.warn(
            f"convert_to_dual_mode: no convolution matched (name_pattern={name_pattern!r}, "
            f"kernel_sizes={sorted(sizes)}); low mode only downsamples the input",
            UserWarning,
            stacklevel=2,
        )
    return report


def _selected(name: str, conv: nn.Conv2d, pattern: re.Pattern | None, sizes: frozenset) -> bool:
    if pattern is not None and not pattern.search(name):
        return False
    return all(k in sizes for k in conv.kernel_size)


def _convert_conv(name: str, conv: nn.Conv2d, ratio: int, report: ConversionReport) -> None:
    """Swap one conv's class to DualModeConv2d and set up its low-mode geometry."""
    padding = _low_padding(conv, ratio)
    if isinstance(padding, str):
        report.unsupported[name] = padding
        return
    pooled = tuple(pooled_size(k, ratio) for k in conv.kernel_size)
    conv.__class__ = DualModeConv2d
    conv.low_mode = False
    conv.low_padding = padding
    if pooled != (1, 1):
        weight = conv.weight
        for attr, k in (("lowmode_pool_h", conv.kernel_size[0]), ("lowmode_pool_w", conv.kernel_size[1])):
            matrix = pool_matrix(k, ratio, dtype=weight.dtype).to(weight.device)
            conv.register_buffer(attr, matrix, persistent=False)
    report.converted.append(name)
    kh, kw = conv.kernel_size
    report.kernel_map[name] = f"{kh}x{kw}->{pooled[0]}x{pooled[1]}"


def _low_padding(conv: nn.Conv2d, ratio: int) -> tuple[int, int] | str:
    """Low-mode padding per dim, or a reason string when the original padding is unsupported."""
    out = []
    padding = conv.padding
    for dim, (k, d) in enumerate(zip(conv.kernel_size, conv.dilation)):
        same_full = d * (k - 1) // 2
        p = same_full if padding == "same" else (0 if padding == "valid" else padding[dim])
        if p == same_full:
            out.append(d * (pooled_size(k, ratio) - 1) // 2)
        elif p == 0:
            out.append(0)
        else:
            return f"padding {conv.padding} is neither 0 nor 'same'-style for kernel {conv.kernel_size}"
    return tuple(out)


def _mark_skips(root: nn.Module, patterns: tuple[str, ...], report: ConversionReport) -> None:
    """Make modules whose names match a pattern pass-through in low mode."""
    for text in patterns:
        pattern = re.compile(text)
        matched = [(n, m) for n, m in root.named_modules() if n and pattern.search(n)]
        if not matched:
            warnings.warn(
                f"convert_to_dual_mode: skip_in_low pattern {text!r} matched no module",
                UserWarning,
                stacklevel=3,
            )
        for name, module in matched:
            if isinstance(module, nn.Identity) or name in report.skipped_in_low:
                continue  # already a pass-through (e.g. the "cifar" stem without max-pool)
            if not isinstance(module, _SkipInLowMixin):
                module.__class__ = _skip_class(type(module))
            module.low_mode = False
            report.skipped_in_low.append(name)


def _dual_modules(model: nn.Module) -> Iterator[nn.Module]:
    # modules() walks through wrappers: DDP registers `.module`, OptimizedModule `._orig_mod`.
    return (m for m in model.modules() if isinstance(m, _DUAL_TYPES))


def _marked_roots(model: nn.Module) -> Iterator[nn.Module]:
    """Modules :func:`convert_to_dual_mode` converted (as roots), found through wrappers."""
    return (m for m in model.modules() if _ROOT_MODE_ATTR in m.__dict__)


def is_dual_mode(model: nn.Module) -> bool:
    """Whether ``model`` (wrapped or not) was converted by :func:`convert_to_dual_mode`."""
    return any(True for _ in _marked_roots(model)) or any(True for _ in _dual_modules(model))


def set_mode(model: nn.Module, mode: str) -> None:
    """Switch every converted module of ``model`` (wrapped or not) to "full" or "low" mode.

    Raises ValueError for "low" on a model that was never converted.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    low = mode == LOW
    found = False
    for module in _dual_modules(model):
        module.low_mode = low
        found = True
    for module in _marked_roots(model):
        setattr(module, _ROOT_MODE_ATTR, mode)
        found = True
    if low and not found:
        raise ValueError("set_mode(model, 'low'): model has no dual-mode modules; "
                         "call convert_to_dual_mode first")


def get_mode(model: nn.Module) -> str:
    """The model's current mode ("full" for a model that was never converted)."""
    modes = {module.low_mode for module in _dual_modules(model)}
    modes |= {getattr(module, _ROOT_MODE_ATTR) == LOW for module in _marked_roots(model)}
    if len(modes) > 1:
        raise RuntimeError("dual-mode modules disagree on the mode; use set_mode on the whole model")
    return LOW if modes == {True} else FULL


@contextlib.contextmanager
def mode_context(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """``with mode_context(model, "low"): ...`` — restores the previous mode on exit."""
    previous = get_mode(model)
    set_mode(model, mode)
    try:
        yield model
    finally:
        set_mode(model, previous)


def _spatial(shape) -> str:
    return "x".join(str(d) for d in shape[2:]) if len(shape) > 2 else "x".join(str(d) for d in shape)


def check_low_mode_input(model: nn.Module, in_channels: int, low_height: int, low_width: int) -> None:
    """Dry-run low mode on a ``low_height`` × ``low_width`` input; ValueError where it shrinks below 1 px.

    Forwards a batch of 2 zero images (``in_channels`` channels, the model's device and dtype) in
    low mode, eval mode and without gradients, through the unwrapped model. Raises ValueError naming
    the module (qualified name, as in ``named_modules()``) whose output has a spatial size below one
    pixel, or whose forward fails (torch raises RuntimeError for a conv / pool on a too-small input; a
    layer the low path cannot run, e.g. a fixed-size ``Linear`` on a flattened map or a patch embedding
    that checks the image size, raises its own error) together with that module's type and input size.
    The model's mode, train/eval flags (per module) and state (BN running statistics: eval mode reads
    them only) are left as they were.

    Raises TypeError for a model that was never converted (it has no low mode).
    """
    if not is_dual_mode(unwrap(model)):
        raise TypeError("check_low_mode_input: the model has no low mode; call convert_to_dual_mode first")
    _dry_run(model, in_channels, low_height, low_width, LOW, "check_low_mode_input")


def check_full_mode_input(model: nn.Module, in_channels: int, height: int, width: int) -> None:
    """:func:`check_low_mode_input` for full mode, on any model (converted or not): ValueError naming the
    module that fails on, or shrinks below one pixel, a ``height`` × ``width`` input."""
    _dry_run(model, in_channels, height, width, FULL, "check_full_mode_input")


def _dry_run(model: nn.Module, in_channels: int, height: int, width: int, mode: str, caller: str) -> None:
    for label, value in (("in_channels", in_channels), (f"{mode}_height", height), (f"{mode}_width", width)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{caller}: {label} must be an integer >= 1, got {value!r}")
    root = unwrap(model)
    reference = next(root.parameters(), None)
    if reference is None:
        reference = next(root.buffers(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    names = {module: (name or "<model>") for name, module in root.named_modules()}
    stack: list[tuple[str, nn.Module, str]] = []  # (name, module, input size) of modules running now

    def enter(module, args):
        tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
        stack.append((names[module], module, "?" if tensor is None else _spatial(tensor.shape)))

    def leave(module, args, output):
        name, _, size = stack.pop()
        if isinstance(output, torch.Tensor) and output.dim() > 2 and min(output.shape[2:]) < 1:
            raise _TooSmall(f"module {name!r} ({type(module).__name__}) turns its {size} input into a "
                            f"{_spatial(output.shape)} output")

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    flags = [(module, module.training) for module in root.modules()]
    where = f"{mode}-mode input {height}x{width}"
    try:
        root.eval()
        x = torch.zeros(2, in_channels, height, width, device=device, dtype=dtype)
        with torch.no_grad(), mode_context(root, mode) if is_dual_mode(root) else contextlib.nullcontext():
            root(x)
    except _TooSmall as err:
        raise ValueError(f"{where}: {err}; the feature map shrinks below 1 pixel") from None
    except Exception as err:  # noqa: BLE001 - any layer's own error is named with its module
        if not stack:
            raise
        name, module, size = stack[-1]
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{where}: module {name!r} ({type(module).__name__}) fails on its {size} input: "
                         f"{first}") from err
    finally:
        for handle in handles:
            handle.remove()
        for module, training in flags:
            module.training = training


class _TooSmall(Exception):
    """Raised inside :func:`check_low_mode_input`'s hooks (not a RuntimeError, so it passes through)."""


def _batch_images(batch) -> torch.Tensor:
    """Images from a tensor, an (images, labels) pair, or a pipeline Batch (full mode only)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if getattr(batch, "mode", FULL) != FULL:
        raise ValueError(f"recalibrate_bn needs full-mode batches, got mode {batch.mode!r}")
    return batch.images


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, *, max_batches: int | None = None) -> int:
    """Re-estimate every BN layer's running statistics from full-mode ``batches``.

    Resets the statistics, then forwards the batches in full mode and train mode with a cumulative
    average (momentum None), so the result is the plain mean over the batches (FixRes-style
    correction of statistics that low steps disturbed, e.g. under the "shared" policy). Parameters
    are untouched; mode, train/eval state and momenta are restored, and so are the RNG states (a model
    with dropout draws masks in train mode: training after a re-estimation continues as without it).
    Returns the batches used.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in layers]
    saved = [{k: v.clone() for k, v in m.state_dict().items() if "running" in k or "tracked" in k}
             for m in layers]
    was_training = model.training
    used = 0
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), mode_context(model, FULL):
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
        model.train()
        try:
            for batch in batches:
                if max_batches is not None and used >= max_batches:
                    break
                model(_batch_images(batch))
                used += 1
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
            model.train(was_training)
    if used == 0:
        for layer, state in zip(layers, saved):
            layer.load_state_dict(state, strict=False)
        raise ValueError("recalibrate_bn: no batches given; running statistics left as they were")
    return used
