"""Model conversion: bitwise full mode, low-mode shapes, report counts, mode switching."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.models import mobilenet_v2

from tests.integrations import need
from trainer.method.dualmode import (
    DualModeConv2d,
    convert_to_dual_mode,
    get_mode,
    mode_context,
    set_mode,
    unwrap,
)
from trainer.method.models import build_dual_mode_model, build_model


def _pair(name: str, **options):
    torch.manual_seed(0)
    original = build_model(name, **options)
    converted = copy.deepcopy(original)
    from trainer.method.models import default_preset

    report = convert_to_dual_mode(converted, preset=default_preset(name))
    return original, converted, report


def test_full_mode_is_bitwise_identical_resnet18():
    original, converted, _ = _pair("resnet18")
    assert list(converted.state_dict()) == list(original.state_dict())
    x = torch.randn(3, 3, 32, 32)
    for train in (True, False):
        original.train(train)
        converted.train(train)
        assert torch.equal(converted(x), original(x))
    for a, b in zip(converted.state_dict().values(), original.state_dict().values()):
        assert torch.equal(a, b)  # incl. running statistics updated by the train-mode pass


def test_state_dict_loads_both_ways_strict():
    original, converted, _ = _pair("resnet8")
    fresh = build_model("resnet8")
    fresh.load_state_dict(converted.state_dict(), strict=True)
    converted.load_state_dict(original.state_dict(), strict=True)


def test_low_mode_feature_sizes_match_full_resnet18():
    _, model, _ = _pair("resnet18")
    names = ("layer1", "layer2", "layer3", "layer4")
    sizes: dict[str, list] = {}
    for name in names:
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: sizes.setdefault(name, []).append(tuple(o.shape))
        )
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
        with mode_context(model, "low"):
            model(torch.randn(1, 3, 16, 16))
    assert sizes["layer1"] == [(1, 64, 16, 16)] * 2
    for name in names:
        assert sizes[name][0] == sizes[name][1]
    assert sizes["layer4"][0] == (1, 512, 2, 2)


@pytest.mark.parametrize("name, convs", [("resnet18", 16), ("resnet50", 16), ("resnet8", 6), ("resnet20", 18)])
def test_report_counts(name, convs):
    model, report = build_dual_mode_model(name)
    assert len(report.converted) == convs
    assert set(report.kernel_map.values()) == {"3x3->1x1"}
    assert report.skipped_in_low == ["maxpool"]
    assert "conv1" not in report.converted  # the stem stays 3×3
    assert sum(isinstance(m, DualModeConv2d) for m in model.modules()) == convs
    if name == "resnet50":
        assert all(n.endswith("conv2") for n in report.converted)


def test_nothing_matching_warns():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    with pytest.warns(UserWarning, match="no convolution matched"):
        report = convert_to_dual_mode(model)
    assert report.converted == []
    with pytest.warns(UserWarning, match="matched no module"):
        convert_to_dual_mode(build_model("resnet8"), name_pattern=r"conv", skip_in_low=("nope",))


def test_cifar_stem_has_nothing_to_skip():
    _, report = build_dual_mode_model("resnet8", stem="cifar")
    assert report.skipped_in_low == []


def test_low_sgd_step_changes_full_kernels_and_fc_gets_gradients():
    torch.manual_seed(0)
    model, report = build_dual_mode_model("resnet8")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    labels = torch.tensor([0, 1, 2, 3])
    for mode, size in (("full", 32), ("low", 16)):
        set_mode(model, mode)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(torch.randn(4, 3, size, size)), labels).backward()
        assert model.fc.weight.grad is not None and model.fc.weight.grad.abs().sum() > 0
        if mode == "low":
            conv = report.converted[0] + ".weight"
            grad = dict(model.named_parameters())[conv].grad
            # ∂Ŵ/∂W is uniform over the 3×3 taps: every tap of a kernel gets the same gradient.
            assert torch.equal(grad, grad[:, :, :1, :1].expand_as(grad))
            pre_step = {n: p.detach().clone() for n, p in model.named_parameters()}
            opt.step()
            for name in report.converted:
                weight = dict(model.named_parameters())[name + ".weight"]
                assert not torch.equal(weight, pre_step[name + ".weight"])
        else:
            opt.step()
    assert not torch.equal(model.fc.weight, before["fc.weight"])


def test_depthwise_mobilenet_converts_and_full_mode_is_identical():
    torch.manual_seed(0)
    original = mobilenet_v2(num_classes=10)
    model = copy.deepcopy(original)
    report = convert_to_dual_mode(model, kernel_sizes=(3,))
    depthwise = [n for n in report.converted if dict(model.named_modules())[n].groups > 1]
    assert len(report.converted) == 18 and len(depthwise) == 17
    original.eval()
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x), original(x))
    with mode_context(model, "low"):
        conv = dict(model.named_modules())[depthwise[0]]
        feats = torch.randn(1, conv.in_channels, 8, 8)
        w_hat = conv.weight.mean(dim=(2, 3), keepdim=True)
        expected = F.conv2d(feats, w_hat, None, conv.stride, 0, conv.dilation, conv.groups)
        assert torch.allclose(conv(feats), expected, atol=1e-6)
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_set_mode_get_mode_and_context():
    model, _ = build_dual_mode_model("resnet8")
    assert get_mode(model) == "full"
    with mode_context(model, "low"):
        assert get_mode(model) == "low"
        assert model.maxpool(torch.ones(1, 1, 4, 4)).shape == (1, 1, 4, 4)  # skipped in low
    assert get_mode(model) == "full"
    assert model.maxpool(torch.ones(1, 1, 4, 4)).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="mode must be one of"):
        set_mode(model, "half")
    with pytest.raises(ValueError, match="convert_to_dual_mode first"):
        set_mode(build_model("resnet8"), "low")
    set_mode(build_model("resnet8"), "full")  # harmless on a baseline model


def test_set_mode_through_wrapper_objects():
    model, _ = build_dual_mode_model("resnet8")
    ddp_like = nn.Module()
    ddp_like.module = model
    set_mode(ddp_like, "low")
    assert get_mode(model) == "low" and get_mode(ddp_like) == "low"
    compiled = torch.compile(model, backend="eager")
    assert unwrap(compiled) is model
    set_mode(compiled, "full")
    assert get_mode(model) == "full"


# Low mode feeds the (unconverted) 1×1 downsample convs channels_last activations on CPU, so their
# weight gradients have channels_last strides; DDP warns once and copies them into its buckets.
@pytest.mark.filterwarnings("ignore:Grad strides do not match bucket view strides")
def test_set_mode_through_real_ddp(tmp_path):
    need("ddp")
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model, _ = build_dual_mode_model("resnet8")
        ddp = nn.parallel.DistributedDataParallel(model)
        assert unwrap(ddp) is model
        set_mode(ddp, "low")
        out = ddp(torch.randn(2, 3, 16, 16))
        out.sum().backward()
        assert get_mode(ddp) == "low" and model.fc.weight.grad is not None
    finally:
        dist.destroy_process_group()


def _tiny_net() -> nn.Module:
    """Conv-BN-ReLU, max-pool, conv-BN-ReLU, linear: the smallest model with every dual-mode part."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )


