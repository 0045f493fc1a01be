"""What every step of an epoch reads, at which resolution, with which augmentation — shared by both loaders.

A ``StepPlan`` is a pure function of (seed, epoch, step, rank, world size, per-rank batch, schedule,
split), so the DALI and torch loaders deliver the same keys, resolutions and crops, and ``epoch(e,
start_step=k)`` resumes exactly where a run stopped. The planner binds the schedule to its dataset's
resolutions (``ModeSchedule.with_ladder``), so a step's resolution is a name the dataset stores.

Training epochs follow ``order.walk_layout``: when a low step's batch differs from the configured one
(``schedule.config.low_batch_scale`` k > 1, or ``constant_pixels``) the number of steps varies per epoch:
``steps_in_epoch(epoch)`` (the same on every rank). ``steps_per_epoch`` is the constant count of
validation and of fixed-batch training, and raises otherwise.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline import augment, order
from pipeline.index import SplitIndex
from pipeline.schedule import FULL, Ladder, ModeSchedule, mode_of

DEFAULT_CROP_PAD_PX = 4
LAYOUT_CACHE_EPOCHS = 4
"""Training layouts (one per epoch) a planner keeps; each costs one hash draw per step to build."""


@dataclass(frozen=True)
class StepPlan:
    """One step on one rank: its resolution, the split positions it reads and their augmentation.

    ``len(positions)`` is the step's per-rank batch size (k * B for a low step with low_batch_scale k).
    """

    step: int
    resolution: str
    """The dataset resolution the step reads ("full", "low", "low<H>")."""
    positions: np.ndarray
    aug: augment.AugmentParams

    @property
    def mode(self) -> str:
        """"full" or "low": the model's mode for this step (every resolution but the full one is low)."""
        return mode_of(self.resolution)


