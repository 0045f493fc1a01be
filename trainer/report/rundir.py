"""The run directory: the trainer's output contract, read by ``lowmode-compare`` and scripts.

    RUN/config.toml        the resolved config (load_config(RUN/config.toml) reproduces the run)
    RUN/env.json           git revision, package versions, world size, device, command line
    RUN/metrics.jsonl      one JSON object per line, kind "step" or "epoch" (trainer.report.metrics)
    RUN/summary.json       final numbers (written at the end of training)
    RUN/status.json        state: running | stopped (requeue, exit 75) | failed | done
    RUN/checkpoints/       step-<global step>.pt, atomic (trainer.run.checkpoint)
    RUN/.lock              held (flock) by the trainer that owns the directory; holds its PID
All writes here are rank 0's, made while holding RUN/.lock.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from preprocess.files import Locked, atomic_write_bytes, atomic_write_json, lock_file, unlock_file

__all__ = ["RunDir", "RunDirError", "environment", "git_revision", "package_versions", "tomllib"]

PACKAGES = ("lowmode", "torch", "torchvision", "numpy", "nvidia-dali-cuda120", "webdataset", "wandb", "tomli-w")


class RunDirError(RuntimeError):
    """The run directory cannot be used (another trainer owns it, it is not a writable directory, or it
    holds a history that the requested start would discard)."""


class RunDir:
    """Paths of one run directory (creating nothing until :meth:`lock` / :meth:`prepare`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.toml"
        self.env = self.path / "env.json"
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"
        self.status = self.path / "status.json"
        self.checkpoints = self.path / "checkpoints"
        self.lock_file = self.path / ".lock"
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Own the directory: an exclusive ``flock`` on RUN/.lock, released by :meth:`unlock` or by the
        kernel when the process dies (no stale locks). RunDirError names the holder's PID when taken, and
        the path when RUN is not a directory, cannot be created or is not writable: all found here, before
        the trainer builds anything."""
        self._create()
        try:
            fd = lock_file(self.lock_file)  # the flock + PID protocol preprocess's --out lock uses too
        except Locked as exc:
            holder = exc.holder or "unknown"
            raise RunDirError(f"--run-dir {self.path}: in use by another lowmode-train (PID {holder}); "
                              "wait for it to finish or use another run directory") from None
        except OSError as exc:
            raise RunDirError(f"--run-dir {self.path}: cannot create or open {self.lock_file.name} "
                              f"({exc.strerror}); the run directory must be writable") from None
        self._lock_fd = fd
        try:
            # An existing .lock opens even in a read-only directory: probe before training for hours
            # into a run that cannot save its first checkpoint.
            for directory in (self.path, self.checkpoints):
                _check_writable(directory, self.path)
        except BaseException:
            self.unlock()
            raise

    def _create(self) -> None:
        """RUN itself (parents too); RunDirError naming the path that is in the way."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--run-dir {self.path}: exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            reason = f"{blocker} is not a directory" if blocker else exc.strerror
            raise RunDirError(f"--run-dir {self.path}: cannot create it ({reason})") from None

    def unlock(self) -> None:
        if self._lock_fd is not None:
            unlock_file(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def remove_stale_temps(self) -> list[Path]:
        """Delete temp files of interrupted atomic writes (``.<name>.*.tmp``); call only under the lock."""
        stale = [p for d in (self.path, self.checkpoints) if d.is_dir() for p in d.glob(".*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def prepare(self, config_dict: dict[str, Any], env: dict[str, Any]) -> None:
        """Create the directory and write the resolved config and environment (rank 0)."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.write_config(config_dict)
        atomic_write_json(self.env, env)

    def write_config(self, config_dict: dict[str, Any]) -> None:
        """RUN/config.toml: the resolved config as TOML (``load_config`` reads it back)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.config, tomli_w.dumps(config_dict).encode())

    def read_config(self) -> dict[str, Any] | None:
        """RUN/config.toml as a plain dict, None when the run has none."""
        if not self.config.is_file():
            return None
        return tomllib.loads(self.config.read_text())

    def write_status(self, state: str, **fields: Any) -> None:
        atomic_write_json(self.status, {"state": state, **fields})

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)

    def metrics_records(self) -> int:
        """Records (lines) in RUN/metrics.jsonl: 0 when there is none."""
        if not self.metrics.is_file():
            return 0
        with open(self.metrics, "rb") as f:
            return sum(1 for line in f if line.strip())

    def discard_records(self) -> None:
        """Delete metrics.jsonl, summary.json and status.json: a run started over (``--fresh``) writes them
        anew. Rank 0, under the lock; config.toml and env.json are rewritten by :meth:`prepare`."""
        for path in (self.metrics, self.summary, self.status):
            path.unlink(missing_ok=True)

    def read_summary(self) -> dict[str, Any] | None:
        """RUN/summary.json, None before the run has finished."""
        if not self.summary.is_file():
            return None
        return json.loads(self.summary.read_text())


def _check_writable(directory: Path, run: Path) -> None:
    """RunDirError unless a file can be created in ``directory`` (when it exists). A real create, not
    os.access: that answers yes to root, while a read-only mount refuses root too. The probe's name is a
    stale temp's (``.*.tmp``), so a kill right here leaves nothing that the next start keeps."""
    if not directory.is_dir():
        return
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=directory)
    except OSError as exc:
        where = "" if directory == run else f" ({directory.name}/)"
        raise RunDirError(f"--run-dir {run}: not writable{where}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(probe)


def git_revision(cwd: str | Path | None = None) -> dict[str, Any]:
    """HEAD commit of the source tree and whether it has uncommitted changes (None outside git)."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if rev.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(world_size: int, device: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Everything env.json records: reproducibility is data."""
    import torch

    return {
        "git": git_revision(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "world_size": world_size,
        "device": device,
        "cuda_device_name": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "torch_num_threads": torch.get_num_threads(),
        "argv": list(sys.argv if argv is None else argv),
    }
