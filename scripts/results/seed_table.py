#!/usr/bin/env python3
"""Per family and budget: final accuracy over all seeds, and training wall-clock per CPU model.

    .venv/bin/python scripts/results/seed_table.py docs/results/study_cifar10/runs

Reads the compact run copies that ``scripts/study.py --export`` writes (RUN/summary.json, RUN/study.json).
Runs whose study.json has no ``cpu_model`` (studies before it was recorded) are grouped under
``--default-cpu``. Prints a markdown table: family, epochs, seeds, accuracy mean ± sd, then the mean
training wall-clock per CPU model — timings of different machines are never averaged together.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="folder of <family>/<run>/ copies")
    parser.add_argument("--default-cpu", default="unrecorded", help="CPU name for runs without cpu_model")
    args = parser.parse_args()
    acc, wall, seeds = defaultdict(list), defaultdict(lambda: defaultdict(list)), defaultdict(list)
    cpus: list[str] = []
    for summary_path in sorted(args.runs.glob("*/*/summary.json")):
        run = summary_path.parent
        record = json.loads((run / "study.json").read_text())[-1]
        summary = json.loads(summary_path.read_text())
        key = (record["family"], record["epochs"])
        cpu = record.get("cpu_model", args.default_cpu)
        if cpu not in cpus:
            cpus.append(cpu)
        acc[key].append(100 * summary["final_val_acc"])
        wall[key][cpu].append(summary["train_wall_s"])
        seeds[key].append(record["seed"])
    print("| family | epochs | seeds | final acc (mean ± sd) | " + " | ".join(f"train s, {c}" for c in cpus) + " |")
    print("|---|---|---|---|" + "---|" * len(cpus))
    for key in sorted(acc, key=lambda k: (k[0] != "baseline", k)):
        values = acc[key]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        times = [f"{statistics.mean(wall[key][c]):.0f} (n={len(wall[key][c])})" if wall[key][c] else "–" for c in cpus]
        print(f"| {key[0]} | {key[1]} | {','.join(map(str, sorted(seeds[key])))} | {statistics.mean(values):.2f}% ± {sd:.2f} | "
              + " | ".join(times) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
