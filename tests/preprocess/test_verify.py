"""verify lists every problem: flipped bytes, missing shards, reordered samples, bad counts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from preprocess.dataset_format import load_manifest
from preprocess.reader import iter_shard
from preprocess.shards import shard_bytes
from tests.preprocess.fixtures import run_cli, synthetic_args


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "data"
    from preprocess.cli import main

    assert main(synthetic_args(out)) == 0
    return out


@pytest.fixture
def data(pristine, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def _verify(capsys, data) -> tuple[int, list[str]]:
    code, out, _ = run_cli(capsys, "verify", data)
    return code, out.splitlines()


def test_clean_dataset_passes(capsys, data):
    assert _verify(capsys, data) == (0, [f"verify: {data} OK"])


def test_flipped_byte_and_missing_low_shard_both_listed(capsys, data):
    tar = data / "full" / "train-000001.tar"
    raw = bytearray(tar.read_bytes())
    raw[3000] ^= 0x01  # inside the image bytes of a sample
    tar.write_bytes(bytes(raw))
    (data / "low" / "val-000000.tar").unlink()
    code, problems = _verify(capsys, data)
    assert code == 1
    assert problems == [f"{tar}: sha256 differs from the manifest (corrupt or replaced file)",
                        f"{data / 'low' / 'val-000000.tar'}: missing"]


def test_reordered_shard(capsys, data):
    manifest = load_manifest(data)
    shard = manifest.splits["train"].shards[2]
    samples = list(iter_shard(data, manifest, "low", shard))
    samples = samples[1:] + samples[:1]  # same samples, rotated order: a self-consistent tar and index
    tar_bytes, index_text = shard_bytes([k for k, _, _ in samples], np.array([lab for _, lab, _ in samples]),
                                        np.stack([img for _, _, img in samples]), "raw")
    (data / shard.low.tar).write_bytes(tar_bytes)
    (data / shard.low.idx).write_text(index_text)
    code, problems = _verify(capsys, data)
    low_tar = data / shard.low.tar
    assert code == 1
    assert f"{low_tar}: sha256 differs from the manifest (corrupt or replaced file)" in problems
    assert any(p.startswith(f"{low_tar}: first/last keys") for p in problems)
    assert any("keys/labels differ from sample 0 on" in p for p in problems)


def test_index_mismatch_count_mismatch_and_unlisted_shard(capsys, data):
    idx = data / "full" / "train-000000.idx"
    lines = idx.read_text().splitlines()
    lines[1] = lines[1].replace(" 1536 ", " 2048 ", 1)
    idx.write_text("\n".join(lines) + "\n")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["splits"]["val"]["num_samples"] = 17
    (data / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(data / "low" / "val-000000.tar", data / "low" / "val-000007.tar")
    code, problems = _verify(capsys, data)
    assert code == 1
    assert f"{idx}: does not match its tar (first difference at sample 0)" in problems
    assert any("val shards hold 16 samples, num_samples says 17" in p for p in problems)
    assert f"{data / 'low' / 'val-000007.tar'}: shard not listed in the manifest" in problems


def test_no_manifest(capsys, tmp_path):
    code, out, err = run_cli(capsys, "verify", tmp_path)
    assert code == 1 and "no manifest" in out
