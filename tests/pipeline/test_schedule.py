"""The mode schedule: pure, policy rules, per-epoch probabilities, fractions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.schedule import ModeSchedule, ScheduleConfig
from tests.pipeline.conftest import REPO


def test_modes_identical_across_processes():
    cfg = ScheduleConfig(p=0.5, full_epochs_after_milestone=1)
    here = {e: ModeSchedule(cfg, seed=7, lr_milestones_epochs=(3,)).modes(e, 200) for e in range(5)}
    code = (
        "import json; from pipeline.schedule import ModeSchedule, ScheduleConfig;"
        "s = ModeSchedule(ScheduleConfig(p=0.5, full_epochs_after_milestone=1), seed=7, lr_milestones_epochs=(3,));"
        "print(json.dumps({e: s.modes(e, 200) for e in range(5)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    there = {int(k): v for k, v in json.loads(out).items()}
    assert there == here
    assert here[3] == ["full"] * 200 and "low" in here[0]


def test_mode_is_pure_and_resume_agrees():
    """Asking for steps out of order, or from a fresh object (a resumed run), gives the same modes."""
    a = ModeSchedule(ScheduleConfig(p=0.3), seed=11)
    forward = a.modes(2, 100)
    backward = [ModeSchedule(ScheduleConfig(p=0.3), seed=11).mode(2, s) for s in reversed(range(100))][::-1]
    assert forward == backward
    assert ModeSchedule(ScheduleConfig(p=0.3), seed=12).modes(2, 100) != forward  # the seed matters
    assert a.modes(3, 100) != forward  # and the epoch


def test_p0_all_full_and_p1_all_low():
    assert set(ModeSchedule(ScheduleConfig(p=0.0), 0).modes(0, 500)) == {"full"}
    assert set(ModeSchedule(ScheduleConfig(p=1.0), 0).modes(0, 500)) == {"low"}
    assert set(ModeSchedule(ScheduleConfig(policy="none", p=1.0), 0).modes(0, 500)) == {"full"}


def test_epochs_after_milestone_and_warmup_are_full():
    cfg = ScheduleConfig(p=1.0, full_epochs_after_milestone=2, warmup_full_epochs=1)
    s = ModeSchedule(cfg, seed=0, lr_milestones_epochs=(5, 9))
    probs = [s.p_for_epoch(e) for e in range(12)]
    assert probs == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    for e in (0, 5, 6, 9, 10):
        assert set(s.modes(e, 50)) == {"full"}
    assert s.expected_low_fraction(12, 50) == pytest.approx(7 / 12)


def test_low_fraction_within_tolerance():
    s = ModeSchedule(ScheduleConfig(p=0.3), seed=3)
    n = 20_000
    low = sum(m == "low" for e in range(4) for m in s.modes(e, n // 4))
    # binomial sd = sqrt(n p (1-p)) ~ 65; 5 sd tolerance
    assert abs(low - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5


def test_alternate_every_kth_step():
    s = ModeSchedule(ScheduleConfig(policy="alternate", alternate_every=3, full_epochs_after_milestone=1), seed=0,
                     lr_milestones_epochs=(1,))
    assert s.modes(0, 7) == ["full", "full", "low", "full", "full", "low", "full"]
    assert set(s.modes(1, 7)) == {"full"}
    assert s.expected_low_fraction(2, 9) == pytest.approx(3 / 18)


def test_explicit_epoch_probabilities_override():
    s = ModeSchedule(ScheduleConfig(p=0.5, epoch_probabilities=[0.0, 1.0, 0.25]), seed=0, lr_milestones_epochs=(0,))
    assert [s.p_for_epoch(e) for e in range(5)] == [0.0, 1.0, 0.25, 0.25, 0.25]
    assert set(s.modes(1, 20)) == {"low"}


def test_lists_become_tuples():
    cfg = ScheduleConfig(epoch_probabilities=[0.5, 0.25])  # as TOML gives them
    assert cfg.epoch_probabilities == (0.5, 0.25)
    hash(cfg)
    schedule = ModeSchedule(cfg, seed=0, lr_milestones_epochs=[80, 120])
    assert schedule.lr_milestones_epochs == (80, 120)


def test_epoch_probabilities_default_empty_means_unused():
    assert ScheduleConfig().epoch_probabilities == () == ScheduleConfig(epoch_probabilities=None).epoch_probabilities
    assert ModeSchedule(ScheduleConfig(p=0.3), seed=0).p_for_epoch(5) == 0.3
    assert ScheduleConfig(policy="alternate", epoch_probabilities=[]).epoch_probabilities == ()


def test_config_fields_are_the_schedule_section():
    """The trainer uses ScheduleConfig as its [schedule] section: exactly these fields."""
    from dataclasses import fields

    assert [f.name for f in fields(ScheduleConfig)] == [
        "policy", "p", "alternate_every", "full_epochs_after_milestone", "warmup_full_epochs", "epoch_probabilities"]


def test_full_only_epoch_comes_from_the_milestones():
    s = ModeSchedule(ScheduleConfig(full_epochs_after_milestone=2, warmup_full_epochs=1), 0, lr_milestones_epochs=(4,))
    assert [s.full_only_epoch(e) for e in range(7)] == [True, False, False, False, True, True, False]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"policy": "random"}, "policy"),
        ({"p": 1.5}, "p"),
        ({"p": "0.5"}, "p"),
        ({"alternate_every": 0}, "alternate_every"),
        ({"full_epochs_after_milestone": -2}, "full_epochs_after_milestone"),
        ({"warmup_full_epochs": -1}, "warmup_full_epochs"),
        ({"epoch_probabilities": (0.5, 2.0)}, "epoch_probabilities"),
        ({"epoch_probabilities": 0.5}, "epoch_probabilities"),
        ({"policy": "alternate", "epoch_probabilities": (0.5,)}, "epoch_probabilities"),
    ],
)
def test_bad_config_names_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^schedule\.{field}: expected "):
        ScheduleConfig(**kwargs)


def test_bad_config_message_format():
    with pytest.raises(ValueError) as info:
        ScheduleConfig(p=1.5)
    assert str(info.value) == "schedule.p: expected a number in [0, 1], got 1.5"


@pytest.mark.parametrize("milestones", [(-1,), (1.5,), 3])
def test_bad_milestones_are_refused_by_the_schedule(milestones):
    with pytest.raises(ValueError, match="lr_milestones_epochs: expected a list of integers >= 0"):
        ModeSchedule(ScheduleConfig(), seed=0, lr_milestones_epochs=milestones)
