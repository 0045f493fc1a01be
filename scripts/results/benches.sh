#!/usr/bin/env bash
# Per-step cost, loader and preprocess throughputs for docs/RESULTS.md, one at a time (CPU otherwise idle).
# Raw JSON goes to docs/results/raw/; the load average before each is in docs/results/raw/loads.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/results/raw
mkdir -p "$out"
py=.venv/bin/python
load() { echo "$(date +%T) $1: load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/loads.txt"; }

# 1. per-step cost (forward + backward + SGD), batch 125, CPU
for th in 2 1; do
  load "bench resnet18 threads $th"; $py -m trainer.bench --model resnet18 --batch-size 125 --device cpu --threads $th --warmup 2 --iters 8 --json > "$out/bench_resnet18_t$th.json"
  load "bench resnet50 threads $th"; $py -m trainer.bench --model resnet50 --batch-size 125 --device cpu --threads $th --warmup 1 --iters 3 --json > "$out/bench_resnet50_t$th.json"
  load "bench resnet8 threads $th"; $py -m trainer.bench --model resnet8 --batch-size 125 --device cpu --threads $th --warmup 5 --iters 40 --json > "$out/bench_resnet8_t$th.json"
done

# 2. from-scratch Fashion-MNIST shard build (the demo reuses data/fashion-mnist)
rm -rf /tmp/fm_fresh
load "fmnist build"
{ /usr/bin/time -v .venv/bin/lowmode-preprocess build --source fashion-mnist --input /usr/share/datasets/fashion-mnist --out /tmp/fm_fresh --workers 2 --quiet ; } 2> "$out/fmnist_build_time.txt"
rm -rf /tmp/fm_fresh

# 3. loaders on a CIFAR-sized synthetic set
[[ -f /tmp/lm-cifar/manifest.json ]] || .venv/bin/lowmode-preprocess build --source synthetic --out /tmp/lm-cifar --num-train 60000 --num-val 10000 --size 32 --channels 3 --quiet --workers 2
for loader in torch dali; do for mode in full low schedule; do
  load "loader $loader $mode"
  $py -m pipeline bench /tmp/lm-cifar --loader $loader --mode $mode --batch-size 125 --seconds 10 --json > "$out/loader_${loader}_${mode}.json"
done; done

# 4. preprocess benchmark, three times
for i in 1 2 3; do load "preprocess bench $i"; $py -m preprocess.bench --json > "$out/preprocess_bench_$i.json"; done
