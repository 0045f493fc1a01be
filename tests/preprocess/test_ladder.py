"""Several low resolutions in one dataset (``--low-sizes``, manifest v2): what a build writes, its bad
inputs, resuming it, and that a build without ``--low-sizes`` still writes the bytes it always did."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preprocess import shards
from preprocess.build import resolution_shapes
from preprocess.cli import main
from preprocess.config import BuildConfig
from preprocess.dataset_format import Manifest, load_manifest
from preprocess.downsample import downsample, resize
from preprocess.errors import InputError
from preprocess.reader import read_split
from preprocess.verify import verify_dataset
from tests.preprocess.fixtures import read_all, run_cli, stored_keys, synthetic_args, tree_hashes

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"
LADDER = ["--size", "16", "--low-sizes", "8,12,4,10"]  # low = 8 (ratio 2), then 4, 10 and 12 (ratio 4/3)
RESOLUTIONS = ("full", "low", "low4", "low10", "low12")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory) -> Path:
    """A 64 + 16 sample synthetic set, 16x16x3, 16 samples per shard, at five resolutions."""
    out = tmp_path_factory.mktemp("ladder") / "data"
    assert main(synthetic_args(out, *LADDER)) == 0
    return out


def _shard_hashes(root: Path) -> str:
    """One sha256 over every tar and idx file under ``root`` (relative path and bytes, in path order)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".tar", ".idx"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _tar_members(tar: Path) -> list[str]:
    with tarfile.open(tar) as f:
        return f.getnames()


# ----------------------------------------------------------------------------- what a ladder build writes


def test_ladder_manifest_shapes_and_files(ladder):
    manifest = load_manifest(ladder)
    assert manifest.version == 2 and manifest == Manifest.load(ladder)
    assert manifest.shapes == {"full": (16, 16, 3), "low": (8, 8, 3), "low4": (4, 4, 3), "low10": (10, 10, 3),
                               "low12": (12, 12, 3)}
    assert manifest.resolutions == RESOLUTIONS and manifest.low_resolutions == ("low4", "low", "low10", "low12")
    assert (manifest.ratio, manifest.sigma, manifest.method) == (2, 0.5, "gaussian")
    assert manifest.ratio_of("low12") == 16 / 12 and manifest.ratio_of("low10") == 1.6
    assert manifest.config["low_sizes"] == [8, 12, 4, 10] and "ratio" not in manifest.config
    assert sorted(p.name for p in ladder.iterdir()) == [".build", "full", "low", "low10", "low12", "low4",
                                                        "manifest.json"]
    for resolution in RESOLUTIONS:
        assert sorted(p.name for p in (ladder / resolution).iterdir()) == sorted(
            f"{split}-{k:06d}.{ext}" for split, n in (("train", 4), ("val", 1)) for k in range(n)
            for ext in ("tar", "idx"))
    shard = manifest.splits["train"].shards[3]
    assert (shard.files("low10").tar, shard.files("low10").idx) == ("low10/train-000003.tar",
                                                                     "low10/train-000003.idx")
    assert verify_dataset(ladder) == []


def test_every_resolution_holds_the_same_keys_in_the_same_order(ladder):
    manifest = load_manifest(ladder)
    for split in ("train", "val"):
        keys = stored_keys(ladder, split, "full")
        assert sorted(keys) == [f"{i:09d}" for i in range(64 if split == "train" else 16)] and keys != sorted(keys)
        for resolution in RESOLUTIONS[1:]:
            assert stored_keys(ladder, split, resolution) == keys, resolution
        for shard in manifest.splits[split].shards:  # the tars themselves, member by member
            names = _tar_members(ladder / shard.full.tar)
            for resolution in RESOLUTIONS[1:]:
                assert [n.split(".")[0] for n in _tar_members(ladder / shard.files(resolution).tar)] == \
                    [n.split(".")[0] for n in names]


def test_each_resolution_is_the_downsampled_full_image(ladder):
    full = read_all(ladder, "val", "full")
    keys = sorted(full)
    images = np.stack([full[k][1] for k in keys])
    expected = {"low": downsample(images, 2), "low4": downsample(images, 4), "low10": resize(images, 10, 10),
                "low12": resize(images, 12, 12)}
    for resolution, want in expected.items():
        stored = read_all(ladder, "val", resolution)
        assert np.array_equal(np.stack([stored[k][1] for k in keys]), want), resolution
        assert [stored[k][0] for k in keys] == [full[k][0] for k in keys]


