"""The adaptive schedule's controller (``schedule.policy = "adaptive"``): climb the resolution ladder when the
current rung has stopped paying.

Why this signal (docs/RESULTS.md 0.7 measures the candidates along schedules whose worth is known): the
first-order gradient signals — rho = <g_low(A), g_full(B)> / <g_full(A), g_full(B)> against the cost ratio,
the low/full gradient cosine, the low/full loss gap — read the same on CIFAR-10 at 16 px, where low steps
never pay, as on Imagenette at 64 px, where they pay most (rho / c between about 1 and 2.5 on both). What differs is
whether training at the rung still lowers the loss *at full resolution*: on CIFAR-10 the full-resolution
validation loss of a network trained at 16 px stops falling after one epoch while its 16-px loss keeps
falling; on Imagenette it keeps falling at 64 px for several epochs. So the controller measures, every
``schedule.adapt_every_steps`` global steps, the full-resolution loss of the current network on a fixed
probe set (``schedule.adapt_probe_batches`` full-resolution training batches without augmentation, forward
only, BN on batch statistics as in a training step, nothing of the model changed), and climbs one rung when
that loss — the mean of the last two measurements at the rung — has not fallen by at least
``schedule.adapt_margin`` (a fraction) below the best such mean at the rung. A plateau at a low rung is what
a low phase that stopped transferring looks like; a false plateau (noise) only climbs early, the safe
direction: full steps never lose. The resolution only climbs, and from ``schedule.adapt_full_from`` of
training every step is full (the final full phase every measured ladder ends with).

Decisions are taken at sync points from all-reduced numbers (every rank sums its share of the probe set's
losses), so every rank takes the same decision with no other communication; a decision is a climb
(epoch, step, resolution) the schedule records (``ModeSchedule.with_climbs``), so a step's resolution stays a
pure function of recorded state, and the controller's state is part of the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.schedule import FULL, LOW, ModeSchedule
from trainer.method.dualmode import set_mode, unwrap
from trainer.run.low_step_value import downsample_to, left_as_it_was


@dataclass
class ControllerState:
    """What the controller remembers (the checkpoint's ``adaptive``): the climbs decided so far, and at the
    current rung the best smoothed full-resolution probe loss, the last measurement and their count."""

    climbs: list[list[Any]] = field(default_factory=list)
    best: float | None = None
    last: float | None = None
    measurements: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"climbs": [list(c) for c in self.climbs], "best": self.best, "last": self.last,
                "measurements": self.measurements}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ControllerState:
        try:
            return cls(climbs=[[int(c[0]), int(c[1]), str(c[2])] for c in state["climbs"]],
                       best=None if state["best"] is None else float(state["best"]),
                       last=None if state["last"] is None else float(state["last"]),
                       measurements=int(state["measurements"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"adaptive: controller state {state!r} is not valid ({exc})") from None


@torch.no_grad()
def probe_losses(model: nn.Module, batches, heights: tuple[int, ...], method: str) -> tuple[list[float], list[float]]:
    """Summed cross-entropy and sample count of ``batches`` ((images, labels), full resolution) at full
    resolution (index 0) and at each of ``heights`` (low mode), BN on batch statistics as in a training step;
    the model is left as it was (``low_step_value.left_as_it_was``), so the training is unchanged."""
    root = unwrap(model)
    sums, counts = [0.0] * (1 + len(heights)), [0.0] * (1 + len(heights))
    with left_as_it_was(root, next(root.parameters()).device):
        for images, labels in batches:
            for i, height in enumerate((None, *heights)):
                set_mode(root, FULL if height is None else LOW)
                x = images if height is None else downsample_to(images, height, method)
                sums[i] += float(F.cross_entropy(root(x).float(), labels, reduction="sum"))
                counts[i] += labels.numel()
    return sums, counts


class AdaptiveController:
    """Decides the climbs of an adaptive schedule from full-resolution probe losses (module docstring)."""

    def __init__(self, schedule: ModeSchedule) -> None:
        if schedule.config.policy != "adaptive":
            raise ValueError(f"AdaptiveController: schedule.policy is {schedule.config.policy!r}, not 'adaptive'")
        self.config = schedule.config
        self.state = ControllerState(climbs=[list(c) for c in schedule.climbs])

    def due(self, global_step: int) -> bool:
        return global_step % self.config.adapt_every_steps == 0

    def next_rung(self, schedule: ModeSchedule, resolution: str) -> str:
        """The resolution one rung above ``resolution`` on the schedule's ladder (full at the top)."""
        order = schedule.order
        return order[min(order.index(resolution) + 1, len(order) - 1)]

    def observe(self, loss_full: float, *, epoch: int, next_step: int, schedule: ModeSchedule,
                resolution: str) -> dict[str, Any]:
        """One measurement (the full-resolution probe loss, already the same on every rank) at the rung
        ``resolution``; returns the decision record. A climb takes effect from (epoch, next_step)."""
        st, margin = self.state, self.config.adapt_margin
        smoothed = loss_full if st.last is None else 0.5 * (loss_full + st.last)
        decision = "stay"
        if st.best is not None and smoothed > st.best * (1.0 - margin):
            decision = "climb"
        record = {"loss_full": loss_full, "smoothed": smoothed, "best": st.best, "measurements": st.measurements + 1,
                  "decision": decision}
        if decision == "climb":
            target = self.next_rung(schedule, resolution)
            st.climbs.append([epoch, next_step, target])
            st.best, st.last, st.measurements = None, None, 0
            record["to"] = target
        else:
            st.best = smoothed if st.best is None else min(st.best, smoothed)
            st.last, st.measurements = loss_full, st.measurements + 1
        return record

    def climbs(self) -> tuple[tuple[int, int, str], ...]:
        return tuple(tuple(c) for c in self.state.climbs)

    def state_dict(self) -> dict[str, Any]:
        return self.state.to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = ControllerState.from_dict(state)
