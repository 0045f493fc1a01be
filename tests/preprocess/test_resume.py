"""kill -9 in the middle of a build, rerun the same command: byte-identical to an uninterrupted build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from preprocess.cli import main
from tests.preprocess.fixtures import tree_hashes

REPO = Path(__file__).resolve().parents[2]


def _args(out: Path, workers: str) -> list[str]:
    # many tiny shards so that the build takes a few seconds and can be killed half-way
    return ["build", "--source", "synthetic", "--out", str(out), "--num-train", "2400", "--num-val", "100",
            "--size", "4", "--samples-per-shard", "3", "--workers", workers, "--quiet"]


def test_sigkill_then_rerun_is_byte_identical(tmp_path):
    reference = tmp_path / "reference"
    assert main(_args(reference, "1")) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "preprocess", *_args(killed, "2")], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = list((killed / ".build").glob("train-*.json")) if (killed / ".build").exists() else []
            if len(done) >= 40:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"build ended before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.2)  # let orphaned pool workers notice their parent is gone
    assert not (killed / "manifest.json").exists()
    assert len(list((killed / ".build").glob("*-*.json"))) < 834  # interrupted part-way
    assert main(_args(killed, "1")) == 0
    assert tree_hashes(killed) == tree_hashes(reference)
