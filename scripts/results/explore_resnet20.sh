#!/usr/bin/env bash
# Exploration after the reporting runs: the same small presets with ResNet-20 (width 16) instead of ResNet-8, seed 0.
OUT=${OUT:-/tmp/r20}; mkdir -p "$OUT"
cd /work/main
for kind in baseline lowmode; do
  .venv/bin/lowmode-train --config configs/fmnist_small_$kind.toml --run-dir ${OUT:-/tmp/r20}/$kind --set model.name=resnet20 --set logging.wandb=disabled > ${OUT:-/tmp/r20}/$kind.log 2>&1
done
.venv/bin/lowmode-compare ${OUT:-/tmp/r20}/baseline ${OUT:-/tmp/r20}/lowmode --out ${OUT:-/tmp/r20}/compare > ${OUT:-/tmp/r20}/compare.log 2>&1
echo done > ${OUT:-/tmp/r20}/DONE
