"""slurm/train.sbatch: SIGUSR1 mid-run -> checkpoint, exit 75, `scontrol requeue`, resume; same result.

Three jobs on the local cluster, each torchrun with 2 CPU ranks (gloo): a reference that runs through,
and two that get SIGUSR1 after 30 of their 96 steps: "steps" through `scancel --signal=USR1` (what
`--signal=USR1@90` does before the time limit: the job's steps get it), "batch" through
`scancel --batch --signal=USR1` (only the batch shell gets it; train.sbatch forwards it). Each signalled
job must be requeued once, resume from its checkpoint and end with the reference's weights and metrics.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.integrations import need
from tests.slurm.slurm_helpers import (assert_completed, comparable_records, job_env, job_fields, need_cluster,
                                       sbatch, tails, wait_for)

SIGNAL_AFTER_STEPS = 30  # of 8 epochs x 12 steps

CONFIG = """\
[model]
name = "resnet8"
[data]
dir = {data}
loader = "torch"
num_workers = 0
[schedule]
policy = "bernoulli"
p = 0.5
full_epochs_after_milestone = 1
[optim]
lr = 0.05
lr_milestones_epochs = [5]
[train]
epochs = 8
global_batch_size = 16
deterministic = true
device = "cpu"
[logging]
wandb = "disabled"
"""


def _make_inputs(tmp_path: Path) -> Path:
    from preprocess.build import BuildConfig, build_dataset

    data = tmp_path / "data"
    build_dataset(BuildConfig(source="synthetic", out=str(data), size=16, channels=3, num_classes=4,
                              num_train=192, num_val=48, samples_per_shard=64, seed=0))
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG.format(data=json.dumps(str(data))))  # a TOML basic string
    return config


def _step_count(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"kind": "step"' in line)


def _signal_mid_run(jobs: dict[str, str], runs: Path, logs: list[Path]) -> None:
    """Signal each job ({"steps"|"batch": job id}, run dir = runs/<key>) once it logged SIGNAL_AFTER_STEPS.

    The metrics file is polled every 20 ms (training is fast); the job state only once a second.
    """
    target_flags = {"steps": [], "batch": ["--batch"]}
    pending = dict(jobs)
    deadline = time.monotonic() + 200
    next_state_check = 0.0
    while pending:
        for target, job_id in list(pending.items()):
            if _step_count(runs / target) >= SIGNAL_AFTER_STEPS:
                subprocess.run(["scancel", "--signal=USR1", *target_flags[target], job_id], check=True)
                del pending[target]
        if pending and time.monotonic() > next_state_check:
            next_state_check = time.monotonic() + 1.0
            for job_id in pending.values():
                states = [job["JobState"] for job in job_fields(job_id)]
                if time.monotonic() > deadline or {"COMPLETED", "FAILED", "CANCELLED"} & set(states):
                    pytest.fail(f"job {job_id} never reached step {SIGNAL_AFTER_STEPS} (states {states})\n"
                                f"{tails(logs)}")
        time.sleep(0.02)


def _final_model(run_dir: Path) -> dict[str, torch.Tensor]:
    from trainer.run.checkpoint import CheckpointManager, load_checkpoint

    return load_checkpoint(CheckpointManager(run_dir / "checkpoints").existing()[-1])["model"]


def test_signalled_jobs_requeue_and_match_uninterrupted_run(tmp_path: Path) -> None:
    need_cluster()
    need("ddp")
    config = _make_inputs(tmp_path)
    runs = tmp_path / "runs"
    env = job_env(LOWMODE_RUNS=str(runs), LOWMODE_NPROC_PER_NODE="2", LOWMODE_DEVICE="cpu")
    common = ["--cpus-per-task=1", f"--output={tmp_path}/%x-%j.out", "slurm/train.sbatch", str(config)]
    names = ("reference", "steps", "batch")
    ids = {name: sbatch([f"--job-name={name}", *common], env) for name in names}
    logs = [tmp_path / f"{name}-*.out" for name in names]

    _signal_mid_run({"steps": ids["steps"], "batch": ids["batch"]}, runs, logs)
    jobs = {name: wait_for(ids[name], 240, logs)[0] for name in names}
    assert_completed(list(jobs.values()), logs)
    assert [jobs[name]["Restarts"] for name in names] == ["0", "1", "1"], tails(logs)

    ref_run = runs / "reference"
    ref_summary = json.loads((ref_run / "summary.json").read_text())
    ref_model = _final_model(ref_run)
    assert ref_summary["steps"] == 96
    for name in ("steps", "batch"):
        log_text = tails([tmp_path / f"{name}-*.out"], lines=300)
        assert "received SIGUSR1" in log_text and "requeueing job" in log_text and "resuming from" in log_text
        assert ("batch shell got SIGUSR1" in log_text) == (name == "batch")  # only that path forwards
        run = runs / name
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        summary = json.loads((run / "summary.json").read_text())
        assert (summary["steps"], summary["final_val_acc"]) == (96, ref_summary["final_val_acc"])
        assert comparable_records(run) == comparable_records(ref_run)
        model = _final_model(run)
        assert model.keys() == ref_model.keys()
        assert [k for k in model if not torch.equal(model[k], ref_model[k])] == [], name
