"""Exact resume (single process): SIGKILL at an arbitrary step, resume, identical weights and metrics;
SIGUSR1 / SIGTERM: checkpoint after the current step and exit 75 for requeueing."""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.trainer.train_helpers import (assert_same_weights, comparable_metrics, final_weights,
                                         run_train, start_and_signal, step_lines, tiny_overrides)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run (a worker process in the loader, as in real runs)."""
    run = tmp_path_factory.mktemp("runs") / "reference"
    done = run_train(run, tiny_overrides(data, checkpoint__every_steps="5", data__num_workers="1"))
    assert done.returncode == 0, done.stderr
    return run


def test_sigkill_then_resume_is_exact(data, reference, tmp_path):
    run = tmp_path / "killed"
    overrides = tiny_overrides(data, checkpoint__every_steps="5", data__num_workers="1")
    # Checkpoints at global steps 5, 10, 12 (epoch end), 15, 20, 24, ...: a kill after step 17
    # resumes from a mid-epoch checkpoint, with metrics lines to truncate and epoch sums to restore.
    code, _ = start_and_signal(run, overrides, after_steps=17, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL
    killed_at = step_lines(run)
    assert 17 <= killed_at < 36, "the kill must land mid-training"
    assert not (run / "summary.json").exists()
    resumed = run_train(run, overrides)
    assert resumed.returncode == 0, resumed.stderr
    resumed_at = re.search(r"resuming from \S+ \(epoch (\d+), step (\d+)\)", resumed.stderr)
    assert resumed_at and int(resumed_at.group(2)) > 0, resumed.stderr
    assert comparable_metrics(run) == comparable_metrics(reference)
    assert_same_weights(final_weights(run), final_weights(reference))
    ref_summary = json.loads((reference / "summary.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    for key in ("final_val_acc", "best_val_acc", "low_step_fraction", "epochs", "final_val_loss"):
        assert summary[key] == ref_summary[key], key


@pytest.mark.parametrize("sig", [signal.SIGUSR1], ids=["SIGUSR1"])
def test_stop_signal_checkpoints_and_exits_75(data, reference, tmp_path, sig):
    run = tmp_path / "stopped"
    overrides = tiny_overrides(data, checkpoint__every_steps="5", data__num_workers="1")
    code, err = start_and_signal(run, overrides, after_steps=7, sig=sig)
    assert code == 75, err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped" and status["exit_code"] == 75 and status["signal"] == sig.name
    # the checkpoint is at exactly the last logged step: nothing is redone or lost
    from trainer.run.checkpoint import CheckpointManager, load_checkpoint

    newest = load_checkpoint(CheckpointManager(run / "checkpoints").existing()[-1])
    assert newest["progress"]["global_step"] == step_lines(run)
    resumed = run_train(run, overrides)
    assert resumed.returncode == 0, resumed.stderr
    assert comparable_metrics(run) == comparable_metrics(reference)
    assert_same_weights(final_weights(run), final_weights(reference))


def test_stop_at_the_next_sync_point_with_a_window_of_4(data, reference, tmp_path):
    """sync_every_steps = 4, no step checkpoints: a signal stops at the next sync point (a multiple of 4
    or the epoch end), checkpoints exactly there, and the resumed run equals the uninterrupted one."""
    run = tmp_path / "window"
    overrides = tiny_overrides(data, train__sync_every_steps="4", data__num_workers="1")
    code, err = start_and_signal(run, overrides, after_steps=5, sig=signal.SIGUSR1)
    assert code == 75, err
    from trainer.run.checkpoint import CheckpointManager, load_checkpoint

    stopped_at = load_checkpoint(CheckpointManager(run / "checkpoints").existing()[-1])["progress"]["global_step"]
    assert stopped_at == step_lines(run) and (stopped_at % 4 == 0 or stopped_at % 12 == 0), stopped_at
    resumed = run_train(run, overrides)
    assert resumed.returncode == 0, resumed.stderr
    assert comparable_metrics(run) == comparable_metrics(reference)
    assert_same_weights(final_weights(run), final_weights(reference))
