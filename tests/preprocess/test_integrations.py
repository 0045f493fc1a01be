"""Real Fashion-MNIST (required in CI) and DALI reading the shards with our index files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from preprocess.build import BuildConfig, build_dataset
from preprocess.dataset_format import load_manifest
from tests.integrations import FMNIST_DIR, need
from tests.preprocess.fixtures import read_all, run_cli, synthetic_args


def test_real_fashion_mnist(tmp_path):
    need("fmnist")
    manifest = build_dataset(BuildConfig(source="fashion-mnist", input=str(FMNIST_DIR), out=str(tmp_path / "fm"),
                                         samples_per_shard=10_000, workers=2))
    assert manifest.splits["train"].num_samples == 60_000
    assert manifest.splits["val"].num_samples == 10_000
    assert manifest.shapes == {"full": (28, 28, 1), "low": (14, 14, 1)}
    np.testing.assert_allclose(manifest.mean, [0.2860], atol=1e-4)  # the published Fashion-MNIST stats
    np.testing.assert_allclose(manifest.std, [0.3530], atol=1e-4)


def test_dali_reads_shards_with_our_index(capsys, tmp_path):
    need("dali")
    from nvidia.dali import fn, pipeline_def, types

    data = tmp_path / "data"
    assert run_cli(capsys, *synthetic_args(data))[0] == 0
    manifest = load_manifest(data)
    for resolution in ("full", "low"):
        shards = manifest.splits["train"].shards
        tars = [str(data / s.files(resolution).tar) for s in shards]
        idxs = [str(data / s.files(resolution).idx) for s in shards]

        @pipeline_def(batch_size=64, num_threads=1, device_id=None)
        def pipe():
            image, label = fn.readers.webdataset(paths=tars, index_paths=idxs, ext=["raw", "label"],
                                                 missing_component_behavior="error",
                                                 dtypes=[types.UINT8, types.INT64], random_shuffle=False)
            return image, label

        p = pipe()
        p.build()
        images, labels = p.run()
        expected = list(read_all(data, "train", resolution).values())  # stored order
        shape = manifest.shape(resolution)
        for i, (label, image) in enumerate(expected):
            assert int(np.array(labels[i])[0]) == label
            assert np.array_equal(np.array(images[i]).reshape(shape), image)


def _real_cifar10() -> Path | None:
    """The official CIFAR-10 binary version, if this machine has it (never required: CI does not).

    LOWMODE_CIFAR10 names the cifar-10-batches-bin folder (or the folder holding it); developers rebuild
    it offline with ../shared/data/cifar10/README.md, users download it.
    """
    for candidate in (os.environ.get("LOWMODE_CIFAR10"), "data/cifar-10-batches-bin"):
        if candidate and (Path(candidate) / "cifar-10-batches-bin" / "data_batch_1.bin").is_file():
            return Path(candidate) / "cifar-10-batches-bin"
        if candidate and (Path(candidate) / "data_batch_1.bin").is_file():
            return Path(candidate)
    return None


def test_real_cifar10_binary_version(tmp_path):
    source = _real_cifar10()
    if source is None:
        pytest.skip("real CIFAR-10 not on this machine (set LOWMODE_CIFAR10; see ../shared/data/cifar10/README.md)")
    manifest = build_dataset(BuildConfig(source="cifar10", input=str(source), out=str(tmp_path / "c10"),
                                         samples_per_shard=25_000, workers=2))
    assert (manifest.splits["train"].num_samples, manifest.splits["val"].num_samples) == (50_000, 10_000)
    assert manifest.classes[:3] == ("airplane", "automobile", "bird") and manifest.num_classes == 10
    assert manifest.shapes == {"full": (32, 32, 3), "low": (16, 16, 3)}
    np.testing.assert_allclose(manifest.mean, [0.4914, 0.4822, 0.4465], atol=1e-4)  # the published statistics
    np.testing.assert_allclose(manifest.std, [0.2470, 0.2435, 0.2616], atol=1e-4)
