"""Preprocess benchmark: build a CIFAR-10-sized synthetic set and compare with copying its output.

    python -m preprocess.bench --json

Builds 60,000 train + 10,000 val synthetic 32x32x3 images (raw encoding, ratio 2, gaussian) with
``--workers`` processes (default: all CPUs), then times ``cp -r`` of the output folder, and prints
``{"images_per_s", "seconds", "copy_seconds", "ratio_to_copy", "peak_rss_mb"}``. The issue's
targets: ratio_to_copy <= 3 and peak RSS <= 2 GiB on 2 cores. Timings include process start-up
costs inside the build (not the interpreter start), and vary with other load on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from preprocess.build import run_build
from preprocess.config import BuildConfig


def _peak_rss_mb() -> float:
    """Largest resident set of this process or any single waited-for child (workers, cp), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


def run_bench(num_train: int, num_val: int, workers: int, work_dir: Path) -> dict[str, float]:
    """Build into ``work_dir/data``, copy it to ``work_dir/copy``; return the figures."""
    out = work_dir / "data"
    config = BuildConfig(source="synthetic", out=str(out), num_train=num_train, num_val=num_val, size=32,
                         channels=3, num_classes=10, encoding="raw", workers=workers)
    start = time.perf_counter()
    run_build(config)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(out), str(work_dir / "copy")], check=True)
    copy_seconds = time.perf_counter() - start
    return {"images_per_s": round((num_train + num_val) / seconds, 1), "seconds": round(seconds, 3),
            "copy_seconds": round(copy_seconds, 3), "ratio_to_copy": round(seconds / copy_seconds, 2),
            "peak_rss_mb": round(_peak_rss_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--num-train", type=int, default=60_000)
    parser.add_argument("--num-val", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dir", help="scratch folder (default: a temporary folder, deleted afterwards)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = run_bench(args.num_train, args.num_val, args.workers, Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        print(", ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
