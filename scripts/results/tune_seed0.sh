#!/usr/bin/env bash
# Tuning on seed 0 only (method knobs only). The preset runs of seed 0 are the `make demo` runs
# (demo/baseline, demo/lowmode: the same presets, W&B offline instead of disabled).
# Why these three: with an in-loop low/full step ratio of ~0.5, p = 0.5 and 2 of 12 epochs full-only,
# a run can be at most 0.5 * 0.5 * 10/12 = 21% shorter, so p = 0.75 is the only way to 25%;
# separate BN and a longer full window (2 epochs after each drop) trade time for accuracy.
set -euo pipefail
r=scripts/results/train_run.sh
$r s0_lowmode_separate lowmode 0 --set model.bn_policy=separate
$r s0_lowmode_p075 lowmode 0 --set schedule.p=0.75
$r s0_lowmode_fe2 lowmode 0 --set schedule.full_epochs_after_milestone=2
