"""slurm/submit_all.sh: the afterok chain preprocess -> baseline + lowmode -> compare."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.slurm.slurm_helpers import ROOT, assert_completed, job_env, need_cluster, wait_for

BUILD_ARGS = ["--source", "synthetic", "--num-train", "128", "--num-val", "32", "--size", "16", "--channels", "1",
              "--num-classes", "4", "--samples-per-shard", "32", "--quiet"]
# The small Fashion-MNIST presets, cut down to 2 one-process epochs of 4 steps on the synthetic data.
OVERRIDES = ["train.epochs=2", "optim.lr_milestones_epochs=[1]", "train.global_batch_size=32",
             "data.num_workers=0", 'logging.wandb="disabled"']


def _submit_all(args: list[str], env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(["slurm/submit_all.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ids = dict(re.findall(r"^(preprocess array|preprocess finalize|baseline|lowmode|compare): (\d+)", out.stdout, re.M))
    return {"ids": ids, "stdout": out.stdout}


def test_dry_run_wires_the_dependencies(tmp_path: Path) -> None:
    sets = [arg for override in OVERRIDES for arg in ("--set", override)]
    result = _submit_all(["--dry-run", "--data", str(tmp_path / "d"), "--parts", "3", *sets, "--", *BUILD_ARGS],
                         job_env())
    ids, text = result["ids"], result["stdout"]
    assert list(ids.values()) == ["1001", "1002", "1003", "1004", "1005"]
    commands = [line for line in text.splitlines() if line.startswith("[dry-run] sbatch")]
    assert "--array=0-2 slurm/preprocess.sbatch" in commands[0]
    assert "--dependency=afterok:1001 " in commands[1] and "--array" not in commands[1]
    for train in commands[2:4]:
        assert "--dependency=afterok:1002 " in train and f'data.dir="{tmp_path / "d"}"' in train
    assert "--dependency=afterok:1003:1004 " in commands[4] and "slurm/compare.sbatch" in commands[4]


def test_chain_runs_to_a_comparison(tmp_path: Path) -> None:
    need_cluster()
    out = f"--output={tmp_path}/%x-%j.out"
    env = job_env(LOWMODE_RUNS=str(tmp_path / "runs"), LOWMODE_NPROC_PER_NODE="1",
                  LOWMODE_SBATCH_PREPROCESS=f"--output={tmp_path}/%x-%A_%a.out",
                  LOWMODE_SBATCH_TRAIN=f"--cpus-per-task=1 {out}", LOWMODE_SBATCH_COMPARE=out)
    sets = [arg for override in OVERRIDES for arg in ("--set", override)]
    ids = _submit_all(["--data", str(tmp_path / "data"), "--name", "chain", "--compare-out",
                       str(tmp_path / "compare"), *sets, "--", *BUILD_ARGS], env)["ids"]
    assert set(ids) == {"preprocess array", "preprocess finalize", "baseline", "lowmode", "compare"}

    logs = [tmp_path / "*.out"]
    jobs = wait_for(ids["compare"], 240, logs)  # afterok: it only starts once all earlier jobs completed
    for stage in ("preprocess array", "preprocess finalize", "baseline", "lowmode"):
        jobs += wait_for(ids[stage], 10, logs)
    assert_completed(jobs, logs)
    assert (tmp_path / "data" / "manifest.json").is_file()
    for name in ("chain-baseline", "chain-lowmode"):
        assert json.loads((tmp_path / "runs" / name / "summary.json").read_text())["steps"] == 8
    assert (tmp_path / "compare" / "table.md").is_file()
    assert (tmp_path / "compare" / "accuracy_vs_time.png").stat().st_size > 0
