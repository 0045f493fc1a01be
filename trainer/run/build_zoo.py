"""``model.name = "torchvision:NAME"`` / ``"timm:NAME"``: the zoo model for the dataset, converted by rule.

:func:`trainer.run.build.build_run_model` hands zoo names here. Classes and channels come from the
manifest (``model.num_classes`` / ``model.in_channels`` = 0, checked as for the registry), ``model.stem``
as :mod:`trainer.method.zoo` documents. The model must run the dataset's full-resolution images
(a dry run names the module that cannot), and with ``model.dual_mode`` its low-resolution ones in low mode.
Conversion: ``model.dual_preset = "auto"`` is the rule of :mod:`trainer.method.rule` (``model.kernel_sizes``
its sizes, ``model.name_pattern`` narrowing its convs, ``model.skip_in_low`` replacing its stem-pool
skip); a preset name or "" is :func:`~trainer.method.dualmode.convert_to_dual_mode` as for the registry.
Every refusal is a ConfigError naming the key and the model or module (exit 2).
"""

from __future__ import annotations

import logging

import torch

from pipeline.schedule import FULL, LOW
from preprocess.dataset_format import Manifest
from trainer.method.dualmode import check_full_mode_input, convert_to_dual_mode
from trainer.method.rule import ConversionRule, NoConvertibleConvolution, convert
from trainer.method.zoo import ZooError, build_zoo_model
from trainer.run.config import ConfigError, ModelConfig
from trainer.run.model_checks import LowResolutions, check_low_mode_fits, conversion_ratio, model_io

log = logging.getLogger("lowmode.train")


def build_zoo_run_model(mc: ModelConfig, manifest: Manifest,
                        low: LowResolutions = (LOW,)) -> tuple[torch.nn.Module, dict | None]:
    """(model, conversion report as a dict or None), as ``build_run_model`` returns for the registry."""
    in_channels, num_classes = model_io(mc, manifest)
    if mc.width:  # a registry option (photo-sized ResNets); a zoo name fixes its own widths
        raise ConfigError(f"model.width: {mc.width} applies to the registry's models only; {mc.name} has its own "
                          f"widths (choose another variant, e.g. torchvision:wide_resnet50_2), use 0")
    try:
        model = build_zoo_model(mc.name, num_classes=num_classes, in_channels=in_channels, stem=mc.stem)
    except ZooError as exc:
        raise ConfigError(f"model.{exc.key}: {exc}") from None
    full_h, full_w, _ = manifest.shape(FULL)
    try:
        check_full_mode_input(model, in_channels, full_h, full_w)
    except ValueError as exc:
        raise ConfigError(f"model.name: {mc.name} cannot run the dataset's {full_h}x{full_w} images: {exc}") from None
    if not mc.dual_mode:
        return model, None
    common = dict(bn_policy=mc.bn_policy, ratio=conversion_ratio(mc, manifest, low), low_kernels=mc.low_kernels)
    if mc.dual_preset == "auto":
        try:
            rule = ConversionRule(kernel_sizes=mc.kernel_sizes)
        except ValueError:
            raise ConfigError(f"model.kernel_sizes: the conversion rule pools odd sizes >= 3, got "
                              f"{list(mc.kernel_sizes)}") from None
        try:
            report = convert(model, rule, name_pattern=mc.name_pattern or None,
                             skip_in_low=tuple(mc.skip_in_low) or None, **common)
        except NoConvertibleConvolution as exc:
            raise ConfigError(f"model.name: {mc.name}: {exc}") from None
    else:
        report = convert_to_dual_mode(model, preset=mc.dual_preset or None, name_pattern=mc.name_pattern or None,
                                      kernel_sizes=mc.kernel_sizes, skip_in_low=tuple(mc.skip_in_low) or None,
                                      **common)
    check_low_mode_fits(model, mc, manifest, in_channels, low)
    if report.unsupported:
        log.warning("low mode keeps the full kernels of %d conv(s) it cannot pool, e.g. %s",
                    len(report.unsupported), next(iter(report.unsupported.items())))
    log.info(report.summary())
    return model, report.to_dict()
