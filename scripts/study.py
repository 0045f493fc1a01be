#!/usr/bin/env python3
"""Run an accuracy-vs-time study: families x budgets x seeds of lowmode-train runs, then the frontier.

    .venv/bin/python scripts/study.py scripts/studies/fmnist.toml --out /work/studies/fmnist [--jobs 2]
        [--seeds 0,1] [--only baseline,paper] [--budgets 16] [--dry-run] [--no-compare] [--allow-dirty]

Resumable by construction: rerunning the same command skips finished runs (RUN/status.json "done"),
resumes half-finished ones from their newest checkpoint (lowmode-train --resume auto; a resumed run's
training wall-clock continues exactly, see docs/ARCHITECTURE.md), and starts the rest. Each run is
pinned to one CPU (``--jobs`` runs at a time, one per CPU) with one intra-op thread and an in-process
loader, so concurrent runs do not share a core; the CPU model and the 1-minute load average at each run's start and end
is recorded in RUN/study.json, with the code's git commit. A study imports the code it runs from for
hours, so it refuses a checkout whose tracked files have uncommitted changes (an edit saved mid-study
once killed a run with a half-written config schema): run it from a frozen copy, e.g.
``git worktree add ../study_code HEAD``, or pass ``--allow-dirty``. When every run is done,
``lowmode-compare --frontier`` over all of them writes OUT/compare/ (frontier.md/.json/.png and Table 1).

Spec (TOML)::

    [study]
    preset = "configs/fmnist_small_baseline.toml"    # base config of every run
    data = "data/fashion-mnist"                      # data.dir
    seeds = [0, 1, 2]
    set = ["data.num_workers=0"]                     # overrides for every run
    step_costs = "docs/results/…/step_costs.json"    # optional: a trainer.bench JSON; the final comparison
                                                     # also writes the frontier in full-step equivalents
    frontier_from = "scripts/studies/….toml"         # optional, for a study without a baseline family: the
                                                     # spec (same preset and data) whose baseline is its frontier
    [study.milestones]                               # epochs -> LR milestones (the budget's schedule)
    8 = [3, 5]
    12 = [5, 7]
    [[family]]
    name = "baseline"
    budgets = [8, 12]
    set = ['schedule.policy="none"', "model.dual_mode=false"]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[1]
CONTENDED_SHARE = 0.9
"""A run's epoch whose process had its CPU less than this share of the loop's wall time (summary.json
min_cpu_share) shared its core with another process: the study warns, since its wall-clock is inflated."""


@dataclass
class RunSpec:
    family: str
    epochs: int
    seed: int
    run_dir: Path
    overrides: list[str] = field(default_factory=list)


def _check_frontier_from(path: Path, study: dict) -> None:
    """``frontier_from`` names a committed spec with the same preset and data and a baseline family."""
    other = ROOT / study["frontier_from"]
    if not other.is_file():
        raise SystemExit(f"{path}: [study] frontier_from {study['frontier_from']!r} is not a file under {ROOT}")
    spec = tomllib.loads(other.read_text())
    theirs = spec.get("study", {})
    for key in ("preset", "data"):
        if theirs.get(key) != study[key]:
            raise SystemExit(f"{path}: [study] frontier_from {study['frontier_from']!r} has {key} "
                             f"{theirs.get(key)!r}, this study {study[key]!r}: its baseline is not this study's frontier")
    if not any(fam.get("name") == "baseline" for fam in spec.get("family", [])):
        raise SystemExit(f"{path}: [study] frontier_from {study['frontier_from']!r} has no baseline family")


def load_spec(path: Path, out: Path, seeds: list[int] | None, only: set[str] | None,
              budgets: set[int] | None = None) -> tuple[dict, list[RunSpec]]:
    """The study settings and every run it defines, seed-major (a first seed's ranking comes early), then
    family in spec order, then budget."""
    spec = tomllib.loads(path.read_text())
    study = spec.get("study", {})
    for key in ("preset", "data"):
        if key not in study:
            raise SystemExit(f"{path}: [study] lacks {key!r}")
    if "step_costs" in study and not (ROOT / study["step_costs"]).is_file():
        raise SystemExit(f"{path}: [study] step_costs {study['step_costs']!r} is not a file under {ROOT}")
    if "frontier_from" in study:
        _check_frontier_from(path, study)
    milestones = {int(k): v for k, v in study.get("milestones", {}).items()}
    runs = []
    for fam in spec.get("family", []):
        name = fam["name"]
        if only and name not in only:
            continue
        for epochs in fam["budgets"]:
            if budgets and epochs not in budgets:
                continue
            if epochs not in milestones:
                raise SystemExit(f"{path}: family {name!r} budget {epochs} has no [study.milestones] entry")
            for seed in (seeds if seeds is not None else fam.get("seeds", study.get("seeds", [0]))):
                overrides = [f"data.dir={json.dumps(str(study['data']))}", f"train.epochs={epochs}",
                             f"optim.lr_milestones_epochs={milestones[epochs]}", f"train.seed={seed}",
                             "train.num_threads=1", "data.num_workers=0", 'logging.wandb="disabled"',
                             'logging.progress="lines"', "logging.print_every_steps=1000000",
                             *study.get("set", []), *fam.get("set", [])]
                runs.append(RunSpec(name, epochs, seed, out / name / f"e{epochs:03d}_s{seed}", overrides))
    order = {name: i for i, name in enumerate(f["name"] for f in spec.get("family", []))}
    return study, sorted(runs, key=lambda r: (r.seed, order[r.family], r.epochs))


def state(run: RunSpec) -> str:
    status = run.run_dir / "status.json"
    if not status.is_file():
        return "new"
    return json.loads(status.read_text()).get("state", "unknown")


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_model() -> str:
    """The CPU's model name: timings from different machines must not share one frontier."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def code_version(root: Path = ROOT) -> dict:
    """{"commit": HEAD's hash or None outside a git checkout (or without git), "dirty": tracked files with
    uncommitted changes}. The twin of trainer.report.rundir.git_revision (env.json), which says only whether
    the tree is dirty; this launcher imports none of the code it runs, so it asks git itself."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": []}
        changed = git("status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": []}
    return {"commit": head.stdout.strip(), "dirty": sorted(line[3:] for line in changed)}


def run_one(run: RunSpec, preset: str, cpus: Queue, log, code: dict | None = None) -> int:
    cpu = cpus.get()
    try:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        record = {"family": run.family, "epochs": run.epochs, "seed": run.seed, "cpu": cpu,
                  "cpu_model": cpu_model(), "load_start": _loadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "resumed": state(run) not in ("new",), "code": code}
        cmd = [sys.executable, "-m", "trainer", "--config", str(ROOT / preset), "--run-dir", str(run.run_dir)]
        for override in run.overrides:
            cmd += ["--set", override]
        env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", PYTHONPATH=str(ROOT))
        start = time.monotonic()
        with open(run.run_dir / "train.log", "a") as out:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None)
        record.update(load_end=_loadavg(), process_wall_s=time.monotonic() - start, exit_code=proc.returncode)
        history = run.run_dir / "study.json"
        past = json.loads(history.read_text()) if history.is_file() else []
        history.write_text(json.dumps([*past, record], indent=2) + "\n")
        summary = run.run_dir / "summary.json"
        share = json.loads(summary.read_text()).get("min_cpu_share") if summary.is_file() else None
        log(f"{run.family} e{run.epochs} s{run.seed}: exit {proc.returncode} in {record['process_wall_s']:.0f} s "
            f"(cpu {cpu}, load {record['load_start']:.2f} -> {record['load_end']:.2f})"
            + (f" -- WARNING: an epoch had its core only {share:.0%} of the time; its wall-clock is inflated"
               if share is not None and share < CONTENDED_SHARE else ""))
        return proc.returncode
    finally:
        cpus.put(cpu)


def export(runs: list[RunSpec], dest: Path) -> int:
    """Compact copies of the finished runs (no checkpoints, no per-step records; epoch records and the adaptive
    controller's few "adapt" records) for docs/results."""
    done = [r for r in runs if state(r) == "done"]
    for run in done:
        target = dest / run.family / run.run_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.toml", "summary.json", "status.json", "study.json"):
            if (run.run_dir / name).is_file():
                (target / name).write_bytes((run.run_dir / name).read_bytes())
        epochs = [line for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()
                  if json.loads(line).get("kind") in ("epoch", "adapt")]
        (target / "metrics.jsonl").write_text("\n".join(epochs) + "\n")
    print(f"exported {len(done)} finished runs to {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seeds", help="comma-separated seeds (default: the spec's)")
    parser.add_argument("--only", help="comma-separated family names")
    parser.add_argument("--budgets", help="comma-separated budgets (epochs) to run of each family (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="run even though the code's tracked files have uncommitted changes")
    parser.add_argument("--export", type=Path, metavar="DIR",
                        help="copy each finished run's config, summary, study record and epoch records (what "
                             "lowmode-compare --frontier reads) to DIR/<family>/<run>/, then exit")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    only = set(args.only.split(",")) if args.only else None
    budgets = {int(b) for b in args.budgets.split(",")} if args.budgets else None
    study, runs = load_spec(args.spec, args.out, seeds, only, budgets)
    if args.export:
        return export(runs, args.export)
    todo = [r for r in runs if state(r) != "done"]
    print(f"{args.spec}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run "
          f"({args.jobs} at a time)", flush=True)
    if args.dry_run:
        for r in runs:
            print(f"  {state(r):>8}  {r.run_dir}")
        return 0
    code = code_version()
    if code["dirty"] and not args.allow_dirty:
        shown = ", ".join(code["dirty"][:5]) + (", ..." if len(code["dirty"]) > 5 else "")
        print(f"study: {ROOT} has uncommitted changes ({shown}); a study imports this code for hours, so run it "
              f"from a frozen copy (git worktree add ../study_code HEAD) or pass --allow-dirty", file=sys.stderr)
        return 2
    cpus: Queue = Queue()
    available = sorted(os.sched_getaffinity(0))
    for i in range(args.jobs):
        cpus.put(available[i % len(available)] if len(available) >= args.jobs else None)
    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(lambda r: run_one(r, study["preset"], cpus, lambda m: print(m, flush=True), code), todo))
    failed = [r for r, rc in zip(todo, codes) if rc != 0]
    for r in failed:
        print(f"FAILED: {r.run_dir} (see {r.run_dir / 'train.log'})", file=sys.stderr)
    finished = [r for r in runs if state(r) == "done"]
    if not any(r.family == "baseline" for r in runs) and not args.no_compare:
        where = (f"{study['frontier_from']}'s baseline" if "frontier_from" in study else
                 "this spec's baseline family (not selected by --only)" if only else "another study's")
        print(f"no baseline among these runs: their frontier is {where} (scripts/results/adaptive_study_report.sh "
              "compares them with it)")
    elif not args.no_compare and finished:
        cmd = [sys.executable, "-m", "trainer.report.compare", *[str(r.run_dir) for r in finished], "--frontier",
               "--out", str(args.out / "compare")]
        if "step_costs" in study:
            cmd += ["--step-costs", str(ROOT / study["step_costs"])]
        subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
