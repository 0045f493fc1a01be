"""Shared helpers for the trainer's training tests: a tiny synthetic dataset and run launchers.

Kept tiny on purpose (2 cores shared): 16x16 RGB, 4 classes, 192 train / 48 val samples,
ResNet-8, global batch 16 (12 steps per epoch), deterministic CPU algorithms.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
TIMING_KEYS = ("step_s", "data_wait_s", "images_per_s", "train_wall_s", "bn_recalibrate_s", "loop_wall_s",
               "cpu_busy_s")


def make_dataset(out: Path, *, num_train: int = 192, num_val: int = 48, size: int = 16) -> Path:
    """Build a synthetic dataset directory with the preprocess package (seeded, a second or two)."""
    from preprocess.build import build_dataset
    from preprocess.config import BuildConfig

    build_dataset(BuildConfig(source="synthetic", out=str(out), size=size, channels=3, num_classes=4,
                              num_train=num_train, num_val=num_val, samples_per_shard=64, seed=0))
    return out


def tiny_overrides(data_dir: Path, **extra: Any) -> list[str]:
    """--set arguments for a tiny deterministic run; ``extra`` maps "section.key" -> TOML literal text."""
    values = {
        "data.dir": json.dumps(str(data_dir)),
        "data.num_workers": "0",
        "model.name": '"resnet8"',
        "train.epochs": "3",
        "train.global_batch_size": "16",
        "train.deterministic": "true",
        "train.device": '"cpu"',
        "optim.lr_milestones_epochs": "[2]",
        "schedule.full_epochs_after_milestone": "0",
        "logging.wandb": '"disabled"',
        "logging.progress": '"lines"',
        **{k.replace("__", "."): v for k, v in extra.items()},
    }
    args = []
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", PYTHONPATH=str(ROOT))
    return env


def train_command(run_dir: Path, overrides: list[str], nproc: int = 1, extra: list[str] = ()) -> list[str]:
    args = ["--run-dir", str(run_dir), *overrides, *extra]
    if nproc == 1:
        return [sys.executable, "-m", "trainer", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "trainer", *args]


def run_train(run_dir: Path, overrides: list[str], nproc: int = 1, extra: list[str] = (),
              timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the trainer in a fresh process (torchrun when nproc > 1) and wait for it."""
    return subprocess.run(train_command(run_dir, overrides, nproc, extra), cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def step_lines(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"kind": "step"' in line)


def start_and_signal(run_dir: Path, overrides: list[str], *, after_steps: int, sig: int, nproc: int = 1,
                     timeout: float = 120) -> tuple[int, str]:
    """Start a run, send ``sig`` to its process group once ``after_steps`` steps are logged, wait.

    Returns (exit code, stderr). The step at which the signal lands is whatever the run reached
    by then: an arbitrary step, which is the point.
    """
    proc = subprocess.Popen(train_command(run_dir, overrides, nproc), cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while step_lines(run_dir) < after_steps:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"run ended/timed out before step {after_steps}: {proc.stderr.read()}")
            time.sleep(0.005)
        if sig == signal.SIGKILL:
            kill_tree(proc.pid)
        else:
            os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()


def _descendants(pid: int) -> list[int]:
    """Child processes, recursively (torchrun starts its workers in sessions of their own)."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [d for c in children for d in (c, *_descendants(c))]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once, as a node failure would."""
    for p in [*_descendants(pid), pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def comparable_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records without the timing fields (which differ between any two runs)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model state of the newest checkpoint (written at the end of training)."""
    from trainer.run.checkpoint import CheckpointManager, load_checkpoint

    return load_checkpoint(CheckpointManager(run_dir / "checkpoints").existing()[-1])["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"
