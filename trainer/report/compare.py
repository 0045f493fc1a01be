"""Compare run directories: the paper's Table 1 (Markdown) and two PNG plots.

    lowmode-compare runs/baseline runs/lowmode [--target-acc 0.94] [--baseline RUN] [--out DIR]

Per run: final validation error; time to the target accuracy (default: the baseline's final
accuracy) and its reduction against the baseline; median step time of each mode and the
iteration-time reduction 1 - t_low / t_full (the paper's 63% for ResNet-18); low-step fraction.
Time is training wall-clock (``train_wall_s``: evaluation excluded), read at epoch ends, so a
time-to-target is the wall-clock of the first evaluated epoch at or above the target.
The baseline is ``--baseline``, else the first run with schedule.policy "none" (or no low steps).

Writes DIR/table.md, DIR/compare.json, DIR/accuracy_vs_time.png, DIR/velocity.png and DIR/compare.png
(both plots side by side). With ``--frontier`` (many runs: the baseline at several budgets, variants at
one or more) it also writes the accuracy-vs-time frontier (:mod:`trainer.report.frontier`):
DIR/frontier.md, DIR/frontier.json and DIR/frontier.png, and prints that table first.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.report import frontier as frontier_view
from trainer.report.metrics import read_records, summarize
from trainer.report.rundir import RunDir


class CompareError(ValueError):
    """A run directory cannot be compared (message names the directory and what is missing)."""


@dataclass
class Run:
    """What compare needs from one run directory."""

    path: Path
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    policy: str
    label: str = ""
    derived: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    """Flat {"section.key": value} of RUN/config.toml (empty when the run has none)."""
    adapt: list[dict[str, Any]] = field(default_factory=list)
    """The adaptive controller's measurements ("adapt" records; empty for every other policy)."""
    sizes: list[tuple[int, float]] = field(default_factory=list)
    """(epoch, mean image height of its training steps), from the step records' ``size`` (runs since the
    resolution ladder; empty before)."""

    @property
    def evaluated(self) -> list[dict[str, Any]]:
        return [e for e in self.epochs if e.get("val_acc") is not None]


def load_run(path: str | Path) -> Run:
    """Read RUN/metrics.jsonl (required), RUN/summary.json (else summarised from metrics), RUN/config.toml."""
    run_dir = RunDir(path)
    if not run_dir.metrics.is_file():
        raise CompareError(f"{run_dir.path}: no {run_dir.metrics.name} (is this a lowmode-train run directory?)")
    records = list(read_records(run_dir.metrics))
    summary = run_dir.read_summary() or summarize(records)
    config = frontier_view.flatten(run_dir.read_config() or {})
    policy = config.get("schedule.policy", "unknown")
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not any(e.get("val_acc") is not None for e in epochs):
        raise CompareError(f"{run_dir.path}: no evaluated epoch in {run_dir.metrics.name}")
    return Run(run_dir.path, summary, epochs, policy, label=run_dir.path.name, config=config,
               sizes=_mean_size_per_epoch(records), adapt=[r for r in records if r.get("kind") == "adapt"])


def _mean_size_per_epoch(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    per_epoch: dict[int, list[int]] = {}
    for r in records:
        if r.get("kind") == "step" and "size" in r:
            per_epoch.setdefault(r["epoch"], []).append(r["size"])
    return [(e, sum(v) / len(v)) for e, v in sorted(per_epoch.items())]


def pick_baseline(runs: list[Run], explicit: str | None) -> Run:
    if explicit is not None:
        for run in runs:
            if run.path.resolve() == Path(explicit).resolve():
                return run
        raise CompareError(f"--baseline {explicit}: not among the compared runs")
    for run in runs:
        if run.policy == "none" or (run.policy == "unknown" and not run.summary.get("low_step_fraction")):
            return run
    print(f"lowmode-compare: no run has schedule.policy 'none'; using {runs[0].path} as the baseline", file=sys.stderr)
    return runs[0]


def time_to_target(run: Run, target: float) -> float | None:
    """Training wall-clock (s) at the first evaluated epoch with val_acc >= target; None if never."""
    for epoch in run.evaluated:
        if epoch["val_acc"] >= target:
            return float(epoch["train_wall_s"])
    return None


def _reduction(new: float | None, old: float | None) -> float | None:
    return None if new is None or not old else 1.0 - new / old


def analyse(runs: list[Run], baseline: Run, target: float) -> None:
    """Fill each run's ``derived`` numbers (fractions, seconds)."""
    base_time = time_to_target(baseline, target)
    for run in runs:
        final = run.evaluated[-1]["val_acc"]
        t = time_to_target(run, target)
        full, low = run.summary.get("median_step_s_full"), run.summary.get("median_step_s_low")
        run.derived = {
            "final_val_acc": final,
            "final_error": 1.0 - final,
            "best_val_acc": max(e["val_acc"] for e in run.evaluated),
            "time_to_target_s": t,
            "time_reduction": _reduction(t, base_time) if run is not baseline else None,
            "median_step_s_full": full,
            "median_step_s_low": low,
            "iteration_time_reduction": _reduction(low, full),
            "low_step_fraction": run.summary.get("low_step_fraction", 0.0),
            "train_wall_s": float(run.epochs[-1]["train_wall_s"]),
        }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{1000 * v:.1f}"


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}"


