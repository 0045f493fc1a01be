"""Synthetic builds through the CLI: manifest, alignment, downsampling, determinism, reruns, --part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from preprocess.build import BuildConfig, build_dataset
from preprocess.dataset_format import load_manifest
from preprocess.downsample import downsample
from preprocess.errors import InputError
from preprocess.verify import verify_dataset
from tests.preprocess.fixtures import read_all, run_cli, stored_keys, synthetic_args, tree_hashes

MANIFEST_FIELDS = {"format", "version", "dataset", "classes", "ratio", "method", "sigma", "encoding", "shapes",
                   "mean", "std", "low_mean", "low_std", "seed", "config", "splits"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 64+16 sample synthetic set, 8x8x3, 16 samples per shard."""
    out = tmp_path_factory.mktemp("syn") / "data"
    manifest = build_dataset(BuildConfig(source="synthetic", out=str(out), num_train=64, num_val=16, size=8,
                                         samples_per_shard=16))
    return out, manifest


def test_manifest_fields(built):
    out, manifest = built
    on_disk = json.loads((out / "manifest.json").read_text())
    assert set(on_disk) == MANIFEST_FIELDS and on_disk == manifest.to_dict()
    assert manifest.shapes == {"full": (8, 8, 3), "low": (4, 4, 3)}
    assert (manifest.ratio, manifest.method, manifest.sigma, manifest.encoding) == (2, "gaussian", 0.5, "raw")
    assert manifest.classes == tuple(f"class{i}" for i in range(10))
    train = manifest.splits["train"]
    assert train.num_samples == 64 and [s.num_samples for s in train.shards] == [16] * 4
    assert manifest.splits["val"].num_samples == 16
    shard = train.shards[1]
    assert shard.full.tar == "full/train-000001.tar" and shard.low.idx == "low/train-000001.idx"
    assert verify_dataset(out) == []


def test_keys_aligned_shuffled_and_complete(built):
    out, manifest = built
    full, low = stored_keys(out, "train", "full"), stored_keys(out, "train", "low")
    assert full == low
    assert sorted(full) == [f"{i:09d}" for i in range(64)] and full != sorted(full)
    expected = np.random.default_rng([0, 0]).permutation(64)  # seeded shuffle, split id 0
    assert full == [f"{i:09d}" for i in expected]
    for shard in manifest.splits["train"].shards:
        assert shard.first_key in full and shard.last_key in full


def test_low_is_downsampled_full_and_labels(built):
    out, _ = built
    full, low = read_all(out, "val", "full"), read_all(out, "val", "low")
    keys = sorted(full)
    images = np.stack([full[k][1] for k in keys])
    assert np.array_equal(np.stack([low[k][1] for k in keys]), downsample(images, 2, "gaussian"))
    assert [full[k][0] for k in keys] == [int(k) % 10 for k in keys] == [low[k][0] for k in keys]


def test_mean_std_of_train_split(built):
    out, manifest = built
    for resolution, (m, s) in {"full": ("mean", "std"), "low": ("low_mean", "low_std")}.items():
        pixels = np.stack([img for _, img in read_all(out, "train", resolution).values()]) / 255.0
        np.testing.assert_allclose(getattr(manifest, m), pixels.mean(axis=(0, 1, 2)), rtol=1e-12)
        np.testing.assert_allclose(getattr(manifest, s), pixels.std(axis=(0, 1, 2)), rtol=1e-9)


@pytest.mark.parametrize("options", [["--method", "area", "--ratio", "4", "--encoding", "png"],
                                     ["--method", "bilinear", "--encoding", "jpg", "--channels", "1"]])
def test_byte_identical_for_any_worker_count(tmp_path, capsys, options):
    hashes = []
    for workers in ("1", "2"):
        code, out, _ = run_cli(capsys, *synthetic_args(tmp_path / workers, "--workers", workers, *options))
        assert code == 0 and out == ""
        hashes.append(tree_hashes(tmp_path / workers))
    assert hashes[0] == hashes[1] and len(hashes[0]) == 2 + 4 * 5 + 5  # manifest, config, 5 shard pairs+sidecars
    manifest = load_manifest(tmp_path / "1")
    assert manifest.encoding == options[options.index("--encoding") + 1]
    assert verify_dataset(tmp_path / "1") == []


def test_summary_line_and_rerun_keeps_shards(tmp_path, capsys):
    args = [a for a in synthetic_args(tmp_path / "d") if a != "--quiet"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and out.startswith("dataset: 80 samples in 5 shard pairs (5 built, 0 kept)")
    assert out.count("\n") == 1 and "MB" in out and "images/s" in out
    before = tree_hashes(tmp_path / "d")
    code, out, _ = run_cli(capsys, *args, "--workers", "2")  # workers do not change the config
    assert code == 0 and "(0 built, 5 kept)" in out and tree_hashes(tmp_path / "d") == before


def test_different_config_refused_unless_overwrite(tmp_path, capsys):
    assert run_cli(capsys, *synthetic_args(tmp_path / "d"))[0] == 0
    code, _, err = run_cli(capsys, *synthetic_args(tmp_path / "d", "--seed", "1"))
    assert code == 2 and err.startswith(f"error: {tmp_path / 'd'}: not empty") and err.count("\n") == 1
    code, _, _ = run_cli(capsys, *synthetic_args(tmp_path / "d", "--seed", "1", "--overwrite"))
    assert code == 0 and load_manifest(tmp_path / "d").seed == 1 and verify_dataset(tmp_path / "d") == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert run_cli(capsys, *synthetic_args(tmp_path / "other"))[0] == 2


def test_parts_then_plain_rerun_equals_single_build(tmp_path, capsys):
    assert run_cli(capsys, *synthetic_args(tmp_path / "one"))[0] == 0
    for part in ("0/2", "1/2"):
        code, out, _ = run_cli(capsys, *[a for a in synthetic_args(tmp_path / "parts", "--part", part)])
        assert code == 0
        assert not (tmp_path / "parts" / "manifest.json").exists()
    code, _, _ = run_cli(capsys, *synthetic_args(tmp_path / "parts"))
    assert code == 0 and tree_hashes(tmp_path / "parts") == tree_hashes(tmp_path / "one")


def test_config_validation_names_the_field():
    with pytest.raises(InputError, match="--ratio: expected an integer >= 2"):
        BuildConfig(source="synthetic", out="x", ratio=1)
    with pytest.raises(InputError, match="--part"):
        BuildConfig(source="synthetic", out="x", part=(2, 2))
    with pytest.raises(InputError, match="--channels"):
        BuildConfig(source="imagefolder", out="x", input="y", channels=2)


def test_concurrent_part_sees_fresh_build_folders_as_empty(tmp_path, capsys):
    """A --part build that starts while another has only made the empty build folders is not refused."""
    out = tmp_path / "d"
    for name in (".build", "full", "low"):
        (out / name).mkdir(parents=True)
    (out / ".build" / ".config.json.x1.tmp").write_text("{}")
    code, _, err = run_cli(capsys, *synthetic_args(out, "--part", "1/2"))
    assert code == 0, err
    assert (out / ".build" / "config.json").is_file()
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "full").mkdir()
    (tmp_path / "f" / "full" / "notes.txt").write_text("not ours")
    code, _, err = run_cli(capsys, *synthetic_args(tmp_path / "f"))
    assert code == 2 and "not empty" in err