class Planner:
    """Step plans of one rank for a split.

    Training ("train" or any split with ``train=True``): shuffled, last partial global batch dropped,
    modes from ``schedule`` (None: all full), a low step's batch ``schedule.config.low_batch_scale``
    times ``batch_size_per_rank``, augmentation if ``augment``. Otherwise (validation): full mode, no
    augmentation, positions r::W in index order, last batch kept.
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
        if schedule is not None and self.train:
            schedule = schedule.with_ladder(Ladder.from_manifest(index.manifest))
        self.schedule = schedule if self.train else None
        """The schedule bound to this dataset's resolutions (None for validation)."""
        self.augment = augment and self.train
        self.crop_pad_px = crop_pad_px
        order.check_rank(batch_size_per_rank, rank, world_size)
        self.low_batch_scale = self.schedule.config.low_batch_scale if self.schedule is not None else 1
        """k: a low training step reads k * batch_size_per_rank samples per rank (1 for validation)."""
        self._layouts: OrderedDict[int, order.TrainLayout] = OrderedDict()
        n = index.num_samples
        if self.train:
            self._steps_per_epoch = order.train_steps_per_epoch(n, batch_size_per_rank, world_size)
            if self._steps_per_epoch == 0:
                raise ValueError(
                    f"{index.split}: {n} samples give no full global batch of {batch_size_per_rank} x {world_size}"
                )
            if self.schedule is not None and self.schedule.variable_batches:
                for rung in self.schedule.rungs:
                    low_batch = self.schedule.step_batch(rung, batch_size_per_rank)
                    if n < low_batch * world_size:
                        what = (f"{rung} steps of {low_batch} (schedule.constant_pixels)"
                                if self.schedule.config.constant_pixels else
                                f"low steps of {batch_size_per_rank} x {self.low_batch_scale} (schedule.low_batch_scale)")
                        raise ValueError(f"{index.split}: {n} samples give no full global batch of {what} x {world_size}")
            self._val = None
        else:
            self._val = order.val_positions(n, batch_size_per_rank, rank, world_size)
            self._steps_per_epoch = len(self._val)

    def rebind(self, schedule: ModeSchedule) -> None:
        """Read ``schedule`` from now on (the adaptive schedule's new climbs): bound to this dataset's
        resolutions, every cached layout dropped. Only a schedule with the same batches per step may replace
        the old one (an epoch's steps and samples must not change under a running epoch)."""
        if not self.train or self.schedule is None:
            raise ValueError(f"rebind: {self.index.split} has no mode schedule to replace")
        if schedule.variable_batches or self.schedule.variable_batches:
            raise ValueError("rebind: schedules whose low steps take another batch cannot be replaced mid-run")
        self.schedule = schedule.with_ladder(Ladder.from_manifest(self.index.manifest))
        self._layouts.clear()

    @property
    def variable_steps(self) -> bool:
        """True when the number of steps varies per epoch (training whose low steps take another batch)."""
        return self._val is None and self.schedule is not None and self.schedule.variable_batches

    @property
    def steps_per_epoch(self) -> int:
        """Steps of every epoch: validation, or training with low_batch_scale 1 (n // (B x W)).

        Raises ValueError for training with low_batch_scale > 1, whose epochs differ: use
        ``steps_in_epoch(epoch)``.
        """
        if self.variable_steps:
            raise ValueError(
                f"steps_per_epoch: with schedule.low_batch_scale = {self.low_batch_scale} the number of training "
                f"steps varies per epoch; use steps_in_epoch(epoch)"
            )
        return self._steps_per_epoch

    def steps_in_epoch(self, epoch: int) -> int:
        """Steps of ``epoch`` on this rank, the same on every rank (validation: ``steps_per_epoch``)."""
        _check_epoch(epoch)
        if self._val is not None:
            return self._steps_per_epoch
        return self.layout(epoch).num_steps

    def layout(self, epoch: int) -> order.TrainLayout:
        """The training ``epoch``'s steps: modes, per-rank batch sizes, offsets (cached; train only)."""
        _check_epoch(epoch)
        if self._val is not None:
            raise ValueError(f"layout: {self.index.split} is not a training split")
        layout = self._layouts.get(epoch)
        if layout is None:
            def step(s: int) -> tuple[str, int]:
                resolution = self.resolution(epoch, s)
                size = (self.batch_size_per_rank if self.schedule is None
                        else self.schedule.step_batch(resolution, self.batch_size_per_rank))
                return resolution, size

            layout = order.walk_layout(self.index.num_samples, self.world_size, step)
            self._layouts[epoch] = layout
            while len(self._layouts) > LAYOUT_CACHE_EPOCHS:
                self._layouts.popitem(last=False)
        else:
            self._layouts.move_to_end(epoch)
        return layout

    @property
    def rank_samples(self) -> int:
        """Samples this rank reads per epoch: validation, or training with low_batch_scale 1 (steps x B).

        Raises ValueError for training with low_batch_scale > 1: use ``rank_samples_in_epoch(epoch)``.
        """
        if self._val is not None:
            return sum(len(b) for b in self._val)
        if self.variable_steps:
            raise ValueError(
                f"rank_samples: with schedule.low_batch_scale = {self.low_batch_scale} the samples read vary per "
                f"epoch; use rank_samples_in_epoch(epoch)"
            )
        return self._steps_per_epoch * self.batch_size_per_rank

    def rank_samples_in_epoch(self, epoch: int) -> int:
        """Samples this rank reads in ``epoch`` (training: the sum of its steps' batch sizes)."""
        if self._val is not None:
            return self.rank_samples
        return int(self.layout(epoch).sizes.sum())

    def resolution(self, epoch: int, step: int) -> str:
        return FULL if self.schedule is None else self.schedule.resolution(epoch, step)

    def mode(self, epoch: int, step: int) -> str:
        return FULL if self.schedule is None else self.schedule.mode(epoch, step)

    def plans(self, epoch: int, start_step: int = 0) -> Iterator[StepPlan]:
        """Plans of steps start_step..steps_in_epoch(epoch)-1 of ``epoch``.

        Validates its arguments when called (not when first iterated).
        """
        steps = self.steps_in_epoch(epoch)
        if not 0 <= start_step <= steps:
            raise ValueError(f"start_step must be in [0, {steps}] for epoch {epoch}, got {start_step}")
        return self._plans(epoch, start_step, steps)

    def _plans(self, epoch: int, start_step: int, steps: int) -> Iterator[StepPlan]:
        if self._val is not None:
            for step in range(start_step, steps):
                yield self._plan(epoch, step, FULL, self._val[step])
            return
        layout = self.layout(epoch)
        permutation = order.epoch_permutation(self.seed, epoch, self.index.num_samples)
        for step in range(start_step, steps):
            yield self._plan(epoch, step, layout.resolutions[step], layout.positions(permutation, step, self.rank))

    def _plan(self, epoch: int, step: int, resolution: str, positions: np.ndarray) -> StepPlan:
        mode = mode_of(resolution)
        pad = augment.pad_for(self.crop_pad_px, self.index.manifest.ratio_of(resolution), mode)
        aug = augment.batch_params(self.seed, epoch, step, self.rank, mode, len(positions), pad, enabled=self.augment)
        return StepPlan(step=step, resolution=resolution, positions=np.asarray(positions), aug=aug)

    def keys(self, plan: StepPlan) -> list[str]:
        """Sample keys of a plan's positions."""
        return [self.index.keys[p] for p in plan.positions]


def _check_epoch(epoch: int) -> None:
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
