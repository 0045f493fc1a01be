#!/usr/bin/env bash
# Submit the whole experiment as one afterok chain and print the job ids (see slurm/README.md):
#   preprocess array (N parts) -> finalize (manifest) -> baseline + lowmode training -> compare
#
#   slurm/submit_all.sh --data data/fashion-mnist --parts 4 -- --source fashion-mnist
#   slurm/submit_all.sh --data data/cifar10 --baseline configs/cifar10_resnet18_baseline.toml \
#       --lowmode configs/cifar10_resnet18_lowmode.toml -- --source cifar10 --input data/cifar-10-python.tar.gz
#
# Options:
#   --data DIR          dataset directory: `--out DIR` for preprocess, `data.dir=DIR` for both trainings (required)
#   --parts N           preprocess array size (default 2)
#   --skip-preprocess   DIR already holds a finished dataset: submit training and compare only
#   --baseline CONFIG   (default configs/fmnist_small_baseline.toml)
#   --lowmode CONFIG    (default configs/fmnist_small_lowmode.toml)
#   --name PREFIX       job names PREFIX-baseline / PREFIX-lowmode, hence runs/PREFIX-baseline ... (default lowmode)
#   --compare-out DIR   (default $LOWMODE_RUNS/PREFIX-compare, LOWMODE_RUNS defaulting to runs)
#   --set KEY=VALUE     a config override for both trainings (repeatable)
#   --dry-run           print the sbatch commands with placeholder job ids; submit nothing
#   -- BUILD-ARGS       everything after -- goes to `lowmode-preprocess build` (without --out and --part)
# Cluster-specific sbatch options per stage come from the environment, split on spaces:
#   LOWMODE_SBATCH_PREPROCESS (e.g. "--partition=cpu --cpus-per-task=8 --time=1:00:00")
#   LOWMODE_SBATCH_TRAIN      (e.g. "--partition=gpu --nodes=2 --gpus-per-node=4 --cpus-per-task=32 --time=12:00:00")
#   LOWMODE_SBATCH_COMPARE    (e.g. "--partition=cpu --time=0:10:00")
# The jobs themselves read LOWMODE_ROOT, LOWMODE_VENV, LOWMODE_NPROC_PER_NODE, ... (sbatch exports the
# environment by default). Run from the repository root.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "submit_all.sh: error: $*" >&2; exit 2; }

DATA="" PARTS=2 SKIP_PREPROCESS=0 DRY_RUN=0 NAME=lowmode COMPARE_OUT=""
BASELINE=configs/fmnist_small_baseline.toml LOWMODE=configs/fmnist_small_lowmode.toml
OVERRIDES=() BUILD_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --data) DATA=${2:?--data needs a directory}; shift 2 ;;
        --parts) PARTS=${2:?--parts needs a number}; shift 2 ;;
        --skip-preprocess) SKIP_PREPROCESS=1; shift ;;
        --baseline) BASELINE=${2:?--baseline needs a config}; shift 2 ;;
        --lowmode) LOWMODE=${2:?--lowmode needs a config}; shift 2 ;;
        --name) NAME=${2:?--name needs a prefix}; shift 2 ;;
        --compare-out) COMPARE_OUT=${2:?--compare-out needs a directory}; shift 2 ;;
        --set) OVERRIDES+=("${2:?--set needs KEY=VALUE}"); shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h | --help) usage 0 ;;
        --) shift; BUILD_ARGS=("$@"); break ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$DATA" ] || die "--data DIR is required"
[[ $PARTS =~ ^[1-9][0-9]*$ ]] || die "--parts must be a positive integer, got '$PARTS'"
[ -r "$BASELINE" ] || die "baseline config $BASELINE not readable"
[ -r "$LOWMODE" ] || die "lowmode config $LOWMODE not readable"
[ "$SKIP_PREPROCESS" = 1 ] || [ ${#BUILD_ARGS[@]} -gt 0 ] || die "give the preprocess build arguments after --"
COMPARE_OUT=${COMPARE_OUT:-${LOWMODE_RUNS:-runs}/$NAME-compare}
HERE=slurm
unset LOWMODE_RUN_DIR # one run directory per job name; a global override would send both runs to one place
[ -r "$HERE/train.sbatch" ] || die "run from the repository root (slurm/train.sbatch not found)"

read -r -a SB_PRE <<<"${LOWMODE_SBATCH_PREPROCESS:-}"
read -r -a SB_TRAIN <<<"${LOWMODE_SBATCH_TRAIN:-}"
read -r -a SB_CMP <<<"${LOWMODE_SBATCH_COMPARE:-}"
FAKE_ID=1000

# submit VAR ARGS...: run `sbatch --parsable ARGS`, store the job id in VAR (--dry-run: print the command and
# store a placeholder id instead).
submit() {
    local var=$1 out
    shift
    if [ "$DRY_RUN" = 1 ]; then
        FAKE_ID=$((FAKE_ID + 1))
        echo "[dry-run] sbatch $*"
        printf -v "$var" '%s' "$FAKE_ID"
        return 0
    fi
    out=$(sbatch --parsable "$@") || die "sbatch $* failed"
    printf -v "$var" '%s' "${out%%;*}" # --parsable prints "id" or "id;cluster"
}

DEP=()
if [ "$SKIP_PREPROCESS" = 0 ]; then
    submit ARRAY_ID "${SB_PRE[@]}" --array="0-$((PARTS - 1))" "$HERE/preprocess.sbatch" "${BUILD_ARGS[@]}" --out "$DATA"
    submit FINAL_ID "${SB_PRE[@]}" --dependency="afterok:$ARRAY_ID" --kill-on-invalid-dep=yes \
        "$HERE/preprocess.sbatch" "${BUILD_ARGS[@]}" --out "$DATA"
    echo "preprocess array: $ARRAY_ID ($PARTS parts)"
    echo "preprocess finalize: $FINAL_ID"
    DEP=(--dependency="afterok:$FINAL_ID" --kill-on-invalid-dep=yes)
fi

TRAIN_ARGS=("data.dir=\"$DATA\"" "${OVERRIDES[@]}")
submit BASE_ID "${SB_TRAIN[@]}" "${DEP[@]}" --job-name="$NAME-baseline" "$HERE/train.sbatch" "$BASELINE" "${TRAIN_ARGS[@]}"
submit LOW_ID "${SB_TRAIN[@]}" "${DEP[@]}" --job-name="$NAME-lowmode" "$HERE/train.sbatch" "$LOWMODE" "${TRAIN_ARGS[@]}"
echo "baseline: $BASE_ID (run dir ${LOWMODE_RUNS:-runs}/$NAME-baseline)"
echo "lowmode: $LOW_ID (run dir ${LOWMODE_RUNS:-runs}/$NAME-lowmode)"

submit CMP_ID "${SB_CMP[@]}" --dependency="afterok:$BASE_ID:$LOW_ID" --kill-on-invalid-dep=yes \
    --job-name="$NAME-compare" "$HERE/compare.sbatch" "$COMPARE_OUT" \
    "${LOWMODE_RUNS:-runs}/$NAME-baseline" "${LOWMODE_RUNS:-runs}/$NAME-lowmode"
echo "compare: $CMP_ID (output $COMPARE_OUT)"
