#!/bin/bash
# docs/RESULTS.md 0.7: an adaptive-schedule study's report once its runs are done: compact copies of its runs
# (epoch and "adapt" records; summary.json given the controller's fields — overhead, climbs — from them), and
# the frontier of the adaptive runs with the baseline (and any fixed families) already exported for that
# dataset, in wall-clock and in full-step equivalents (the spec's step costs), plus the controller's adapt.png.
#   SPEC=scripts/studies/adaptive_imagenette.toml STUDY=/work/studies/adaptive_imagenette \
#     DEST=docs/results/imagenette/adaptive \
#     WITH="docs/results/imagenette/ladder/baseline docs/results/imagenette/ladder/ladder_delayed" \
#     scripts/results/adaptive_study_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${SPEC:?set SPEC to the study spec}" "${STUDY:?set STUDY to the --out of the study}" "${DEST:?set DEST}"
costs=$(.venv/bin/python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['study']['step_costs'] or '')" "$SPEC" 2>/dev/null || true)
rm -rf "$DEST"
.venv/bin/python scripts/study.py "$SPEC" --out "$STUDY" --export "$DEST"
.venv/bin/python - "$DEST" <<'PY'
import json, sys
from pathlib import Path
from trainer.report.metrics import adapt_summary, read_records
for summary_path in Path(sys.argv[1]).glob("*/*/summary.json"):
    summary = json.loads(summary_path.read_text())
    summary.update(adapt_summary(list(read_records(summary_path.parent / "metrics.jsonl")), summary["train_wall_s"]))
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
PY
runs=("$DEST"/*/e0*_s*)
for dir in ${WITH:-}; do runs+=("$dir"/e0*_s*); done
out="$STUDY/compare_adaptive"
if [ -n "$costs" ]; then
  .venv/bin/lowmode-compare "${runs[@]}" --frontier --step-costs "$costs" --out "$out" > /dev/null
  cp "$out/frontier_fse.md" "$DEST/"
else
  .venv/bin/lowmode-compare "${runs[@]}" --frontier --out "$out" > /dev/null
fi
cp "$out/frontier.md" "$out/frontier.png" "$DEST/"
[ -f "$out/adapt.png" ] && cp "$out/adapt.png" "$DEST/"
.venv/bin/python scripts/results/seed_table.py "$DEST" > "$DEST/seed_table.md"
