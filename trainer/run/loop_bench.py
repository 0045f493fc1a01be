"""The step loop's cost per mode: the real ``Trainer`` on synthetic shards, beside the step benchmark.

    python -m trainer.bench --loop --model resnet8 --size 28 --in-channels 1 --threads 1 --json
    python -m trainer.run.loop_bench --model resnet18 --device cuda --bf16 --channels-last --json

What runs: (1) the step benchmark of :mod:`trainer.run.step_bench` (``python -m trainer.bench``) for the
same model, batch, image size, channels, threads and device (``--bench-warmup`` / ``--bench-iters``
rounds); (2) a synthetic dataset built with the preprocess package in a temporary directory (``--size``
× ``--size`` × ``--in-channels``, 10 classes, r = ``--ratio``, ``--encoding``), exactly as large as the
measured steps need; (3) ``trainer.run.train.run_training`` on it, one epoch (the real loop: loader,
``Trainer._step``, the StepWindow's sync points every ``--sync-every-steps``, metrics records, the
epoch end), and the step records of its ``metrics.jsonl`` are read back.

``--schedule mixed`` (default): one run with the bernoulli schedule at p = 0.5 (no warm-up or
milestone windows), split by mode, so the modes interleave as in training and load from other
processes on a shared machine hits both alike; the epoch is cut so that each mode has ``--warmup`` +
``--steps`` steps or more. ``--schedule separate``: a full-only run (p = 0) and then a low-only run
(p = 1), ``--warmup`` + ``--steps`` steps each. ``--baseline`` adds a run of the unconverted model
(``model.dual_mode = false``, ``schedule.policy = "none"``) for the lowmode-vs-baseline full step.

Each mode's first ``--warmup`` steps (of each run) are dropped; the rest give medians.

Output: one flat JSON object (``--json``), the step benchmark's keys (see trainer/run/step_bench.py)
plus ``loop_full_ms`` / ``loop_low_ms`` (median ``step_s`` of the measured steps, ms: from asking
the loader for the batch to the end of the optimiser update, so data wait included; on CUDA between
the steps' end events), ``loop_ratio`` = loop_low_ms / loop_full_ms, ``data_wait_share`` = Σ
``data_wait_s`` / Σ ``step_s`` over all measured steps, ``loop_data_wait_full_ms`` /
``loop_data_wait_low_ms`` (medians), ``loop_steps_full`` / ``loop_steps_low`` (steps measured),
``loop_vs_bench`` = loop_ratio / ratio, and the loop's settings (``loop_schedule``, ``loop_loader``,
``loop_num_workers``, ``loop_batches_ahead``, ``loop_sync_every_steps``, ``loop_warmup``); with ``--baseline`` also
``loop_baseline_full_ms`` and ``loop_full_vs_baseline`` = loop_full_ms / loop_baseline_full_ms.
Bad options: one ``error:`` line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.loader import KINDS as LOADERS
from pipeline.schedule import FULL, LOW, MODES
from preprocess.dataset_format import ENCODINGS
from trainer.method.models import MODEL_NAMES
from trainer.run.step_bench import BenchConfig, print_result, run_benchmark

SCHEDULES = ("mixed", "separate")
NUM_CLASSES = 10
VAL_SAMPLES = 64


@dataclass(frozen=True)
class LoopBenchConfig:
    """One loop benchmark (validated on construction: ValueError naming the option)."""

    model: str = "resnet18"
    batch_size: int = 125
    size: int = 32
    in_channels: int = 3
    ratio: int = 2
    threads: int = 0
    device: str = "cpu"
    steps: int = 60
    """measured steps per mode"""
    warmup: int = 5
    """steps per mode (and run) dropped before the medians"""
    loader: str = "torch"
    num_workers: int = 2
    batches_ahead: int = 1
    encoding: str = "raw"
    schedule: str = "mixed"
    sync_every_steps: int = 50
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    baseline: bool = False
    bench_warmup: int = 3
    bench_iters: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"--model must be one of {list(MODEL_NAMES)}, got {self.model!r}")
        for name in ("batch_size", "size", "in_channels", "steps", "sync_every_steps", "bench_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("threads", "warmup", "num_workers", "batches_ahead", "bench_warmup", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.ratio < 2 or self.size % self.ratio:
            raise ValueError(f"--ratio must be >= 2 and divide --size {self.size}, got {self.ratio}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"--device must be 'cpu' or 'cuda' (the trainer takes its GPU from LOCAL_RANK), "
                             f"got {self.device!r}")
        if self.bf16 and self.device != "cuda":
            raise ValueError("--bf16 is for --device cuda (the trainer's bf16 autocast is GPU-only)")
        if self.compile and self.warmup < 1:
            raise ValueError("--warmup must be >= 1 with --compile (the first step of each mode compiles)")
        for name, choices in (("loader", LOADERS), ("schedule", SCHEDULES), ("encoding", ENCODINGS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"--{name} must be one of {list(choices)}, got {getattr(self, name)!r}")

    def bench_config(self) -> BenchConfig:
        """The step benchmark of the same model, shapes, threads and device."""
        return BenchConfig(model=self.model, batch_size=self.batch_size, device=self.device,
                           channels_last=self.channels_last, bf16=self.bf16, compile=self.compile,
                           warmup=max(self.bench_warmup, int(self.compile)), iters=self.bench_iters,
                           ratio=self.ratio, full_size=self.size, in_channels=self.in_channels, threads=self.threads)


def _train_config(cfg: LoopBenchConfig, data_dir: Path, *, p: float, baseline: bool = False):
    from trainer.run.config import config_from_dict

    return config_from_dict({
        "model": {"name": cfg.model, "dual_mode": not baseline, "channels_last": cfg.channels_last,
                  "compile": cfg.compile},
        "data": {"dir": str(data_dir), "loader": cfg.loader, "num_workers": cfg.num_workers,
                 "batches_ahead": cfg.batches_ahead},
        "schedule": {"policy": "none" if baseline else "bernoulli", "p": p, "warmup_full_epochs": 0,
                     "full_epochs_after_milestone": 0},
        "optim": {"lr_milestones_epochs": []},
        "train": {"epochs": 1, "global_batch_size": cfg.batch_size, "seed": cfg.seed, "device": cfg.device,
                  "precision": "bf16" if cfg.bf16 else "fp32", "num_threads": cfg.threads,
                  "sync_every_steps": cfg.sync_every_steps},
        "checkpoint": {"keep": 1},
        "logging": {"wandb": "disabled", "progress": "lines", "print_every_steps": 10**9},
    }, "loop bench")


def _steps_needed(cfg: LoopBenchConfig, config) -> int:
    """Epoch-0 steps until every mode the run has reaches warmup + steps (the trainer's own schedule, a
    pure function of the config)."""
    from trainer.run.build import mode_schedule

    want = cfg.warmup + cfg.steps
    p, policy = config.schedule.p, config.schedule.policy
    if policy == "none" or p in (0.0, 1.0):
        return want
    schedule = mode_schedule(config)
    counts = dict.fromkeys(MODES, 0)
    step = 0
    while min(counts.values()) < want:
        counts[schedule.mode(0, step)] += 1
        step += 1
    return step


def _run_loop(cfg: LoopBenchConfig, work: Path, name: str, *, p: float, baseline: bool = False) -> list[dict]:
    """Build a dataset of exactly the needed steps, train one epoch on it, return its step records."""
    from preprocess.build import build_dataset
    from preprocess.config import BuildConfig
    from trainer.report.metrics import read_records
    from trainer.run.train import run_training

    config = _train_config(cfg, work / "data", p=p, baseline=baseline)
    steps = _steps_needed(cfg, config)
    data_dir = work / f"data-{steps * cfg.batch_size}"
    config = _train_config(cfg, data_dir, p=p, baseline=baseline)
    if not data_dir.exists():
        build_dataset(BuildConfig(source="synthetic", out=str(data_dir), size=cfg.size, channels=cfg.in_channels,
                                  num_classes=NUM_CLASSES, num_train=steps * cfg.batch_size, num_val=VAL_SAMPLES,
                                  ratio=cfg.ratio, encoding=cfg.encoding, seed=cfg.seed))
    run_dir = work / f"run-{name}"
    run_training(config, run_dir, resume="never")
    records = [r for r in read_records(run_dir / "metrics.jsonl") if r.get("kind") == "step"]
    if len(records) != steps:
        raise RuntimeError(f"loop bench run {name}: {len(records)} step records, expected {steps}")
    return records


def _measured(records: list[dict], warmup: int) -> dict[str, list[dict]]:
    """Per mode, the step records after that mode's first ``warmup`` steps."""
    by_mode: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for record in records:
        by_mode[record["mode"]].append(record)
    return {mode: rs[warmup:] for mode, rs in by_mode.items()}


