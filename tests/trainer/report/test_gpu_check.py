"""scripts/gpu_check.py (make gpu-check) on a machine without CUDA: the skip path and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_ONLY", "GPU_CHECK_SKIP")}
    full_env.update(env)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=300)  # ~3 s; slack for a starved CPU


def _gpu_check_names() -> tuple[tuple[str, ...], set[str]]:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_check.NAMES, {c.name for c in gpu_check.CHECKS if "cuda" in c.needs}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-CUDA path")
def test_without_cuda_gpu_checks_are_skipped_with_reasons_exit_0(tmp_path):
    out = tmp_path / "gpu-check"
    # the Makefile's way: OUT from the environment; GPU_CHECK_ONLY keeps the CPU part to the self-check
    proc = _run([], OUT=str(out), GPU_CHECK_ONLY="selfcheck")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    names, gpu_names = _gpu_check_names()
    assert {"pytest_gpu", "bench_resnet18_bf16_cl_compile", "loop_bench", "dali_gpu_epochs_jpg",
            "torchrun_2epochs"} <= set(names)
    assert summary["cuda"] is False and summary["ok"] is True and summary["counts"]["failed"] == 0
    assert [c["name"] for c in summary["checks"]] == list(names)
    assert summary["checks"][0]["status"] == "ok" and summary["checks"][0]["result"]["cuda"] is False
    for name in gpu_names:
        assert "CUDA" in summary["skipped"][name], (name, summary["skipped"].get(name))
    assert "not selected" in summary["skipped"]["loop_bench"]  # CPU-capable, left out by GPU_CHECK_ONLY
    for name in names:  # one JSON file per check
        record = json.loads((out / f"{name}.json").read_text())
        assert record["name"] == name and record["status"] in ("ok", "skipped")
        assert record["status"] == "ok" or record["reason"]
    assert "skipped" in proc.stdout and "no CUDA" in proc.stdout


def test_unwritable_out_is_one_error_line_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = _run(["--out", str(blocker / "out")])  # a path under a regular file: unwritable, also for root
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: error:") and "OUT" in lines[0]
    assert proc.stdout == "" and not (blocker / "out").exists()


def test_unknown_check_name_is_one_error_line_exit_2(tmp_path):
    proc = _run(["--out", str(tmp_path / "o"), "--only", "selfcheck,warp_drive"])
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "warp_drive" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_gpu_check_target_runs_the_script():
    proc = subprocess.run(["make", "-n", "gpu-check", "OUT=/tmp/somewhere"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "scripts/gpu_check.py --out /tmp/somewhere" in proc.stdout
