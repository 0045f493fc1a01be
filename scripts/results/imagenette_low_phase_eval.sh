#!/bin/bash
# docs/RESULTS.md 0.1 (issue 24): the pilot's ResNet-20 (ImageNet stem) on Imagenette 128 px, evaluation
# after all-low epochs. One run per call, on one CPU:
#   DATA=/work/data/imagenette128 OUT=/work/runs24 scripts/results/imagenette_low_phase_eval.sh NAME CPU --config PRESET [--set ...]
#   ... lowfirst_keep_b4 1 --config configs/cifar10_resnet20_cpu_best.toml        # low first, kernels kept
#   ... baseline 0 --config configs/cifar10_resnet20_cpu_baseline.toml
#   .venv/bin/python scripts/results/bn_recal_sweep.py $OUT/<run with checkpoint.keep=20>   # N-batch sweep
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DATA:?set DATA to the Imagenette 128-px dataset}" "${OUT:?set OUT to a folder for the runs}"
COMMON=(--set "data.dir=\"$DATA\"" --set 'model.stem="imagenet"' --set train.epochs=8
        --set 'optim.lr_milestones_epochs=[3, 5]' --set data.num_workers=0 --set train.num_threads=1
        --set 'logging.wandb="disabled"' --set 'logging.progress="lines"' --set logging.print_every_steps=1000000
        --set data.max_train_samples=0)
name=$1; cpu=$2; shift 2
OMP_NUM_THREADS=1 taskset -c "$cpu" .venv/bin/python -m trainer --run-dir "$OUT/$name" "${COMMON[@]}" "$@" > "$OUT/$name.log" 2>&1
