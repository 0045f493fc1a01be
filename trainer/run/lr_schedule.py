"""Learning-rate schedules that are a pure function of training progress (``optim.lr_schedule``).

``step`` (the paper's) stays torch's per-epoch ``MultiStepLR`` (trainer.run.build). ``cosine`` and
``linear`` set every step's LR from the progress t = (epoch + step / steps_in_epoch) / epochs in [0, 1):
a linear warm-up from 0 over the first ``optim.warmup_epochs``, then a decay to 0 at t = 1 (half a cosine,
or a straight line). No state: a resumed run, every rank and a run of another world size compute the same
LR for the same step, so the checkpoint's scheduler state is empty. Decaying to zero is what makes one
schedule strong at every budget (each budget ends annealed), which a step schedule's fixed milestones
are not.
"""

from __future__ import annotations

import math

import torch

LR_SCHEDULES = ("step", "cosine", "linear")
PROGRESS_SCHEDULES = ("cosine", "linear")
"""The schedules :class:`ProgressLR` computes per step."""


class ProgressLR:
    """Sets the optimiser's LR before each step from the training progress (see the module docstring).

    The interface the loop uses for every schedule: ``set_progress`` before each step (a no-op for the
    step schedule, which has no such method), ``step()`` at each epoch end, ``state_dict`` /
    ``load_state_dict`` for the checkpoint.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, shape: str, base_lr: float, epochs: int,
                 warmup_epochs: float) -> None:
        if shape not in PROGRESS_SCHEDULES:
            raise ValueError(f"shape must be one of {PROGRESS_SCHEDULES}, got {shape!r}")
        self.optimizer, self.shape, self.base_lr = optimizer, shape, base_lr
        self.epochs, self.warmup = epochs, warmup_epochs / epochs
        self.set_progress(0, 0, 1)

    def lr_at(self, t: float) -> float:
        """The LR at progress ``t`` in [0, 1]."""
        if t < self.warmup:
            return self.base_lr * t / self.warmup
        u = (t - self.warmup) / (1 - self.warmup) if self.warmup < 1 else 1.0
        u = min(max(u, 0.0), 1.0)
        factor = 0.5 * (1 + math.cos(math.pi * u)) if self.shape == "cosine" else 1 - u
        return self.base_lr * factor

    def set_progress(self, epoch: int, step: int, steps_in_epoch: int) -> float:
        """Set every parameter group's LR for step ``step`` of ``epoch`` (of ``steps_in_epoch``); returns it."""
        t = (epoch + step / max(steps_in_epoch, 1)) / self.epochs
        lr = self.lr_at(t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self) -> None:
        """Epoch end: nothing to do (the next step sets its own LR)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Stateless: the LR of the next step follows from the progress alone."""
