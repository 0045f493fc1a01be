"""lowmode-train on zoo models (issue 22): ``model.name = "torchvision:NAME"`` / ``"timm:NAME"`` trains, and
each bad input is one ``lowmode-train: error:`` line naming the key and the model, module or package, exit 2,
with nothing written to the run directory.

In-process ``main()`` on the tiny synthetic datasets (16x16, and 32x32 where a model needs it); timm cases
need the ``timm`` integration.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.integrations import need
from tests.trainer.run.test_error_lines import ONE_EPOCH, _digest, _error_line
from tests.trainer.train_helpers import make_dataset, tiny_overrides
from trainer.__main__ import main


@pytest.fixture(scope="module")
def data32(tmp_path_factory) -> Path:
    """32x32 RGB, 4 classes: low images of 16x16."""
    return make_dataset(tmp_path_factory.mktemp("data32") / "synthetic", num_train=64, num_val=16, size=32)


def _train(run: Path, data: Path, *sets: str) -> int:
    args = tiny_overrides(data, **ONE_EPOCH)
    for item in sets:
        args += ["--set", item]
    return main(["--run-dir", str(run), *args])


@pytest.mark.parametrize("name, converted, skipped", [
    ("torchvision:resnet18", 16, ["maxpool"]),  # the default stem cifar_maxpool: the registry resnet18's shape
    ("timm:resnet18d", 16, ["maxpool"]),
])
def test_a_zoo_model_trains_with_the_rule(data, tmp_path, name, converted, skipped):
    if name.startswith("timm:"):
        need("timm")
    run = tmp_path / "run"
    assert _train(run, data, f'model.name="{name}"') == 0
    conversion = json.loads((run / "env.json").read_text())["dual_mode_conversion"]
    assert len(conversion["converted"]) == converted and conversion["skipped_in_low"] == skipped
    assert set(conversion["kernel_map"].values()) == {"3x3->1x1"} and conversion["unsupported"] == {}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_val_acc"] is not None


CASES = {
    "unknown torchvision model": (
        ['model.name="torchvision:resnet19"'], False,
        r"model.name: torchvision:resnet19: no such torchvision classification model .*did you mean resnet18"),
    "unknown timm model": (
        ['model.name="timm:resnet18dd"'], False,
        r"model.name: timm:resnet18dd: no such timm classification model .*did you mean resnet18d"),
    "stem the model lacks": (
        ['model.name="torchvision:mobilenet_v2"'], False,
        r"model.stem: torchvision:mobilenet_v2: stem 'cifar_maxpool' keeps the stem max-pool, but the model has "
        r"none; use 'cifar' .* or 'imagenet'"),
    "no convertible convolution": (
        ['model.name="torchvision:swin_t"', 'model.stem="imagenet"'], False,
        r"model.name: torchvision:swin_t: SwinTransformer has no convolution to pool in low mode: no nn.Conv2d "
        r"outside the stem has an odd k x k kernel"),
    "a layer type the low path cannot run": (
        ['model.name="timm:nf_regnet_b0"', 'model.stem="imagenet"'], True,
        r"model.name: timm:nf_regnet_b0: NormFreeNet has no convolution to pool in low mode: its 16 candidate "
        r"conv\(s\) are a layer type the low path cannot run, e.g. 'stages.0.0.conv2' \(ScaledStdConv2d"),
    "input that vanishes in low mode": (
        ['model.name="torchvision:squeezenet1_1"', 'model.stem="imagenet"', 'model.low_kernels="keep"'], True,
        r"model.low_kernels / model.name: 'keep' on torchvision:squeezenet1_1 cannot run the 16x16 "
        r"low-resolution images: .*module 'features.8' \(MaxPool2d\) fails on its 1x1 input"),
    "input the model cannot run at all": (
        ['model.name="torchvision:squeezenet1_1"', 'model.stem="imagenet"'], False,
        r"model.name: torchvision:squeezenet1_1 cannot run the dataset's 16x16 images: full-mode input 16x16: "
        r"module 'features.8' \(MaxPool2d\)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_zoo_input_is_one_error_line(case, data, data32, tmp_path, capsys):
    sets, large, pattern = CASES[case]
    if "timm:" in sets[0]:
        need("timm")
    run = tmp_path / "run"
    assert _train(run, data32 if large else data, *sets) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("lowmode-train: error: model.")
    assert re.search(pattern, line), line
    assert not run.exists() or _digest(run) == {}


def test_timm_missing_names_the_package(data, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    run = tmp_path / "run"
    assert _train(run, data, 'model.name="timm:resnet18d"') == 2
    assert _error_line(capsys.readouterr().err) == (
        "lowmode-train: error: model.name: timm models need the timm package, which is not installed "
        "(pip install 'lowmode[zoo]', i.e. timm==1.0.31)")
    assert not run.exists()


def test_a_registry_width_is_refused_for_zoo_models(data):
    """``model.width`` (photo-sized registry ResNets) has no meaning for a zoo name: refused, not ignored."""
    from dataclasses import asdict
    from types import SimpleNamespace

    from preprocess.dataset_format import load_manifest
    from trainer.run.build_zoo import build_zoo_run_model
    from trainer.run.config import ConfigError, ModelConfig

    mc = SimpleNamespace(**{**asdict(ModelConfig(name="torchvision:resnet18")), "width": 32})
    with pytest.raises(ConfigError, match=r"model.width: 32 applies to the registry's models only; "
                                          r"torchvision:resnet18 has its own widths"):
        build_zoo_run_model(mc, load_manifest(data))
