"""Where a run's training wall-clock goes, per step mode: steps, total and mean step time, data wait.

    .venv/bin/python scripts/results/step_breakdown.py RUN_DIR [RUN_DIR ...]

Reads RUN/metrics.jsonl step records (step_s includes the wait for the batch; data_wait_s is that
wait). Prints Markdown; times in s (totals) and ms (means).
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def breakdown(run: Path) -> dict[str, tuple[int, float, float]]:
    """mode -> (steps, total step seconds, total data-wait seconds)."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    with open(run / "metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "step":
                a = acc[r["mode"]]
                a[0] += 1
                a[1] += r["step_s"]
                a[2] += r.get("data_wait_s") or 0.0
    return {m: tuple(v) for m, v in acc.items()}


if __name__ == "__main__":
    print("| run | mode | steps | total (s) | mean step (ms) | mean data wait (ms) |\n|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        for mode, (n, tot, wait) in sorted(breakdown(Path(arg)).items()):
            print(f"| {Path(arg).name} | {mode} | {n} | {tot:.1f} | {1000 * tot / n:.1f} | {1000 * wait / n:.1f} |")
