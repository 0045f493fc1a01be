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