def markdown_table(runs: list[Run], baseline: Run, target: float, target_source: str) -> str:
    """The Table 1 Markdown, with notes on the target and on runs that never reached it."""
    header = ("| run | role | final error | best acc | time to target (s) | time reduction | "
              "full step (ms) | low step (ms) | iteration time reduction | low-step fraction | train wall (s) |")
    lines = [header, "|" + "---|" * 11]
    for run in runs:
        d = run.derived
        lines.append(
            f"| {run.label} | {'baseline' if run is baseline else run.policy} | {_pct(d['final_error'])} | "
            f"{_pct(d['best_val_acc'])} | {_s(d['time_to_target_s'])} | {_pct(d['time_reduction'])} | "
            f"{_ms(d['median_step_s_full'])} | {_ms(d['median_step_s_low'])} | {_pct(d['iteration_time_reduction'])} | "
            f"{_pct(d['low_step_fraction'])} | {d['train_wall_s']:.1f} |"
        )
    notes = [f"Target accuracy: {100 * target:.2f}% ({target_source}). Times are training wall-clock "
             "(evaluation excluded) at the first epoch at or above the target; step times are medians; "
             "iteration time reduction = 1 - low step / full step."]
    for run in runs:
        if run.derived["time_to_target_s"] is None:
            notes.append(f"**{run.label} never reached the target** (best {_pct(run.derived['best_val_acc'])}); "
                         "no time reduction can be given for it.")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def _velocity(run: Run, window: int = 3) -> tuple[list[int], list[float]]:
    """Moving average (``window`` epochs) of dA/dtau, in accuracy percentage points per minute."""
    ev = run.evaluated
    epochs, vel = [], []
    for prev, cur in zip(ev, ev[1:]):
        dt = cur["train_wall_s"] - prev["train_wall_s"]
        if dt > 0:
            epochs.append(cur["epoch"])
            vel.append(100 * (cur["val_acc"] - prev["val_acc"]) / (dt / 60))
    if len(vel) < window:
        return epochs, vel
    smooth = [sum(vel[i - window + 1:i + 1]) / window for i in range(window - 1, len(vel))]
    return epochs[window - 1:], smooth


def _plot_accuracy(ax, runs: list[Run], target: float) -> None:
    for run in runs:
        ev = run.evaluated
        ax.plot([e["train_wall_s"] / 60 for e in ev], [100 * e["val_acc"] for e in ev], marker=".", label=run.label)
    ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1, label=f"target {100 * target:.2f}%")
    ax.set(xlabel="training wall-clock (min, evaluation excluded)", ylabel="validation accuracy (%)",
           title="Validation accuracy vs training time")
    ax.grid(alpha=0.3)
    ax.legend()


def _plot_velocity(ax, runs: list[Run]) -> None:
    for run in runs:
        epochs, vel = _velocity(run)
        ax.plot(epochs, vel, marker=".", label=run.label)
    ax.axhline(0, color="grey", linewidth=1)
    # symlog: early epochs swing by tens of points per minute, late ones by fractions; both stay readable
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set(xlabel="epoch", ylabel="ΔA/Δτ (accuracy points per minute, symlog)",
           title="Training velocity (moving average over 3 epochs)")
    ax.grid(alpha=0.3)
    ax.legend()


def _plot_resolution(ax, runs: list[Run]) -> None:
    for run in runs:
        if run.sizes:
            ax.plot([e for e, _ in run.sizes], [h for _, h in run.sizes], marker=".", label=run.label)
    ax.set(xlabel="epoch", ylabel="mean image height of the epoch's steps (px)",
           title="Training resolution (the schedule's choice)")
    ax.grid(alpha=0.3)
    ax.legend()


