"""Image-folder input: exact pixels for every image mode PIL opens (or a one-line refusal), channels and
size decided from the headers, and bounded memory for hostile images (see preprocess/sources/imagefolder.py)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preprocess.dataset_format import load_manifest
from preprocess.errors import InputError
from preprocess.sources.imagefolder import MAX_PIXELS, load_image
from tests.preprocess.fixtures import read_all, run_cli

REPO = Path(__file__).resolve().parents[2]


def _png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, row: bytes) -> Path:
    """A PNG written chunk by chunk (PIL cannot write all of these), every row ``row`` (filter byte first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compress = zlib.compressobj(9)
    body = b"".join(compress.compress(row) for _ in range(height)) + compress.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def _save(image: Image.Image, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


def _mode(path: Path) -> str:
    with Image.open(path) as image:
        return image.mode


def _grey(values) -> np.ndarray:
    return np.asarray(values, dtype=np.uint8)[..., None]


def _palette(colours: list[tuple[int, int, int]], indices: list[list[int]]) -> Image.Image:
    array = np.asarray(indices, dtype=np.uint8)
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    image.putpalette([v for colour in colours for v in colour])
    return image


# ----------------------------------------------------------------------------- exact pixels per mode


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = [[0, 128, 129, 30000], [32896, 65280, 65535, 257]] * 2  # 30000 is 46% grey: was white (clipped)
    array = np.asarray(values, dtype=np.uint16)
    expected = _grey([[0, 0, 1, 117], [128, 254, 255, 1]] * 2)  # round(v / 257), not v >> 8 (65280 -> 254)
    png = _save(Image.fromarray(array), tmp_path / "i16.png")
    big_endian = _save(Image.frombytes("I;16B", (4, 4), array.astype(">u2").tobytes()), tmp_path / "i16b.tif")
    int32 = _save(Image.fromarray(array.astype(np.int32)), tmp_path / "i32.tif")
    for path, mode in ((png, "I;16"), (big_endian, "I;16B"), (int32, "I")):
        assert _mode(path) == mode
        assert np.array_equal(load_image(path, 4, 1), expected), mode
    assert np.array_equal(load_image(png, 4, 3), np.repeat(expected, 3, axis=2))


def test_sixteen_bit_grey_is_resampled_at_sixteen_bits(tmp_path):
    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1000).astype(np.uint16)
    path = _save(Image.fromarray(ramp), tmp_path / "ramp.png")
    wide = Image.fromarray(ramp.astype(np.int32)).resize((4, 4), Image.BICUBIC)  # PIL's own 32-bit resample
    expected = (np.clip(np.asarray(wide), 0, 65535) + 128) // 257
    assert np.array_equal(load_image(path, 4, 1)[..., 0], expected)


def test_mode_i_outside_sixteen_bits_is_refused(tmp_path):
    path = _save(Image.fromarray(np.asarray([[0, 70000]], dtype=np.int32)), tmp_path / "i32.tif")
    with pytest.raises(InputError) as caught:
        load_image(path, 1, 1)
    assert str(caught.value) == f"{path}: mode I image with values 0..70000, expected 0..65535 (16-bit)"


def test_eight_bit_modes(tmp_path):
    bits = Image.fromarray(np.asarray([[0, 255], [0, 255]], np.uint8)).convert("1", dither=Image.Dither.NONE)
    one = _save(bits, tmp_path / "1.png")
    assert _mode(one) == "1"
    assert np.array_equal(load_image(one, 2, 1), _grey([[0, 255], [0, 255]]))
    grey = _save(Image.fromarray(np.asarray([[7, 200], [0, 255]], dtype=np.uint8)), tmp_path / "l.png")
    assert np.array_equal(load_image(grey, 2, 1), _grey([[7, 200], [0, 255]]))
    rgb = np.asarray([[[10, 20, 30], [255, 0, 128]]] * 2, dtype=np.uint8)
    path = _save(Image.fromarray(rgb), tmp_path / "rgb.png")
    assert np.array_equal(load_image(path, 2, 3), rgb)
    # --channels 1 of colour: ITU-R 601 luma as PIL computes it, (19595 R + 38470 G + 7471 B + 2^15) >> 16
    assert load_image(path, 2, 1)[0, 0, 0] == (19595 * 10 + 38470 * 20 + 7471 * 30 + 32768) >> 16 == 18


def test_alpha_is_composited_over_black(tmp_path):
    rgba = np.asarray([[[100, 50, 200, 128], [100, 50, 200, 0]], [[100, 50, 200, 255], [9, 9, 9, 1]]], np.uint8)
    path = _save(Image.fromarray(rgba), tmp_path / "rgba.png")
    expected = np.asarray([[[50, 25, 100], [0, 0, 0]], [[100, 50, 200], [0, 0, 0]]], np.uint8)  # round(v·a/255)
    assert np.array_equal(load_image(path, 2, 3), expected)
    la = _save(Image.fromarray(np.asarray([[[200, 128], [200, 0]]] * 2, np.uint8)), tmp_path / "la.png")
    assert np.array_equal(load_image(la, 2, 1), _grey([[100, 0], [100, 0]]))
    key = _save(Image.fromarray(np.asarray([[100, 7]] * 2, np.uint8)), tmp_path / "key.png", transparency=100)
    assert np.array_equal(load_image(key, 2, 1), _grey([[0, 7], [0, 7]]))  # a colour key is transparency too


def test_palette_with_and_without_transparency(tmp_path):
    image = _palette([(0, 0, 0), (200, 100, 50)], [[0, 1], [1, 1]])
    plain = _save(image, tmp_path / "p.png")
    assert _mode(plain) == "P"
    assert np.array_equal(load_image(plain, 2, 3), np.asarray([[[0, 0, 0], [200, 100, 50]], [[200, 100, 50]] * 2]))
    clear = _save(image, tmp_path / "p_trns.png", transparency=bytes([255, 128]))  # colour 1 half transparent
    assert np.array_equal(load_image(clear, 2, 3)[0, 1], [100, 50, 25])
    grey = _save(_palette([(0, 0, 0), (90, 90, 90)], [[0, 1], [1, 0]]), tmp_path / "p_grey.png")
    assert np.array_equal(load_image(grey, 2, 1), _grey([[0, 90], [90, 0]]))


def test_colour_conversions(tmp_path):
    cmyk = _save(Image.new("CMYK", (2, 2), (0, 255, 0, 0)), tmp_path / "cmyk.tif")
    assert np.array_equal(load_image(cmyk, 2, 3), np.full((2, 2, 3), [255, 0, 255]))
    # 16-bit colour: PIL keeps the high byte (30000 >> 8 = 117, 65280 >> 8 = 255)
    rgb16 = _png(tmp_path / "rgb16.png", 2, 2, 16, 2, b"\x00" + struct.pack(">HHH", 30000, 65280, 0) * 2)
    assert np.array_equal(load_image(rgb16, 2, 3), np.full((2, 2, 3), [117, 255, 0]))


def test_float_and_unreadable_images_are_refused(tmp_path):
    floats = _save(Image.fromarray(np.ones((2, 2), np.float32)), tmp_path / "f.tif")
    with pytest.raises(InputError, match=f"^{floats}: mode F .floating-point pixels. has no defined 0..255 range"):
        load_image(floats, 2, 1)
    truncated = tmp_path / "cut.png"
    whole = _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)), tmp_path / "w.png")
    truncated.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(InputError, match=f"^{truncated}: unreadable image, expected a valid PNG or JPEG"):
        load_image(truncated, 8, 1)


