"""Per-seed and mean Fashion-MNIST table for docs/RESULTS.md (Markdown on stdout, JSON to --json).

    .venv/bin/python scripts/results/aggregate.py --json docs/results/fmnist_table.json \
        0:/tmp/results-runs/s0_baseline:/tmp/results-runs/s0_lowmode 1:... 2:...

Each argument is SEED:BASELINE_RUN:LOWMODE_RUN. Uses trainer.report.compare's own definitions: target = the
baseline's final validation accuracy, time = training wall-clock (s, evaluation excluded) at the first
epoch at or above the target. Because lowmode may never reach that target, the table also gives the
reverse view: the baseline's time to lowmode's final accuracy (how much sooner a full-only run gets
there). Accuracies in %, times in s, step times are medians in ms.
"""
from __future__ import annotations

import argparse
import json
import statistics

from trainer.report.compare import load_run, time_to_target


def seed_row(seed: str, base_dir: str, low_dir: str) -> dict:
    """Numbers for one seed; None where a target was never reached."""
    base, low = load_run(base_dir), load_run(low_dir)
    b_final, l_final = base.evaluated[-1]["val_acc"], low.evaluated[-1]["val_acc"]
    t_base, t_low = time_to_target(base, b_final), time_to_target(low, b_final)
    t_base_at_low = time_to_target(base, l_final)
    wall_b, wall_l = base.epochs[-1]["train_wall_s"], low.epochs[-1]["train_wall_s"]
    full, lowstep = low.summary["median_step_s_full"], low.summary["median_step_s_low"]
    return {
        "seed": int(seed), "baseline_final_acc": 100 * b_final, "lowmode_final_acc": 100 * l_final,
        "acc_gap_points": 100 * (b_final - l_final),
        "baseline_time_to_target_s": t_base, "lowmode_time_to_target_s": t_low,
        "time_reduction": None if t_low is None else 1 - t_low / t_base,
        "baseline_train_wall_s": wall_b, "lowmode_train_wall_s": wall_l, "run_wall_reduction": 1 - wall_l / wall_b,
        "baseline_time_to_lowmode_final_s": t_base_at_low,
        "low_step_fraction": low.summary["low_step_fraction"],
        "baseline_full_step_ms": 1000 * base.summary["median_step_s_full"],
        "lowmode_full_step_ms": 1000 * full, "lowmode_low_step_ms": 1000 * lowstep, "low_full_ratio": lowstep / full,
    }


def fmt(v, spec: str) -> str:
    return "never" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    """Markdown: one line per seed plus the mean (mean only over values that exist)."""
    cols = [("seed", "seed", "d"), ("baseline final acc (%)", "baseline_final_acc", ".2f"),
            ("lowmode final acc (%)", "lowmode_final_acc", ".2f"), ("gap (points)", "acc_gap_points", ".2f"),
            ("baseline time to target (s)", "baseline_time_to_target_s", ".1f"),
            ("lowmode time to target (s)", "lowmode_time_to_target_s", ".1f"),
            ("baseline run (s)", "baseline_train_wall_s", ".1f"), ("lowmode run (s)", "lowmode_train_wall_s", ".1f"),
            ("run wall reduction", "run_wall_reduction", ".1%"),
            ("baseline time to lowmode's final acc (s)", "baseline_time_to_lowmode_final_s", ".1f"),
            ("low-step fraction", "low_step_fraction", ".3f"), ("full step (ms)", "lowmode_full_step_ms", ".1f"),
            ("low step (ms)", "lowmode_low_step_ms", ".1f"), ("low/full", "low_full_ratio", ".2f")]
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r[k], s) for _, k, s in cols) + " |")
    mean = {}
    for _, k, _ in cols[1:]:
        vals = [r[k] for r in rows if r[k] is not None]
        mean[k] = statistics.fmean(vals) if len(vals) == len(rows) else None
    lines.append("| mean | " + " | ".join(fmt(mean[k], s) for _, k, s in cols[1:]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="SEED:BASELINE_RUN:LOWMODE_RUN")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()
    rows = [seed_row(*p.split(":")) for p in args.pairs]
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
