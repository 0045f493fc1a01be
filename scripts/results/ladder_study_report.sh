#!/bin/bash
# docs/RESULTS.md 0.6: a resolution-ladder study's report once its runs are done: compact copies of the spec's
# finished runs for docs/results, and the frontier over them in wall-clock and in full-step equivalents (the
# spec's step costs: kept-kernel low/full ratio at every rung).
#   SPEC=scripts/studies/imagenette_ladder.toml STUDY=/work/studies/imagenette \
#     DEST=docs/results/imagenette/ladder scripts/results/ladder_study_report.sh
#   SPEC=scripts/studies/cifar10_ladder.toml STUDY=/work/studies/cifar10_ladder \
#     DEST=docs/results/cifar10_ladder/study scripts/results/ladder_study_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${SPEC:?set SPEC to the study spec}" "${STUDY:?set STUDY to the --out of the study}" "${DEST:?set DEST}"
costs=$(.venv/bin/python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['study']['step_costs'])" "$SPEC")
rm -rf "$DEST"
.venv/bin/python scripts/study.py "$SPEC" --out "$STUDY" --export "$DEST"
.venv/bin/lowmode-compare "$DEST"/*/e0*_s* --frontier --step-costs "$costs" --out "$STUDY/compare_ladder" > /dev/null
cp "$STUDY/compare_ladder/frontier.md" "$STUDY/compare_ladder/frontier_fse.md" "$DEST/"
cp "$STUDY/compare_ladder/frontier.png" "$DEST/frontier.png"
.venv/bin/python scripts/results/seed_table.py "$DEST" > "$DEST/seed_table.md"