def _median_ms(records: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in records) * 1e3


def run_loop_benchmark(cfg: LoopBenchConfig) -> dict[str, Any]:
    """The step benchmark's result plus the loop's keys (module docstring)."""
    result = run_benchmark(cfg.bench_config())
    with tempfile.TemporaryDirectory(prefix="lowmode-loop-bench-") as tmp:
        work = Path(tmp)
        if cfg.schedule == "mixed":
            measured = _measured(_run_loop(cfg, work, "mixed", p=0.5), cfg.warmup)
        else:
            measured = {FULL: _measured(_run_loop(cfg, work, "full", p=0.0), cfg.warmup)[FULL],
                        LOW: _measured(_run_loop(cfg, work, "low", p=1.0), cfg.warmup)[LOW]}
        baseline = _measured(_run_loop(cfg, work, "baseline", p=0.0, baseline=True), cfg.warmup)[FULL] \
            if cfg.baseline else None
    full_ms = round(_median_ms(measured[FULL], "step_s"), 3)
    low_ms = round(_median_ms(measured[LOW], "step_s"), 3)
    every = measured[FULL] + measured[LOW]
    loop_ratio = round(low_ms / full_ms, 4)
    result.update(
        loop_full_ms=full_ms,
        loop_low_ms=low_ms,
        loop_ratio=loop_ratio,
        data_wait_share=round(sum(r["data_wait_s"] for r in every) / sum(r["step_s"] for r in every), 4),
        loop_data_wait_full_ms=round(_median_ms(measured[FULL], "data_wait_s"), 3),
        loop_data_wait_low_ms=round(_median_ms(measured[LOW], "data_wait_s"), 3),
        loop_steps_full=len(measured[FULL]),
        loop_steps_low=len(measured[LOW]),
        loop_vs_bench=round(loop_ratio / result["ratio"], 4),
        loop_schedule=cfg.schedule,
        loop_loader=cfg.loader,
        loop_num_workers=cfg.num_workers,
        loop_batches_ahead=cfg.batches_ahead,
        loop_sync_every_steps=cfg.sync_every_steps,
        loop_warmup=cfg.warmup,
    )
    if baseline is not None:
        base_ms = round(_median_ms(baseline, "step_s"), 3)
        result.update(loop_baseline_full_ms=base_ms, loop_full_vs_baseline=round(full_ms / base_ms, 4))
    return result


