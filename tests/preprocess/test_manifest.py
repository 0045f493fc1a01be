"""The typed Manifest: byte-identical round trip of manifests written before it existed, the checkpoint
fingerprint, validation errors that name the file and field, and the one image codec."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preprocess.dataset_format import (LABEL_BYTES, LABEL_DTYPE, DatasetFormatError, Manifest, ShardEntry,
                                       decode_image, encode_image, load_manifest)
from preprocess.files import json_sha256
from preprocess.verify import verify_dataset

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"
LEGACY_DATASETS = [LEGACY / "dataset", LEGACY / "dataset_png"]


def _raw(data_dir: Path) -> dict:
    return json.loads((data_dir / Manifest.NAME).read_text())


@pytest.mark.parametrize("data_dir", LEGACY_DATASETS, ids=lambda p: p.name)
def test_legacy_manifest_round_trip_is_byte_identical(data_dir, tmp_path):
    manifest = load_manifest(data_dir)
    assert isinstance(manifest, Manifest) and manifest == Manifest.load(data_dir)
    assert manifest.to_dict() == _raw(data_dir)
    manifest.save(tmp_path)
    assert (tmp_path / Manifest.NAME).read_bytes() == (data_dir / Manifest.NAME).read_bytes()


@pytest.mark.parametrize("data_dir", LEGACY_DATASETS, ids=lambda p: p.name)
def test_fingerprint_is_the_checkpointed_formula(data_dir):
    d = _raw(data_dir)
    expected = json_sha256({k: d.get(k) for k in ("splits", "shapes", "ratio", "mean", "std", "classes")})
    assert Manifest.load(data_dir).fingerprint() == expected


def test_legacy_checkpoint_holds_the_fingerprint():
    """The checkpoint written before the Manifest existed recorded the same dataset fingerprint."""
    checkpoint = next((LEGACY / "run" / "checkpoints").glob("*.pt")).read_bytes()
    assert Manifest.load(LEGACY / "dataset").fingerprint().encode() in checkpoint


@pytest.mark.parametrize("data_dir", LEGACY_DATASETS, ids=lambda p: p.name)
def test_legacy_dataset_verifies(data_dir):
    assert verify_dataset(data_dir) == []


def test_typed_views():
    m = Manifest.load(LEGACY / "dataset")
    assert m.num_classes == 4 and m.channels == 3 and m.shape("full") == (16, 16, 3) and m.shape("low") == (8, 8, 3)
    assert m.encoding == "raw" and m.ratio == 2 and isinstance(m.classes, tuple) and isinstance(m.mean, tuple)
    shard = m.splits["train"].shards[0]
    assert isinstance(shard, ShardEntry) and shard.files("low") is shard.low
    assert shard.full.tar == "full/train-000000.tar"
    assert sum(s.num_samples for s in m.splits["train"].shards) == m.splits["train"].num_samples == 64
    with pytest.raises(ValueError, match="resolution"):
        m.shape("mid")
    with pytest.raises(AttributeError):
        m.ratio = 4  # frozen
    m.to_dict()["classes"].append("x")  # to_dict hands out fresh containers
    assert m.num_classes == 4


def test_absent_optional_fields_stay_absent_and_null_stays_null():
    d = _raw(LEGACY / "dataset")
    for name in ("dataset", "method", "low_mean", "low_std", "seed", "config"):
        del d[name]
    d["sigma"] = None
    m = Manifest.from_dict(copy.deepcopy(d), "x/manifest.json")
    assert m.method is None and m.sigma is None and m.config is None
    assert m.to_dict() == d


def _set(path: str, value):
    """A change to a manifest dict: set the dotted ``path`` (``[i]`` indexes a list) to ``value``."""
    def change(d):
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        for p in parents:
            d = d[int(p)] if p.isdigit() else d[p]
        if value is _DELETE:
            del d[last]
        else:
            d[int(last) if last.isdigit() else last] = value
    return change


_DELETE = object()


@pytest.mark.parametrize("change, message", [
    (_set("format", "other"), "field 'format' must be 'lowmode-dataset'"),
    (_set("version", 2), "manifest version 2 is not supported"),
    (_set("classes", _DELETE), "missing field 'classes'"),
    (_set("shapes.full", [16, 16]), "field 'shapes.full' must be [H, W, C]"),
    (_set("shapes.low", [0, 8, 3]), "field 'shapes.low' must be positive [H, W, C]"),
    (_set("shapes.low", [8, 8, 1]), "field 'shapes.low' must be [H, W, 3]"),
    (_set("encoding", "webp"), "field 'encoding' must be one of ('raw', 'png', 'jpg'), got 'webp'"),
    (_set("mean", [0.5, 0.5]), "field 'mean' must be a list of 3 numbers"),
    (_set("std", [0.2, 0.0, 0.2]), "field 'std' must be a list of 3 positive numbers"),
    (_set("low_std", [0.2]), "field 'low_std' must be a list of 3 numbers"),
    (_set("ratio", "2"), "field 'ratio' must be an integer >= 1, got '2'"),
    (_set("seed", -1), "field 'seed' must be an integer >= 0"),
    (_set("splits.val.num_samples", _DELETE), "missing field 'splits.val.num_samples'"),
    (_set("splits.train.shards[1].low.bytes", -5), "field 'splits.train.shards[1].low.bytes' must be an integer >= 0"),
    (_set("splits.train.shards[0].full", "x"), "field 'splits.train.shards[0].full' must be an object"),
    (_set("extra", 1), "unknown field 'extra'"),
])
def test_from_dict_errors_name_the_file_and_field(change, message):
    d = _raw(LEGACY / "dataset")
    change(d)
    with pytest.raises(DatasetFormatError) as info:
        Manifest.from_dict(d, "DATA/manifest.json")
    assert str(info.value).startswith("DATA/manifest.json: ") and message in str(info.value), str(info.value)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetFormatError, match=f"{tmp_path / 'manifest.json'}: no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="unreadable manifest"):
        load_manifest(tmp_path)


# ----------------------------------------------------------------------------- codec


def test_label_width_is_derived_from_its_dtype():
    assert LABEL_BYTES == np.dtype(LABEL_DTYPE).itemsize == 8


@pytest.mark.parametrize("encoding", ["raw", "png"])
@pytest.mark.parametrize("channels", [1, 3])
def test_encode_decode_round_trip(encoding, channels):
    image = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_image(image, encoding), encoding, (5, 7, channels)), image)


def test_jpg_decodes_to_the_manifest_shape():
    image = np.full((8, 8, 3), 128, np.uint8)
    assert decode_image(encode_image(image, "jpg"), "jpg", (8, 8, 3)).shape == (8, 8, 3)


def test_corrupt_png_names_where():
    data = encode_image(np.zeros((4, 4, 1), np.uint8), "png")
    with pytest.raises(DatasetFormatError, match=r"^DATA/full/train-000000.tar key 000000007: cannot decode png"):
        decode_image(data[:20] + b"\0" * 30, "png", (4, 4, 1), "DATA/full/train-000000.tar key 000000007")
    with pytest.raises(DatasetFormatError, match=r"^sample 3: cannot decode png"):
        decode_image(b"not a png", "png", (4, 4, 1), lambda: "sample 3")


def test_wrong_shape_names_where():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 4, 3), np.uint8)).save(buf, format="PNG")
    with pytest.raises(DatasetFormatError, match=r"^s: decoded shape \[6, 4, 3\], manifest says \[4, 4, 3\]"):
        decode_image(buf.getvalue(), "png", (4, 4, 3), "s")
    with pytest.raises(DatasetFormatError, match=r"^s: raw image has 47 bytes, expected 48"):
        decode_image(bytes(47), "raw", (4, 4, 3), "s")


@pytest.mark.parametrize("bad", ["../../../etc/passwd", "/etc/passwd", "full/../../x.tar", "full\\x.tar", ""])
def test_manifest_paths_must_stay_inside_the_dataset(bad):
    d = json.loads((LEGACY / "dataset" / "manifest.json").read_text())
    d["splits"]["train"]["shards"][0]["full"]["tar"] = bad
    with pytest.raises(DatasetFormatError, match=r"splits.train.shards\[0\].full.tar.*relative path inside"):
        Manifest.from_dict(d, "manifest.json")
