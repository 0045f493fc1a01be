#!/usr/bin/env bash
# Run after the reporting seeds (so it did not influence the choice): seed 0, p = 0.25, to show how
# accuracy and run time move when fewer steps are low.
set -euo pipefail
scripts/results/train_run.sh s0_lowmode_p025 lowmode 0 --set schedule.p=0.25
