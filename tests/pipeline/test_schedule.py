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
        "policy", "p", "alternate_every", "full_epochs_after_milestone", "warmup_full_epochs", "epoch_probabilities",
        "ramp_end", "ramp_shape", "low_batch_scale", "ramp_start", "low_size", "constant_pixels", "adapt_every_steps",
        "adapt_margin", "adapt_probe_batches", "adapt_full_from"]
    assert (ScheduleConfig().ramp_end, ScheduleConfig().ramp_shape, ScheduleConfig().low_batch_scale) == (
        0.6, "linear", 1)


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
        ({"policy": "ramp", "epoch_probabilities": (0.5,)}, "epoch_probabilities"),
        ({"ramp_end": 0}, "ramp_end"),
        ({"ramp_end": 1.5}, "ramp_end"),
        ({"ramp_end": -0.1}, "ramp_end"),
        ({"ramp_end": "0.5"}, "ramp_end"),
        ({"ramp_end": True}, "ramp_end"),
        ({"ramp_end": float("nan")}, "ramp_end"),
        ({"ramp_shape": "exp"}, "ramp_shape"),
        ({"low_batch_scale": 0}, "low_batch_scale"),
        ({"low_batch_scale": 2.0}, "low_batch_scale"),
        ({"low_batch_scale": True}, "low_batch_scale"),
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


def test_bad_new_field_messages():
    for kwargs, message in [
        ({"ramp_end": 1.5}, "schedule.ramp_end: expected a number in (0, 1], got 1.5"),
        ({"ramp_shape": "exp"}, "schedule.ramp_shape: expected one of linear, cosine, step, got 'exp'"),
        ({"low_batch_scale": True}, "schedule.low_batch_scale: expected an integer >= 1, got True"),
        ({"policy": "ramps"}, "schedule.policy: expected one of bernoulli, alternate, none, ramp, progressive, adaptive, got 'ramps'"),
    ]:
        with pytest.raises(ValueError) as info:
            ScheduleConfig(**kwargs)
        assert str(info.value) == message
    assert ScheduleConfig(ramp_end=1).ramp_end == 1 and ScheduleConfig(low_batch_scale=4).low_batch_scale == 4


# ---- policy "ramp" ---------------------------------------------------------------------------------------------

def _ramp(shape, *, p=0.8, ramp_end=0.5, total=10, milestones=(), **kw):
    cfg = ScheduleConfig(policy="ramp", p=p, ramp_end=ramp_end, ramp_shape=shape, **kw)
    return ModeSchedule(cfg, seed=5, lr_milestones_epochs=milestones, total_epochs=total)


@pytest.mark.parametrize("shape, expected", [
    ("linear", [0.8, 0.64, 0.48, 0.32, 0.16, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    # 0.8 * (1 + cos(pi * t / 0.5)) / 2 at t = 0, .1, .2, .3, .4
    ("cosine", [0.8, 0.7236068, 0.5236068, 0.2763932, 0.0763932, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("step", [0.8, 0.8, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
])
def test_ramp_p_per_epoch(shape, expected):
    s = _ramp(shape, full_epochs_after_milestone=0)
    assert [s.p_for_epoch(e) for e in range(12)] == pytest.approx(expected, abs=1e-7)
    assert s.expected_low_fraction(10, 100) == pytest.approx(sum(expected[:10]) / 10)
    for e in range(5, 12):  # p = 0: every step full
        assert set(s.modes(e, 100)) == {"full"}


def test_ramp_end_one_and_exact_boundaries():
    """ramp_end 1: p reaches 0 only after the last epoch; t = epoch / total compared exactly (6/10 >= 0.6)."""
    s = _ramp("linear", p=1.0, ramp_end=1.0, total=4, full_epochs_after_milestone=0)
    assert [s.p_for_epoch(e) for e in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    s = _ramp("step", p=0.5, ramp_end=0.6, total=10, full_epochs_after_milestone=0)
    assert [s.p_for_epoch(e) for e in range(10)] == [0.5] * 6 + [0.0] * 4


def test_ramp_keeps_warmup_and_milestone_windows_full():
    s = _ramp("step", p=1.0, ramp_end=1.0, total=10, milestones=(3, 8), full_epochs_after_milestone=2,
              warmup_full_epochs=1)
    assert [s.p_for_epoch(e) for e in range(10)] == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    for e in (0, 3, 4, 8, 9):
        assert set(s.modes(e, 50)) == {"full"}
    assert set(s.modes(1, 50)) == {"low"}


def test_ramp_draws_are_bernoullis_at_the_epochs_p():
    """Same hash and domain as bernoulli: a ramp epoch with p_e draws exactly bernoulli(p_e)'s modes."""
    ramp = _ramp("linear", p=0.8, ramp_end=0.5, total=10, full_epochs_after_milestone=0)
    for e in range(6):
        bern = ModeSchedule(ScheduleConfig(p=ramp.p_for_epoch(e)), seed=5)
        assert ramp.modes(e, 300) == bern.modes(e, 300)
    low = [ramp.modes(e, 2000).count("low") / 2000 for e in range(5)]
    assert low == pytest.approx([0.8, 0.64, 0.48, 0.32, 0.16], abs=0.05)


def test_ramp_modes_pure_across_processes_and_call_order():
    def make():
        cfg = ScheduleConfig(policy="ramp", p=0.9, ramp_end=0.7, ramp_shape="cosine")
        return ModeSchedule(cfg, seed=3, lr_milestones_epochs=(4,), total_epochs=8)

    code = (
        "import json; from pipeline.schedule import ModeSchedule, ScheduleConfig;"
        "s = ModeSchedule(ScheduleConfig(policy='ramp', p=0.9, ramp_end=0.7, ramp_shape='cosine'), seed=3,"
        " lr_milestones_epochs=(4,), total_epochs=8);"
        "print(json.dumps({e: s.modes(e, 150) for e in range(8)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    there = {int(k): v for k, v in json.loads(out).items()}
    s = make()
    backwards = {e: [s.mode(e, st) for st in reversed(range(150))][::-1] for e in reversed(range(8))}
    assert backwards == there == {e: make().modes(e, 150) for e in range(8)}
    assert "low" in there[0] and all(set(there[e]) == {"full"} for e in (4, 5, 6, 7))


@pytest.mark.parametrize("total", [None, 0, -3, 2.0, True])
def test_ramp_needs_total_epochs(total):
    with pytest.raises(ValueError, match="^total_epochs: "):
        ModeSchedule(ScheduleConfig(policy="ramp"), seed=0, total_epochs=total)


def test_total_epochs_stored_and_optional_for_other_policies():
    assert ModeSchedule(ScheduleConfig(), seed=0).total_epochs is None
    assert ModeSchedule(ScheduleConfig(), seed=0, total_epochs=30).total_epochs == 30
    assert ModeSchedule(ScheduleConfig(), seed=0, total_epochs=30).p_for_epoch(29) == 0.5  # bernoulli ignores it
    with pytest.raises(ValueError, match="^total_epochs: "):
        ModeSchedule(ScheduleConfig(), seed=0, total_epochs=0)
