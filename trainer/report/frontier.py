"""The accuracy-vs-time frontier: compare runs at equal training wall-clock.

A short budget favours whatever reaches a given accuracy soonest, and "time to the baseline's final
accuracy" cannot credit a method that is better at every budget but the longest (Budgeted Training,
Li et al. 2020). So runs are grouped into **families** (the same config but for the budget and the
seed: ``train.epochs``, the LR milestones, the full-only windows and ``train.seed``) and **points**
(one family at one budget: the mean final validation accuracy and training wall-clock over its seeds).
The baseline family's points form the frontier; for every other point

    time saved at equal accuracy = 1 - t_point / t_baseline(a_point)

with ``t_baseline(a)`` interpolated linearly on the frontier's upper envelope (its points sorted by
time, each better than every cheaper one). A point more accurate than every baseline point is "above
the frontier's best" (no finite baseline time reaches it); one less accurate than the cheapest baseline
point is "below the frontier's cheapest" (only an upper bound, 1 - t_point / t_cheapest, is known).

Writes frontier.json, frontier.md and frontier.png. Imports no torch.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Keys that set a run's budget or seed (a family spans them) or do not change its results.
BUDGET_KEYS = ("train.epochs", "optim.lr_milestones_epochs", "schedule.full_epochs_after_milestone",
               "schedule.warmup_full_epochs", "train.seed")
NEUTRAL_PREFIXES = ("data.dir", "data.num_workers", "logging.", "checkpoint.", "train.check_sync_every_steps",
                    "train.dist_timeout_s", "train.num_threads", "model.dual_mode", "model.compile",
                    "model.channels_last", "train.deterministic")
ABOVE, BELOW, ON = "above the frontier's best", "below the frontier's cheapest", "on the frontier"


class FrontierError(ValueError):
    """The runs cannot form a frontier (no baseline run, or no evaluated run)."""


@dataclass
class RunPoint:
    """What the frontier needs from one run."""

    path: str
    config: dict[str, Any]
    """Flat {"section.key": value} of RUN/config.toml."""
    final_acc: float
    cost: float
    """The training cost compared: wall-clock seconds (default) or full-step equivalents (see
    :func:`full_step_equivalents`)."""

    @property
    def epochs(self) -> int:
        return int(self.config.get("train.epochs", 0))

    @property
    def seed(self) -> int:
        return int(self.config.get("train.seed", 0))

    @property
    def is_baseline(self) -> bool:
        return self.config.get("schedule.policy") == "none"


@dataclass
class Point:
    """One family at one budget: means over its seeds."""

    family: str
    epochs: int
    seeds: list[int]
    runs: list[str]
    acc: float
    acc_std: float | None
    time_s: float
    time_std: float | None
    baseline_time_s: float | None = None
    time_saved: float | None = None
    time_saved_bound: float | None = None
    """1 - t / t_cheapest when the point lies below the frontier's cheapest point (an upper bound)."""
    status: str = ""
    runs_detail: list[dict[str, Any]] = field(default_factory=list)


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """{"section": {"key": v}} -> {"section.key": v} (lists kept as lists)."""
    return {f"{s}.{k}": v for s, keys in config.items() if isinstance(keys, dict) for k, v in keys.items()}


def _schedule_defaults() -> dict[str, Any]:
    from dataclasses import fields

    from pipeline.schedule import ScheduleConfig

    return {f"schedule.{f.name}": list(f.default) if isinstance(f.default, tuple) else f.default
            for f in fields(ScheduleConfig)}


SCHEDULE_DEFAULTS = _schedule_defaults()
"""A schedule key a run's config lacks counts as its default: a run written before the key existed
(schedule.low_size, ramp_start, constant_pixels came with the resolution ladder) ran with the default, so it
belongs to the same family as a newer run that records it."""


def family_key(config: dict[str, Any]) -> str:
    """The config without budget, seed and result-neutral keys, missing schedule keys at their defaults,
    as canonical JSON."""
    kept = {k: v for k, v in {**SCHEDULE_DEFAULTS, **config}.items()
            if k not in BUDGET_KEYS and not k.startswith(NEUTRAL_PREFIXES)}
    return json.dumps(kept, sort_keys=True)


