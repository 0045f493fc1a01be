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
    (_set("version", 3), "manifest version 3 is not supported"),
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


# ----------------------------------------------------------------------------- version 2: several low resolutions


def _v2(extra: dict[str, list[int]] | None = None, data_dir: Path = LEGACY / "dataset") -> dict:
    """The legacy v1 manifest as version 2, with each ``extra`` resolution's shape and shard files added."""
    d = _raw(data_dir)
    d["version"] = 2
    for name, shape in (extra or {}).items():
        d["shapes"][name] = shape
        for split in d["splits"].values():
            for shard in split["shards"]:
                shard[name] = {**shard["low"], "tar": shard["low"]["tar"].replace("low/", f"{name}/"),
                               "idx": shard["low"]["idx"].replace("low/", f"{name}/")}
    return d


def test_v2_extra_resolutions_round_trip_and_views():
    d = _v2({"low12": [12, 12, 3], "low4": [4, 4, 3]})
    m = Manifest.from_dict(copy.deepcopy(d), "x/manifest.json")
    assert m.version == 2 and m.to_dict() == d
    assert m.resolutions == ("full", "low", "low4", "low12") and m.low_resolutions == ("low4", "low", "low12")
    assert [m.height(r) for r in m.resolutions] == [16, 8, 4, 12]
    assert m.ratio_of("low12") == 16 / 12 and m.ratio_of("low4") == 4.0 and m.ratio_of("full") == 1.0
    assert m.resolution_of_height(12) == "low12" and m.resolution_of_height(8) == "low"
    with pytest.raises(ValueError, match=r"no resolution of height 10 \(the dataset stores 16, 8, 4, 12\)"):
        m.resolution_of_height(10)
    shard = m.splits["val"].shards[0]
    assert shard.files("low12").tar == "low12/val-000000.tar" and set(shard.extra) == {"low4", "low12"}
    assert Manifest.from_dict(m.to_dict()) == m


def test_v2_fractional_ratio_round_trips():
    d = _v2()
    d["shapes"]["low"] = [12, 12, 3]
    d["ratio"] = 16 / 12
    assert Manifest.from_dict(copy.deepcopy(d)).to_dict() == d


def test_single_low_v2_has_the_v1_fingerprint(tmp_path):
    """Only the version differs: checkpoints of a v1 dataset still match the same shards written as v2."""
    v1 = Manifest.load(LEGACY / "dataset")
    v2 = Manifest.from_dict(_v2())
    assert v2.version == 2 and v1.version == 1 and v2 != v1
    assert v2.fingerprint() == v1.fingerprint()
    v1.save(tmp_path)  # a v1 manifest read and written stays v1
    assert _raw(tmp_path)["version"] == 1


@pytest.mark.parametrize("change, message", [
    (_set("shapes.low5", [4, 4, 3]), "field 'shapes.low5' must be [5, W, 3] (a low<H> resolution is H pixels high)"),
    (_set("shapes.low8", [8, 8, 3]), "field 'shapes.low8' must be a height no other resolution has (low is 8 high)"),
    (_set("shapes.low16", [16, 16, 3]), "field 'shapes.low16' must be a height below the full height 16"),
    (_set("shapes.low", [16, 16, 3]), "field 'shapes.low' must be a height below the full height 16"),
    (_set("shapes.low4", [4, 4, 1]), "field 'shapes.low4' must be [H, W, 3] (the channels of shapes.full)"),
    (_set("shapes.mid", [4, 4, 3]), "field 'shapes' must be"),
    (_set("shapes.low04", [4, 4, 3]), "field 'shapes' must be"),
    (_set("ratio", 4), "field 'ratio' must be full H / low H = 16 / 8 (2, an integer)"),
    (_set("ratio", 2.0), "field 'ratio' must be full H / low H = 16 / 8 (2, an integer)"),
    (_set("splits.val.shards[0].low12", _DELETE), "missing field 'splits.val.shards[0].low12'"),
    (_set("splits.val.shards[0].low12.tar", "/abs.tar"), "field 'splits.val.shards[0].low12.tar' must be a relative"),
])
def test_v2_errors_name_the_field(change, message):
    d = _v2({"low12": [12, 12, 3]})
    change(d)
    with pytest.raises(DatasetFormatError) as info:
        Manifest.from_dict(d, "DATA/manifest.json")
    assert str(info.value).startswith("DATA/manifest.json: ") and message in str(info.value), str(info.value)


def test_v2_fractional_ratio_must_match_the_shapes():
    d = _v2()
    d["shapes"]["low"] = [12, 12, 3]
    for wrong in (1.5, 2, "4/3"):
        d["ratio"] = wrong
        with pytest.raises(DatasetFormatError, match=r"field 'ratio' must be full H / low H = 16 / 12 \(1.333"):
            Manifest.from_dict(d)


def test_v1_holds_exactly_full_and_low():
    d = _raw(LEGACY / "dataset")
    d["shapes"]["low4"] = [4, 4, 3]
    with pytest.raises(DatasetFormatError, match=r"field 'shapes' must be \{\"full\": \[H, W, C\], \"low\""):
        Manifest.from_dict(d)
