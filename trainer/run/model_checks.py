"""The run model's fit to its dataset, shared by registry and zoo models: input channels and classes from
the manifest, the ratio the conversion pools kernels for, and a low-mode dry run at the smallest low
resolution the schedule reads (ConfigError naming the keys)."""

from __future__ import annotations

import torch

from pipeline.schedule import LOW
from preprocess.dataset_format import Manifest

LowResolutions = tuple[str, ...]
"""The low resolutions a run's schedule reads (``ModeSchedule.rungs``): ("low",) for the two-level default."""
from trainer.method.dualmode import check_low_mode_input
from trainer.run.config import ConfigError, ModelConfig


def model_io(mc: ModelConfig, manifest: Manifest) -> tuple[int, int]:
    """(input channels, classifier outputs): the config's, 0 meaning the dataset's; a ConfigError naming the
    key when they cannot fit the dataset."""
    in_channels = mc.in_channels or manifest.channels
    if in_channels != manifest.channels:
        raise ConfigError(f"model.in_channels: {mc.in_channels}, but the dataset's images have "
                          f"{manifest.channels} channel(s); use 0 (from the dataset) or {manifest.channels}")
    num_classes = mc.num_classes or manifest.num_classes
    if num_classes < manifest.num_classes:
        raise ConfigError(f"model.num_classes: {mc.num_classes}, but the dataset has {manifest.num_classes} "
                          f"classes; use 0 (from the dataset) or a value >= {manifest.num_classes}")
    return in_channels, num_classes


def conversion_ratio(mc: ModelConfig, manifest: Manifest, low: LowResolutions = (LOW,)) -> int | float:
    """The ratio ``convert_to_dual_mode`` gets: full H / H of the low resolutions ``low`` the schedule reads.

    The paper's pooled kernels (``model.low_kernels = "pool"``) are defined for one integer ratio (T pools a
    k x k kernel to ceil(k / r)), so with "pool" every low resolution read must have the same integer ratio;
    "keep" runs any sizes (the ratio is only recorded). Otherwise a ConfigError naming the keys."""
    ratios = [manifest.ratio_of(name) for name in low]
    if mc.low_kernels == "pool" and (len(set(ratios)) > 1 or not ratios[0].is_integer()):
        sizes = ", ".join(f"{manifest.height(n)} ({r:g}x)" for n, r in zip(low, ratios))
        raise ConfigError(
            f"model.low_kernels: 'pool' (the paper's pooled kernels) needs one integer ratio full/low, but "
            f"schedule.policy / schedule.low_size read the low sizes {sizes} of the full "
            f"{manifest.height('full')}; set model.low_kernels = \"keep\" (the same kernels on the smaller "
            f"image) or read one integer-ratio size")
    ratio = ratios[0]
    return int(ratio) if ratio.is_integer() else ratio


def check_low_mode_fits(model: torch.nn.Module, mc: ModelConfig, manifest: Manifest, in_channels: int,
                        low: LowResolutions = (LOW,)) -> None:
    """The converted model runs the smallest of the low resolutions ``low`` (the trainer refuses it otherwise)."""
    smallest = min(low, key=manifest.height)
    low_h, low_w, _ = manifest.shape(smallest)
    try:
        check_low_mode_input(model, in_channels, low_h, low_w)
    except ValueError as exc:
        raise ConfigError(f"model.low_kernels / model.name: {mc.low_kernels!r} on {mc.name} cannot run the "
                          f"{low_h}x{low_w} low-resolution images: {exc}") from None