def test_centre_square_of_a_wide_image(tmp_path):
    """The centre square is cut in source coordinates (box resize), even for odd margins."""
    array = np.random.default_rng(1).integers(0, 256, (6, 9, 3), np.uint8)
    path = _save(Image.fromarray(array), tmp_path / "wide.png")
    expected = Image.fromarray(array).resize((3, 3), Image.BICUBIC, box=(1.5, 0, 7.5, 6))
    assert np.array_equal(load_image(path, 3, 3), np.asarray(expected))


# ----------------------------------------------------------------------------- channels and size from the headers


def _folder(root: Path, images: dict[str, Image.Image]) -> Path:
    for name, image in images.items():
        _save(image, root / name)
    return root


def _random(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """A random L or RGB image."""
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return Image.fromarray(array if mode == "RGB" else array[..., 0])


def _build(capsys, root: Path, out: Path, *extra) -> tuple[int, str, str]:
    return run_cli(capsys, "build", "--source", "imagefolder", "--input", root, "--out", out, "--quiet", *extra)


def test_grey_folder_keeps_one_channel_and_its_size(capsys, tmp_path):
    sixteen = Image.fromarray(np.full((8, 8), 30000, np.uint16))
    root = _folder(tmp_path / "kmnist", {"a/0.png": _random("L", 8, 8, 0), "a/1.png": sixteen,
                                        "b/0.png": _random("L", 8, 8, 2), "b/1.png": _random("L", 8, 8, 3)})
    code, _, err = _build(capsys, root, tmp_path / "out")
    assert code == 0, err
    manifest = load_manifest(tmp_path / "out")
    assert manifest.shapes == {"full": (8, 8, 1), "low": (4, 4, 1)}
    assert manifest.config["size"] is None and manifest.config["channels"] is None  # "from the images"
    images = [image for _, image in {**read_all(tmp_path / "out", "train", "full"),
                                     **read_all(tmp_path / "out", "val", "full")}.values()]
    assert any(np.all(image == 117) for image in images)  # the 16-bit image, scaled


@pytest.mark.parametrize("extra, channels", [([], 3), (["--channels", "1"], 1)])
def test_mixed_folder_is_colour_unless_told(capsys, tmp_path, extra, channels):
    root = _folder(tmp_path / "mixed", {"a/0.png": _random("L", 8, 8, 0), "a/1.png": _random("RGB", 8, 8, 1),
                                        "b/0.png": _palette([(0, 0, 0), (9, 9, 9)], [[0, 1] * 4] * 8)})
    code, _, err = _build(capsys, root, tmp_path / "out", *extra)
    assert code == 0, err
    assert load_manifest(tmp_path / "out").shape("full") == (8, 8, channels)


def test_channels_3_repeats_grey(capsys, tmp_path):
    root = _folder(tmp_path / "grey", {"a/0.png": _random("L", 8, 8, 0), "b/0.png": _random("L", 8, 8, 1),
                                       "b/1.png": _palette([(0, 0, 0), (90, 90, 90)], [[0, 1] * 4] * 8)})
    code, _, err = _build(capsys, root, tmp_path / "out", "--channels", "3", "--size", "4")
    assert code == 0, err
    assert load_manifest(tmp_path / "out").shape("full") == (4, 4, 3)
    image = next(iter(read_all(tmp_path / "out", "train", "full").values()))[1]
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])


