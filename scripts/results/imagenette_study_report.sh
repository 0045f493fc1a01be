#!/bin/bash
# docs/RESULTS.md 0.4: the Imagenette study's report once its runs are done (seeds 0-2 of baseline, keep and
# lowfirst_keep; seed 0 of the other families): compact copies for docs/results, the frontier in wall-clock
# and in full-step equivalents, and the paper's Table 1 view (time to the baseline's final accuracy within one
# fixed 16-epoch schedule, per seed).
#   STUDY=/work/studies/imagenette scripts/results/imagenette_study_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${STUDY:?set STUDY to the --out of the study}"
DEST=docs/results/imagenette/study
.venv/bin/python scripts/study.py scripts/studies/imagenette.toml --out "$STUDY" --export "$DEST"
runs=$(for run in "$STUDY"/*/e0*_s*; do if [ -f "$run/summary.json" ]; then echo "$run"; fi; done)  # finished only
.venv/bin/lowmode-compare $runs --frontier --step-costs docs/results/imagenette/step_costs_resnet18_w32_128.json \
  --out "$STUDY/compare_final" > /dev/null
cp "$STUDY/compare_final/frontier.md" "$DEST/frontier.md"
cp "$STUDY/compare_final/frontier_fse.md" "$DEST/frontier_fse.md"
for seed in 0 1 2; do
  for family in keep lowfirst_keep; do
    .venv/bin/lowmode-compare "$STUDY/baseline/e016_s$seed" "$STUDY/$family/e016_s$seed" \
      --out "$STUDY/table1_${family}_s$seed" > /dev/null
    cp "$STUDY/table1_${family}_s$seed/table.md" "$DEST/table1_${family}_e16_s$seed.md"
  done
done
