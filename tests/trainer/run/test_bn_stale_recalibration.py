"""Evaluation after an all-low epoch: the running BN statistics are re-estimated at full resolution first
(model.bn_stale_batches), so a low-first run reports the accuracy of the model a user would keep, and the
re-estimation's time is training wall-clock (issue: validation after an all-low epoch reported chance)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from torch import nn

from tests.trainer.train_helpers import make_dataset, run_train, tiny_overrides
from trainer.method.bn_policy import full_steps_to_refresh

# Epoch 0 all low (step ramp: p = 1 until half of training), epoch 1 all full.
LOW_FIRST = dict(schedule__policy='"ramp"', schedule__ramp_shape='"step"', schedule__p="1.0",
                 schedule__ramp_end="0.5", model__low_kernels='"keep"', train__epochs="2",
                 optim__lr_milestones_epochs="[1]")
BASELINE = dict(schedule__policy='"none"', model__dual_mode="false", train__epochs="2",
                optim__lr_milestones_epochs="[1]")


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[dict]]:
    root = tmp_path_factory.mktemp("stale_bn")
    data = make_dataset(root / "data")
    out = {}
    for name, extra in (("baseline", BASELINE), ("lowfirst", LOW_FIRST),
                        ("lowfirst_never", dict(LOW_FIRST, model__bn_stale_batches="0"))):
        result = run_train(root / name, tiny_overrides(data, **extra))
        assert result.returncode == 0, result.stderr[-2000:]
        out[name] = _records(root / name)
    return out


def _epoch(records: list[dict], epoch: int) -> dict:
    return next(r for r in records if r["kind"] == "epoch" and r["epoch"] == epoch)


def test_validation_after_an_all_low_epoch_is_the_kept_models(runs):
    base, low, never = (_epoch(runs[name], 0) for name in ("baseline", "lowfirst", "lowfirst_never"))
    assert low["low_step_fraction"] == 1.0 and base["low_step_fraction"] == 0.0
    # Without re-estimation full-resolution evaluation runs on the initial statistics (mean 0, var 1):
    # the symptom, a loss in the tens and an accuracy far below the baseline's.
    assert "bn_recalibrated_batches" not in never
    assert never["val_loss"] > 5.0 and never["val_acc"] < base["val_acc"] - 0.3
    # With it, within 10 points of the baseline's first epoch on the same data (4 classes: chance 0.25).
    assert low["bn_recalibrated_batches"] == 4
    assert low["val_acc"] >= base["val_acc"] - 0.10 and low["val_acc"] > 0.75
    assert low["val_loss"] < 1.0


def test_full_epochs_and_baselines_do_not_recalibrate(runs):
    assert _epoch(runs["lowfirst"], 1)["low_step_fraction"] == 0.0
    assert "bn_recalibrated_batches" not in _epoch(runs["lowfirst"], 1)  # 12 of 12 steps full refreshed them
    for epoch in (0, 1):
        assert "bn_recalibrated_batches" not in _epoch(runs["baseline"], epoch)


def test_recalibration_time_is_training_wall_clock(runs):
    records = runs["lowfirst"]
    steps = [r for r in records if r["kind"] == "step" and r["epoch"] == 0]
    epoch0 = _epoch(records, 0)
    assert epoch0["bn_recalibrate_s"] > 0
    assert epoch0["train_wall_s"] == pytest.approx(sum(r["step_s"] for r in steps) + epoch0["bn_recalibrate_s"],
                                                   rel=1e-9, abs=1e-9)
    # The next epoch's steps continue from that total (it is part of the run's clock, not a side note).
    first_step_1 = next(r for r in records if r["kind"] == "step" and r["epoch"] == 1)
    assert first_step_1["train_wall_s"] == pytest.approx(epoch0["train_wall_s"] + first_step_1["step_s"], rel=1e-9)


def test_full_steps_to_refresh_follows_bn_momentum():
    assert full_steps_to_refresh(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))) == 29  # 0.9**29 < 0.05 < 0.9**28
    assert 0.9 ** 29 < 0.05 < 0.9 ** 28
    assert full_steps_to_refresh(nn.Sequential(nn.BatchNorm2d(1, momentum=0.5), nn.BatchNorm2d(1))) == 29  # slowest
    assert full_steps_to_refresh(nn.BatchNorm2d(1, momentum=0.5)) == 5
    assert full_steps_to_refresh(nn.BatchNorm2d(1, momentum=None)) == math.inf
    assert full_steps_to_refresh(nn.BatchNorm2d(1, track_running_stats=False)) == 0
    assert full_steps_to_refresh(nn.Linear(2, 2)) == 0