def family_label(config: dict[str, Any], baseline: dict[str, Any]) -> str:
    """"baseline", or the keys where a family differs from the baseline family ("schedule.p=0.25, ...")."""
    if config.get("schedule.policy") == "none" and family_key(config) == family_key(baseline):
        return "baseline"
    base, mine = json.loads(family_key(baseline)), json.loads(family_key(config))
    diffs = [f"{k.split('.', 1)[1]}={mine.get(k)}" for k in sorted(set(base) | set(mine)) if base.get(k) != mine.get(k)]
    return ", ".join(diffs) or "same as baseline"


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def group_points(runs: list[RunPoint], baseline_config: dict[str, Any]) -> list[Point]:
    """Runs grouped by (family, epochs), seed means; sorted by family then time."""
    groups: dict[tuple[str, int], list[RunPoint]] = {}
    labels: dict[str, str] = {}
    for run in runs:
        key = family_key(run.config)
        labels.setdefault(key, family_label(run.config, baseline_config))
        groups.setdefault((key, run.epochs), []).append(run)
    points = []
    for (key, epochs), members in groups.items():
        acc, acc_std = _mean_std([r.final_acc for r in members])
        time_s, time_std = _mean_std([r.cost for r in members])
        points.append(Point(family=labels[key], epochs=epochs, seeds=sorted(r.seed for r in members),
                            runs=sorted(r.path for r in members), acc=acc, acc_std=acc_std, time_s=time_s,
                            time_std=time_std,
                            runs_detail=[{"path": r.path, "seed": r.seed, "final_acc": r.final_acc,
                                          "cost": r.cost} for r in members]))
    return sorted(points, key=lambda p: (p.family != "baseline", p.family, p.time_s))


def envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time, acc) points sorted by time, keeping each one more accurate than every cheaper one."""
    out: list[tuple[float, float]] = []
    for t, a in sorted(points):
        if not out or a > out[-1][1]:
            out.append((t, a))
    return out


def baseline_time_at(acc: float, frontier: list[tuple[float, float]]) -> tuple[float | None, str]:
    """(t_baseline(acc), status) on the frontier's envelope; None when acc is above or below it."""
    env = envelope(frontier)
    if not env:
        raise FrontierError("the baseline family has no point")
    if acc > env[-1][1]:
        return None, ABOVE
    if acc < env[0][1]:
        return None, BELOW
    for (t0, a0), (t1, a1) in zip(env, env[1:]):
        if a0 <= acc <= a1:
            return t0 + (acc - a0) / (a1 - a0) * (t1 - t0), ON
    return env[0][0], ON  # acc equals the only (or cheapest) point's accuracy


WALL_CLOCK = "train wall-clock (s)"
FULL_STEPS = "full-step equivalents"


def full_step_equivalents(config: dict[str, Any], steps_full: int, steps_low: int, recalibrated_batches: int,
                          step_costs: dict[str, Any], low_steps_by_size: dict[str, int] | None = None,
                          batch_scale_by_size: dict[str, float] | None = None) -> float:
    """A run's training cost in full steps: full + sum over low sizes of steps x k x c + BN re-estimation batches.

    c is the low/full cost ratio of a low step measured in paired bench rounds (``trainer.bench``: ``ratio``
    for the paper's pooled kernels, ``keep_ratio`` for kept ones; at a ladder's other rungs
    ``keep_ratio_by_size``), k the low step's batch multiple (``schedule.low_batch_scale``, or per size
    ``low_batch_scale_by_size`` from summary.json: a step of k x the images costs about k times as much),
    and each BN re-estimation batch counts as a whole full step (a forward pass only: an upper bound). No
    machine drift biases it, and a GPU user gets their own saving by putting in their own ratios.
    ``low_steps_by_size`` (summary.json, runs since the ladder): low steps per image height; without it
    every low step is at the bench's low size. A size the bench did not time is a ValueError naming it."""
    kind = config.get("model.low_kernels", "pool")
    ratio = step_costs["keep_ratio" if kind == "keep" else "ratio"]
    k = float(config.get("schedule.low_batch_scale", 1))
    by_size = {h: n for h, n in (low_steps_by_size or {}).items() if n}
    bench_low = step_costs.get("low_size")
    if not by_size or (len(by_size) == 1 and (bench_low is None or str(bench_low) in by_size)):
        only = next(iter(by_size), None)
        k = (batch_scale_by_size or {}).get(only, k) if only is not None else k
        return steps_full + steps_low * k * ratio + recalibrated_batches
    costs = step_costs.get("keep_ratio_by_size", {}) if kind == "keep" else {str(bench_low): ratio}
    missing = sorted(set(by_size) - set(costs), key=int)
    if missing:
        raise ValueError(f"no step cost for the low steps at {', '.join(missing)} px (the step costs time "
                         f"{', '.join(sorted(costs, key=int))} px); time every size the run read: python -m "
                         f"trainer.bench ... --low-sizes {','.join(sorted(by_size, key=int))}")
    scales = batch_scale_by_size or {}
    return steps_full + sum(n * scales.get(h, k) * costs[h] for h, n in by_size.items()) + recalibrated_batches


