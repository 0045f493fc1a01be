"""Zoo models: ``torchvision:NAME`` and ``timm:NAME`` built for a dataset (classes, channels, stem).

``build_zoo_model("torchvision:resnet18", num_classes=10, in_channels=1, stem="cifar_maxpool")``:

- **Classes**: passed to the model's own constructor (``num_classes=``), which sizes its classifier.
- **Input channels**: timm's constructor takes them (``in_chans=``, timm adapts its first conv); for
  torchvision the first ``nn.Conv2d`` (in registration order, the one reading the image) is replaced by a
  freshly initialised conv with the same hyperparameters and ``in_channels`` inputs.
- **Stem** (:data:`trainer.method.models.STEMS`, as for the registry):

  - ``imagenet``: the model's own stem, unchanged;
  - ``cifar``: the small-image stem: the first conv becomes a 3×3, stride-1, padding-1 conv (same output
    channels, bias as before) and the stem max-pool (:func:`trainer.method.rule.stem_pool`), if any,
    becomes ``nn.Identity`` — the CIFAR ResNet's stem; the network then downsamples 2–4× less;
  - ``cifar_maxpool``: the same 3×3 stride-1 first conv, the stem max-pool kept (the registry's default and
    the paper's CIFAR setting, which low mode skips); a model without a stem max-pool (MobileNet,
    EfficientNet, RegNet, ConvNeXt) refuses it, naming ``cifar`` and ``imagenet`` instead.

  So ``torchvision:resnet18`` with ``cifar_maxpool`` has the registry ``resnet18``'s architecture (tested).
  New convs get the registry's initialisation (Kaiming normal, fan-out; zero bias).

Weights are always freshly initialised (``weights=None`` / ``pretrained=False``): nothing is downloaded.
timm is an optional dependency (``pip install 'lowmode[zoo]'``), imported only for ``timm:`` names.
Errors are :class:`ZooError` (a ValueError) naming the model, the package or the stem.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util

from torch import nn

from trainer.method.models import STEMS
from trainer.method.rule import first_conv, stem_pool

SOURCES = ("torchvision", "timm")
TIMM_REQUIREMENT = "timm==1.0.31"


class ZooError(ValueError):
    """A zoo model name, package or option that cannot be used (the message names it); ``key`` is the
    model option at fault: "name" or "stem"."""

    def __init__(self, message: str, key: str = "name") -> None:
        super().__init__(message)
        self.key = key


def is_zoo_name(name: str) -> bool:
    """True for ``"torchvision:NAME"`` / ``"timm:NAME"`` (registry names have no colon)."""
    return isinstance(name, str) and name.split(":", 1)[0] in SOURCES and ":" in name


def split_zoo_name(name: str) -> tuple[str, str]:
    """(source, model name) of a zoo name; ZooError for anything else."""
    source, _, model = name.partition(":")
    if source not in SOURCES or not model:
        raise ZooError(f"expected 'torchvision:NAME' or 'timm:NAME', got {name!r}")
    return source, model


def _timm():
    if importlib.util.find_spec("timm") is None:
        raise ZooError(f"timm models need the timm package, which is not installed "
                       f"(pip install 'lowmode[zoo]', i.e. {TIMM_REQUIREMENT})")
    return importlib.import_module("timm")


def _torchvision_names() -> list[str]:
    import torchvision.models

    return list(torchvision.models.list_models(module=torchvision.models))


def _unknown(source: str, model: str, known: list[str]) -> ZooError:
    close = difflib.get_close_matches(model, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listing = ("torchvision.models.list_models(module=torchvision.models)" if source == "torchvision"
               else "timm.list_models()")
    return ZooError(f"{source}:{model}: no such {source} classification model (see {listing}){hint}")


def check_zoo_name(name: str) -> None:
    """ZooError unless ``name`` is a torchvision classification model or a timm model (timm installed)."""
    source, model = split_zoo_name(name)
    if source == "torchvision":
        known = _torchvision_names()
        if model not in known:
            raise _unknown(source, model, known)
        return
    timm = _timm()
    if not timm.is_model(model):
        raise _unknown(source, model, timm.list_models())


def build_zoo_model(name: str, *, num_classes: int, in_channels: int, stem: str = "imagenet") -> nn.Module:
    """A freshly initialised zoo model for ``num_classes`` classes and ``in_channels`` channels (module docstring)."""
    if stem not in STEMS:
        raise ZooError(f"stem must be one of {list(STEMS)}, got {stem!r}", key="stem")
    if num_classes < 1 or in_channels < 1:
        raise ZooError(f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}")
    check_zoo_name(name)
    source, model_name = split_zoo_name(name)
    if source == "torchvision":
        import torchvision.models

        model = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes)
    else:
        model = _timm().create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    first = first_conv(model)
    if first is None:
        raise ZooError(f"{name}: has no nn.Conv2d to read the image (not a CNN)")
    conv = model.get_submodule(first)
    pool = stem_pool(model)
    if stem == "cifar_maxpool" and pool is None:
        raise ZooError(f"{name}: stem 'cifar_maxpool' keeps the stem max-pool, but the model has none; use "
                       f"'cifar' (3x3 stride-1 first conv) or 'imagenet' (the model's own stem)", key="stem")
    if stem != "imagenet":
        _replace(model, first, _new_conv(in_channels, conv.out_channels, 3, stride=1, padding=1,
                                          bias=conv.bias is not None))
        if stem == "cifar" and pool is not None:
            _replace(model, pool, nn.Identity())
    elif conv.in_channels != in_channels:
        if type(conv) is not nn.Conv2d or conv.groups != 1:
            raise ZooError(f"{name}: cannot adapt its first conv {first!r} ({type(conv).__name__}) to "
                           f"{in_channels} input channel(s)")
        _replace(model, first, _new_conv(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                                          padding=conv.padding, bias=conv.bias is not None,
                                          dilation=conv.dilation, padding_mode=conv.padding_mode))
    return model


def _new_conv(in_channels: int, out_channels: int, kernel_size, **options) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, **options)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # the registry's (torchvision's) init
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)
