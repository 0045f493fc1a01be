"""Which options each source reads: one table (SOURCE_OPTIONS) drives the CLI, BuildConfig and the openers;
the recorded build config (sidecars, manifests) stays exactly what earlier builds wrote."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from preprocess.config import BuildConfig
from preprocess.dataset_format import Manifest
from preprocess.errors import InputError
from preprocess.sources import INPUT_ONLY_OPTIONS, SOURCE_OPTIONS, SOURCES, option_sources
from preprocess.sources.cifar import open_cifar10, open_cifar100
from preprocess.sources.idx import open_fashion_mnist, open_mnist
from preprocess.sources.imagefolder import open_imagefolder
from preprocess.sources.synthetic import open_synthetic
from tests.preprocess.fixtures import run_cli, synthetic_args

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"
_COMMON = {"encoding": "raw", "method": "gaussian", "ratio": 2, "samples_per_shard": 5000, "seed": 0}

# (BuildConfig arguments, the output_config the code before SOURCE_OPTIONS returned for them)
OUTPUT_CONFIGS = [
    ({"source": "cifar10", "input": "/in/c10"}, {**_COMMON, "input": "/in/c10", "source": "cifar10"}),
    ({"source": "cifar10", "input": "/in/c10", "download": True, "encoding": "jpg"},
     {**_COMMON, "encoding": "jpg", "input": "/in/c10", "jpeg_quality": 95, "source": "cifar10"}),
    ({"source": "cifar100", "input": "/in/c100", "label": "coarse"},
     {**_COMMON, "input": "/in/c100", "label": "coarse", "source": "cifar100"}),
    ({"source": "fashion-mnist"},
     {**_COMMON, "input": "/usr/share/datasets/fashion-mnist", "source": "fashion-mnist"}),
    ({"source": "mnist", "input": "/in/mnist", "ratio": 4, "method": "area", "samples_per_shard": 100, "seed": 3},
     {"encoding": "raw", "input": "/in/mnist", "method": "area", "ratio": 4, "samples_per_shard": 100, "seed": 3,
      "source": "mnist"}),
    # imagefolder's pixels changed on purpose (revision 3, see preprocess.sources.SOURCE_REVISIONS)
    ({"source": "imagefolder", "input": "/in/img", "size": 64, "channels": 1, "val_fraction": 0.2},
     {**_COMMON, "channels": 1, "input": "/in/img", "size": 64, "source": "imagefolder", "val_fraction": 0.2,
      "source_revision": 3}),
    ({"source": "synthetic"},
     {**_COMMON, "channels": 3, "input": None, "num_classes": 10, "num_train": 1024, "num_val": 256, "size": 32,
      "source": "synthetic"}),
    ({"source": "synthetic", "size": 16, "channels": 1, "num_classes": 4, "num_train": 64, "num_val": 16,
      "encoding": "png", "workers": 2},
     {**_COMMON, "channels": 1, "encoding": "png", "input": None, "num_classes": 4, "num_train": 64, "num_val": 16,
      "size": 16, "source": "synthetic"}),
]


@pytest.mark.parametrize("kwargs, expected", OUTPUT_CONFIGS,
                         ids=[f"{kwargs['source']}-{i}" for i, (kwargs, _) in enumerate(OUTPUT_CONFIGS)])
def test_output_config_is_unchanged(kwargs, expected):
    assert BuildConfig(out="o", **kwargs).output_config() == expected


def test_legacy_manifest_records_the_same_config():
    """The README's command for tests/data/legacy_v1/dataset gives the config its manifest holds."""
    config = BuildConfig(source="synthetic", out="o", size=16, channels=3, num_classes=4, num_train=64, num_val=16,
                         samples_per_shard=32, seed=0)
    assert config.output_config() == Manifest.load(LEGACY / "dataset").config


def test_every_source_has_its_options_and_openers_take_exactly_them():
    assert set(SOURCE_OPTIONS) == set(SOURCES)
    openers = {"cifar10": open_cifar10, "cifar100": open_cifar100, "fashion-mnist": open_fashion_mnist,
               "mnist": open_mnist, "imagefolder": open_imagefolder, "synthetic": open_synthetic}
    for source, opener in openers.items():
        params = list(inspect.signature(opener).parameters.values())
        assert params[0].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD  # the input path
        keyword = {p.name for p in params[1:]}
        assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in params[1:])
        assert keyword == set(SOURCE_OPTIONS[source]), source
        assert set(BuildConfig(source=source, out="o", input="x", size=8).source_options()) == keyword


def test_input_only_options_are_not_recorded():
    config = BuildConfig(source="cifar100", out="o", input="/in/c100", download=True)
    assert config.source_options() == {"label": "fine", "download": True}
    assert not set(INPUT_ONLY_OPTIONS) & set(config.output_config())


def test_option_sources_is_the_inverse_table():
    assert option_sources("download") == ("cifar10", "cifar100", "imagenette")
    assert option_sources("channels") == ("imagefolder", "imagenette", "synthetic")
    assert option_sources("label") == ("cifar100",)


@pytest.mark.parametrize("extra, expect", [
    (["--label", "coarse"], "--label: only used by source cifar100, not synthetic"),
    (["--val-fraction", "0.2"], "--val-fraction: only used by source imagefolder, not synthetic"),
    (["--download"], "--download: only used by source cifar10 or cifar100 or imagenette, not synthetic"),
])
def test_cli_refuses_an_option_of_another_source(capsys, tmp_path, extra, expect):
    code, _, err = run_cli(capsys, *synthetic_args(tmp_path / "out", *extra))
    assert code == 2 and err == f"error: {expect}\n"


def test_options_decided_from_the_images_may_stay_unset_and_bad_values_are_named():
    # imagefolder's --size / --channels default to what the images have (decided when the source opens)
    assert BuildConfig(source="imagefolder", out="o", input="x").source_options() == {
        "size": None, "channels": None, "val_fraction": 0.1}
    with pytest.raises(InputError, match="--label: expected fine or coarse"):
        BuildConfig(source="cifar100", out="o", input="x", label="medium")
