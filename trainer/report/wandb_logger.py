"""Weights & Biases logging (rank 0 only): offline by default, same run id after a resume.

Metric names are those of RUN/metrics.jsonl. Step records are logged at W&B step = global step;
epoch metrics use ``train_wall_s`` (training wall-clock, seconds) as their x-axis via
``define_metric``, the axis time-to-accuracy is measured on. ``group`` = experiment (a preset's
baseline and lowmode runs side by side), ``job_type`` = baseline | lowmode. W&B is imported only
when enabled.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pipeline.schedule import LOW

WANDB_MODES = ("offline", "online", "disabled")
EPOCH_METRICS = ("val_acc", "val_loss", "train_loss_full", "train_loss_low", "train_acc_full",
                 "train_acc_low", "low_step_fraction", "epoch")


class WandbLogger:
    """A W&B run, or nothing at all when ``mode`` is "disabled" (then every method is a no-op)."""

    def __init__(self, *, mode: str, project: str, group: str, job_type: str, name: str,
                 config: dict[str, Any], run_dir: Path, run_id: str | None) -> None:
        self.run = None
        self.run_id = run_id
        if mode == "disabled":
            return
        try:
            import wandb
        except ImportError:
            # W&B is an optional extra; the run directory holds every metric anyway.
            warnings.warn(f"logging.wandb = {mode!r} but wandb is not installed (pip install 'lowmode[wandb]'); "
                          "W&B logging is off", RuntimeWarning, stacklevel=2)
            return

        self.run = wandb.init(
            project=project, group=group or None, job_type=job_type, name=name, config=config,
            dir=str(run_dir), mode=mode, id=run_id, resume="allow",
        )
        self.run_id = self.run.id
        self.run.define_metric("train_wall_s")
        for key in EPOCH_METRICS:
            self.run.define_metric(key, step_metric="train_wall_s")

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def log_step(self, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        values = {k: v for k, v in record.items() if k not in ("kind", "mode", "step")}
        values["mode_low"] = 1 if record["mode"] == LOW else 0  # numeric, so W&B can chart it
        self.run.log(values, step=record["step"])

    def log_probe(self, record: dict[str, Any]) -> None:
        """A low-step-value probe (trainer/run/low_step_value.py), under ``probe/`` at its global step."""
        if self.run is None:
            return
        values = {f"probe/{k}": v for k, v in record.items() if k not in ("kind", "step", "epoch")}
        self.run.log(values, step=record["step"])

    def log_adapt(self, record: dict[str, Any]) -> None:
        """An adaptive-schedule measurement and decision (trainer/run/adaptive.py), under ``adapt/``; the
        decision as a number (1 = climb) so W&B can chart it."""
        if self.run is None:
            return
        values = {f"adapt/{k}": v for k, v in record.items()
                  if k not in ("kind", "step", "epoch", "decision") and v is not None}
        values["adapt/climb"] = 1 if record["decision"] == "climb" else 0
        self.run.log(values, step=record["step"])

    def log_epoch(self, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        values = {k: v for k, v in record.items() if k not in ("kind", "global_step") and v is not None}
        self.run.log(values, step=record["global_step"])

    def log_summary(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        for key, value in summary.items():
            self.run.summary[key] = value

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
