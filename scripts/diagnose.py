#!/usr/bin/env python3
"""Why do low steps cost accuracy? Per-run diagnostics from a study's run directories (Markdown table).

    .venv/bin/python scripts/diagnose.py /work/studies/fmnist [--json out.json]

For every finished run (grouped by family and budget, mean over seeds):
- final accuracy; final-epoch training loss of full and low steps (how weak the low-mode network is);
- the low/full gradient-norm ratio: median ``grad_norm`` of low steps over median of full steps, within
  the epochs that mix both modes (needs ``logging.grad_norm``);
- the kernels' mean share: for the 3x3 convolutions of the residual blocks, the fraction of the
  kernels' energy in their spatial mean, sum(9 * mean^2) / sum(W^2). A pooled low step's gradient is
  uniform over the 9 taps (dT(W)/dW = 1/9), so it moves only that component; if low steps push kernels
  toward their mean, this share is higher than the baseline's at the end of training;
- BatchNorm: mean |gamma| and mean beta of the full network's BN layers (a low step moves them too
  unless bn_policy = "private").
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.report.metrics import read_records  # noqa: E402
from trainer.report.rundir import RunDir  # noqa: E402
from trainer.run.checkpoint import CheckpointManager, load_checkpoint  # noqa: E402

BLOCK_CONV = re.compile(r"^layer\d+\.\d+\.conv[12]\.weight$")


def weight_stats(model_state: dict[str, torch.Tensor]) -> dict[str, float]:
    mean_energy, total_energy = 0.0, 0.0
    for name, w in model_state.items():
        if BLOCK_CONV.match(name) and w.shape[-2:] == (3, 3):
            w = w.double()
            m = w.mean(dim=(-2, -1))
            mean_energy += float(9 * (m ** 2).sum())
            total_energy += float((w ** 2).sum())
    gammas = [w.double().abs().mean() for n, w in model_state.items() if re.search(r"bn\d?\.weight$", n)]
    betas = [w.double().mean() for n, w in model_state.items() if re.search(r"bn\d?\.bias$", n)]
    return {"kernel_mean_share": mean_energy / total_energy if total_energy else float("nan"),
            "bn_gamma_abs": float(torch.stack(gammas).mean()) if gammas else float("nan"),
            "bn_beta": float(torch.stack(betas).mean()) if betas else float("nan")}


def run_stats(run_dir: Path) -> dict[str, float] | None:
    rd = RunDir(run_dir)
    status = json.loads(rd.status.read_text()) if rd.status.is_file() else {}
    if status.get("state") != "done":
        return None
    records = list(read_records(rd.metrics))
    epochs = [r for r in records if r["kind"] == "epoch"]
    steps = [r for r in records if r["kind"] == "step"]
    mixed = {e["epoch"] for e in epochs if 0 < e["low_step_fraction"] < 1}
    norms = {m: [s["grad_norm"] for s in steps if s["mode"] == m and s["epoch"] in mixed and "grad_norm" in s]
             for m in ("full", "low")}
    ratio = (statistics.median(norms["low"]) / statistics.median(norms["full"])
             if norms["low"] and norms["full"] else float("nan"))
    last_mixed = max(mixed) if mixed else None
    low_loss = next((e["train_loss_low"] for e in epochs if e["epoch"] == last_mixed), None)
    full_loss = next((e["train_loss_full"] for e in epochs if e["epoch"] == last_mixed), None)
    state = load_checkpoint(CheckpointManager(rd.checkpoints).existing()[-1])
    config = rd.read_config() or {}
    return {"family": run_dir.parent.name, "epochs": config.get("train", {}).get("epochs"),
            "final_acc": epochs[-1]["val_acc"], "train_wall_s": epochs[-1]["train_wall_s"],
            "grad_norm_ratio": ratio, "last_mixed_loss_full": full_loss, "last_mixed_loss_low": low_loss,
            **weight_stats(state["model"])}


def _fmt(v, spec=".3f") -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [s for d in sorted(args.study.glob("*/e*_s*")) if (s := run_stats(d)) is not None]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["epochs"]), []).append(row)
    keys = ("final_acc", "train_wall_s", "grad_norm_ratio", "last_mixed_loss_full", "last_mixed_loss_low",
            "kernel_mean_share", "bn_gamma_abs", "bn_beta")
    table = []
    for (family, epochs), members in sorted(groups.items(), key=lambda kv: (kv[0][0] != "baseline", kv[0])):
        mean = {}
        for key in keys:
            vals = [m[key] for m in members if m[key] is not None and m[key] == m[key]]
            mean[key] = statistics.fmean(vals) if vals else None
        table.append({"family": family, "epochs": epochs, "seeds": len(members), **mean})
    print("| family | epochs | seeds | final acc | wall (s) | grad-norm low/full | loss full / low (last mixed epoch) "
          "| kernel mean share | BN mean abs gamma | BN mean beta |")
    print("|" + "---|" * 10)
    for r in table:
        print(f"| {r['family']} | {r['epochs']} | {r['seeds']} | {_fmt(r['final_acc'] and 100 * r['final_acc'], '.2f')}% | "
              f"{_fmt(r['train_wall_s'], '.0f')} | {_fmt(r['grad_norm_ratio'], '.2f')} | "
              f"{_fmt(r['last_mixed_loss_full'])} / {_fmt(r['last_mixed_loss_low'])} | {_fmt(r['kernel_mean_share'])} | "
              f"{_fmt(r['bn_gamma_abs'])} | {_fmt(r['bn_beta'])} |")
    if args.json:
        args.json.write_text(json.dumps({"groups": table, "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
