#!/usr/bin/env bash
# One Fashion-MNIST training run for docs/RESULTS.md, with the load average noted before it starts.
#   scripts/results/train_run.sh NAME baseline|lowmode SEED [--set k=v ...]
# Run dir: ${RUNS:-/tmp/results-runs}/NAME (must not exist: a fresh run, never a resume).
# W&B is disabled; data is data/fashion-mnist (ratio 2) unless overridden with --set data.dir=...
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1 preset=$2 seed=$3; shift 3
runs=${RUNS:-/tmp/results-runs}
mkdir -p "$runs"
[[ ! -e $runs/$name ]] || { echo "$runs/$name exists; refusing to resume" >&2; exit 1; }
echo "$(date +%T) $name: load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$runs/loads.txt"
.venv/bin/lowmode-train --config "configs/fmnist_small_$preset.toml" --run-dir "$runs/$name" \
  --set data.dir=data/fashion-mnist --set train.seed="$seed" --set logging.wandb=disabled "$@" \
  > "$runs/$name.log" 2>&1
