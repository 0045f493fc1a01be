#!/usr/bin/env bash
# Reporting runs, no further tuning: baseline and the chosen lowmode setting on seeds 1 and 2,
# then one lowmode run with bn_policy "shared" (seed 0) to show what it does to evaluation.
# CHOSEN holds the --set overrides chosen on seed 0 (empty = the preset as committed).
set -euo pipefail
r=scripts/results/train_run.sh
read -r -a chosen <<< "${CHOSEN:-}"
for seed in 1 2; do
  $r s${seed}_baseline baseline $seed
  $r s${seed}_lowmode lowmode $seed "${chosen[@]}"
done
$r s0_lowmode_shared lowmode 0 --set model.bn_policy=shared
