#!/bin/bash
# docs/RESULTS.md 0.2: step cost at the Imagenette study's size (128 px, batch 64, ImageNet stem, width 32,
# one thread, channels_last), full / pooled low / kept low / unconverted full in paired rounds, plus the
# convolutions' share of a full step. The ResNet-18 JSON is the study's --step-costs.
#   OUT=docs/results/imagenette CPU=1 scripts/results/imagenette_step_costs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT}" "${CPU:=1}"
mkdir -p "$OUT"
for model in resnet18 resnet50; do
  OMP_NUM_THREADS=1 taskset -c "$CPU" .venv/bin/python -m trainer.bench --model "$model" --stem imagenet --width 32 \
    --size 128 --batch-size 64 --threads 1 --channels-last --warmup 3 --iters 12 --profile --json \
    > "$OUT/step_costs_${model}_w32_128.json" 2> /dev/null
done
# the resolution ladder's rungs (issue "A resolution ladder"): the kept-kernel low step at 64 / 80 / 96 / 112 px
# in the same rounds (keep_ratio_by_size), the ladder study's --step-costs
OMP_NUM_THREADS=1 taskset -c "$CPU" .venv/bin/python -m trainer.bench --model resnet18 --stem imagenet --width 32 \
  --size 128 --batch-size 64 --threads 1 --channels-last --warmup 3 --iters 12 --low-sizes 64,80,96,112 --json \
  > "$OUT/step_costs_resnet18_w32_128_ladder.json" 2> /dev/null