def test_read_split_takes_every_resolution_and_names_unknown_ones(ladder):
    manifest = load_manifest(ladder)
    samples = list(read_split(ladder, manifest, "val", "low10", limit=3))
    assert len(samples) == 3 and all(image.shape == (10, 10, 3) for _, _, image in samples)
    with pytest.raises(ValueError, match=r"resolution must be one of \('full', 'low', 'low4', 'low10', 'low12'\)"):
        next(read_split(ladder, manifest, "val", "low7"))


def test_first_size_need_not_divide(tmp_path, capsys):
    out = tmp_path / "d"
    assert run_cli(capsys, *synthetic_args(out, "--size", "16", "--low-sizes", "12", "--method", "area"))[0] == 0
    manifest = load_manifest(out)
    assert manifest.shapes == {"full": (16, 16, 3), "low": (12, 12, 3)} and manifest.ratio == 16 / 12
    assert isinstance(manifest.ratio, float) and manifest.sigma == 0.0 and verify_dataset(out) == []
    gaussian = tmp_path / "g"
    assert run_cli(capsys, *synthetic_args(gaussian, "--size", "16", "--low-sizes", "12"))[0] == 0
    assert load_manifest(gaussian).sigma == pytest.approx(1 / 6)


@pytest.mark.parametrize("options", [["--low-sizes", "12,6,10", "--method", "area"],
                                     ["--low-sizes", "5,12", "--method", "bilinear", "--encoding", "png",
                                      "--channels", "1"]])
def test_byte_identical_for_any_worker_count(tmp_path, capsys, options):
    hashes = []
    for workers in ("1", "2"):
        code, _, err = run_cli(capsys, *synthetic_args(tmp_path / workers, "--size", "16", "--workers", workers,
                                                       *options))
        assert code == 0, err
        hashes.append(tree_hashes(tmp_path / workers))
    resolutions = len(options[1].split(",")) + 1
    # manifest, config, tar + idx of 5 shards per resolution, 5 sidecars
    assert hashes[0] == hashes[1] and len(hashes[0]) == 2 + 5 * 2 * resolutions + 5
    assert verify_dataset(tmp_path / "1") == []


def test_parts_then_plain_rerun_equal_one_build(tmp_path, capsys, ladder):
    out = tmp_path / "parts"
    for part in ("0/2", "1/2"):
        assert run_cli(capsys, *synthetic_args(out, *LADDER, "--part", part))[0] == 0
    assert (out / "low12" / "train-000001.tar").is_file() and not (out / "manifest.json").exists()
    assert run_cli(capsys, *synthetic_args(out, *LADDER))[0] == 0
    assert tree_hashes(out) == tree_hashes(ladder)


def test_rerun_keeps_every_shard_and_other_sizes_are_another_config(tmp_path, capsys, ladder):
    out = tmp_path / "d"
    shutil.copytree(ladder, out)
    before = tree_hashes(out)
    code, stdout, _ = run_cli(capsys, *[a for a in synthetic_args(out, *LADDER) if a != "--quiet"])
    assert code == 0 and "80 samples in 5 shards x 5 resolutions (0 built, 5 kept)" in stdout
    assert tree_hashes(out) == before
    code, _, err = run_cli(capsys, *synthetic_args(out, "--size", "16", "--low-sizes", "8,12"))
    assert code == 2 and "not empty and not a build of this config" in err
    code, _, err = run_cli(capsys, *synthetic_args(out, "--size", "16", "--overwrite"))  # back to one low size
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [".build", "full", "low", "manifest.json"]
    assert verify_dataset(out) == [] and load_manifest(out).resolutions == ("full", "low")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("value, message", [
    ("16", "--low-sizes: expected sizes below the full image height 16 of synthetic, got 16"),
    ("8,20", "--low-sizes: expected sizes below the full image height 16 of synthetic, got 20"),
    ("8,12,8", "--low-sizes: expected distinct sizes (8 given twice), got '8,12,8'"),
    ("0", "argument --low-sizes: expected comma-separated positive integers (low image heights, e.g. 64,96), "
          "got '0'"),
    ("8,-4", "argument --low-sizes: expected comma-separated positive integers"),
    ("-4", "argument --low-sizes: expected comma-separated positive integers"),
    ("8.5", "argument --low-sizes: expected comma-separated positive integers"),
    ("8,x", "argument --low-sizes: expected comma-separated positive integers"),
    ("8,", "argument --low-sizes: expected comma-separated positive integers"),
    ("", "argument --low-sizes: expected comma-separated positive integers"),
])
def test_bad_low_sizes_are_one_error_line(tmp_path, capsys, value, message):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, *synthetic_args(out, "--size", "16", "--low-sizes", value))
    assert (code, stdout) == (2, "") and err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert not out.exists()


