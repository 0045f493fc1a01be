"""Imagenette source: fast.ai's layout and class names, photos decoded right (EXIF orientation, CMYK, a PNG
under a .JPEG name) or refused with one line naming the file (truncated, empty, a class that is not there).
Tiny generated photos; the real release is checked only when $LOWMODE_IMAGENETTE points at it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preprocess.dataset_format import load_manifest
from preprocess.sources.imagefolder import load_image
from preprocess.sources.imagenette import CLASSES, open_imagenette
from tests.preprocess.fixtures import read_all, run_cli

WNIDS = list(CLASSES)


def _photo(seed: int, size: int = 16) -> Image.Image:
    array = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
    return Image.fromarray(array)


def _release(root: Path, per_class: int = 1, splits=("train", "val")) -> Path:
    """A miniature Imagenette release: split/<wnid>/<wnid>_<i>.JPEG, 16x16 random photos."""
    for s, split in enumerate(splits):
        for c, wnid in enumerate(WNIDS):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _photo(1000 * s + 10 * c + i).save(folder / f"{wnid}_{i}.JPEG", quality=95)
    return root


def _build(capsys, root: Path, out: Path, *extra):
    return run_cli(capsys, "build", "--source", "imagenette", "--input", root, "--out", out, "--quiet",
                   "--size", "8", *extra)


def _refused(capsys, root: Path, out: Path, expect: str) -> None:
    code, stdout, err = _build(capsys, root, out)
    assert code == 2 and stdout == "", err
    assert err.startswith(f"error: {expect}") and err.count("\n") == 1, err
    assert not out.exists()


def test_builds_the_release_with_class_names_in_wnid_order(capsys, tmp_path):
    root = _release(tmp_path / "imagenette2-320", per_class=2)
    code, _, err = _build(capsys, root, tmp_path / "out")
    assert code == 0, err
    manifest = load_manifest(tmp_path / "out")
    assert manifest.classes[:2] == ("tench", "English springer") and len(manifest.classes) == 10
    assert manifest.shapes == {"full": (8, 8, 3), "low": (4, 4, 3)}  # --channels defaults to 3 (photos)
    assert manifest.config["source"] == "imagenette" and "download" not in manifest.config
    samples = read_all(tmp_path / "out", "train", "full")
    assert len(samples) == 20 and len(read_all(tmp_path / "out", "val", "full")) == 20
    assert sorted(label for label, _ in samples.values()) == sorted(list(range(10)) * 2)
    # each label holds its own wnid's photos: compare one with the decoder directly
    expected = load_image(root / "train" / WNIDS[3] / f"{WNIDS[3]}_0.JPEG", 8, 3)
    assert any(label == 3 and np.array_equal(image, expected) for label, image in samples.values())


def test_a_folder_holding_one_release_is_read_two_are_refused(capsys, tmp_path):
    _release(tmp_path / "downloads" / "imagenette2-160")
    code, _, err = _build(capsys, tmp_path / "downloads", tmp_path / "out")
    assert code == 0, err
    _release(tmp_path / "downloads" / "imagenette2-320")
    _refused(capsys, tmp_path / "downloads", tmp_path / "out2", f"{tmp_path / 'downloads'}: holds several Imagenette "
             f"releases (imagenette2-320, imagenette2-160), expected one: give --input")
    (tmp_path / "empty").mkdir()
    _refused(capsys, tmp_path / "empty", tmp_path / "out3", f"{tmp_path / 'empty'}: no train/ folder")


def test_a_val_class_missing_from_train_is_refused(capsys, tmp_path):
    root = _release(tmp_path / "r")
    (root / "train" / WNIDS[4] / f"{WNIDS[4]}_0.JPEG").unlink()
    (root / "train" / WNIDS[4]).rmdir()
    # the first problem named: the val folder of a class train lacks would be caught next
    _refused(capsys, root, tmp_path / "out", f"{root / 'train' / WNIDS[4]}: class folder missing (church)")
    other = _release(tmp_path / "o")
    (other / "val" / "n99999999").mkdir()
    _photo(0).save(other / "val" / "n99999999" / "x.JPEG")
    _refused(capsys, other, tmp_path / "out", f"{other / 'val' / 'n99999999'}: class not in {other / 'train'}")
    (other / "train" / "n99999999").mkdir()
    _refused(capsys, other, tmp_path / "out", f"{other / 'train' / 'n99999999'}: not an Imagenette class")


def test_exif_rotated_photo_is_stored_upright(tmp_path):
    top_white = np.zeros((16, 16, 3), np.uint8)
    top_white[:8] = 255
    path = tmp_path / "sideways.JPEG"
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the stored pixels rotated 90 degrees clockwise
    Image.fromarray(top_white).save(path, quality=100, exif=exif.tobytes())
    image = load_image(path, 16, 3).astype(int)
    # stored top half white -> upright right half white
    assert image[:, 10:].min() > 200 and image[:, :6].max() < 55
    plain = tmp_path / "plain.JPEG"
    Image.fromarray(top_white).save(plain, quality=100)
    assert load_image(plain, 16, 3)[:6].min() > 200  # no tag: as stored


def test_cmyk_jpeg_is_decoded_to_rgb(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 30)
    rgb[:, 8:] = (20, 40, 220)
    path = tmp_path / "cmyk.JPEG"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=100)
    with Image.open(path) as pil:
        assert pil.mode == "CMYK"
    image = load_image(path, 16, 3).astype(int)
    assert np.abs(image[:, 2:6] - (200, 30, 30)).max() < 12
    assert np.abs(image[:, 10:14] - (20, 40, 220)).max() < 12


def test_png_named_jpeg_is_read_by_its_content(tmp_path):
    png_bytes_path = tmp_path / "real.png"
    _photo(5).save(png_bytes_path, format="PNG")
    misnamed = tmp_path / "n02105855_2933.JPEG"  # ImageNet's own famous case
    misnamed.write_bytes(png_bytes_path.read_bytes())
    assert np.array_equal(load_image(misnamed, 8, 3), load_image(png_bytes_path, 8, 3))


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_empty_and_truncated_photos_are_refused_naming_the_file(capsys, tmp_path, damage):
    root = _release(tmp_path / "r")
    bad = root / "val" / WNIDS[9] / f"{WNIDS[9]}_0.JPEG"
    if damage == "empty":
        bad.write_bytes(b"")
    else:
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut: only decoding finds it
    _refused(capsys, root, tmp_path / "out", f"{bad}: unreadable image, expected a valid PNG or JPEG")


def test_size_is_required_when_the_photos_differ(capsys, tmp_path):
    root = _release(tmp_path / "r")
    _photo(3, size=20).save(root / "train" / WNIDS[0] / "big.JPEG")
    code, _, err = run_cli(capsys, "build", "--source", "imagenette", "--input", root, "--out", tmp_path / "o",
                           "--quiet")
    assert code == 2 and err.startswith("error: --size: expected a value for imagenette: the images differ"), err


@pytest.mark.skipif(not os.environ.get("LOWMODE_IMAGENETTE"), reason="set LOWMODE_IMAGENETTE to the real release")
def test_the_real_release():
    source = open_imagenette(Path(os.environ["LOWMODE_IMAGENETTE"]), size=64, channels=3, download=False)
    assert source.classes == tuple(CLASSES.values())
    counts = {split: len(data.labels) for split, data in source.splits.items()}
    assert counts == {"train": 9469, "val": 3925}  # the imagenette2 split
    assert np.bincount(source.splits["val"].labels).min() > 350  # every class in val
    images = source.splits["val"].load(np.arange(0, 3925, 400))
    assert images.shape == (10, 64, 64, 3) and 40 < images.mean() < 200