@pytest.mark.parametrize("dynamic", [False, None])
def test_compile_one_graph_per_mode(dynamic):
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model = _tiny_net()
    report = convert_to_dual_mode(model, skip_in_low=(r"^3$",))
    assert report.converted == ["0", "4"] and report.skipped_in_low == ["3"]
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=dynamic)
    for step in range(6):
        mode = ("full", "low")[step % 2]
        set_mode(compiled, mode)
        size = 8 if mode == "full" else 4
        x = torch.randn(2, 3, size, size)
        out = compiled(x)
        out.sum().backward()
        assert torch.allclose(out, model(x), atol=1e-5)
    assert counter.frame_count == 2  # compiled once per mode, never again


def test_converted_model_pickles_and_deepcopies():
    model, _ = build_dual_mode_model("resnet8", bn_policy="separate")
    clone = pickle.loads(pickle.dumps(model))
    set_mode(clone, "low")
    assert get_mode(clone) == "low" and get_mode(model) == "full"
    assert get_mode(copy.deepcopy(clone)) == "low"


def test_cpu_channels_last_low_path_matches_nchw(monkeypatch):
    import trainer.method.dualmode as dualmode

    model, _ = build_dual_mode_model("resnet8")
    set_mode(model, "low")
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    out.sum().backward()
    grad = model.layer1[0].conv1.weight.grad.clone()
    model.zero_grad()
    monkeypatch.setattr(dualmode, "LOW_CHANNELS_LAST_ON_CPU", False)
    reference = model(x)
    reference.sum().backward()
    assert torch.allclose(out, reference, atol=1e-5)
    assert torch.allclose(grad, model.layer1[0].conv1.weight.grad, atol=1e-5)


class _OpLog(TorchDispatchMode):
    """Every ATen op dispatched (forward and backward), by name."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name, low_kernels", [("resnet8", "pool"), ("resnet8", "keep"), ("resnet20", "pool")])
def test_full_mode_runs_exactly_the_unconverted_networks_ops(name, low_kernels):
    """The conversion must cost a full step nothing but Python dispatch: the same ATen ops, in the same
    order, forward and backward (the issue-11 question of lowmode's full step vs the baseline's; timed
    side by side by ``python -m trainer.bench``'s ``full_vs_baseline``)."""
    from trainer.method.dualmode import set_mode
    from trainer.method.models import build_dual_mode_model, build_model

    torch.manual_seed(0)
    base = build_model(name, in_channels=1)
    torch.manual_seed(0)
    dual, _ = build_dual_mode_model(name, in_channels=1, low_kernels=low_kernels)
    set_mode(dual, "full")
    images, labels = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    logs = []
    for model in (base, dual):
        with _OpLog() as log:
            torch.nn.functional.cross_entropy(model(images), labels).backward()
        logs.append(log.ops)
    assert len(logs[0]) > 50 and logs[0] == logs[1]
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(base.parameters(), dual.parameters()))