@pytest.mark.parametrize("ratio", ["2", "4"])
def test_low_sizes_refuse_an_explicit_ratio(tmp_path, capsys, ratio):
    code, _, err = run_cli(capsys, *synthetic_args(tmp_path / "o", "--size", "16", "--low-sizes", "8",
                                                   "--ratio", ratio))
    assert code == 2 and err == (f"error: --low-sizes: not together with --ratio {ratio} (the first low size "
                                 "defines the \"low\" resolution; give one of the two options)\n")


def test_config_checks_low_sizes_and_records_them_only_when_given():
    default = BuildConfig(source="synthetic", out="o")
    assert default.ratio == 2 and default.low_sizes is None
    assert "low_sizes" not in default.output_config() and default.output_config()["ratio"] == 2
    ladder = BuildConfig(source="synthetic", out="o", low_sizes=[16, 24])
    assert ladder.ratio is None and ladder.low_sizes == (16, 24)
    assert ladder.output_config()["low_sizes"] == [16, 24] and "ratio" not in ladder.output_config()
    for bad, message in ((("16",), "--low-sizes: expected comma-separated positive integers"),
                         ((), "--low-sizes: expected comma-separated positive integers"),
                         ((8, 0), "--low-sizes: expected comma-separated positive integers"),
                         ((8, True), "--low-sizes: expected comma-separated positive integers"),
                         ((8, 8), "--low-sizes: expected distinct sizes (8 given twice)")):
        with pytest.raises(InputError, match=f"^{message}".replace("(", r"\(").replace(")", r"\)")):
            BuildConfig(source="synthetic", out="o", low_sizes=bad)
    with pytest.raises(InputError, match="^--low-sizes: not together with --ratio 3"):
        BuildConfig(source="synthetic", out="o", low_sizes=(8,), ratio=3)


def test_widths_scale_with_the_height_and_must_come_out_whole():
    config = BuildConfig(source="synthetic", out="o", low_sizes=(8, 12, 4))
    assert resolution_shapes(config, (16, 24, 3)) == {"full": (16, 24, 3), "low": (8, 12, 3), "low4": (4, 6, 3),
                                                      "low12": (12, 18, 3)}
    with pytest.raises(InputError, match=r"^--low-sizes: size 7 gives x's 16x24 images a width of 10.5 pixels; "
                                         r"expected sizes whose width 24 \* size / 16 is an integer$"):
        resolution_shapes(BuildConfig(source="synthetic", out="o", low_sizes=(8, 7)), (16, 24, 3), "x")
    assert resolution_shapes(BuildConfig(source="synthetic", out="o", ratio=4), (16, 24, 1)) == {
        "full": (16, 24, 1), "low": (4, 6, 1)}


# ----------------------------------------------------------------------------- resuming


def _failing_write(monkeypatch, target: str, error: BaseException):
    """Make shards.write_temp raise ``error`` when it writes the file ``target`` ends with."""
    real = shards.write_temp

    def write_temp(path, data, **kwargs):
        if str(path).endswith(target):
            raise error
        return real(path, data, **kwargs)

    monkeypatch.setattr(shards, "write_temp", write_temp)


@pytest.mark.parametrize("target, error, code", [
    ("low10/train-000002.tar", KeyboardInterrupt(), 130),  # interrupted in the middle of a shard's resolutions
    ("low12/val-000000.idx", OSError(28, "No space left on device", "x"), 2),  # its very last file: disk full
])
def test_interrupted_resolution_write_then_rerun_is_byte_identical(tmp_path, capsys, monkeypatch, ladder,
                                                                   target, error, code):
    out = tmp_path / "d"
    _failing_write(monkeypatch, target, error)
    assert run_cli(capsys, *synthetic_args(out, *LADDER))[0] == code
    monkeypatch.undo()
    assert list(out.rglob("*.tmp")) == [] and not (out / "manifest.json").exists()
    stem = target.split("/")[1].rsplit(".", 1)[0]
    assert not [p for p in out.rglob(f"{stem}.*")]  # no resolution of the failed shard was put in place
    kept = len(list((out / ".build").glob("*-*.json")))
    assert kept == (2 if "train" in target else 4)
    code, stdout, _ = run_cli(capsys, *[a for a in synthetic_args(out, *LADDER) if a != "--quiet"])
    assert code == 0 and f"({5 - kept} built, {kept} kept)" in stdout
    assert tree_hashes(out) == tree_hashes(ladder)


