"""kill -9 in the middle of a build, rerun the same command: byte-identical to an uninterrupted build,
and the killed build's pool workers die with it."""

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


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses


def _alive(pid: int, start: str) -> bool:
    """True while the process that started at ``start`` runs (a zombie is dead; a reused PID is another)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in "ZX" and fields[19] == start


def children(pid: int) -> dict[int, str]:
    """{PID: start time} of the live children of ``pid`` (from /proc: psutil is not a dependency)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[1] == str(pid):
            if fields[0] not in "ZX":
                found[int(entry.name)] = fields[19]
    return found


def wait_gone(processes: dict[int, str], seconds: float) -> dict[int, str]:
    """Those of ``processes`` still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (alive := {p: s for p, s in processes.items() if _alive(p, s)}) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def test_sigkill_then_rerun_is_byte_identical(tmp_path):
    reference = tmp_path / "reference"
    assert main(_args(reference, "1")) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "preprocess", *_args(killed, "2")], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = list((killed / ".build").glob("train-*.json")) if (killed / ".build").exists() else []
            if len(done) >= 40:
                break
            time.sleep(0.005)
        workers = children(proc.pid)
        assert proc.poll() is None, f"build ended before it could be killed: {proc.stderr.read()}"
        assert len(workers) == 2, workers  # the pool's two workers, forked at the first task
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_gone(workers, 5.0) == {}, "pool workers outlived the killed build"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid, start in workers.items():  # only if the assertion above failed
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)
    assert not (killed / "manifest.json").exists()
    assert len(list((killed / ".build").glob("*-*.json"))) < 834  # interrupted part-way
    assert main(_args(killed, "1")) == 0  # the kernel dropped the killed build's lock
    assert tree_hashes(killed) == tree_hashes(reference)
