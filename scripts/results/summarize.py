"""Print one Markdown row per lowmode-train run directory: the method knobs, final accuracy, wall-clock.

    .venv/bin/python scripts/results/summarize.py RUN_DIR [RUN_DIR ...]

Reads RUN/config.toml (resolved config) and RUN/summary.json; times are training wall-clock in seconds
(evaluation excluded), step times are medians in milliseconds.
"""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

HEADER = ("| run | seed | policy | p | full epochs after drop | BN policy | BN recal batches | data | "
          "final acc (%) | best acc (%) | train wall (s) | low-step fraction | full step (ms) | low step (ms) |\n"
          "|" + "---|" * 14)


def row(run: Path) -> str:
    """One table row for ``run``; missing step times print as '-'."""
    cfg = tomllib.loads((run / "config.toml").read_text())
    s = json.loads((run / "summary.json").read_text())
    ms = lambda v: "-" if v is None else f"{1000 * v:.1f}"  # noqa: E731
    sc, m = cfg["schedule"], cfg["model"]
    return (f"| {run.name} | {cfg['train']['seed']} | {sc['policy']} | {sc['p']} | {sc['full_epochs_after_milestone']} | "
            f"{m['bn_policy']} | {m['bn_recalibrate_batches']} | {Path(cfg['data']['dir']).name} | "
            f"{100 * s['final_val_acc']:.2f} | {100 * s['best_val_acc']:.2f} | {s['train_wall_s']:.1f} | "
            f"{s['low_step_fraction']:.3f} | {ms(s['median_step_s_full'])} | {ms(s['median_step_s_low'])} |")


if __name__ == "__main__":
    print(HEADER)
    for arg in sys.argv[1:]:
        print(row(Path(arg.rstrip("/"))))
