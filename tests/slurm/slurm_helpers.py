"""Helpers for the tests that submit jobs to a real Slurm cluster (`make slurm-up` starts one locally).

Jobs run the repository's slurm/*.sbatch scripts with LOWMODE_ROOT/LOWMODE_VENV pointing at this checkout
and this interpreter's virtualenv; their logs go to the test's tmp_path, never into the checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integrations import need, required

ROOT = Path(__file__).resolve().parents[2]
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}
TIMING_SUFFIXES = ("_s",)  # step_s, data_wait_s, images_per_s, train_wall_s: differ between any two runs


def need_cluster() -> None:
    """Skip (or fail, when LOWMODE_REQUIRE names slurm) unless sbatch exists and a controller answers."""
    need("slurm")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode == 0 and "UP" in ping.stdout:
        return
    why = f"sbatch is installed but no slurmctld answers `scontrol ping` ({ping.stdout.strip()}); run `make slurm-up`"
    if "slurm" in required():
        pytest.fail(why)
    pytest.skip(why)


def job_env(**extra: str) -> dict[str, str]:
    """The submitting environment: this checkout, this virtualenv, W&B off (sbatch exports it to the job)."""
    return dict(os.environ, LOWMODE_ROOT=str(ROOT), LOWMODE_VENV=sys.prefix, WANDB_MODE="disabled", **extra)


def sbatch(args: list[str], env: dict[str, str]) -> str:
    """Submit from the checkout; return the job id."""
    out = subprocess.run(["sbatch", "--parsable", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"sbatch {args} failed: {out.stderr.strip()}"
    return out.stdout.strip().split(";")[0]


def job_fields(job_id: str) -> list[dict[str, str]]:
    """`scontrol show job -o` as dicts, one per job (several for an array); [] once the job is purged."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    if out.returncode != 0:
        return []
    jobs = []
    for line in out.stdout.splitlines():
        jobs.append(dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line)))
    return jobs


def wait_for(job_id: str, timeout_s: float, logs: list[Path] = ()) -> list[dict[str, str]]:
    """Poll until every job of ``job_id`` is in a final state; on timeout cancel it and fail with the logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = job_fields(job_id)
        if jobs and all(job["JobState"] in FINAL_STATES for job in jobs):
            return jobs
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], capture_output=True)
    pytest.fail(f"job {job_id} not finished after {timeout_s:.0f} s: {job_fields(job_id)}\n{tails(logs)}")


def assert_completed(jobs: list[dict[str, str]], logs: list[Path] = ()) -> None:
    states = [(job["JobId"], job["JobState"], job.get("ExitCode")) for job in jobs]
    assert all(job["JobState"] == "COMPLETED" for job in jobs), f"jobs did not complete: {states}\n{tails(logs)}"


def tails(paths: list[Path], lines: int = 30) -> str:
    """The last lines of each existing log, for failure messages."""
    parts = []
    for path in paths:
        for match in sorted(path.parent.glob(path.name)):
            text = match.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {match}\n" + "\n".join(text))
    return "\n".join(parts)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (hidden ones included), keyed by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def comparable_records(run_dir: Path) -> list[dict[str, Any]]:
    """RUN/metrics.jsonl without timing fields: equal for two runs that computed the same thing."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith(TIMING_SUFFIXES)} for r in records]
