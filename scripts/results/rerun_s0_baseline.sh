#!/usr/bin/env bash
# The make-demo seed-0 baseline (demo/baseline) had slow epochs 5-9 (14-20 s vs 12.7 s: other work on
# the 2 cores); rerun it on an idle machine with the same preset so seed 0's times are comparable.
# Also reruns the seed-0 lowmode preset in the same conditions for a like-for-like pair.
set -euo pipefail
scripts/results/train_run.sh s0_baseline baseline 0
scripts/results/train_run.sh s0_lowmode lowmode 0
