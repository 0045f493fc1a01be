"""Sample order (permutations, rank partition, validation split) and augmentation parameters."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import augment, order


def test_permutation_is_pure_and_changes_per_epoch():
    a = order.epoch_permutation(5, 0, 1000)
    assert np.array_equal(a, order.epoch_permutation(5, 0, 1000))
    assert sorted(a.tolist()) == list(range(1000))
    assert not np.array_equal(a, order.epoch_permutation(5, 1, 1000))
    assert not np.array_equal(a, order.epoch_permutation(6, 0, 1000))


@pytest.mark.parametrize("n, batch, world", [(1000, 7, 3), (256, 32, 2), (100, 10, 1)])
def test_ranks_disjoint_and_cover_the_epoch(n, batch, world):
    steps = order.train_steps_per_epoch(n, batch, world)
    parts = [order.train_positions(9, 2, n, batch, r, world) for r in range(world)]
    assert all(p.shape == (steps, batch) for p in parts)
    union = np.concatenate([p.ravel() for p in parts])
    assert len(set(union.tolist())) == len(union) == steps * batch * world  # disjoint
    # together they take the epoch's permutation up to the dropped partial global batch
    assert set(union.tolist()) == set(order.epoch_permutation(9, 2, n)[: steps * batch * world].tolist())
    assert n - len(union) == n % (batch * world)


def test_val_positions_count_every_sample_once():
    n, batch, world = 103, 8, 3
    per_rank = [order.val_positions(n, batch, r, world) for r in range(world)]
    seen = np.concatenate([b for batches in per_rank for b in batches])
    assert sorted(seen.tolist()) == list(range(n))
    assert [len(b) for b in per_rank[0]] == [8, 8, 8, 8, 3]  # last batch kept short


def test_bad_rank_rejected():
    with pytest.raises(ValueError, match="rank"):
        order.train_positions(0, 0, 100, 10, 2, 2)


def test_pad_scales_with_ratio():
    assert augment.pad_for(4, 2, "full") == 4
    assert augment.pad_for(4, 2, "low") == 2
    assert augment.pad_for(4, 4, "low") == 1
    assert augment.pad_for(0, 2, "low") == 0


def test_batch_params_pure_and_in_range():
    a = augment.batch_params(1, 2, 3, 0, "full", 500, 4)
    b = augment.batch_params(1, 2, 3, 0, "full", 500, 4)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.flips, b.flips)
    assert a.offsets.min() == 0 and a.offsets.max() == 8  # every offset in [0, 2*pad] occurs with 500 draws
    assert set(a.flips.tolist()) == {0, 1}
    other_rank = augment.batch_params(1, 2, 3, 1, "full", 500, 4)
    assert not np.array_equal(a.offsets, other_rank.offsets)
    off = augment.batch_params(1, 2, 3, 0, "full", 5, 4, enabled=False)
    assert (off.starts() == 0).all() and not off.flips.any()


def test_apply_numpy_pads_crops_and_flips():
    img = np.arange(1, 17, dtype=np.uint8).reshape(1, 4, 4, 1)
    params = augment.AugmentParams(pad=1, offsets=np.array([[0, 2]], np.int32), flips=np.array([1], np.int32))
    out = augment.apply_numpy(img, params)[0, :, :, 0]
    # window starts at (-1, +1) in image coordinates: top row is padding, right column is padding;
    # then mirrored left-right
    expected = np.array([[0, 0, 0, 0], [0, 4, 3, 2], [0, 8, 7, 6], [0, 12, 11, 10]], np.uint8)
    assert np.array_equal(out, expected)


# ---- train_layout: variable per-step batch sizes (low_batch_scale) ------------------------------------------------

@pytest.mark.parametrize("n, batch, world", [(1000, 7, 3), (256, 32, 2), (100, 10, 1)])
def test_layout_with_scale_1_is_the_fixed_cut(n, batch, world):
    rng = np.random.default_rng(0)
    lows = rng.random(500) < 0.5
    layout = order.train_layout(n, batch, world, lambda s: lows[s], low_batch_scale=1)
    steps = order.train_steps_per_epoch(n, batch, world)
    assert layout.num_steps == steps and layout.low == tuple(bool(x) for x in lows[:steps])
    perm = order.epoch_permutation(9, 2, n)
    for rank in range(world):
        fixed = order.train_positions(9, 2, n, batch, rank, world)
        assert np.array_equal(np.stack([layout.positions(perm, s, rank) for s in range(steps)]), fixed)


def test_layout_known_sizes_and_offsets():
    # n=100, B=10, k=3, every odd step low: 10, 30, 10, 30, 10 (=90), then a low step (30) does not fit
    layout = order.train_layout(100, 10, 1, lambda s: s % 2 == 1, low_batch_scale=3)
    assert layout.low == (False, True, False, True, False)
    assert layout.sizes.tolist() == [10, 30, 10, 30, 10] and layout.offsets.tolist() == [0, 10, 40, 50, 80]
    assert layout.consumed == 90
    # the walk stops at the first step that does not fit, even if a later full step would
    stop = order.train_layout(100, 10, 1, lambda s: s in (3, 4), low_batch_scale=8)
    assert stop.sizes.tolist() == [10, 10, 10] and stop.consumed == 30
    # two ranks: each global step spans size * 2 positions
    two = order.train_layout(100, 10, 2, lambda s: s == 1, low_batch_scale=2)
    assert two.sizes.tolist() == [10, 20, 10, 10] and two.offsets.tolist() == [0, 20, 60, 80] and two.consumed == 100
    perm = np.arange(100) * 10
    assert two.positions(perm, 1, 0).tolist() == list(range(200, 400, 10))
    assert two.positions(perm, 1, 1).tolist() == list(range(400, 600, 10))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_layout_p0_and_p1(scale):
    n, batch, world = 1000, 7, 3
    full = order.train_layout(n, batch, world, lambda s: False, scale)
    assert full.num_steps == n // (batch * world) and set(full.sizes.tolist()) == {batch}
    low = order.train_layout(n, batch, world, lambda s: True, scale)
    assert low.num_steps == n // (scale * batch * world) and set(low.sizes.tolist()) == {scale * batch}
    assert order.train_layout(10, 7, 3, lambda s: True, scale).num_steps == 0


def test_layout_rejects_bad_scale():
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="low_batch_scale must be an integer >= 1"):
            order.train_layout(100, 10, 1, lambda s: False, bad)