def _refused(capsys, root: Path, out: Path, expect: str, *extra) -> None:
    code, stdout, err = _build(capsys, root, out, *extra)
    assert code == 2 and stdout == "" and err == f"error: {expect}\n", err
    assert not out.exists()


def test_size_is_required_when_the_images_differ(capsys, tmp_path):
    root = _folder(tmp_path / "sizes", {"a/0.png": _random("L", 8, 8, 0), "a/1.png": _random("L", 8, 8, 1),
                                        "b/0.png": _random("L", 12, 10, 2)})
    _refused(capsys, root, tmp_path / "out", f"--size: expected a value for imagefolder: the images differ in "
             f"size, e.g. {root / 'a' / '0.png'} is 8x8 and {root / 'b' / '0.png'} is 12x10")
    code, _, err = _build(capsys, root, tmp_path / "out", "--size", "6")
    assert code == 0, err


def test_size_is_required_when_the_images_are_not_square(capsys, tmp_path):
    root = _folder(tmp_path / "wide", {"a/0.png": _random("L", 12, 8, 0), "b/0.png": _random("L", 12, 8, 1)})
    _refused(capsys, root, tmp_path / "out", f"--size: expected a value for imagefolder: every image is 12x8 "
             f"(not square, e.g. {root / 'a' / '0.png'}); --size is the side of the centre square to keep")


# ----------------------------------------------------------------------------- refusals: one line, nothing written


