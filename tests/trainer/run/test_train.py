"""End-to-end single-process training on a tiny synthetic dataset (in-process, a second or two each)."""

from __future__ import annotations

import json
import os
import tomllib

import pytest
import torch

from pipeline.schedule import ModeSchedule, ScheduleConfig
from tests.integrations import need
from tests.trainer.train_helpers import TIMING_KEYS, comparable_metrics, tiny_overrides
from trainer.__main__ import main
from trainer.run.checkpoint import CheckpointManager, load_checkpoint
from trainer.run.config import load_config


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "lowmode"
    assert main(["--run-dir", str(run), *tiny_overrides(data, checkpoint__every_steps="5")]) == 0
    return run


def _records(run, kind):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == kind]


def test_run_directory_contract(finished_run, data):
    steps, epochs = _records(finished_run, "step"), _records(finished_run, "epoch")
    assert len(epochs) == 3 and len(steps) == 3 * 12  # 192 samples / batch 16
    assert [s["step"] for s in steps] == list(range(1, 37))
    # every step's mode is the shared seeded draw of the pipeline's schedule
    schedule = ModeSchedule(ScheduleConfig(p=0.5, full_epochs_after_milestone=0), seed=0, lr_milestones_epochs=(2,))
    assert [s["mode"] for s in steps] == [schedule.mode(e, k) for e in range(3) for k in range(12)]
    assert [s["lr"] for s in steps if s["epoch"] == 2] == pytest.approx([0.01] * 12)
    for e in epochs:
        low = [s for s in steps if s["epoch"] == e["epoch"] and s["mode"] == "low"]
        assert e["low_step_fraction"] == pytest.approx(len(low) / 12)
        assert 0.0 <= e["val_acc"] <= 1.0 and e["val_loss"] > 0
        # the training clock: every step, plus BN re-estimation before evaluations with stale statistics
        # (6 of 12 steps full here: fewer than the 29 BN needs, so every evaluation re-estimates them)
        assert e["bn_recalibrated_batches"] == 4 and e["bn_recalibrate_s"] > 0
        assert e["train_wall_s"] == pytest.approx(sum(s["step_s"] for s in steps if s["epoch"] <= e["epoch"])
                                                  + sum(x["bn_recalibrate_s"] for x in epochs if x["epoch"] <= e["epoch"]))
        # this process's CPU time over the epoch's loop: a one-thread run busy the whole time (loose bounds:
        # a test machine may be shared, and torch may run a helper thread)
        assert e["loop_wall_s"] >= sum(s["step_s"] for s in steps if s["epoch"] == e["epoch"])  # the steps ran in it
        assert 0 < e["cpu_busy_s"] < 4 * e["loop_wall_s"]
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["min_cpu_share"] == round(min(e["cpu_busy_s"] / e["loop_wall_s"] for e in epochs), 3)
    assert summary["final_val_acc"] == epochs[-1]["val_acc"]
    assert summary["best_val_acc"] == max(e["val_acc"] for e in epochs)
    assert summary["epochs"] == 3 and summary["train_wall_s"] == epochs[-1]["train_wall_s"]
    assert summary["low_step_fraction"] == pytest.approx(sum(s["mode"] == "low" for s in steps) / 36)
    assert summary["median_step_s_full"] > 0 and summary["median_step_s_low"] > 0
    # the saved config reproduces the run's config; env.json records provenance
    saved = load_config(finished_run / "config.toml")
    assert saved.data.dir == str(data) and saved.train.global_batch_size == 16
    env = json.loads((finished_run / "env.json").read_text())
    assert env["world_size"] == 1 and env["packages"]["torch"] == torch.__version__.split("+")[0]
    assert "commit" in env["git"]
    assert json.loads((finished_run / "status.json").read_text())["state"] == "done"


def test_checkpoints_hold_progress(finished_run):
    names = [p.name for p in CheckpointManager(finished_run / "checkpoints").existing()]
    assert names == ["step-000000030.pt", "step-000000035.pt", "step-000000036.pt"]  # keep = 3
    final = load_checkpoint(finished_run / "checkpoints" / "step-000000036.pt")
    assert final["progress"] == {"epoch": 3, "step_in_epoch": 0, "global_step": 36,
                                 "train_wall_s": final["progress"]["train_wall_s"]}
    assert final["metrics_bytes"] == (finished_run / "metrics.jsonl").stat().st_size
    mid = load_checkpoint(finished_run / "checkpoints" / "step-000000030.pt")
    assert (mid["progress"]["epoch"], mid["progress"]["step_in_epoch"]) == (2, 6)


def test_resume_of_finished_run_is_a_no_op(finished_run, data):
    before = comparable_metrics(finished_run)
    assert main(["--run-dir", str(finished_run), *tiny_overrides(data, checkpoint__every_steps="5")]) == 0
    assert comparable_metrics(finished_run) == before


def test_mismatched_checkpoint_is_refused(finished_run, data, capsys):
    code = main(["--run-dir", str(finished_run), *tiny_overrides(data, optim__lr="0.05")])
    assert code == 2
    err = capsys.readouterr().err
    assert "different config" in err and "optim.lr (0.1 -> 0.05)" in err


