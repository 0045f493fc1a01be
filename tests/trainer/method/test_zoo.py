"""Zoo models built for a dataset: classes, input channels, the small-image stems, and the errors."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from tests.integrations import need
from trainer.method.models import build_model
from trainer.method.zoo import ZooError, build_zoo_model, check_zoo_name, is_zoo_name, split_zoo_name


def _shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_torchvision_resnet18_with_the_cifar_maxpool_stem_is_the_registry_resnet18():
    torch.manual_seed(0)
    zoo = build_zoo_model("torchvision:resnet18", num_classes=10, in_channels=1, stem="cifar_maxpool")
    torch.manual_seed(0)
    registry = build_model("resnet18", num_classes=10, in_channels=1, stem="cifar_maxpool")
    assert _shapes(zoo) == _shapes(registry)
    # the same initialisation, draw for draw: a run of either trains identically (docs/results/zoo_fmnist_1epoch.md)
    assert all(torch.equal(a, b) for a, b in zip(zoo.state_dict().values(), registry.state_dict().values()))
    assert (zoo.conv1.kernel_size, zoo.conv1.stride, zoo.conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(zoo.maxpool, nn.MaxPool2d)
    assert zoo(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_stems_and_channels():
    own = build_zoo_model("torchvision:resnet18", num_classes=3, in_channels=1, stem="imagenet")
    assert own.conv1.weight.shape == (64, 1, 7, 7) and own.conv1.stride == (2, 2) and own.fc.out_features == 3
    cifar = build_zoo_model("torchvision:resnet18", num_classes=3, in_channels=3, stem="cifar")
    assert isinstance(cifar.maxpool, nn.Identity) and cifar.conv1.kernel_size == (3, 3)
    mobile = build_zoo_model("torchvision:mobilenet_v2", num_classes=4, in_channels=1, stem="cifar")
    first = mobile.features[0][0]
    assert first.weight.shape == (32, 1, 3, 3) and first.stride == (1, 1) and first.bias is None
    assert mobile(torch.zeros(2, 1, 32, 32)).shape == (2, 4)
    with pytest.raises(ZooError, match=r"torchvision:mobilenet_v2: stem 'cifar_maxpool' keeps the stem max-pool, "
                                       r"but the model has none; use 'cifar'") as info:
        build_zoo_model("torchvision:mobilenet_v2", num_classes=4, in_channels=1, stem="cifar_maxpool")
    assert info.value.key == "stem"
    with pytest.raises(ZooError, match="stem must be one of"):
        build_zoo_model("torchvision:resnet18", num_classes=4, in_channels=1, stem="tiny")


def test_timm_models_take_classes_channels_and_stems():
    need("timm")
    model = build_zoo_model("timm:resnet18d", num_classes=7, in_channels=1, stem="imagenet")
    assert model.conv1[0].weight.shape == (32, 1, 3, 3) and model.get_classifier().out_features == 7
    small = build_zoo_model("timm:resnet18d", num_classes=7, in_channels=1, stem="cifar")
    assert small.conv1[0].stride == (1, 1) and isinstance(small.maxpool, nn.Identity)
    assert small(torch.zeros(2, 1, 16, 16)).shape == (2, 7)


def test_names():
    assert is_zoo_name("torchvision:resnet18") and is_zoo_name("timm:x") and not is_zoo_name("resnet18")
    assert not is_zoo_name("keras:resnet") and split_zoo_name("timm:resnet18d") == ("timm", "resnet18d")
    check_zoo_name("torchvision:regnet_y_400mf")
    with pytest.raises(ZooError, match=r"torchvision:resnet19: no such torchvision classification model \(see "
                                       r"torchvision.models.list_models\(module=torchvision.models\)\); did you "
                                       r"mean resnet18"):
        check_zoo_name("torchvision:resnet19")
    with pytest.raises(ZooError, match="expected 'torchvision:NAME' or 'timm:NAME'"):
        check_zoo_name("torchvision:")
    with pytest.raises(ZooError, match="no such torchvision classification model"):
        check_zoo_name("torchvision:fasterrcnn_resnet50_fpn")  # detection, not classification


def test_unknown_timm_name_and_missing_timm(monkeypatch):
    if importlib.util.find_spec("timm") is not None:
        with pytest.raises(ZooError, match=r"timm:resnet18dd: no such timm classification model .*did you mean"):
            check_zoo_name("timm:resnet18dd")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    with pytest.raises(ZooError, match=r"timm models need the timm package, which is not installed "
                                       r"\(pip install 'lowmode\[zoo\]', i.e. timm==1.0.31\)"):
        check_zoo_name("timm:resnet18d")
