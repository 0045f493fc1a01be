"""The run model's fit to its dataset, shared by registry and zoo models: input channels and classes from
the manifest, and a low-mode dry run at the dataset's low resolution (ConfigError naming the keys)."""

from __future__ import annotations

import torch

from pipeline.schedule import LOW
from preprocess.dataset_format import Manifest
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


def check_low_mode_fits(model: torch.nn.Module, mc: ModelConfig, manifest: Manifest, in_channels: int) -> None:
    """The converted model runs the dataset's low-resolution images (the trainer refuses it otherwise)."""
    low_h, low_w, _ = manifest.shape(LOW)
    try:
        check_low_mode_input(model, in_channels, low_h, low_w)
    except ValueError as exc:
        raise ConfigError(f"model.low_kernels / model.name: {mc.low_kernels!r} on {mc.name} cannot run the "
                          f"{low_h}x{low_w} low-resolution images: {exc}") from None
