"""Optional integrations: skip on a user's machine when missing, fail in CI when required.

CI exports ``LOWMODE_REQUIRE=dali,fmnist,...``; a test that needs an integration named there fails
instead of skipping, so a broken install step cannot hide behind a skip.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

FMNIST_DIR = Path(os.environ.get("LOWMODE_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FMNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def required() -> set[str]:
    """Integrations that must be present (from LOWMODE_REQUIRE, comma-separated)."""
    return {name.strip() for name in os.environ.get("LOWMODE_REQUIRE", "").split(",") if name.strip()}


def _available(name: str) -> tuple[bool, str]:
    if name == "dali":
        return importlib.util.find_spec("nvidia.dali") is not None, "nvidia.dali is not importable"
    if name == "fmnist":
        missing = [f for f in FMNIST_FILES if not (FMNIST_DIR / f).is_file()]
        return not missing, f"Fashion-MNIST files missing in {FMNIST_DIR}: {missing}"
    if name == "slurm":
        if shutil.which("sbatch") is None:
            return False, "sbatch not on PATH (run `make slurm-up`)"
        return _slurm_controller_answers(os.environ.get("PATH", ""))
    if name == "ddp":
        import torch.distributed as dist

        return dist.is_available() and dist.is_gloo_available(), "torch.distributed with gloo unavailable"
    if name == "wandb":
        return importlib.util.find_spec("wandb") is not None, "wandb is not importable"
    if name == "timm":
        return importlib.util.find_spec("timm") is not None, "timm is not importable (pip install 'lowmode[zoo]')"
    raise ValueError(f"unknown integration {name!r}")


@functools.lru_cache(maxsize=4)
def _slurm_controller_answers(path: str) -> tuple[bool, str]:
    """Installed is not running: after `make slurm-down` (or a reboot) sbatch is on PATH but every Slurm
    test would fail on a dead controller. One ``sinfo`` per PATH and test session."""
    try:
        result = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True,
                                timeout=20, env={**os.environ, "PATH": path})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"sinfo did not answer ({exc}); run `make slurm-up`"
    if result.returncode != 0 or not result.stdout.split():
        last = (result.stderr.strip().splitlines() or ["no node listed"])[-1]
        return False, f"the Slurm controller does not answer (sinfo: {last}); run `make slurm-up`"
    return True, ""


def need(name: str) -> None:
    """Skip the calling test when integration ``name`` is missing, or fail if LOWMODE_REQUIRE names it."""
    ok, why = _available(name)
    if ok:
        return
    if name in required():
        pytest.fail(f"integration {name!r} is required (LOWMODE_REQUIRE) but unavailable: {why}")
    pytest.skip(why)
