"""The conversion rule on torchvision's and timm's CNNs (issue 22): one model per name, every assertion on it.

For each model: the rule converts something and nothing it cannot run; full mode is bit-identical to the
unconverted model (eval and train, outputs and running statistics); a low step (input downsampled on the
device) runs and its gradient reaches every pooled full kernel; ``low_kernels="keep"`` runs and, in eval
mode, is exactly the unconverted model on the low image; the low input passes ``check_low_mode_input``.
Models without BatchNorm (ConvNeXt: LayerNorm): every BN policy converts no layer and runs the same
network (separate / private warn that they change nothing).

Kept cheap: 64x64 inputs, batch 2, fresh weights (nothing downloaded). timm cases need the ``timm``
integration (skipped without it, required in CI via LOWMODE_REQUIRE=timm).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from pipeline.device_downsample import downsample_batch
from tests.integrations import need
from trainer.method.bn_policy import BN_POLICIES
from trainer.method.dualmode import DualModeConv2d, check_low_mode_input, set_mode
from trainer.method.rule import convert, plan
from trainer.method.zoo import build_zoo_model

TORCHVISION = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2", "mobilenet_v3_small",
               "efficientnet_b0", "regnet_y_400mf", "convnext_tiny")
TIMM = ("resnet18d", "efficientnet_b0", "convnext_atto")
CASES = [f"torchvision:{n}" for n in TORCHVISION] + [f"timm:{n}" for n in TIMM]
SIZE, CLASSES = 64, 5


def _forward(model, x, seed=1):
    torch.manual_seed(seed)  # dropout / stochastic depth draw the same in both models
    return model(x)


def _buffers(model):
    return {k: v.clone() for k, v in model.named_buffers()}


def _wake_zeroed_norms(model):
    """timm zero-initialises each residual block's last BN weight (zero_init_last): at init no gradient
    reaches the block's convs, by design. Give those weights 1 so the test can see the gradient path."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.weight is not None and not module.weight.detach().any():
            torch.nn.init.ones_(module.weight)


@pytest.mark.parametrize("name", CASES)
def test_rule_conversion_on_zoo_model(name):
    if name.startswith("timm:"):
        need("timm")
    torch.manual_seed(0)
    original = build_zoo_model(name, num_classes=CLASSES, in_channels=3, stem="imagenet")
    _wake_zeroed_norms(original)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    x_low = downsample_batch(x, 2)
    labels = torch.tensor([1, 3])

    # the rule: something to pool, nothing the low path cannot run
    model = copy.deepcopy(original)
    report = convert(model, bn_policy="frozen")
    assert report.converted and report.converted == plan(original).convert and not report.unsupported
    assert list(model.state_dict()) == list(original.state_dict())

    # full mode: bit-identical to the unconverted model, eval and train (running statistics included)
    for train in (False, True):
        original.train(train)
        model.train(train)
        with torch.no_grad():
            assert torch.equal(_forward(model, x), _forward(original, x)), f"train={train}"
    reference = original.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key

    # a low step: runs on the downsampled batch, the gradient reaches every pooled full kernel
    before = _buffers(model)
    set_mode(model, "low")
    out = _forward(model, x_low)
    assert out.shape == (2, CLASSES) and torch.isfinite(out).all()
    F.cross_entropy(out, labels).backward()
    modules = dict(model.named_modules())
    for conv in report.converted:
        weight = modules[conv].weight
        assert isinstance(modules[conv], DualModeConv2d)
        assert weight.grad is not None and weight.grad.abs().sum() > 0, conv
        if report.kernel_map[conv].endswith("->1x1"):  # dT/dW is uniform over the taps of a 1x1 target
            assert torch.equal(weight.grad, weight.grad[:, :, :1, :1].expand_as(weight.grad)), conv
    for key, value in model.named_buffers():  # frozen: the low step left the running statistics alone
        assert torch.equal(value, before[key]), key
    check_low_mode_input(model, 3, SIZE // 2, SIZE // 2)
    del model

    # keep: the same network on the downsampled image (eval: exactly the unconverted model on it)
    kept = copy.deepcopy(original)
    keep_report = convert(kept, bn_policy="frozen", low_kernels="keep")
    assert keep_report.converted == [] and keep_report.skipped_in_low == []
    original.eval()
    kept.eval()
    set_mode(kept, "low")
    with torch.no_grad():
        assert torch.equal(kept(x_low), original(x_low))
    kept.train()
    F.cross_entropy(_forward(kept, x_low), labels).backward()
    assert all(p.grad is not None for p in kept.parameters() if p.requires_grad)

    # no BatchNorm (ConvNeXt): the policies have nothing to act on and run the same network
    if not any(isinstance(m, _BatchNorm) for m in original.modules()):
        outputs = []
        for policy in BN_POLICIES:
            candidate = copy.deepcopy(original).train()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                policy_report = convert(candidate, bn_policy=policy)
            assert policy_report.bn_layers == []
            warned = [w for w in caught if "changes nothing" in str(w.message)]
            assert len(warned) == (policy in ("separate", "private")), policy
            set_mode(candidate, "low")
            with torch.no_grad():
                outputs.append(_forward(candidate, x_low))
        assert all(torch.equal(out, outputs[0]) for out in outputs[1:])
