"""Model registry: CIFAR-style ResNets (torchvision-based) and small CPU ResNets.

All models share torchvision's ResNet attribute names (``conv1``, ``bn1``, ``relu``, ``maxpool``,
``layer1``…, ``avgpool``, ``fc``), so the conversion presets in :mod:`trainer.method.dualmode` apply.

Stems (``stem=``):
- ``cifar_maxpool`` (default, the paper's setting): 3×3 stride-1 conv, then a 3×3 stride-2
  max-pool. Low mode drops the max-pool, so a 16×16 low input reaches ``layer1`` at the 16×16
  a 32×32 full input has after pooling.
- ``cifar``: 3×3 stride-1 conv, no max-pool (the usual CIFAR ResNet; low mode has nothing to drop).
- ``imagenet``: torchvision's 7×7 stride-2 conv + max-pool.

Usage: ``model = build_model("resnet18", num_classes=10)`` or
``model, report = build_dual_mode_model("resnet50", bn_policy="frozen")``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from trainer.method.dualmode import ConversionReport, convert_to_dual_mode

STEMS = ("cifar_maxpool", "cifar", "imagenet")


def _stem(stem: str, in_channels: int, width: int) -> tuple[nn.Conv2d, nn.Module]:
    """(conv1, maxpool) for the stem kind; the conv has no bias (a BN follows)."""
    if stem == "imagenet":
        conv = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        conv = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init
    pool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return conv, pool


def _torchvision_resnet(factory: Callable[..., tv_resnet.ResNet]) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, stem: str) -> nn.Module:
        model = factory(weights=None, num_classes=num_classes)
        model.conv1, model.maxpool = _stem(stem, in_channels, model.conv1.out_channels)
        return model

    return build


class SmallResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): three stages of n basic blocks, widths w, 2w, 4w.

    Uses torchvision's BasicBlock and 1×1-conv downsampling, and torchvision's attribute names.
    """

    def __init__(self, blocks_per_stage: int, *, width: int, num_classes: int, in_channels: int,
                 stem: str) -> None:
        super().__init__()
        self.conv1, self.maxpool = _stem(stem, in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = width
        self.layer1 = self._make_layer(width, blocks_per_stage, stride=1)
        self.layer2 = self._make_layer(2 * width, blocks_per_stage, stride=2)
        self.layer3 = self._make_layer(4 * width, blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                tv_resnet.conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes)
            )
        layers = [tv_resnet.BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [tv_resnet.BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _small_resnet(blocks_per_stage: int, width: int = 16) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, stem: str) -> nn.Module:
        return SmallResNet(blocks_per_stage, width=width, num_classes=num_classes,
                           in_channels=in_channels, stem=stem)

    return build


# name → (builder, dual-mode conversion preset of trainer.method.dualmode.PRESETS)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "resnet18": (_torchvision_resnet(tv_resnet.resnet18), "resnet_basic"),
    "resnet50": (_torchvision_resnet(tv_resnet.resnet50), "resnet_bottleneck"),
    "resnet8": (_small_resnet(1), "resnet_basic"),
    "resnet20": (_small_resnet(3), "resnet_basic"),
}
MODEL_NAMES = tuple(_REGISTRY)


def build_model(name: str, *, num_classes: int = 10, in_channels: int = 3,
                stem: str = "cifar_maxpool") -> nn.Module:
    """A freshly initialised model from the registry (names: :data:`MODEL_NAMES`).

    num_classes: classifier outputs; in_channels: image channels (1 for Fashion-MNIST);
    stem: one of :data:`STEMS` (see module docstring).
    """
    if name not in _REGISTRY:
        raise ValueError(f"model name must be one of {list(MODEL_NAMES)}, got {name!r}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    builder, _ = _REGISTRY[name]
    return builder(num_classes=num_classes, in_channels=in_channels, stem=stem)


def default_preset(name: str) -> str:
    """The dual-mode conversion preset a registry model uses."""
    if name not in _REGISTRY:
        raise ValueError(f"model name must be one of {list(MODEL_NAMES)}, got {name!r}")
    return _REGISTRY[name][1]


def build_dual_mode_model(name: str, *, bn_policy: str = "frozen", ratio: int = 2, low_kernels: str = "pool",
                          **options) -> tuple[nn.Module, ConversionReport]:
    """``build_model(name, **options)`` converted with the model's default preset."""
    model = build_model(name, **options)
    report = convert_to_dual_mode(model, preset=default_preset(name), bn_policy=bn_policy,
                                  ratio=ratio, low_kernels=low_kernels)
    return model, report