def test_refused_images_name_the_file_and_write_nothing(capsys, tmp_path):
    good = {"a/0.png": _random("L", 8, 8, 0), "b/0.png": _random("L", 8, 8, 1)}
    floats = _folder(tmp_path / "f", good)
    bad = _save(Image.fromarray(np.ones((8, 8), np.float32)), floats / "b" / "1.png", format="TIFF")  # named .png
    _refused(capsys, floats, tmp_path / "out", f"{bad}: mode F (floating-point pixels) has no defined 0..255 range, "
             "expected 8- or 16-bit pixels", "--size", "8")
    large = _folder(tmp_path / "large", good)
    width = MAX_PIXELS // 4000 + 1
    big = _png(large / "b" / "big.png", width, 4000, 1, 0, b"\x00" + bytes((width + 7) // 8))  # 1-bit: tiny file
    _refused(capsys, large, tmp_path / "out", f"{big}: image of {width}x4000 pixels ({width * 4000:,}), "
             f"expected at most {MAX_PIXELS:,} pixels", "--size", "8")


def test_pil_decompression_bomb_is_one_line(capsys, tmp_path, monkeypatch):
    root = _folder(tmp_path / "bomb", {"a/0.png": _random("L", 8, 8, 0), "b/0.png": _random("L", 40, 40, 1)})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # PIL refuses > 2 x 400 pixels: the 40x40 image
    code, _, err = _build(capsys, root, tmp_path / "out", "--size", "8")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert err.startswith(f"error: {root / 'b' / '0.png'}: image too large, expected at most {MAX_PIXELS:,} pixels")


# Runs argv as a child and prints its exit code and peak RSS (KiB). A child's ru_maxrss includes the RSS of
# the process it was forked from (the kernel keeps the pre-exec high-water mark), so the build must be
# started from this small launcher, not from the test process itself.
_PEAK_RSS = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
print(child.returncode, usage.ru_maxrss)
"""


def test_extreme_aspect_ratio_stays_small(tmp_path):
    """Tiny PNGs of 1x250,000 and 250,000x1 pixels: resizing the whole image first made 32x8,000,000 (1.5 GB)."""
    root = tmp_path / "aspect"
    _png(root / "a" / "tall.png", 1, 250_000, 8, 2, b"\x00\x80\x40\x20")
    _png(root / "a" / "wide.png", 250_000, 1, 8, 2, b"\x00" + b"\x80\x40\x20" * 250_000)
    _save(_random("RGB", 8, 8, 0), root / "b" / "0.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "preprocess", "build", "--source", "imagefolder", "--input", str(root),
               "--out", str(out), "--size", "32", "--quiet"]
    launched = subprocess.run([sys.executable, "-c", _PEAK_RSS, *command], cwd=REPO, capture_output=True, text=True)
    code, peak_kib = map(int, launched.stdout.split())
    assert code == 0, launched.stderr
    assert peak_kib <= 300 * 1024, f"peak RSS {peak_kib} KiB"
    image = read_all(out, "train", "full")
    assert all(img.shape == (32, 32, 3) for _, img in image.values())
    assert any(np.all(img == [0x80, 0x40, 0x20]) for _, img in image.values())


def test_imagefolder_records_its_source_revision_other_sources_do_not():
    # imagefolder's pixels changed (revision 3: EXIF orientation): an older half-built dataset must not be
    # resumed with them
    from preprocess.config import BuildConfig

    assert BuildConfig(source="imagefolder", out="o", input="x").output_config()["source_revision"] == 3
    assert "source_revision" not in BuildConfig(source="synthetic", out="o").output_config()


def test_a_rerun_after_the_images_changed_shape_rebuilds_instead_of_mixing(capsys, tmp_path):
    """size/channels left unset are decided from the images: when those change between a build and its
    rerun, no shard of the old shape may be kept beside a manifest stating the new one."""
    root = tmp_path / "folder"
    _folder(root, {f"{c}/{i}.png": _random("L", 8, 8, 10 * j + i) for j, c in enumerate("ab") for i in range(3)})
    out = tmp_path / "out"
    code, _, err = _build(capsys, root, out)
    assert code == 0, err
    assert load_manifest(out).shape("full") == (8, 8, 1)
    unchanged_rerun = _build(capsys, root, out, "--workers", "2")
    assert unchanged_rerun[0] == 0
    for path in root.rglob("*.png"):  # same files, now 12x12 RGB
        _save(_random("RGB", 12, 12, len(path.name)), path)
    code, _, err = _build(capsys, root, out)
    assert code == 0, err
    manifest = load_manifest(out)
    assert manifest.shapes == {"full": (12, 12, 3), "low": (6, 6, 3)}
    for split in ("train", "val"):
        assert all(img.shape == (12, 12, 3) for _, img in read_all(out, split, "full").values())
        assert all(img.shape == (6, 6, 3) for _, img in read_all(out, split, "low").values())


def test_decided_shape_enters_only_the_digest_of_sources_that_decide_it(tmp_path):
    from preprocess.build import _shard_digest
    from preprocess.config import BuildConfig
    from preprocess.state import config_digest

    class Shape:
        shape = (8, 8, 1)

    synthetic = BuildConfig(source="synthetic", out="o")
    assert _shard_digest(synthetic.output_config(), synthetic, Shape()) == config_digest(synthetic.output_config())
    told = BuildConfig(source="imagefolder", out="o", input="x", size=8, channels=1)
    assert _shard_digest(told.output_config(), told, Shape()) == config_digest(told.output_config())
    unset = BuildConfig(source="imagefolder", out="o", input="x")
    assert _shard_digest(unset.output_config(), unset, Shape()) != config_digest(unset.output_config())


def test_one_colour_dataset_is_one_input_error_and_leaves_nothing(capsys, tmp_path):
    root = _folder(tmp_path / "flat", {f"{c}/{i}.png": Image.new("L", (8, 8), 100) for c in "ab" for i in range(3)})
    code, _, err = _build(capsys, root, tmp_path / "out")
    assert code == 2
    assert err.strip().splitlines() == [f"error: {root}: every training pixel has the same value in channel 0 "
                                        "(std 0 over 6 images); the loaders normalise by the training std, so a "
                                        "dataset needs some variation"]
    assert not (tmp_path / "out").exists()
