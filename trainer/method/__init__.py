"""The paper's method (Sections 2-3): low-mode steps with pooled kernels on downsampled images.

- :mod:`~trainer.method.kernel_pool`: T, the differentiable average pooling of a kernel (3x3 -> 1x1).
- :mod:`~trainer.method.dualmode`: ``convert_to_dual_mode`` gives selected convolutions a low-mode
  path (in place, state_dict keys unchanged; ``low_kernels="keep"``: same kernels, nothing converted);
  ``set_mode`` / ``mode_context`` switch a model; ``check_low_mode_input`` finds where a low-mode
  input would shrink below one pixel.
- :mod:`~trainer.method.bn_policy`: what BatchNorm does in low steps (frozen / separate / shared /
  private).
- :mod:`~trainer.method.class_swap`: the ``__class__``-swap helper the conversions share.
- :mod:`~trainer.method.models`: the model registry (CIFAR ResNet-18/50, small ResNet-8/20).
- :mod:`~trainer.method.rule`: the conversion rule for any CNN (stem, stem pool, which convs are pooled);
  the registry presets are this rule.
- :mod:`~trainer.method.zoo`: ``torchvision:NAME`` / ``timm:NAME`` models built for a dataset (classes,
  channels, small-image stems).

Nothing here knows about data loading, distributed training or files.
"""

from trainer.method.bn_policy import BN_POLICIES, has_mode_specific_parameters
from trainer.method.dualmode import (LOW_KERNELS, PRESETS, ConversionReport, check_low_mode_input,
                                     convert_to_dual_mode, get_mode, is_dual_mode, mode_context, recalibrate_bn,
                                     set_mode)
from trainer.method.kernel_pool import pool_kernel, pooled_size
from trainer.method.models import MODEL_NAMES, STEMS, build_dual_mode_model, build_model, default_preset

__all__ = ["BN_POLICIES", "LOW_KERNELS", "MODEL_NAMES", "PRESETS", "STEMS", "ConversionReport",
           "build_dual_mode_model", "build_model", "check_low_mode_input", "convert_to_dual_mode", "default_preset",
           "get_mode", "has_mode_specific_parameters", "is_dual_mode", "mode_context", "pool_kernel", "pooled_size",
           "recalibrate_bn", "set_mode"]
