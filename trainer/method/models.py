"""Model registry: CIFAR-style ResNets (torchvision-based) and small CPU ResNets.

All models share torchvision's ResNet attribute names (``conv1``, ``bn1``, ``relu``, ``maxpool``,
``layer1``…, ``avgpool``, ``fc``), so the conversion presets in :mod:`trainer.method.dualmode` apply.

Stems (``stem=``):
- ``cifar_maxpool`` (default, the paper's setting): 3×3 stride-1 conv, then a 3×3 stride-2
  max-pool. Low mode drops the max-pool, so a 16×16 low input reaches ``layer1`` at the 16×16
  a 32×32 full input has after pooling.
- ``cifar``: 3×3 stride-1 conv, no max-pool (the usual CIFAR ResNet; low mode has nothing to drop).
- ``imagenet``: torchvision's 7×7 stride-2 conv + max-pool.

Width (``width=``): the first stage's channels; each later stage doubles them. ``None`` = the model's
own: 64 for ResNet-18/50 (torchvision's; ``width=64`` builds exactly torchvision's network and weights),
16 for ResNet-8/20 (He et al.'s CIFAR ResNets). FLOPs scale with width², so ``width=16`` makes a
ResNet-18 about 16× cheaper per image, which sizes a photo model for a CPU study.

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


class ScaledResNet(tv_resnet.ResNet):
    """torchvision's ResNet with the first stage's width a parameter (stages width, 2·width, 4·width,
    8·width; bottleneck inner widths scale the same way). Modules are created and initialised in
    torchvision's order, so ``width=64`` is torchvision's resnet18/50, weight for weight, at any seed."""

    def __init__(self, block: type[nn.Module], layers: list[int], *, width: int, num_classes: int) -> None:
        nn.Module.__init__(self)  # torchvision's __init__ hard-codes 64; this is it with `width`
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _torchvision_resnet(block: type[nn.Module], layers: list[int]) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, stem: str, width: int) -> nn.Module:
        model = ScaledResNet(block, layers, width=width, num_classes=num_classes)
        model.conv1, model.maxpool = _stem(stem, in_channels, width)
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


def _small_resnet(blocks_per_stage: int) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, stem: str, width: int) -> nn.Module:
        return SmallResNet(blocks_per_stage, width=width, num_classes=num_classes,
                           in_channels=in_channels, stem=stem)

    return build


# name → (builder, dual-mode conversion preset of trainer.method.dualmode.PRESETS, default width)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str, int]] = {
    "resnet18": (_torchvision_resnet(tv_resnet.BasicBlock, [2, 2, 2, 2]), "resnet_basic", 64),
    "resnet50": (_torchvision_resnet(tv_resnet.Bottleneck, [3, 4, 6, 3]), "resnet_bottleneck", 64),
    "resnet8": (_small_resnet(1), "resnet_basic", 16),
    "resnet20": (_small_resnet(3), "resnet_basic", 16),
}
MODEL_NAMES = tuple(_REGISTRY)


def build_model(name: str, *, num_classes: int = 10, in_channels: int = 3,
                stem: str = "cifar_maxpool", width: int | None = None) -> nn.Module:
    """A freshly initialised model from the registry (names: :data:`MODEL_NAMES`).

    num_classes: classifier outputs; in_channels: image channels (1 for Fashion-MNIST);
    stem: one of :data:`STEMS`; width: the first stage's channels (None: the model's own, see module
    docstring).
    """
    if name not in _REGISTRY:
        raise ValueError(f"model name must be one of {list(MODEL_NAMES)}, got {name!r}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if width is not None and width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    builder, _, default_width = _REGISTRY[name]
    return builder(num_classes=num_classes, in_channels=in_channels, stem=stem, width=width or default_width)


def default_preset(name: str) -> str:
    """The dual-mode conversion preset a registry model uses."""
    if name not in _REGISTRY:
        raise ValueError(f"model name must be one of {list(MODEL_NAMES)}, got {name!r}")
    return _REGISTRY[name][1]


def default_width(name: str) -> int:
    """The first stage's channels of a registry model when ``width`` is not given."""
    if name not in _REGISTRY:
        raise ValueError(f"model name must be one of {list(MODEL_NAMES)}, got {name!r}")
    return _REGISTRY[name][2]


def build_dual_mode_model(name: str, *, bn_policy: str = "frozen", ratio: int = 2, low_kernels: str = "pool",
                          **options) -> tuple[nn.Module, ConversionReport]:
    """``build_model(name, **options)`` converted with the model's default preset."""
    model = build_model(name, **options)
    report = convert_to_dual_mode(model, preset=default_preset(name), bn_policy=bn_policy,
                                  ratio=ratio, low_kernels=low_kernels)
    return model, report
