#!/usr/bin/env python3
"""docs/RESULTS.md 0.7: the adaptive schedule's candidate signals along a run traced with the in-loop probe
(``logging.low_step_value_every``, several low sizes), one row per epoch: the rung trained at, the full-
resolution validation accuracy, and per low size rho (ratio of the epoch's summed dot products) over the
low/full step cost c of that size (rho / c > 1: low steps pay to first order), the low/full gradient cosine,
and the loss gap loss_low / loss_full; plus the mean full-resolution loss of the epoch's probe batches.

    .venv/bin/python scripts/results/signal_trace_table.py RUN_DIR STEP_COSTS_JSON > table.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str]) -> int:
    run, costs_path = Path(argv[0]), Path(argv[1])
    costs = json.loads(costs_path.read_text())["keep_ratio_by_size"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    probes, sizes, val = defaultdict(list), {}, {}
    for r in records:
        if r.get("kind") == "step":
            sizes[r["epoch"]] = r["size"]
        elif r.get("kind") == "probe":
            probes[r["epoch"]].append(r)
        elif r.get("kind") == "epoch":
            val[r["epoch"]] = r.get("val_acc")
    heights = sorted(probes[min(probes)][0]["by_size"], key=int)
    head = " | ".join(f"{h} px: rho/c, cos, gap" for h in heights)
    print(f"| epoch | trained at | val acc | full-res probe loss | {head} |")
    print("|---" * (4 + len(heights)) + "|")
    for epoch in sorted(probes):
        batch = probes[epoch]
        full_dot = sum(p["full_full_dot"] for p in batch)
        loss_full = sum(p["loss_full"] for p in batch) / len(batch)
        cells = []
        for h in heights:
            rho = sum(p["by_size"][h]["low_full_dot"] for p in batch) / full_dot
            cos = sum(p["by_size"][h]["cos_low_full"] for p in batch) / len(batch)
            gap = sum(p["by_size"][h]["loss_low"] for p in batch) / len(batch) / loss_full
            cells.append(f"{rho / costs[h]:.2f}, {cos:.2f}, {gap:.2f}")
        acc = f"{100 * val[epoch]:.1f}%" if val.get(epoch) is not None else "–"
        print(f"| {epoch} | {sizes.get(epoch, '–')} | {acc} | {loss_full:.3f} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
