"""lowmode in your own training loop, on any torchvision or timm CNN: the stable public API.

    import lowmode

    report = lowmode.convert(model, bn_policy="frozen")          # in place, by rule; full mode unchanged
    schedule = lowmode.ModeSchedule(lowmode.ScheduleConfig(p=0.5), seed=0)
    for epoch in range(epochs):
        for step, (images, labels) in enumerate(loader):
            mode = schedule.mode(epoch, step)                   # "full" or "low", a pure function
            if mode == lowmode.LOW:
                images = lowmode.downsample_batch(images, ratio=2)  # the preprocess's filter, on the device
            lowmode.set_mode(model, mode)
            loss = criterion(model(images.to(device)), labels.to(device))  # then backward, step: yours

This package only re-exports names defined in the project's stages (``trainer.method``: conversion,
modes, BN policies, zoo models; ``pipeline``: the mode schedule and the on-device downsampling), so user
code does not depend on where they live; nothing in the project imports it. See examples/own_loop.py
and docs/ARCHITECTURE.md ("Public API").
"""

from pipeline.device_downsample import downsample_batch
from pipeline.schedule import FULL, LOW, MODES, Ladder, ModeSchedule, ScheduleConfig
from trainer.method.bn_policy import BN_POLICIES, has_mode_specific_parameters
from trainer.method.dualmode import (LOW_KERNELS, PRESETS, ConversionReport, check_full_mode_input,
                                     check_low_mode_input, convert_to_dual_mode, get_mode, is_dual_mode,
                                     mode_context, recalibrate_bn, set_mode)
from trainer.method.rule import RULE, ConversionRule, NoConvertibleConvolution, RulePlan, convert, plan
from trainer.method.zoo import ZooError, build_zoo_model

__all__ = [
    "BN_POLICIES", "FULL", "LOW", "LOW_KERNELS", "MODES", "PRESETS", "RULE", "ConversionReport", "ConversionRule",
    "Ladder", "ModeSchedule", "NoConvertibleConvolution", "RulePlan", "ScheduleConfig", "ZooError", "build_zoo_model",
    "check_full_mode_input", "check_low_mode_input", "convert", "convert_to_dual_mode", "downsample_batch",
    "get_mode", "has_mode_specific_parameters", "is_dual_mode", "mode_context", "plan", "recalibrate_bn",
    "set_mode",
]