def test_logging_and_checkpoint_keys_may_change_on_resume(finished_run, data):
    # checkpoint.* / logging.* are outside the config hash: a resume with other values is accepted.
    args = tiny_overrides(data, checkpoint__every_steps="7", logging__print_every_steps="3")
    assert main(["--run-dir", str(finished_run), *args]) == 0


def test_corrupt_newest_checkpoint_is_skipped(data, tmp_path):
    run = tmp_path / "run"
    args = tiny_overrides(data, train__epochs="2", optim__lr_milestones_epochs="[1]")
    assert main(["--run-dir", str(run), *args]) == 0
    newest = CheckpointManager(run / "checkpoints").existing()[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, e.g. a disk filled up
    with pytest.warns(RuntimeWarning, match="skipping checkpoint"):
        assert main(["--run-dir", str(run), *args]) == 0
    assert load_checkpoint(CheckpointManager(run / "checkpoints").existing()[-1])["progress"]["epoch"] == 2


def _tree_digest(root):
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_no_loadable_checkpoint_changes_nothing(data, tmp_path, capsys):
    """Every checkpoint truncated: exit 2 naming the files, the run's history untouched."""
    run = tmp_path / "run"
    args = tiny_overrides(data, train__epochs="2", optim__lr_milestones_epochs="[1]", checkpoint__every_steps="4")
    assert main(["--run-dir", str(run), *args]) == 0
    for path in CheckpointManager(run / "checkpoints").existing():
        path.write_bytes(path.read_bytes()[:100])
    before = _tree_digest(run)
    with pytest.warns(RuntimeWarning, match="skipping checkpoint"):
        assert main(["--run-dir", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint in" in err and "is loadable" in err and "step-000000024.pt" in err
    assert _tree_digest(run) == before


def test_checkpoint_with_wrong_shapes_is_refused_naming_it(data, tmp_path, capsys):
    run = tmp_path / "run"
    args = tiny_overrides(data, train__epochs="2", optim__lr_milestones_epochs="[1]", checkpoint__keep="1")
    assert main(["--run-dir", str(run), *args, "--set", "train.epochs=2"]) == 0
    path = CheckpointManager(run / "checkpoints").existing()[-1]
    state = torch.load(path, weights_only=True)
    state["progress"]["epoch"] = 1  # pretend it is mid-run, so the resume has work to do
    state["model"]["fc.weight"] = torch.zeros(3, 3)
    torch.save(state, path)
    before = _tree_digest(run)
    assert main(["--run-dir", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "does not fit this run" in err and "fc.weight" in err
    assert _tree_digest(run) == before


def test_a_second_trainer_on_the_same_run_dir_exits_2(data, tmp_path, capsys):
    from trainer.report.rundir import RunDir

    run = tmp_path / "run"
    owner = RunDir(run)
    owner.lock()  # as a running trainer holds it
    try:
        before = _tree_digest(run)
        assert main(["--run-dir", str(run), *tiny_overrides(data, train__epochs="1", optim__lr_milestones_epochs="[]")]) == 2
        err = capsys.readouterr().err
        assert f"in use by another lowmode-train (PID {os.getpid()})" in err
        assert _tree_digest(run) == before and not (run / "metrics.jsonl").exists()
    finally:
        owner.unlock()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".step-000000009.pt.x1.tmp").write_bytes(b"half")  # a kill between write and rename
    assert main(["--run-dir", str(run), *tiny_overrides(data, train__epochs="1",
                                                       optim__lr_milestones_epochs="[]")]) == 0
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_non_finite_loss_stops_without_overwriting_checkpoints(data, tmp_path, capsys):
    run = tmp_path / "nan"
    # A huge learning rate makes the weights overflow within a few steps.
    code = main(["--run-dir", str(run), *tiny_overrides(data, optim__lr="1e30", checkpoint__every_steps="1",
                                                        optim__weight_decay="0.0")])
    assert code == 3
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "global step" in err and "mode " in err
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    bad_step = len(steps) + 1  # the step that produced the NaN was not logged
    saved = CheckpointManager(run / "checkpoints").existing()
    assert saved, "the steps before the NaN were checkpointed"
    for path in saved:
        payload = load_checkpoint(path)
        assert payload["progress"]["global_step"] < bad_step
        assert all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_non_finite_loss_in_a_window_names_its_step(data, tmp_path, capsys):
    """sync_every_steps = 6: the NaN is found at the sync point, named by its own step; the records
    before it are written, nothing is checkpointed after the last good sync point."""
    run = tmp_path / "nan6"
    code = main(["--run-dir", str(run), *tiny_overrides(data, optim__lr="1e30", optim__weight_decay="0.0",
                                                        train__sync_every_steps="6")])
    assert code == 3
    err = capsys.readouterr().err
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    bad = len(steps) + 1
    assert f"at global step {bad} " in err
    assert all(s["kind"] == "step" and s["step"] <= bad - 1 for s in steps)
    saved = CheckpointManager(run / "checkpoints").existing()
    assert all(load_checkpoint(p)["progress"]["global_step"] < bad for p in saved)
    if saved:
        assert f"the last good checkpoint is {saved[-1]}" in err
    else:
        assert "no checkpoint was written before it" in err
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_config_errors_exit_2(data, tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "r2"), *tiny_overrides(data, schedule__p="2.0")]) == 2
    assert "schedule" in capsys.readouterr().err
    assert main(["--run-dir", str(tmp_path / "r3"), *tiny_overrides(data, model__depth="3")]) == 2
    assert "model.depth: unknown key" in capsys.readouterr().err


def test_batch_larger_than_dataset_is_an_error(data, tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "r"), *tiny_overrides(data, train__global_batch_size="1000")]) == 2
    assert "train.global_batch_size" in capsys.readouterr().err


