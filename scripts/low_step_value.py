#!/usr/bin/env python3
"""What a low step buys at each saved checkpoint of a run: rho, the first-order loss decrease of a low step
relative to a full one (trainer/run/low_step_value.py), against the measured low/full step cost ratio.

    .venv/bin/python scripts/low_step_value.py RUN_DIR [--batches 8] [--batch-size 64]
        [--low-kernels keep|pool] [--step-costs BENCH_JSON] [--json OUT]

Every checkpoint in RUN/checkpoints (oldest first) is probed on the same --batches full-resolution
training batches (no augmentation; 2 x --batch-size images, split into halves), with the run's own
low mode; a baseline run (no low mode) is converted after loading its weights, with --low-kernels. With
--step-costs (a trainer.bench JSON) each row says whether low steps pay there (rho > c).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import make_loader  # noqa: E402
from trainer.run.build import build_run_model  # noqa: E402
from trainer.run.checkpoint import CheckpointManager, load_checkpoint  # noqa: E402
from trainer.run.config import load_config  # noqa: E402
from trainer.run.low_step_value import probe, summarise  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64, help="images per half (A and B each)")
    parser.add_argument("--low-kernels", choices=("keep", "pool"), default="keep",
                        help="for a baseline run: the low step to probe")
    parser.add_argument("--step-costs", type=Path, help="trainer.bench JSON: ratio (pool) / keep_ratio (keep)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = load_config(args.run / "config.toml")
    mc = config.model
    if not mc.dual_mode:  # a baseline: the same weights, given a low mode (frozen BN keeps the state keys)
        mc = dataclasses.replace(mc, dual_mode=True, low_kernels=args.low_kernels, bn_policy="frozen")
    loader = make_loader(config.data.dir, "train", batch_size_per_rank=2 * args.batch_size, seed=config.train.seed,
                         schedule=None, augment=False, num_workers=0, batches_ahead=0,
                         channels_last=mc.channels_last)
    model, _ = build_run_model(mc, loader.manifest)
    if mc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = []
    for batch in loader.epoch(0):
        batches.append((batch.images, batch.labels))
        if len(batches) == args.batches:
            break
    costs = json.loads(args.step_costs.read_text()) if args.step_costs else None
    cost = None if costs is None else costs["keep_ratio" if mc.low_kernels == "keep" else "ratio"]
    rows = []
    for path in CheckpointManager(args.run / "checkpoints").existing():
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        parts = [probe(model, images, labels, ratio=loader.manifest.ratio,
                       method=loader.manifest.method or "gaussian")
                 for images, labels in batches]
        row = {"checkpoint": path.name, **{k: state["progress"][k] for k in ("epoch", "step_in_epoch", "global_step")},
               **summarise(parts)}
        if cost is not None:
            row.update(cost_ratio=cost, low_steps_pay=row["rho"] > cost)
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
