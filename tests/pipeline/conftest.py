"""Tiny datasets for the pipeline tests, built once per session with the preprocess CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def build_dataset(
    out: Path, *, num_train: int, num_val: int, encoding: str = "raw", samples_per_shard: int = 64
) -> Path:
    """Run ``python -m preprocess build --source synthetic`` into ``out`` and return it."""
    cmd = [
        sys.executable, "-m", "preprocess", "build", "--source", "synthetic", "--out", str(out),
        "--num-train", str(num_train), "--num-val", str(num_val), "--size", "32", "--channels", "3",
        "--num-classes", "10", "--samples-per-shard", str(samples_per_shard), "--encoding", encoding, "--quiet",
    ]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    return out


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """256 train / 40 val raw 32x32x3 samples in shards of 64 (val: one short shard)."""
    return build_dataset(tmp_path_factory.mktemp("data") / "raw", num_train=256, num_val=40)


@pytest.fixture(scope="session")
def png_data_dir(tmp_path_factory) -> Path:
    """64 train / 16 val png-encoded samples: exercises the decode paths."""
    out = tmp_path_factory.mktemp("data") / "png"
    return build_dataset(out, num_train=64, num_val=16, encoding="png", samples_per_shard=32)


@pytest.fixture
def data_copy(data_dir, tmp_path) -> Path:
    """A private copy of ``data_dir`` that a test may damage."""
    return Path(shutil.copytree(data_dir, tmp_path / "data"))