def build_parser() -> argparse.ArgumentParser:
    defaults = LoopBenchConfig()
    parser = argparse.ArgumentParser(prog="python -m trainer.bench --loop", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=defaults.model, choices=MODEL_NAMES)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--size", type=int, default=defaults.size, help="full-mode image side (28 for Fashion-MNIST)")
    parser.add_argument("--in-channels", type=int, default=defaults.in_channels)
    parser.add_argument("--ratio", type=int, default=defaults.ratio)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="CPU threads (0: torch's default)")
    parser.add_argument("--device", default=defaults.device, help="cpu | cuda")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="measured steps per mode")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="steps per mode dropped first")
    parser.add_argument("--loader", default=defaults.loader, choices=LOADERS)
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers)
    parser.add_argument("--batches-ahead", type=int, default=defaults.batches_ahead,
                        help="batches the loader prepares on its handover thread (0: on the training thread)")
    parser.add_argument("--encoding", default=defaults.encoding, choices=ENCODINGS)
    parser.add_argument("--schedule", default=defaults.schedule, choices=SCHEDULES)
    parser.add_argument("--sync-every-steps", type=int, default=defaults.sync_every_steps)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--baseline", action="store_true", help="also time the unconverted model's full step")
    parser.add_argument("--bench-warmup", type=int, default=defaults.bench_warmup)
    parser.add_argument("--bench-iters", type=int, default=defaults.bench_iters)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    as_json = args.pop("json")
    try:
        cfg = LoopBenchConfig(**args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if as_json:  # stdout holds the JSON only; the trainer's info lines are muted
        logging.getLogger("lowmode.train").setLevel(logging.WARNING)
    print_result(run_loop_benchmark(cfg), as_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