def analyse(runs: list[RunPoint], baseline_path: str | None = None, cost: str = WALL_CLOCK) -> dict[str, Any]:
    """Points, the baseline frontier and each non-baseline point's time saved at equal accuracy (``cost``
    names what the runs' ``cost`` measures)."""
    if not runs:
        raise FrontierError("no runs")
    if baseline_path is not None:
        chosen = [r for r in runs if Path(r.path).resolve() == Path(baseline_path).resolve()]
        if not chosen:
            raise FrontierError(f"--baseline {baseline_path}: not among the runs")
    else:
        chosen = [r for r in runs if r.is_baseline]
        if not chosen:
            raise FrontierError("no baseline run (schedule.policy = \"none\") among the runs: a frontier needs one")
    baseline_config = chosen[0].config
    points = group_points(runs, baseline_config)
    base = [p for p in points if p.family == "baseline"]
    frontier = [(p.time_s, p.acc) for p in base]
    cheapest = envelope(frontier)[0][0]
    for point in points:
        if point.family == "baseline":
            point.status = "baseline"
            continue
        point.baseline_time_s, point.status = baseline_time_at(point.acc, frontier)
        if point.baseline_time_s is not None:
            point.time_saved = 1.0 - point.time_s / point.baseline_time_s
        elif point.status == BELOW:
            point.time_saved_bound = 1.0 - point.time_s / cheapest
    best = max(base, key=lambda p: p.acc)
    return {"cost": cost, "baseline_family": family_key(baseline_config), "best_baseline_acc": best.acc,
            "best_baseline_epochs": best.epochs, "frontier": envelope(frontier),
            "points": [asdict(p) for p in points]}


def _pct(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def markdown(result: dict[str, Any]) -> str:
    """The frontier table: one row per point, time saved at equal accuracy against the baseline frontier."""
    cost = result.get("cost", WALL_CLOCK)
    lines = [f"| family | epochs | seeds | final acc (mean ± sd) | {cost}, mean | "
             "baseline cost at that acc | time saved at equal accuracy |", "|" + "---|" * 7]
    for p in result["points"]:
        acc = _pct(p["acc"]) + ("" if p["acc_std"] is None else f" ± {100 * p['acc_std']:.2f}")
        if p["status"] == "baseline":
            saved, base_t = "(baseline)", "–"
        elif p["time_saved"] is not None:
            saved, base_t = _pct(p["time_saved"], 1), f"{p['baseline_time_s']:.1f}"
        elif p["status"] == BELOW and p["time_saved_bound"] <= 0:
            saved, base_t = "dominated (less accurate and slower than the cheapest baseline point)", "–"
        elif p["status"] == BELOW:
            saved, base_t = f"{p['status']} (at most {_pct(p['time_saved_bound'], 1)})", "–"
        else:
            saved, base_t = p["status"], "–"
        lines.append(f"| {p['family']} | {p['epochs']} | {','.join(map(str, p['seeds']))} | {acc} | "
                     f"{p['time_s']:.1f} | {base_t} | {saved} |")
    note = (f"Best baseline: {_pct(result['best_baseline_acc'])} at {result['best_baseline_epochs']} epochs. "
            "Time saved = 1 − t / t_baseline(a), t_baseline interpolated linearly on the baseline frontier's "
            f"upper envelope; t is the {cost}" + (" (evaluation excluded)." if cost == WALL_CLOCK else
            ": full steps + low steps × batch multiple × the low/full step cost ratio + BN re-estimation batches."))
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot(ax, result: dict[str, Any]) -> None:
    """The frontier on ``ax``: one line per family (points sorted by time, error bars = seed sd)."""
    families: dict[str, list[dict[str, Any]]] = {}
    for p in result["points"]:
        families.setdefault(p["family"], []).append(p)
    for name, pts in families.items():
        pts = sorted(pts, key=lambda p: p["time_s"])
        scale = 60 if result.get("cost", WALL_CLOCK) == WALL_CLOCK else 1
        ax.errorbar([p["time_s"] / scale for p in pts], [100 * p["acc"] for p in pts],
                    yerr=[100 * (p["acc_std"] or 0.0) for p in pts], marker="o", capsize=3,
                    linewidth=2.5 if name == "baseline" else 1.2, label=name)
    wall = result.get("cost", WALL_CLOCK) == WALL_CLOCK
    ax.set(xlabel="training wall-clock (min, evaluation excluded; mean over seeds)" if wall else
           "training cost (full-step equivalents; mean over seeds)",
           ylabel="final validation accuracy (%)", title="Accuracy vs training time (one point per budget)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=1, frameon=False)


def write_outputs(result: dict[str, Any], out: Path, name: str = "frontier") -> None:
    """NAME.json, NAME.md and NAME.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(result))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    plot(ax, result)
    fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")  # the legend sits below the axes
    plt.close(fig)