def test_rerun_rebuilds_a_shard_whose_extra_resolution_was_damaged_or_never_recorded(tmp_path, capsys, ladder):
    out = tmp_path / "d"
    shutil.copytree(ladder, out)
    (out / "manifest.json").unlink()
    (out / ".build" / "train-000001.json").unlink()  # killed between its renames and its sidecar
    tar = out / "low10" / "train-000002.tar"
    tar.write_bytes(tar.read_bytes()[:-1] + b"\1")  # a finished shard's low10 file changed since
    (out / "low4" / "train-000003.idx").unlink()
    code, stdout, _ = run_cli(capsys, *[a for a in synthetic_args(out, *LADDER) if a != "--quiet"])
    assert code == 0 and "(3 built, 2 kept)" in stdout
    assert tree_hashes(out) == tree_hashes(ladder)


# ----------------------------------------------------------------------------- verify, info, show


def test_verify_checks_every_resolution(tmp_path, capsys, ladder):
    data = tmp_path / "d"
    shutil.copytree(ladder, data)
    manifest = load_manifest(data)
    a, b = (data / manifest.splits["train"].shards[k].files("low12").tar for k in (0, 1))
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())  # another shard's samples, a valid tar
    shutil.copy(data / "low4" / "val-000000.tar", data / "low10" / "val-000001.tar")  # unlisted
    code, out, _ = run_cli(capsys, "verify", data)
    problems = out.splitlines()
    assert code == 1 and f"{a}: sha256 differs from the manifest (corrupt or replaced file)" in problems
    assert f"{data / 'low10' / 'val-000001.tar'}: shard not listed in the manifest" in problems
    assert any(p.startswith(f"{data / 'full' / 'train-000000.tar'} and {a}: keys/labels differ from sample 0 on "
                            "(full and low12 must match in order)") for p in problems), problems
    a.write_bytes(a_bytes)
    (data / "low10" / "val-000001.tar").unlink()
    assert run_cli(capsys, "verify", data)[:2] == (0, f"verify: {data} OK\n")


def test_info_has_a_line_per_resolution(capsys, ladder):
    code, out, _ = run_cli(capsys, "info", ladder)
    lines = out.splitlines()
    assert code == 0 and "full 16x16x3 -> low 8x8x3 (ratio 2, gaussian, sigma 0.5)" in lines[0]
    assert lines[0].endswith("manifest v2")
    rows = [line.split() for line in lines if line.strip().startswith(tuple(f"{r}:" for r in RESOLUTIONS))]
    assert [(r[0], r[1], r[3]) for r in rows] == [("full:", "16x16x3", "1"), ("low:", "8x8x3", "2"),
                                                   ("low4:", "4x4x3", "4"), ("low10:", "10x10x3", "1.6"),
                                                   ("low12:", "12x12x3", "1.333")]
    assert all(r[2] == "ratio" and r[5] == "MB" for r in rows)
    code, out, _ = run_cli(capsys, "info", ladder, "--json")
    info = json.loads(out)
    manifest = load_manifest(ladder)
    assert [r["name"] for r in info["resolutions"]] == list(RESOLUTIONS)
    low12 = info["resolutions"][-1]
    assert low12 == {"name": "low12", "shape": [12, 12, 3], "ratio": 16 / 12,
                     "bytes": sum(s.files("low12").bytes for sp in manifest.splits.values() for s in sp.shards)}
    assert info["bytes"]["low4"] == info["resolutions"][2]["bytes"] and info["resolutions"][1]["ratio"] == 2


def test_show_draws_every_resolution_side_by_side(tmp_path, capsys, ladder):
    png = tmp_path / "p.png"
    code, out, _ = run_cli(capsys, "show", ladder, "--split", "val", "--count", "2", "--out", png)
    assert code == 0 and out == f"wrote {png}\n"
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    side = 128  # 16-px images shown 8x
    assert image.shape == (2 * (side + 14 + 6), 5 * (side + 4) + 4, 3)
    manifest = load_manifest(ladder)
    key, _, low4 = next(read_split(ladder, manifest, "val", "low4"))
    column = image[14:14 + side, 4 + 2 * (side + 4):4 + 2 * (side + 4) + side]  # row 0, third column: low4
    assert np.array_equal(column[::32, ::32], low4.astype(int))  # each 4x4 pixel drawn as a 32x32 block


