"""The resolution ladder in the schedule: ``policy = "progressive"``, ``low_size``, ``constant_pixels``.

A ladder is the dataset's resolutions (``Ladder``): full 128 and low rungs 64, 80, 96, 112 here. The
two-level policies are the ladder of one rung; their resolutions and modes must not change.
"""

from __future__ import annotations

import pytest

from pipeline.schedule import FULL, LOW, Ladder, ModeSchedule, ScheduleConfig

LADDER = Ladder(full_height=128, rungs=((LOW, 64), ("low80", 80), ("low96", 96), ("low112", 112)))


def _progressive(epochs: int = 10, **kw) -> ModeSchedule:
    return ModeSchedule(ScheduleConfig(policy="progressive", **kw), 0, total_epochs=epochs, ladder=LADDER)


def _per_epoch(schedule: ModeSchedule, epochs: int) -> list[str]:
    return [schedule.resolution(e, 0) for e in range(epochs)]


def test_linear_ramp_climbs_rung_by_rung_then_full():
    # t = e/10, ramp over [0, 0.6): target 64 + 64 t / 0.6 -> 64, 74.7, 85.3, 96, 106.7, 117.3; then full
    s = _progressive(ramp_end=0.6)
    assert _per_epoch(s, 10) == [LOW, LOW, "low80", "low96", "low96", "low112"] + [FULL] * 4
    # every step of an epoch has its epoch's resolution; modes follow from it
    assert {s.resolution(3, k) for k in range(50)} == {"low96"}
    assert [s.mode(e, 7) for e in range(10)] == [LOW] * 6 + [FULL] * 4
    assert s.rungs == (LOW, "low80", "low96", "low112")


def test_shapes_and_delay():
    cosine = _progressive(ramp_end=0.6, ramp_shape="cosine")
    # (1 - cos(pi u)) / 2 at u = 0, 1/6, ..., 5/6: 64 + 64 x (0, .067, .25, .5, .75, .933) -> 64, 68, 80, 96, 112, 123.7
    assert _per_epoch(cosine, 10) == [LOW, LOW, "low80", "low96", "low112", "low112"] + [FULL] * 4
    delayed = _progressive(ramp_start=0.3, ramp_end=0.7)
    # hold 64 until 0.3, then u = (t - 0.3) / 0.4: t = .3 .4 .5 .6 -> 64, 80, 96, 112
    assert _per_epoch(delayed, 10) == [LOW] * 4 + ["low80", "low96", "low112"] + [FULL] * 3


def test_step_shape_is_the_two_level_low_first_schedule():
    """progressive with the step shape reads the start rung until ramp_end, then full: exactly the
    two-level ramp policy with p = 1 and the step shape (the paper's low mode is the one-rung ladder)."""
    ladder = _progressive(epochs=16, ramp_end=0.4, ramp_shape="step")
    two_level = ModeSchedule(ScheduleConfig(policy="ramp", p=1.0, ramp_end=0.4, ramp_shape="step"), 0,
                             total_epochs=16, ladder=LADDER)
    assert [ladder.resolution(e, k) for e in range(16) for k in range(5)] == \
        [two_level.resolution(e, k) for e in range(16) for k in range(5)]
    assert _per_epoch(ladder, 16) == [LOW] * 7 + [FULL] * 9


def test_low_size_picks_the_rung_and_starts_the_ramp():
    two_level = ModeSchedule(ScheduleConfig(policy="bernoulli", p=0.5, low_size=96), 3, ladder=LADDER)
    default = ModeSchedule(ScheduleConfig(policy="bernoulli", p=0.5), 3, ladder=LADDER)
    draws = [(e, k) for e in range(3) for k in range(40)]
    # the same draws, the low ones at 96 px instead of the dataset's "low"
    assert [two_level.mode(*d) for d in draws] == [default.mode(*d) for d in draws]
    assert {two_level.resolution(*d) for d in draws} == {FULL, "low96"}
    assert {default.resolution(*d) for d in draws} == {FULL, LOW}
    started = _progressive(low_size=96, ramp_end=0.6)
    assert started.rungs == ("low96", "low112")
    assert _per_epoch(started, 10) == ["low96"] * 3 + ["low112"] * 3 + [FULL] * 4


def test_two_level_schedule_without_a_ladder_is_unchanged():
    config = ScheduleConfig(policy="bernoulli", p=0.5)
    bare, bound = ModeSchedule(config, 1), ModeSchedule(config, 1).with_ladder(LADDER)
    assert bare.ladder == Ladder.two_level() and bare.low == LOW
    assert [bare.resolution(0, k) for k in range(64)] == [bound.resolution(0, k) for k in range(64)]
    assert [bare.mode(0, k) for k in range(64)] == [bare.resolution(0, k) for k in range(64)]


def test_constant_pixels_scales_the_batch_with_the_pixels():
    s = _progressive(ramp_end=0.6, constant_pixels=True)
    assert s.variable_batches
    # B x (128 / H)^2: 16 x 4 = 64, 16 x 2.56 = 40.96 -> 41, 16 x 1.78 = 28.4 -> 28, 16 x 1.306 = 20.9 -> 21
    assert [s.step_batch(r, 16) for r in (FULL, LOW, "low80", "low96", "low112")] == [16, 64, 41, 28, 21]
    assert s.batch_scale("low80") == pytest.approx(2.56)
    plain = _progressive(ramp_end=0.6)
    assert not plain.variable_batches and plain.step_batch("low80", 16) == 16
    k2 = ModeSchedule(ScheduleConfig(policy="bernoulli", low_batch_scale=2), 0)
    assert k2.variable_batches and k2.step_batch(LOW, 16) == 32 and k2.batch_scale(FULL) == 1.0


@pytest.mark.parametrize("kw, message", [
    ({"ramp_start": 0.6, "ramp_end": 0.6}, "schedule.ramp_start: expected a number in [0, ramp_end = 0.6)"),
    ({"ramp_start": -0.1}, "schedule.ramp_start"),
    ({"low_size": -1}, "schedule.low_size: expected an integer >= 0"),
    ({"constant_pixels": 1}, "schedule.constant_pixels: expected true or false"),
    ({"constant_pixels": True, "low_batch_scale": 2}, "schedule.constant_pixels: expected false when low_batch_scale > 1"),
])
def test_bad_settings_name_the_key(kw, message):
    with pytest.raises(ValueError) as info:
        ScheduleConfig(policy="progressive", **kw)
    assert str(info.value).startswith(message)


def test_what_a_progressive_schedule_needs():
    with pytest.raises(ValueError, match="'progressive' needs the run's number of epochs"):
        ModeSchedule(ScheduleConfig(policy="progressive"), 0, ladder=LADDER)
    unbound = ModeSchedule(ScheduleConfig(policy="progressive"), 0, total_epochs=4)
    assert not unbound.bound and unbound.with_ladder(LADDER).bound
    with pytest.raises(ValueError, match="need the dataset's resolutions: give the schedule to make_loader"):
        unbound.resolution(0, 0)
    with pytest.raises(ValueError, match=r"schedule.low_size: 100 is not one of the dataset's low sizes \(64, 80, 96, 112"):
        ModeSchedule(ScheduleConfig(policy="bernoulli", low_size=100), 0, ladder=LADDER)


def test_expected_low_fraction_of_a_ladder():
    s = _progressive(ramp_end=0.6)
    assert s.expected_low_fraction(10, 100) == pytest.approx(0.6)
    assert [s.p_for_epoch(e) for e in range(10)] == [1.0] * 6 + [0.0] * 4
