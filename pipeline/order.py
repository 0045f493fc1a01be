"""Sample order: which samples each rank reads at each step.

Positions refer to the split's *index order* (shards in manifest order, samples in tar order).
Training: every epoch is a fresh permutation of all positions, a pure function of (seed, epoch),
identical for both resolutions, so a step carries the same keys whichever mode it is drawn in.
The permutation is cut into global batches of ``batch_size_per_rank * world_size``; rank r takes
the r-th slice of each global batch. The last partial global batch is DROPPED (different samples
each epoch, since the permutation changes), so every rank runs ``n // global_batch`` steps.
Validation: rank r takes positions r, r + W, r + 2W, ... in index order, in batches whose last one
may be short, so every sample is counted exactly once across ranks.
"""

from __future__ import annotations

import numpy as np

# Domain separation for the permutation's seed sequence (differs from the augmentation's).
_ORDER_DOMAIN = 0x6F72646572  # "order"


def epoch_permutation(seed: int, epoch: int, num_samples: int) -> np.ndarray:
    """A permutation of ``range(num_samples)`` (int64) that depends only on (seed, epoch, num_samples).

    numpy's PCG64 seeded from the SeedSequence of (domain, seed, epoch): a real shuffle every epoch.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_ORDER_DOMAIN, seed, epoch])))
    return rng.permutation(num_samples).astype(np.int64)


def train_steps_per_epoch(num_samples: int, batch_size_per_rank: int, world_size: int) -> int:
    """Steps every rank runs per training epoch (the last partial global batch is dropped)."""
    return num_samples // (batch_size_per_rank * world_size)


def train_positions(
    seed: int, epoch: int, num_samples: int, batch_size_per_rank: int, rank: int, world_size: int
) -> np.ndarray:
    """Positions read by ``rank`` in ``epoch``, shaped (steps_per_epoch, batch_size_per_rank)."""
    check_rank(batch_size_per_rank, rank, world_size)
    steps = train_steps_per_epoch(num_samples, batch_size_per_rank, world_size)
    perm = epoch_permutation(seed, epoch, num_samples)[: steps * batch_size_per_rank * world_size]
    return perm.reshape(steps, world_size, batch_size_per_rank)[:, rank, :]


def val_positions(num_samples: int, batch_size_per_rank: int, rank: int, world_size: int) -> list[np.ndarray]:
    """Positions read by ``rank`` in a validation pass: r::W in index order, last batch may be short."""
    check_rank(batch_size_per_rank, rank, world_size)
    mine = np.arange(rank, num_samples, world_size, dtype=np.int64)
    return [mine[i : i + batch_size_per_rank] for i in range(0, len(mine), batch_size_per_rank)]


def check_rank(batch_size_per_rank: int, rank: int, world_size: int) -> None:
    """Raise ValueError unless batch_size_per_rank >= 1 and 0 <= rank < world_size."""
    if batch_size_per_rank < 1:
        raise ValueError(f"batch_size_per_rank must be >= 1, got {batch_size_per_rank}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