def test_baseline_without_dual_mode(data, tmp_path):
    run = tmp_path / "baseline"
    args = tiny_overrides(data, train__epochs="1", optim__lr_milestones_epochs="[]", schedule__policy='"none"',
                          model__dual_mode="false")
    assert main(["--run-dir", str(run), *args]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["low_step_fraction"] == 0 and summary["median_step_s_low"] is None
    assert summary["job_type"] == "baseline"
    assert tomllib.loads((run / "config.toml").read_text())["schedule"]["policy"] == "none"


def test_dali_loader_run_on_cpu(data, tmp_path):
    need("dali")
    run = tmp_path / "dali"
    args = tiny_overrides(data, train__epochs="1", optim__lr_milestones_epochs="[]", data__loader='"dali"',
                          data__num_workers="1")
    assert main(["--run-dir", str(run), *args]) == 0
    steps = _records(run, "step")
    assert len(steps) == 12 and {s["mode"] for s in steps} == {"full", "low"}
    assert 0.0 <= json.loads((run / "summary.json").read_text())["final_val_acc"] <= 1.0


@pytest.mark.gpu
def test_gpu_run_with_bf16_and_channels_last(data, tmp_path):
    run = tmp_path / "gpu"
    args = tiny_overrides(data, train__epochs="1", optim__lr_milestones_epochs="[]", train__device='"cuda"',
                          train__precision='"bf16"', model__channels_last="true", train__deterministic="false")
    assert main(["--run-dir", str(run), *args]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["median_step_s_low"] > 0


def test_bf16_on_cpu_is_a_config_error(data, tmp_path, capsys):
    args = tiny_overrides(data, train__epochs="1", optim__lr_milestones_epochs="[]", train__precision='"bf16"')
    assert main(["--run-dir", str(tmp_path / "r"), *args]) == 2
    assert "train.precision" in capsys.readouterr().err


def test_ramp_keep_private_run_resumes_exactly(data, tmp_path):
    """The issue-10 variants together: ramp policy, keep kernels, private BN, low steps of 2x the batch
    with 3x the LR; a run stopped after epoch 1 and resumed equals an uninterrupted one."""
    from pipeline.order import train_layout

    args = tiny_overrides(data, schedule__policy='"ramp"', schedule__p="1.0", schedule__ramp_end="1.0",
                          schedule__low_batch_scale="2", optim__low_lr_scale="3.0", model__low_kernels='"keep"',
                          model__bn_policy='"private"')
    full_run = tmp_path / "full"
    assert main(["--run-dir", str(full_run), *args]) == 0
    steps = _records(full_run, "step")
    schedule = ModeSchedule(ScheduleConfig(policy="ramp", p=1.0, ramp_end=1.0, full_epochs_after_milestone=0,
                                           low_batch_scale=2), seed=0, lr_milestones_epochs=(2,), total_epochs=3)
    assert [schedule.p_for_epoch(e) for e in range(3)] == pytest.approx([1.0, 2 / 3, 1 / 3])
    per_epoch = [train_layout(192, 16, 1, lambda s, e=e: schedule.mode(e, s) == "low", low_batch_scale=2).num_steps
                 for e in range(3)]
    assert [sum(s["epoch"] == e for s in steps) for e in range(3)] == per_epoch
    assert per_epoch[0] == 6  # p = 1 in epoch 0: every step low, 2 x 16 images each
    assert sorted({s["lr"] for s in steps if s["epoch"] == 0}) == pytest.approx([0.3])
    conversion = json.loads((full_run / "env.json").read_text())["dual_mode_conversion"]
    assert conversion["low_kernels"] == "keep" and conversion["converted"] == [] and conversion["bn_policy"] == "private"
    state = load_checkpoint(CheckpointManager(full_run / "checkpoints").existing()[-1])
    assert "bn1.weight_low" in state["model"]

    stopped = tmp_path / "stopped"
    assert main(["--run-dir", str(stopped), *args, "--set", "checkpoint.keep=10"]) == 0
    for path in CheckpointManager(stopped / "checkpoints").existing()[1:]:
        path.unlink()  # keep only the end of epoch 0
    assert main(["--run-dir", str(stopped), *args]) == 0
    drop = TIMING_KEYS
    strip = lambda run: [{k: v for k, v in json.loads(x).items() if k not in drop}  # noqa: E731
                         for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert strip(stopped) == strip(full_run)
