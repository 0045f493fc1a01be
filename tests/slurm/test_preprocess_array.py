"""slurm/preprocess.sbatch: a 2-task array plus the dependent finalize job equals a one-process build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.slurm.slurm_helpers import ROOT, assert_completed, job_env, need_cluster, sbatch, tails, tree_digest, wait_for

# 4 train shards + 1 val shard: each array task gets shards of both splits (k % 2).
BUILD_ARGS = ["--source", "synthetic", "--num-train", "256", "--num-val", "64", "--size", "16", "--channels", "3",
              "--num-classes", "10", "--samples-per-shard", "64", "--seed", "3", "--quiet"]


def test_array_then_finalize_is_byte_identical_to_single_build(tmp_path: Path) -> None:
    need_cluster()
    env = job_env()
    slurm_out = tmp_path / "slurm-out"
    array_logs = [tmp_path / "array-*.out"]
    array = sbatch(["--array=0-1", f"--output={tmp_path}/array-%A_%a.out", "slurm/preprocess.sbatch",
                    *BUILD_ARGS, "--out", str(slurm_out)], env)
    final = sbatch([f"--dependency=afterok:{array}", "--kill-on-invalid-dep=yes",
                    f"--output={tmp_path}/final-%j.out", "slurm/preprocess.sbatch", *BUILD_ARGS,
                    "--out", str(slurm_out)], env)

    single_out = tmp_path / "single"  # meanwhile, the reference: one process, no --part
    cli = Path(sys.prefix) / "bin" / "lowmode-preprocess"
    subprocess.run([str(cli), "build", *BUILD_ARGS, "--out", str(single_out)], cwd=ROOT, check=True)

    logs = [*array_logs, tmp_path / "final-*.out"]
    array_jobs = wait_for(array, 120, logs)
    assert_completed(array_jobs, logs)
    assert len(array_jobs) == 2
    assert_completed(wait_for(final, 120, logs), logs)

    log_text = tails(array_logs)
    assert "--part 0/2" in log_text and "--part 1/2" in log_text, log_text
    expected = tree_digest(single_out)
    assert "manifest.json" in expected and sum(name.endswith(".tar") for name in expected) == 10
    assert tree_digest(slurm_out) == expected
