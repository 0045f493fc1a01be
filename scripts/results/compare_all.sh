#!/usr/bin/env bash
# Comparison outputs for docs/RESULTS.md from the run directories in ${RUNS:-/tmp/results-runs}.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${RUNS:-/tmp/results-runs}
out=docs/results
cmp=.venv/bin/lowmode-compare
for s in 0 1 2; do mkdir -p "$out/seed$s"; $cmp "$R/s${s}_baseline" "$R/s${s}_lowmode" --out "$out/seed$s" > "$out/seed$s/stdout.txt"; done
# Seed-0 tuning candidates and the "shared" BN run against the seed-0 baseline.
mkdir -p "$out/seed0_tuning" "$out/shared_bn"
$cmp "$R/s0_baseline" "$R/s0_lowmode" "$R/s0_lowmode_separate" "$R/s0_lowmode_p075" "$R/s0_lowmode_fe2" "$R/s0_lowmode_p025" --out "$out/seed0_tuning" > "$out/seed0_tuning/stdout.txt"
$cmp "$R/s0_baseline" "$R/s0_lowmode" "$R/s0_lowmode_shared" --out "$out/shared_bn" > "$out/shared_bn/stdout.txt"
.venv/bin/python scripts/results/aggregate.py --json "$out/fmnist_table.json" \
  "0:$R/s0_baseline:$R/s0_lowmode" "1:$R/s1_baseline:$R/s1_lowmode" "2:$R/s2_baseline:$R/s2_lowmode" > "$out/fmnist_table.md"
.venv/bin/python scripts/results/summarize.py demo/baseline demo/lowmode "$R"/s*_*/ > "$out/runs_table.md"; sed -i "s/^| baseline | 0 | none/| demo_baseline | 0 | none/; s/^| lowmode | 0 | bernoulli/| demo_lowmode | 0 | bernoulli/" "$out/runs_table.md"
# Raw per-run records for anyone re-plotting: summary.json, config.toml, the per-step metrics gzipped.
for d in demo/baseline demo/lowmode "$R"/s*_*/; do
  n=$(basename "$d"); [[ $d == demo/* ]] && n=demo_$n
  mkdir -p "$out/raw/runs/$n"; cp "$d"/{summary.json,config.toml} "$out/raw/runs/$n/"
  gzip -9 -c "$d/metrics.jsonl" > "$out/raw/runs/$n/metrics.jsonl.gz"
done
.venv/bin/python scripts/results/step_breakdown.py "$R"/s{0,1,2}_{baseline,lowmode} > "$out/step_breakdown.md"
