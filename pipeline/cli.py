"""``python -m pipeline``: inspect what a loader delivers, and benchmark loaders.

    python -m pipeline inspect DATA --split train --loader dali --seed 0 --epoch 0 --rank 0 \
        --world-size 1 --steps 5 --p 0.5 --json
    python -m pipeline inspect DATA --policy ramp --total-epochs 30 --ramp-end 0.6 --low-batch-scale 2
    python -m pipeline bench DATA --loader dali --mode low --batch-size 125 --seconds 10 --json
    python -m pipeline bench DATA --loader dali --mode full --device cuda --workers 4 --json

``inspect --json`` prints exactly ``{"steps_per_epoch": n, "steps": [{"step", "mode", "batch_size",
"shape", "keys"}, ...]}`` (scripts rely on it): ``steps_per_epoch`` is the number of steps of the
inspected epoch (it varies per epoch with ``--low-batch-scale`` > 1), ``batch_size`` the step's
per-rank batch. ``bench --json`` prints ``{"loader", "mode", "device", "batch_size", "images_per_s",
"ms_per_batch"}``. Bad input: one line ``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import torch

from pipeline.loader import KINDS, make_loader
from pipeline.loader_base import Loader
from pipeline.schedule import FULL, LOW, POLICIES, RAMP_SHAPES, ModeSchedule, ScheduleConfig
from preprocess.dataset_format import DatasetFormatError

BENCH_MODES = (FULL, LOW, "schedule")
BENCH_DEVICES = ("cpu", "cuda")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="dataset directory written by lowmode-preprocess build")
    parser.add_argument("--loader", choices=KINDS, default="dali", help="loader implementation (default: dali)")
    parser.add_argument("--batch-size", type=int, default=125, help="batch size per rank (default: 125)")
    parser.add_argument("--seed", type=int, default=0, help="run seed: sample order, modes, augmentation")
    parser.add_argument("--workers", type=int, default=2, help="torch DataLoader workers / DALI threads (default: 2)")
    parser.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="print the modes, shapes and keys of an epoch's steps")
    _common(inspect)
    inspect.add_argument("--split", default="train", help="split to read (default: train)")
    inspect.add_argument("--epoch", type=int, default=0)
    inspect.add_argument("--rank", type=int, default=0)
    inspect.add_argument("--world-size", type=int, default=1)
    inspect.add_argument("--steps", type=int, default=5, help="number of steps to show (default: 5)")
    inspect.add_argument("--start-step", type=int, default=0, help="first step to show (resume point)")
    inspect.add_argument("--p", type=float, default=0.5, help="low-mode probability per step (default: 0.5)")
    defaults = ScheduleConfig()
    inspect.add_argument("--policy", choices=POLICIES, default=defaults.policy,
                         help=f"schedule.policy (default: {defaults.policy})")
    inspect.add_argument("--ramp-end", type=float, default=defaults.ramp_end,
                         help=f"schedule.ramp_end, fraction of training where ramp's p reaches 0 "
                              f"(default: {defaults.ramp_end})")
    inspect.add_argument("--ramp-shape", choices=RAMP_SHAPES, default=defaults.ramp_shape,
                         help=f"schedule.ramp_shape (default: {defaults.ramp_shape})")
    inspect.add_argument("--low-batch-scale", type=int, default=defaults.low_batch_scale,
                         help="schedule.low_batch_scale: a low step takes k x the batch (default: "
                              f"{defaults.low_batch_scale})")
    inspect.add_argument("--ramp-start", type=float, default=defaults.ramp_start,
                         help=f"schedule.ramp_start (progressive; default: {defaults.ramp_start})")
    inspect.add_argument("--low-size", type=int, default=defaults.low_size,
                         help="schedule.low_size: the low height read / the ladder's start (default: the dataset's low)")
    inspect.add_argument("--constant-pixels", action="store_true", help="schedule.constant_pixels")
    inspect.add_argument("--total-epochs", type=int, default=None,
                         help="the run's number of epochs (needed by --policy ramp and progressive)")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    bench = sub.add_parser("bench", help="measure a loader's throughput (images/s) on the train split")
    _common(bench)
    bench.add_argument("--mode", choices=BENCH_MODES, default="schedule",
                       help="full: all full steps; low: all low; schedule: bernoulli p=0.5 (default)")
    bench.add_argument("--seconds", type=float, default=10.0, help="measuring time after one warm-up batch")
    bench.add_argument("--device", choices=BENCH_DEVICES, default="cpu",
                       help="where the batches are delivered: cpu, or cuda (DALI GPU pipeline, 'mixed' decode "
                            "for jpg; the clock is read after a device synchronisation)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run_inspect(args: argparse.Namespace) -> dict:
    """The steps start_step..start_step+steps-1 of one epoch as the loader delivers them."""
    if args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    config = ScheduleConfig(policy=args.policy, p=args.p, ramp_end=args.ramp_end, ramp_shape=args.ramp_shape,
                            low_batch_scale=args.low_batch_scale, ramp_start=args.ramp_start,
                            low_size=args.low_size, constant_pixels=args.constant_pixels)
    schedule = ModeSchedule(config, args.seed, total_epochs=args.total_epochs)
    loader = make_loader(
        args.data, args.split, batch_size_per_rank=args.batch_size, seed=args.seed, rank=args.rank,
        world_size=args.world_size, kind=args.loader, schedule=schedule, augment=not args.no_augment,
        num_workers=args.workers,
    )
    steps = []
    try:
        for batch in itertools.islice(loader.epoch(args.epoch, start_step=args.start_step), args.steps):
            shape = list(batch.images.shape)
            steps.append({"step": batch.step, "mode": batch.mode, "resolution": batch.resolution,
                          "batch_size": shape[0], "shape": shape,
                          "keys": batch.keys})
        steps_in_epoch = loader.steps_in_epoch(args.epoch)
    finally:
        loader.close()
    return {"steps_per_epoch": steps_in_epoch, "steps": steps}


def measure_throughput(loader: Loader, seconds: float, *, cuda: bool = False) -> dict:
    """Images per second ``loader`` delivers on its train split, epochs repeating until ``seconds`` pass.

    The first batch (pipeline start-up) is not counted. ``cuda``: batches live on the GPU, so the clock
    is read after ``torch.cuda.synchronize()`` (DALI hands batches over before their copies finish).
    """
    sync = _cuda_sync if cuda else (lambda: None)
    images = batches = 0
    start = None
    epoch = 0
    while start is None or time.perf_counter() - start < seconds:
        for batch in loader.epoch(epoch):
            if start is None:
                sync()
                start = time.perf_counter()
                continue
            images += batch.images.shape[0]
            batches += 1
            if time.perf_counter() - start >= seconds:
                break
        epoch += 1
    sync()
    elapsed = time.perf_counter() - start
    return {"images_per_s": round(images / elapsed, 1), "ms_per_batch": round(1000 * elapsed / max(batches, 1), 3)}


def _cuda_sync() -> None:
    torch.cuda.synchronize()


def run_bench(args: argparse.Namespace) -> dict:
    """Images per second delivered on the train split (epochs repeat until ``--seconds`` pass)."""
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    p = {FULL: 0.0, LOW: 1.0, "schedule": 0.5}[args.mode]
    loader = make_loader(
        args.data, "train", batch_size_per_rank=args.batch_size, seed=args.seed, kind=args.loader,
        schedule=ModeSchedule(ScheduleConfig(p=p), args.seed), augment=not args.no_augment,
        num_workers=args.workers, device=args.device,
    )
    try:
        measured = measure_throughput(loader, args.seconds, cuda=args.device == "cuda")
    finally:
        loader.close()
    return {"loader": args.loader, "mode": args.mode, "device": args.device, "batch_size": args.batch_size,
            **measured}


def _print_human(args: argparse.Namespace, result: dict) -> None:
    if args.command == "bench":
        print(f"{result['loader']} {result['mode']} on {result['device']}, batch {result['batch_size']}: "
              f"{result['images_per_s']:.0f} images/s, {result['ms_per_batch']:.2f} ms/batch")
        return
    print(f"steps in epoch {args.epoch}: {result['steps_per_epoch']}")
    for s in result["steps"]:
        keys = " ".join(s["keys"][:4]) + (" ..." if len(s["keys"]) > 4 else "")
        print(f"step {s['step']:5d}  {s['mode']:4s}  batch {s['batch_size']:4d}  {'x'.join(map(str, s['shape']))}  "
              f"{keys}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run_inspect(args) if args.command == "inspect" else run_bench(args)
    except (DatasetFormatError, ValueError, OSError, ImportError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        _print_human(args, result)
    return 0
