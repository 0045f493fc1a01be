"""Sample order: which samples each rank reads at each step.

Positions refer to the split's *index order* (shards in manifest order, samples in tar order).
Training: every epoch is a fresh permutation of all positions, a pure function of (seed, epoch),
identical for both resolutions, so a step carries the same keys whichever mode it is drawn in.
The permutation is cut into global batches of ``batch_size_per_rank * world_size``; rank r takes
the r-th slice of each global batch. The last partial global batch is DROPPED (different samples
each epoch, since the permutation changes), so every rank runs ``n // global_batch`` steps.

When a step's batch depends on its resolution (``low_batch_scale`` k > 1, Mix&Match "B+", or
``constant_pixels``; ``walk_layout``), steps s = 0, 1, ... in turn consume ``size * world_size``
consecutive positions of the permutation (size = the step's per-rank batch: k * B if step s is low,
else B), rank r taking the r-th slice of ``size``; the epoch ends at the first step that does not fit
in the positions left, which are dropped. With every size B this is exactly the fixed cut above.
Validation: rank r takes positions r, r + W, r + 2W, ... in index order, in batches whose last one
may be short, so every sample is counted exactly once across ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from preprocess.dataset_format import FULL, LOW

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


@dataclass(frozen=True)
class TrainLayout:
    """The steps of one training epoch, the same on every rank: each step's resolution and per-rank
    batch size, and where each global step starts in the epoch's permutation."""

    resolutions: tuple[str, ...]
    """The resolution step s reads ("full", "low", "low<H>")."""
    sizes: np.ndarray
    """int64 (steps,): per-rank batch size of each step (B, or k * B for a low step)."""
    offsets: np.ndarray
    """int64 (steps,): first permutation position of each global step (it spans sizes[s] * world_size)."""
    world_size: int

    @property
    def num_steps(self) -> int:
        return len(self.resolutions)

    @property
    def low(self) -> tuple[bool, ...]:
        """Step s is a low step (any resolution but the full one)."""
        return tuple(r != FULL for r in self.resolutions)

    @property
    def consumed(self) -> int:
        """Positions of the permutation the epoch reads (the rest are dropped)."""
        return int(self.offsets[-1] + self.sizes[-1] * self.world_size) if self.num_steps else 0

    def positions(self, permutation: np.ndarray, step: int, rank: int) -> np.ndarray:
        """The positions ``rank`` reads at ``step``: the rank-th slice of the step's global batch."""
        size = int(self.sizes[step])
        start = int(self.offsets[step]) + rank * size
        return permutation[start : start + size]


def train_layout(
    num_samples: int, batch_size_per_rank: int, world_size: int, is_low: Callable[[int], bool],
    low_batch_scale: int = 1,
) -> TrainLayout:
    """The two-level case of ``walk_layout``: step s is low iff ``is_low(s)``, and a low step's per-rank
    batch is ``low_batch_scale * batch_size_per_rank``."""
    check_rank(batch_size_per_rank, 0, world_size)
    if isinstance(low_batch_scale, bool) or not isinstance(low_batch_scale, int) or low_batch_scale < 1:
        raise ValueError(f"low_batch_scale must be an integer >= 1, got {low_batch_scale!r}")

    def step(s: int) -> tuple[str, int]:
        low = bool(is_low(s))
        return (LOW, batch_size_per_rank * low_batch_scale) if low else (FULL, batch_size_per_rank)

    return walk_layout(num_samples, world_size, step)


def walk_layout(num_samples: int, world_size: int, step: Callable[[int], tuple[str, int]]) -> TrainLayout:
    """Walk steps 0, 1, ... of an epoch whose step s reads resolution r with a per-rank batch of b, where
    ``(r, b) = step(s)``; stop at the first step whose global batch does not fit in the remaining
    ``num_samples`` positions. ``step`` must be a pure function (the schedule's)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    resolutions: list[str] = []
    sizes: list[int] = []
    offsets: list[int] = []
    consumed = 0
    while True:
        resolution, size = step(len(resolutions))
        if size < 1:
            raise ValueError(f"step {len(resolutions)}: per-rank batch must be >= 1, got {size}")
        if consumed + size * world_size > num_samples:
            break
        resolutions.append(resolution)
        sizes.append(size)
        offsets.append(consumed)
        consumed += size * world_size
    return TrainLayout(resolutions=tuple(resolutions), sizes=np.asarray(sizes, np.int64),
                       offsets=np.asarray(offsets, np.int64), world_size=world_size)


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
