"""What every step of an epoch reads, in which mode, with which augmentation — shared by both loaders.

A ``StepPlan`` is a pure function of (seed, epoch, step, rank, world size, schedule, split), so the
DALI and torch loaders deliver the same keys, modes and crops, and ``epoch(e, start_step=k)``
resumes exactly where a run stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline import augment, order
from pipeline.index import SplitIndex
from pipeline.schedule import FULL, ModeSchedule

DEFAULT_CROP_PAD_PX = 4


@dataclass(frozen=True)
class StepPlan:
    """One step on one rank: its mode, the split positions it reads and their augmentation."""

    step: int
    mode: str
    positions: np.ndarray
    aug: augment.AugmentParams


class Planner:
    """Step plans of one rank for a split.

    Training ("train" or any split with ``train=True``): shuffled, last partial global batch dropped,
    modes from ``schedule`` (None: all full), augmentation if ``augment``. Otherwise (validation):
    full mode, no augmentation, positions r::W in index order, last batch kept.
    """

    def __init__(
        self, index: SplitIndex, *, batch_size_per_rank: int, seed: int, rank: int = 0, world_size: int = 1,
        schedule: ModeSchedule | None = None, augment: bool = True, train: bool | None = None,
        crop_pad_px: int = DEFAULT_CROP_PAD_PX,
    ) -> None:
        if crop_pad_px < 0:
            raise ValueError(f"crop_pad_px must be >= 0, got {crop_pad_px}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.index = index
        self.batch_size_per_rank = batch_size_per_rank
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.train = index.split == "train" if train is None else train
        self.schedule = schedule if self.train else None
        self.augment = augment and self.train
        self.crop_pad_px = crop_pad_px
        order.check_rank(batch_size_per_rank, rank, world_size)
        n = index.num_samples
        if self.train:
            self.steps_per_epoch = order.train_steps_per_epoch(n, batch_size_per_rank, world_size)
            if self.steps_per_epoch == 0:
                raise ValueError(
                    f"{index.split}: {n} samples give no full global batch of {batch_size_per_rank} x {world_size}"
                )
            self._val = None
        else:
            self._val = order.val_positions(n, batch_size_per_rank, rank, world_size)
            self.steps_per_epoch = len(self._val)

    @property
    def rank_samples(self) -> int:
        """Samples this rank reads per epoch."""
        if self._val is not None:
            return sum(len(b) for b in self._val)
        return self.steps_per_epoch * self.batch_size_per_rank

    def mode(self, epoch: int, step: int) -> str:
        return FULL if self.schedule is None else self.schedule.mode(epoch, step)

    def plans(self, epoch: int, start_step: int = 0) -> Iterator[StepPlan]:
        """Plans of steps start_step..steps_per_epoch-1 of ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step must be in [0, {self.steps_per_epoch}], got {start_step}")
        if self._val is not None:
            batches = self._val
        else:
            batches = order.train_positions(
                self.seed, epoch, self.index.num_samples, self.batch_size_per_rank, self.rank, self.world_size
            )
        for step in range(start_step, self.steps_per_epoch):
            yield self._plan(epoch, step, batches[step])

    def _plan(self, epoch: int, step: int, positions: np.ndarray) -> StepPlan:
        mode = self.mode(epoch, step)
        pad = augment.pad_for(self.crop_pad_px, self.index.ratio, mode)
        aug = augment.batch_params(self.seed, epoch, step, self.rank, mode, len(positions), pad, enabled=self.augment)
        return StepPlan(step=step, mode=mode, positions=np.asarray(positions), aug=aug)

    def keys(self, plan: StepPlan) -> list[str]:
        """Sample keys of a plan's positions."""
        return [self.index.keys[p] for p in plan.positions]