# ----------------------------------------------------------------------------- builds without --low-sizes


# sha256 over the tar and idx files (``_shard_hashes``) and over the manifest without its "version", as the
# code before --low-sizes (commit b600e72) wrote them for these commands (40 + 8 samples, 16 per shard)
BEFORE = {
    ("--size", "8"): ("bfd0043f52a741c2c2c2712c0f9b1f35a3cb53369b5e5ee60a8fa10f52370e2c",
                      "b5657c8c6853506073c9db9fca3695becc0f7b9f912d52bd2b0c23a9523efb59"),
    ("--size", "8", "--method", "area", "--ratio", "4", "--channels", "1"): (
        "6544a04b85c81c5cf283f4abb6513b194e2b8539b843936bc0fcdaafa640fb1b",
        "7a9bf4b86afddae048055abb02e089da6322bb1038c5664ab0d3876f36fd4a7e"),
    ("--size", "12", "--method", "bilinear", "--ratio", "3"): (
        "5b15293dd58c066dc0e03071aceaa2e60acb66d20ba7ee4f13c3bfe422415d03",
        "0cd95e09809b2daf8b067ecd84fdc9dae101850970a3e369d40ebf4715c34537"),
}


@pytest.mark.parametrize("options", list(BEFORE), ids=["gaussian-2", "area-4-grey", "bilinear-3"])
def test_default_build_writes_the_bytes_it_always_did(tmp_path, capsys, options):
    out = tmp_path / "d"
    assert run_cli(capsys, *synthetic_args(out, *options, train=40, val=8))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == 2 and set(manifest["shapes"]) == {"full", "low"}
    del manifest["version"]
    assert (_shard_hashes(out), hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()) == \
        BEFORE[options]


def test_legacy_dataset_is_rebuilt_byte_for_byte(tmp_path, capsys):
    """tests/data/legacy_v1/dataset, written by lowmode before the restructuring, from its README's command."""
    out = tmp_path / "d"
    code, _, _ = run_cli(capsys, "build", "--source", "synthetic", "--out", out, "--size", "16", "--channels", "3",
                         "--num-classes", "4", "--num-train", "64", "--num-val", "16", "--samples-per-shard", "32",
                         "--seed", "0", "--quiet")
    assert code == 0
    legacy = LEGACY / "dataset"
    shard_files = sorted(p.relative_to(legacy) for p in legacy.rglob("*") if p.suffix in (".tar", ".idx"))
    assert len(shard_files) == 12 and all((out / p).read_bytes() == (legacy / p).read_bytes() for p in shard_files)
    old, new = Manifest.load(legacy), Manifest.load(out)
    assert old.version == 1 and new.version == 2 and new.fingerprint() == old.fingerprint()
    assert {**new.to_dict(), "version": 1} == old.to_dict()


def test_rerun_on_a_v1_dataset_keeps_it_and_its_manifest(tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(LEGACY / "dataset", data)
    before = tree_hashes(data)
    code, out, err = run_cli(capsys, "build", "--source", "synthetic", "--out", data, "--size", "16", "--channels",
                             "3", "--num-classes", "4", "--num-train", "64", "--num-val", "16",
                             "--samples-per-shard", "32", "--seed", "0")
    assert code == 0 and "(0 built, 3 kept)" in out, err
    assert tree_hashes(data) == before  # nothing rewritten: the manifest is still v1, with the same bytes
    assert load_manifest(data).version == 1


@pytest.mark.parametrize("name", ["dataset", "dataset_png"])
def test_legacy_v1_datasets_load_verify_info_and_show(tmp_path, capsys, name):
    data = LEGACY / name
    manifest = load_manifest(data)
    assert manifest.version == 1 and manifest.resolutions == ("full", "low")
    assert run_cli(capsys, "verify", data)[:2] == (0, f"verify: {data} OK\n")
    code, out, _ = run_cli(capsys, "info", data)
    assert code == 0 and out.splitlines()[0].endswith("manifest v1")
    assert [line.split()[0] for line in out.splitlines()[-2:]] == ["full:", "low:"]
    code, out, _ = run_cli(capsys, "show", data, "--count", "2", "--out", tmp_path / "p.png")
    assert code == 0 and Image.open(tmp_path / "p.png").size[0] == 2 * (manifest.height("full") * (
        max(1, round(128 / manifest.height("full")))) + 4) + 4