def _plot_adapt(ax, runs: list[Run]) -> None:
    """The adaptive controller's signal (full-resolution probe loss, smoothed) against training steps, a
    marker at each climb labelled with the size it climbed to."""
    for run in runs:
        if not run.adapt:
            continue
        steps = [r["step"] for r in run.adapt]
        line, = ax.plot(steps, [r["smoothed"] for r in run.adapt], marker=".", label=run.label)
        for r in run.adapt:
            if r["decision"] == "climb":
                ax.axvline(r["step"], color=line.get_color(), alpha=0.3, linestyle="--")
                ax.annotate(f"→{r['to_size']}", (r["step"], r["smoothed"]), fontsize=7, color=line.get_color())
    ax.set(xlabel="global step", ylabel="full-resolution probe loss (mean of the last 2)",
           title="Adaptive schedule: signal and climbs")
    ax.grid(alpha=0.3)
    ax.legend()


def write_plots(runs: list[Run], target: float, out: Path, frontier_result: dict[str, Any] | None = None) -> None:
    """Write accuracy_vs_time.png, velocity.png, resolution.png (when the runs record their steps' image
    heights), adapt.png (when a run has an adaptive controller's records) and compare.png (the panels side
    by side, the frontier first when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"accuracy_vs_time.png": lambda ax: _plot_accuracy(ax, runs, target),
              "velocity.png": lambda ax: _plot_velocity(ax, runs)}
    if any(run.sizes for run in runs):
        panels["resolution.png"] = lambda ax: _plot_resolution(ax, runs)
    if any(run.adapt for run in runs):
        panels["adapt.png"] = lambda ax: _plot_adapt(ax, runs)
    for name, draw in panels.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        draw(ax)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
    draws = list(panels.values())
    if frontier_result is not None:
        draws.insert(0, lambda ax: frontier_view.plot(ax, frontier_result))
    fig, axes = plt.subplots(1, len(draws), figsize=(6.5 * len(draws), 4.8))
    for ax, draw in zip(axes, draws):
        draw(ax)
    fig.savefig(out / "compare.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def run_cost(run: Run, step_costs: dict[str, float] | None) -> float:
    """Training wall-clock, or with ``step_costs`` (a trainer.bench result) full-step equivalents."""
    if step_costs is None:
        return float(run.epochs[-1]["train_wall_s"])
    missing = [k for k in ("steps_full", "steps_low") if run.summary.get(k) is None]
    if missing:
        raise CompareError(f"{run.path}: summary.json lacks {missing[0]} (needed for full-step equivalents)")
    recalibrated = sum(int(e.get("bn_recalibrated_batches", 0)) for e in run.epochs)
    try:
        return frontier_view.full_step_equivalents(
            run.config, run.summary["steps_full"], run.summary["steps_low"], recalibrated, step_costs,
            run.summary.get("low_steps_by_size"), run.summary.get("low_batch_scale_by_size"))
    except ValueError as exc:
        raise CompareError(f"{run.path}: {exc}") from None


def load_step_costs(path: str | Path) -> dict[str, float]:
    """The low/full step cost ratios of a ``python -m trainer.bench --json`` result."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"--step-costs {path}: cannot read a trainer.bench JSON ({exc})") from None
    costs: dict[str, Any] = {}
    for key in ("ratio", "keep_ratio"):
        value = data.get(key) if isinstance(data, dict) else None
        if not _positive(value):
            raise CompareError(f"--step-costs {path}: field {key!r} must be a positive number "
                               f"(a `python -m trainer.bench --json` result), got {value!r}")
        costs[key] = float(value)
    if "keep_ratio_by_size" in data or "low_size" in data:  # a bench with --low-sizes (a resolution ladder)
        by_size, low = data.get("keep_ratio_by_size"), data.get("low_size")
        if not (isinstance(by_size, dict) and all(k.isdigit() and _positive(v) for k, v in by_size.items())
                and isinstance(low, int) and str(low) in by_size):
            raise CompareError(f"--step-costs {path}: fields 'keep_ratio_by_size' ({{side: positive ratio}}) and "
                               f"'low_size' (one of its sides) must come together, got {by_size!r}, {low!r}")
        costs["keep_ratio_by_size"] = {k: float(v) for k, v in by_size.items()}
        costs["low_size"] = low
    return costs


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


def frontier(runs: list[Run], baseline: str | None = None,
             step_costs: dict[str, float] | None = None) -> dict[str, Any]:
    """The frontier analysis (trainer.report.frontier) of loaded runs, in training wall-clock or, with
    ``step_costs``, in full-step equivalents."""
    points = [frontier_view.RunPoint(str(r.path), r.config, r.evaluated[-1]["val_acc"], run_cost(r, step_costs))
              for r in runs]
    cost = frontier_view.WALL_CLOCK if step_costs is None else frontier_view.FULL_STEPS
    try:
        return frontier_view.analyse(points, baseline, cost)
    except frontier_view.FrontierError as exc:
        raise CompareError(f"--frontier: {exc}") from None


