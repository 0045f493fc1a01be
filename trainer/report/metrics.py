"""RUN/metrics.jsonl records, per-epoch accumulators and the run summary.

Step record:  {"kind": "step", "step": global step (1-based count of optimiser steps), "epoch",
               "mode", "loss" (mean over the global batch), "lr", "step_s" (wall seconds of the step,
               data wait included), "data_wait_s", "images_per_s" (global batch / step_s),
               "train_wall_s" (cumulative)}
Epoch record: {"kind": "epoch", "epoch", "global_step", "lr", "steps", "train_loss_full",
               "train_loss_low", "train_acc_full", "train_acc_low" (null when the epoch had no step
               of that mode), "val_loss", "val_acc" (full mode, full resolution; null when not
               evaluated), "bn_recalibrated_batches" / "bn_recalibrate_s" (full batches and seconds
               spent re-estimating BN statistics before that evaluation; only when it ran),
               "train_wall_s" (cumulative training wall-clock, BN re-estimation included,
               evaluation and checkpointing excluded), "low_step_fraction" (of this epoch's steps)}
Adapt record: {"kind": "adapt", "step", "epoch", "size", "loss_full", "loss_low", "smoothed", "best",
               "measurements", "decision", ["to_size"], "adapt_s"} (schedule.policy "adaptive"; trainer/run/adaptive.py).
Probe record: {"kind": "probe", "step", "epoch", rho's parts, "rho", "cos_low_full", "grad_norm_ratio",
               "loss_full", "loss_low", "probe_s"} (logging.low_step_value_every; trainer/run/loop.py).
Accuracies are fractions in [0, 1]; times are seconds.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any, Iterator

from pipeline.schedule import LOW, MODES
from preprocess.files import errors_naming


class MetricsWriter:
    """Appends JSON lines (rank 0); ``size`` is the byte length a checkpoint records."""

    def __init__(self, path: str | Path, truncate_to: int | None = None) -> None:
        self.path = Path(path)
        if truncate_to is not None and self.path.exists():
            # Drop lines written after the checkpoint we resume from: the resumed run rewrites them.
            with open(self.path, "r+b") as f:
                f.truncate(truncate_to)
        elif truncate_to is None and self.path.exists():
            self.path.unlink()  # a fresh run (no resume) starts an empty file
        self._file = open(self.path, "ab")

    @property
    def size(self) -> int:
        return self._file.tell()

    def write(self, record: dict[str, Any]) -> None:
        with errors_naming(self.path):  # a full disk: the error names this file
            self._file.write((json.dumps(record) + "\n").encode())
            self._file.flush()

    def sync(self) -> None:
        """fsync before a checkpoint records ``size`` (the bytes must survive a crash)."""
        with errors_naming(self.path):
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with errors_naming(self.path):
            self._file.close()


class EpochAccumulator:
    """Per-mode sums over one epoch's steps (global values, identical on all ranks)."""

    def __init__(self, state: dict[str, dict[str, float]] | None = None) -> None:
        self.sums = {m: {"loss_sum": 0.0, "correct": 0.0, "count": 0.0, "steps": 0.0} for m in MODES}
        if state:
            for mode in MODES:
                self.sums[mode].update({k: float(v) for k, v in state[mode].items()})

    def add(self, mode: str, loss_sum: float, correct: float, count: float) -> None:
        s = self.sums[mode]
        s["loss_sum"] += loss_sum
        s["correct"] += correct
        s["count"] += count
        s["steps"] += 1

    def state(self) -> dict[str, dict[str, float]]:
        """Plain floats for the checkpoint (a mid-epoch resume continues the sums exactly)."""
        return {m: dict(v) for m, v in self.sums.items()}

    def record_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode in MODES:
            s = self.sums[mode]
            out[f"train_loss_{mode}"] = s["loss_sum"] / s["count"] if s["count"] else None
            out[f"train_acc_{mode}"] = s["correct"] / s["count"] if s["count"] else None
        steps = sum(self.sums[mode]["steps"] for mode in MODES)
        out["steps"] = int(steps)
        out["low_step_fraction"] = self.sums[LOW]["steps"] / steps if steps else 0.0
        return out


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a metrics.jsonl (a torn last line from a crash is ignored)."""
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def adapt_summary(records: list[dict[str, Any]], train_wall_s: float) -> dict[str, Any]:
    """schedule.policy "adaptive": what the controller's measurements cost (``adapt_s``, and as a fraction of
    the training wall-clock, ``adapt_overhead``) and where it climbed; {} for a run without "adapt" records."""
    adapts = [r for r in records if r.get("kind") == "adapt"]
    if not adapts:
        return {}
    seconds = sum(r["adapt_s"] for r in adapts)
    return {"adapt_measurements": len(adapts), "adapt_s": seconds,
            "adapt_overhead": seconds / train_wall_s if train_wall_s else None,
            "adapt_climbs": [{"step": r["step"], "epoch": r["epoch"], "from_size": r["size"], "to_size": r["to_size"]}
                             for r in adapts if r["decision"] == "climb"]}


def summarize(records: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json: final/best validation accuracy, wall-clock, low-step fraction, step times per mode."""
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    evaluated = [r for r in epochs if r.get("val_acc") is not None]
    summary: dict[str, Any] = {
        "epochs": len(epochs),
        "steps": len(steps),
        "final_val_acc": evaluated[-1]["val_acc"] if evaluated else None,
        "final_val_loss": evaluated[-1]["val_loss"] if evaluated else None,
        "best_val_acc": max((r["val_acc"] for r in evaluated), default=None),
        "train_wall_s": epochs[-1]["train_wall_s"] if epochs else 0.0,
        "low_step_fraction": sum(r["mode"] == LOW for r in steps) / len(steps) if steps else 0.0,
    }
    for mode in MODES:
        times = [r["step_s"] for r in steps if r["mode"] == mode]
        rates = [r["images_per_s"] for r in steps if r["mode"] == mode]
        summary[f"median_step_s_{mode}"] = statistics.median(times) if times else None
        summary[f"median_images_per_s_{mode}"] = statistics.median(rates) if rates else None
        summary[f"steps_{mode}"] = len(times)
    if steps and all("size" in r for r in steps):  # records since the resolution ladder carry the image height
        sizes = sorted({r["size"] for r in steps if r["mode"] == LOW})
        summary["low_steps_by_size"] = {str(h): sum(r["mode"] == LOW and r["size"] == h for r in steps) for h in sizes}
    summary.update(adapt_summary(records, summary["train_wall_s"]))
    shares = [r["cpu_busy_s"] / r["loop_wall_s"] for r in epochs if r.get("loop_wall_s")]
    # below ~0.9 on a one-thread CPU run: another process shared its core, so its wall-clock is inflated
    summary["min_cpu_share"] = round(min(shares), 3) if shares else None
    full, low = summary["median_step_s_full"], summary["median_step_s_low"]
    summary["low_full_step_ratio"] = low / full if full and low else None
    summary.update(extra or {})
    return summary
