#!/bin/bash
# docs/RESULTS.md 0.3: the Imagenette baseline's schedule, tuned on the baseline only, 6 epochs, seed 0, one
# core per run (epoch records in docs/results/imagenette/baseline_tuning/):
#   DATA=/work/data/imagenette128 OUT=/work/tune19 scripts/results/imagenette_baseline_tuning.sh NAME CPU [--set ...]
#   ... cos_lr0.1 1 --set optim.lr=0.1            # (also 0.2, 0.05)
#   ... lin_lr0.1 0 --set optim.lr=0.1 --set 'optim.lr_schedule="linear"'
#   ... step_lr0.1 0 --set optim.lr=0.1 --set 'optim.lr_schedule="step"' --set optim.warmup_epochs=0 \
#       --set 'optim.lr_milestones_epochs=[3, 5]' --set optim.label_smoothing=0.0 --set optim.nesterov=false
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DATA:?set DATA to the Imagenette 128-px dataset}" "${OUT:?set OUT to a folder for the runs}"
name=$1; cpu=$2; shift 2
OMP_NUM_THREADS=1 taskset -c "$cpu" .venv/bin/python -m trainer --config configs/imagenette_baseline.toml \
  --run-dir "$OUT/$name" --set "data.dir=\"$DATA\"" --set train.epochs=6 \
  --set data.num_workers=0 --set 'logging.wandb="disabled"' --set 'logging.progress="lines"' \
  --set logging.print_every_steps=1000000 --set train.eval_every_epochs=1 "$@" > "$OUT/$name.log" 2>&1
