"""schedule.low_batch_scale (Mix&Match "B+"): a low step takes k x the per-rank batch, so an epoch's step count
varies; the layout is a pure function of (seed, epoch, world size, batch, k, schedule), equal on every rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import augment, make_loader, order
from pipeline.index import open_split
from pipeline.plan import Planner
from pipeline.schedule import ModeSchedule, ScheduleConfig
from tests.integrations import need
from tests.pipeline.test_loaders import _assert_batches_equal

N = 256  # train samples of the data_dir fixture
SEED = 3


def _schedule(p=0.5, k=2, **kw):
    return ModeSchedule(ScheduleConfig(p=p, low_batch_scale=k, **kw), seed=SEED)


def _planner(index, *, batch=16, rank=0, world=1, schedule=None, **kw):
    return Planner(index, batch_size_per_rank=batch, seed=SEED, rank=rank, world_size=world,
                   schedule=_schedule() if schedule is None else schedule, **kw)


@pytest.fixture(scope="module")
def index(data_dir):
    return open_split(data_dir, "train")


def _plans_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.step, x.mode) == (y.step, y.mode)
        assert np.array_equal(x.positions, y.positions)
        assert (x.aug.pad, x.aug.offsets.tolist(), x.aug.flips.tolist()) == (
            y.aug.pad, y.aug.offsets.tolist(), y.aug.flips.tolist())


def test_layout_is_pure_and_resume_repeats_it(index):
    a, b = _planner(index), _planner(index)
    for epoch in (0, 3):
        whole = list(a.plans(epoch))
        sizes = [len(p.positions) for p in whole]
        assert set(sizes) == {16, 32} and len(whole) == a.steps_in_epoch(epoch)
        assert [p.mode for p in whole] == ["low" if s == 32 else "full" for s in sizes]
        _plans_equal(whole, list(b.plans(epoch)))
        for start in (1, len(whole) // 2, len(whole) - 1, len(whole)):
            _plans_equal(whole[start:], list(_planner(index).plans(epoch, start_step=start)))
    # the same for a fresh planner asked in another order (epoch 3 first): nothing depends on call history
    c = _planner(index)
    _plans_equal(list(c.plans(3)), list(a.plans(3)))
    assert a.layout(0).low != a.layout(3).low  # and each epoch draws its own


def test_layout_follows_the_schedules_modes(index):
    planner = _planner(index)
    schedule = _schedule()
    for epoch in range(4):
        layout = planner.layout(epoch)
        assert list(layout.low) == [m == "low" for m in schedule.modes(epoch, layout.num_steps)]
        assert layout.sizes.tolist() == [32 if low else 16 for low in layout.low]
        # the epoch stops at the first drawn step that does not fit
        nxt = 32 if schedule.mode(epoch, layout.num_steps) == "low" else 16
        assert layout.consumed <= N < layout.consumed + nxt
        assert planner.rank_samples_in_epoch(epoch) == layout.consumed


def test_two_ranks_agree_and_split_the_consumed_prefix(index):
    ranks = [_planner(index, batch=8, rank=r, world=2) for r in range(2)]
    for epoch in range(3):
        plans = [list(p.plans(epoch)) for p in ranks]
        assert ranks[0].steps_in_epoch(epoch) == ranks[1].steps_in_epoch(epoch) == len(plans[0]) == len(plans[1])
        assert [p.mode for p in plans[0]] == [p.mode for p in plans[1]]
        assert [len(p.positions) for p in plans[0]] == [len(p.positions) for p in plans[1]]
        consumed = ranks[0].layout(epoch).consumed
        assert N - 2 * 16 < consumed <= N  # less than one low global batch left over
        seen = np.concatenate([p.positions for rank_plans in plans for p in rank_plans])
        assert len(seen) == len(set(seen.tolist())) == consumed
        assert set(seen.tolist()) == set(order.epoch_permutation(SEED, epoch, N)[:consumed].tolist())
        # rank r reads the r-th slice of each global step, in order
        perm = order.epoch_permutation(SEED, epoch, N)
        interleaved = np.concatenate([np.concatenate([plans[0][s].positions, plans[1][s].positions])
                                      for s in range(len(plans[0]))])
        assert np.array_equal(interleaved, perm[:consumed])


@pytest.mark.parametrize("world", [1, 2])
def test_scale_1_equals_the_fixed_layout(index, world):
    for rank in range(world):
        planner = _planner(index, rank=rank, world=world, schedule=_schedule(k=1))
        fixed = order.train_positions(SEED, 2, N, 16, rank, world)
        plans = list(planner.plans(2))
        assert planner.steps_per_epoch == planner.steps_in_epoch(2) == len(plans) == N // (16 * world)
        assert planner.rank_samples == planner.rank_samples_in_epoch(2) == len(plans) * 16
        for step, plan in enumerate(plans):
            assert np.array_equal(plan.positions, fixed[step])
            assert plan.mode == _schedule(k=1).mode(2, step)
            pad = augment.pad_for(4, 2, plan.mode)
            expected = augment.batch_params(SEED, 2, step, rank, plan.mode, 16, pad)
            assert np.array_equal(plan.aug.offsets, expected.offsets) and np.array_equal(plan.aug.flips, expected.flips)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("world", [1, 2])
def test_p0_and_p1_step_counts(index, k, world):
    full = _planner(index, world=world, schedule=_schedule(p=0.0, k=k))
    low = _planner(index, world=world, schedule=_schedule(p=1.0, k=k))
    for epoch in (0, 1):
        assert full.steps_in_epoch(epoch) == N // (16 * world)
        assert {len(p.positions) for p in full.plans(epoch)} == {16}
        assert low.steps_in_epoch(epoch) == N // (k * 16 * world)
        assert {(p.mode, len(p.positions)) for p in low.plans(epoch)} == {("low", k * 16)}


def test_ramp_changes_the_step_count_per_epoch(index):
    cfg = ScheduleConfig(policy="ramp", p=1.0, ramp_end=0.5, ramp_shape="step", low_batch_scale=2)
    planner = _planner(index, batch=32, schedule=ModeSchedule(cfg, seed=SEED, total_epochs=4))
    assert [planner.steps_in_epoch(e) for e in range(4)] == [4, 4, 8, 8]
    assert [planner.rank_samples_in_epoch(e) for e in range(4)] == [256] * 4


def test_steps_per_epoch_refused_when_it_varies(index, data_dir):
    planner = _planner(index)
    with pytest.raises(ValueError, match=r"low_batch_scale = 2 .*use steps_in_epoch\(epoch\)"):
        planner.steps_per_epoch
    with pytest.raises(ValueError, match=r"use rank_samples_in_epoch\(epoch\)"):
        planner.rank_samples
    with pytest.raises(ValueError, match=r"start_step must be in \[0, \d+\] for epoch 0"):
        planner.plans(0, start_step=planner.steps_in_epoch(0) + 1)
    # validation is unaffected by the schedule's k
    val = make_loader(data_dir, "val", batch_size_per_rank=6, seed=SEED, schedule=_schedule(), num_workers=0)
    assert val.steps_per_epoch == val.steps_in_epoch(5) == 7 and val.rank_samples == 40
    with pytest.raises(ValueError, match="not a training split"):
        val.planner.layout(0)


def test_too_few_samples_for_one_low_global_batch(index):
    msg = r"train: 256 samples give no full global batch of low steps of 64 x 2 \(schedule.low_batch_scale\) x 3"
    with pytest.raises(ValueError, match=msg):
        _planner(index, batch=64, world=3)
    assert _planner(index, batch=64, world=3, schedule=_schedule(k=1)).steps_per_epoch == 1
    assert _planner(index, batch=64, world=2).steps_in_epoch(0) >= 1  # 256 = 64 x 2 x 2: one low step fits


def test_layout_is_cached(index, monkeypatch):
    planner = _planner(index)
    calls = []
    draw = planner.resolution
    monkeypatch.setattr(planner, "resolution", lambda e, s: calls.append((e, s)) or draw(e, s))
    steps = planner.steps_in_epoch(1)
    assert len(calls) == steps + 1  # one draw per step, plus the one that did not fit
    for _ in range(5):
        assert planner.steps_in_epoch(1) == steps
        list(planner.plans(1, start_step=2))
    assert len(calls) == steps + 1


@pytest.mark.parametrize("augment_on", [False, True])
def test_dali_and_torch_give_identical_pixels_with_k2(data_dir, augment_on):
    need("dali")
    kw = dict(batch_size_per_rank=16, seed=SEED, schedule=_schedule(), augment=augment_on, num_workers=2)
    torch_loader = make_loader(data_dir, "train", kind="torch", **kw)
    dali_loader = make_loader(data_dir, "train", kind="dali", **kw)
    torch_batches = list(torch_loader.epoch(2))
    assert len(torch_batches) == torch_loader.steps_in_epoch(2) == dali_loader.steps_in_epoch(2)
    assert {(b.mode, tuple(b.images.shape)) for b in torch_batches} == {
        ("full", (16, 3, 32, 32)), ("low", (32, 3, 16, 16))}
    assert all(len(b.keys) == len(b.labels) == b.images.shape[0] for b in torch_batches)
    _assert_batches_equal(torch_batches, list(dali_loader.epoch(2)))
    # a resume mid-epoch gives the remaining batches, on both loaders
    _assert_batches_equal(torch_batches[3:], list(dali_loader.epoch(2, start_step=3)))


def test_torch_loader_resume_and_counts_with_k2(data_dir):
    loader = make_loader(data_dir, "train", batch_size_per_rank=16, seed=SEED, kind="torch", schedule=_schedule(),
                         num_workers=0)
    whole = list(loader.epoch(1))
    assert len(whole) == loader.steps_in_epoch(1)
    assert sum(b.images.shape[0] for b in whole) == loader.rank_samples_in_epoch(1)
    assert len({k for b in whole for k in b.keys}) == loader.rank_samples_in_epoch(1)  # no sample twice
    _assert_batches_equal(whole[4:], list(loader.epoch(1, start_step=4)))
    assert torch.equal(whole[0].labels, next(iter(loader.epoch(1))).labels)
