"""Model registry: shapes, stems, channels and argument validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.method.models import MODEL_NAMES, build_dual_mode_model, build_model


def test_registry_names():
    assert set(MODEL_NAMES) == {"resnet18", "resnet50", "resnet8", "resnet20"}


@pytest.mark.parametrize("name", ["resnet8", "resnet20", "resnet18"])
def test_one_channel_input_and_class_count(name):
    model = build_model(name, num_classes=7, in_channels=1).eval()
    assert model.conv1.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)


@pytest.mark.parametrize(
    "stem, kernel, stride, pooled",
    [("cifar_maxpool", 3, 1, True), ("cifar", 3, 1, False), ("imagenet", 7, 2, True)],
)
def test_stems(stem, kernel, stride, pooled):
    model = build_model("resnet18", stem=stem)
    assert model.conv1.kernel_size == (kernel, kernel) and model.conv1.stride == (stride, stride)
    assert isinstance(model.maxpool, nn.MaxPool2d) == pooled


def test_cifar_maxpool_stem_reaches_layer1_at_half_size():
    model = build_model("resnet20").eval()
    seen = []
    model.layer1.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert seen == [torch.Size([1, 16, 16, 16])]
    assert [model.layer1[0].conv1.out_channels, model.layer3[0].conv1.out_channels] == [16, 64]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "vgg"}, "model name"),
        ({"name": "resnet8", "stem": "huge"}, "stem"),
        ({"name": "resnet8", "num_classes": 0}, "num_classes"),
        ({"name": "resnet8", "in_channels": 0}, "in_channels"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=field):
        build_model(name, **kwargs)


def test_build_dual_mode_model_passes_options():
    model, report = build_dual_mode_model("resnet8", bn_policy="separate", num_classes=4, in_channels=1)
    assert report.bn_policy == "separate" and len(report.converted) == 6
    assert model.fc.out_features == 4 and model.conv1.in_channels == 1
    assert report.to_dict()["bn_layers"] == 9
    assert "6 convs converted (3x3->1x1)" in report.summary()


@pytest.mark.parametrize("name,factory", [("resnet18", "resnet18"), ("resnet50", "resnet50")])
def test_width_64_is_torchvisions_network_weight_for_weight(name, factory):
    from torchvision.models import resnet as tv

    from trainer.method.models import _stem

    torch.manual_seed(7)
    reference = getattr(tv, factory)(weights=None, num_classes=10)
    reference.conv1, reference.maxpool = _stem("imagenet", 3, 64)  # what the registry did before `width`
    torch.manual_seed(7)
    ours, theirs = build_model(name, stem="imagenet", width=64).state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    torch.manual_seed(7)
    default = build_model(name, stem="imagenet").state_dict()
    assert all(torch.equal(default[k], reference.state_dict()[k]) for k in default)  # 64 is the default


@pytest.mark.parametrize("name,width,stage_channels", [
    ("resnet18", 16, (16, 32, 64, 128)), ("resnet50", 8, (32, 64, 128, 256)), ("resnet20", 8, (8, 16, 32)),
])
def test_width_scales_every_stage(name, width, stage_channels):
    model = build_model(name, stem="imagenet", width=width, num_classes=10)
    layers = [getattr(model, f"layer{i}") for i in range(1, len(stage_channels) + 1)]
    outs = [layer[-1].bn3.num_features if hasattr(layer[-1], "bn3") else layer[-1].bn2.num_features
            for layer in layers]
    assert tuple(outs) == stage_channels and model.conv1.out_channels == width
    assert model.fc.in_features == stage_channels[-1]
    if name == "resnet50":  # bottleneck inner width = planes (torchvision's base_width 64 rule, scaled)
        assert model.layer1[0].conv2.in_channels == width
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        build_model("resnet18", width=0)
