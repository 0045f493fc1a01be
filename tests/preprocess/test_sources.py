"""Every source format, made tiny inside the test, builds into the right images and labels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from preprocess.dataset_format import load_manifest
from tests.preprocess.fixtures import read_all, run_cli, write_cifar, write_idx, write_image, write_imagefolder


def _build(capsys, tmp_path, source, path, *extra):
    out = tmp_path / "data"
    code, _, err = run_cli(capsys, "build", "--source", source, "--input", path, "--out", out, "--quiet", *extra)
    assert code == 0, err
    return out


@pytest.mark.parametrize("packed", [True, False], ids=["targz", "folder"])
@pytest.mark.parametrize("version", ["python", "binary"])
@pytest.mark.parametrize("source", ["cifar10", "cifar100"])
def test_cifar(capsys, tmp_path, source, version, packed):
    path, truth = write_cifar(tmp_path, source, version, packed)
    out = _build(capsys, tmp_path, source, path, "--samples-per-shard", "4")
    manifest = load_manifest(out)
    assert manifest.dataset == source and manifest.shape("full") == (32, 32, 3)
    assert manifest.num_classes == (10 if source == "cifar10" else 100) and manifest.classes[3] == "fine3"
    for split in ("train", "val"):
        pixels, fine, _ = truth[split]
        samples = read_all(out, split, "full")
        assert len(samples) == len(pixels) == manifest.splits[split].num_samples
        for key, (label, image) in samples.items():
            i = int(key)
            assert label == fine[i]
            assert np.array_equal(image, pixels[i].reshape(3, 32, 32).transpose(1, 2, 0))


@pytest.mark.parametrize("version", ["python", "binary"])
def test_cifar100_coarse_labels(capsys, tmp_path, version):
    path, truth = write_cifar(tmp_path, "cifar100", version, packed=True)
    out = _build(capsys, tmp_path, "cifar100", path, "--label", "coarse")
    manifest = load_manifest(out)
    assert manifest.classes == tuple(f"coarse{i}" for i in range(20)) and manifest.config["label"] == "coarse"
    labels = {k: lab for k, (lab, _) in read_all(out, "train", "low").items()}
    assert [labels[k] for k in sorted(labels)] == truth["train"][2].tolist()


def test_cifar_parent_folder_is_accepted(capsys, tmp_path):
    write_cifar(tmp_path / "downloads", "cifar10", "python", packed=False)
    out = _build(capsys, tmp_path, "cifar10", tmp_path / "downloads")
    assert load_manifest(out).splits["train"].num_samples == 15


def test_fashion_mnist_idx(capsys, tmp_path):
    arrays = write_idx(tmp_path / "fm")
    out = _build(capsys, tmp_path, "fashion-mnist", tmp_path / "fm")
    manifest = load_manifest(out)
    assert manifest.shapes == {"full": (28, 28, 1), "low": (14, 14, 1)} and manifest.classes[9] == "Ankle boot"
    samples = read_all(out, "val", "full")
    for key, (label, image) in samples.items():
        assert label == arrays["t10k-labels-idx1-ubyte"][int(key)]
        assert np.array_equal(image[..., 0], arrays["t10k-images-idx3-ubyte"][int(key)])


def test_imagefolder_resize_crop_and_val_fraction(capsys, tmp_path):
    write_imagefolder(tmp_path / "imgs", per_class=5)
    wide = write_image(tmp_path / "imgs" / "dog" / "zz_wide.jpg", 48, 32, seed=99)
    out = _build(capsys, tmp_path, "imagefolder", tmp_path / "imgs", "--size", "16", "--val-fraction", "0.4")
    manifest = load_manifest(out)
    assert manifest.classes == ("cat", "dog") and manifest.shape("full") == (16, 16, 3)
    assert manifest.splits["train"].num_samples == 3 + 4 and manifest.splits["val"].num_samples == 2 + 2
    labels = sorted(lab for lab, _ in read_all(out, "train", "full").values())
    assert labels == [0, 0, 0, 1, 1, 1, 1]
    # the wide JPEG is the last dog file: its centre 32x32 square resized to 16x16 (the same pixels, for this
    # even margin and exact half scale, as resizing the whole image to 24x16 and cropping its centre)
    decoded = np.asarray(Image.open(tmp_path / "imgs" / "dog" / "zz_wide.jpg").convert("RGB"))
    expected = np.asarray(Image.fromarray(decoded).resize((24, 16), Image.BICUBIC).crop((4, 0, 20, 16)))
    assert decoded.shape == wide.shape
    every = {**read_all(out, "train", "full"), **read_all(out, "val", "full")}
    assert any(np.array_equal(img, expected) for _, img in every.values())


def test_imagefolder_split_folders_grayscale(capsys, tmp_path):
    write_imagefolder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=3, split_folders=True)
    out = _build(capsys, tmp_path, "imagefolder", tmp_path / "imgs", "--size", "8", "--channels", "1",
                 "--encoding", "png")
    manifest = load_manifest(out)
    assert manifest.splits["val"].num_samples == 3 and manifest.splits["train"].num_samples == 6
    assert manifest.shape("low") == (4, 4, 1)
    val = read_all(out, "val", "full")
    # keys are indices in (class, file name) order: val holds one image per class
    assert {k: lab for k, (lab, _) in val.items()} == {"000000000": 0, "000000001": 1, "000000002": 2}