def compare(run_dirs: list[str], *, target_acc: float | None = None, baseline: str | None = None,
            out: str | Path | None = None, with_frontier: bool = False,
            step_costs: str | Path | None = None) -> dict[str, Any]:
    """Load, analyse and (when ``out``) write table.md, compare.json and the plots (and the frontier's
    files when ``with_frontier``, and frontier_fse.* in full-step equivalents with ``step_costs``, the path
    of a trainer.bench JSON); returns the results."""
    costs = load_step_costs(step_costs) if step_costs is not None else None
    if costs is not None and not with_frontier:
        raise CompareError("--step-costs: only used with --frontier")
    runs = [load_run(p) for p in run_dirs]
    base = pick_baseline(runs, baseline)
    if target_acc is None:
        target, source = base.evaluated[-1]["val_acc"], f"final accuracy of baseline {base.label}"
    else:
        if not 0 < target_acc <= 1:
            raise CompareError(f"--target-acc {target_acc}: expected a fraction in (0, 1], e.g. 0.94")
        target, source = target_acc, "--target-acc"
    analyse(runs, base, target)
    table = markdown_table(runs, base, target, source)
    result = {"target_acc": target, "baseline": str(base.path), "table": table,
              "runs": {str(r.path): r.derived for r in runs}}
    if with_frontier:
        result["frontier"] = frontier(runs, baseline)
        result["frontier_table"] = frontier_view.markdown(result["frontier"])
        if costs is not None:
            result["frontier_fse"] = frontier(runs, baseline, costs)
            result["frontier_fse_table"] = frontier_view.markdown(result["frontier_fse"])
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise CompareError(f"--out {out}: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        if with_frontier:
            frontier_view.write_outputs(result["frontier"], out)
        if "frontier_fse" in result:
            frontier_view.write_outputs(result["frontier_fse"], out, "frontier_fse")
        (out / "table.md").write_text(table)
        (out / "compare.json").write_text(json.dumps({k: v for k, v in result.items() if k not in (
            "table", "frontier", "frontier_table", "frontier_fse", "frontier_fse_table")}, indent=2) + "\n")
        write_plots(runs, target, out, result.get("frontier"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowmode-compare",
                                     description="Compare lowmode-train run directories (Table 1 + plots).")
    parser.add_argument("runs", nargs="+", help="run directories (RUN/metrics.jsonl, RUN/summary.json)")
    parser.add_argument("--target-acc", type=float, default=None,
                        help="target validation accuracy as a fraction, e.g. 0.94 (default: the baseline's final)")
    parser.add_argument("--baseline", default=None,
                        help="which run is the baseline (default: the first with schedule.policy none)")
    parser.add_argument("--frontier", action="store_true",
                        help="also write the accuracy-vs-time frontier (frontier.md/.json/.png): runs grouped into "
                             "families (config minus budget and seed), time saved at equal accuracy")
    parser.add_argument("--step-costs", default=None, metavar="BENCH_JSON",
                        help="with --frontier: also the frontier in full-step equivalents (frontier_fse.*), full "
                             "steps + low steps x batch multiple x the low/full cost ratio of this "
                             "`python -m trainer.bench --json` result (ratio for pooled kernels, keep_ratio for kept)")
    parser.add_argument("--out", default="compare",
                        help="output directory for table.md, compare.json and the PNGs (default: ./compare)")
    args = parser.parse_args(argv)
    try:
        result = compare(args.runs, target_acc=args.target_acc, baseline=args.baseline, out=args.out,
                         with_frontier=args.frontier, step_costs=args.step_costs)
    except CompareError as exc:
        print(f"lowmode-compare: error: {exc}", file=sys.stderr)
        return 2
    if args.frontier:
        print(result["frontier_table"])
        print(f"written: {Path(args.out) / 'frontier.md'}, frontier.json, frontier.png\n")
        if "frontier_fse_table" in result:
            print(result["frontier_fse_table"])
            print(f"written: {Path(args.out) / 'frontier_fse.md'}, frontier_fse.json, frontier_fse.png\n")
    print(result["table"], end="")
    print(f"\nwritten: {Path(args.out) / 'table.md'}, compare.json, accuracy_vs_time.png, velocity.png, compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
