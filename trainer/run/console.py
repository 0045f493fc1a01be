"""What a run prints on rank 0: a tqdm bar per epoch on a terminal, or plain log lines (``logging.progress``)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pipeline.schedule import FULL, LOW

PROGRESS_MODES = ("auto", "bar", "lines")

log = logging.getLogger("lowmode.train")


class Console:
    """Progress output of one rank (silent unless ``enabled``, i.e. on rank 0)."""

    def __init__(self, progress: str, print_every_steps: int, enabled: bool) -> None:
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {PROGRESS_MODES}, got {progress!r}")
        self.use_bar = enabled and (progress == "bar" or (progress == "auto" and sys.stderr.isatty()))
        self.enabled = enabled
        self.print_every_steps = print_every_steps
        self.bar = None

    def open_epoch(self, epoch: int, total_steps: int, first_step: int) -> None:
        if not self.use_bar:
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, initial=first_step, desc=f"epoch {epoch}", unit="step",
                        dynamic_ncols=True, leave=False)

    def close_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def step(self, record: dict[str, Any], mode_steps: dict[str, float]) -> None:
        """After a step: update the bar (``mode_steps``: this epoch's steps per mode) or log every N steps."""
        if not self.enabled:
            return
        if self.bar is not None:
            low, total = mode_steps[LOW], mode_steps[LOW] + mode_steps[FULL]
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", low=f"{low / total:.0%}",
                                 img_s=f"{record['images_per_s']:.0f}", refresh=False)
            self.bar.update(1)
        elif record["step"] % self.print_every_steps == 0:
            log.info("epoch %d step %d (%s) loss %.4f lr %.4g %.1f img/s", record["epoch"], record["step"],
                     record["mode"], record["loss"], record["lr"], record["images_per_s"])

    def epoch(self, record: dict[str, Any]) -> None:
        if self.enabled:
            log.info(epoch_line(record))


def epoch_line(record: dict[str, Any]) -> str:
    """One line per epoch: validation, per-mode train loss, low-step share, training wall-clock."""
    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    return (f"epoch {record['epoch']} done: val_acc {fmt(record['val_acc'], '.4f')} val_loss {fmt(record['val_loss'], '.4f')} "
            f"train_loss full {fmt(record['train_loss_full'], '.4f')} low {fmt(record['train_loss_low'], '.4f')} "
            f"low steps {record['low_step_fraction']:.0%} wall {record['train_wall_s']:.1f}s")
