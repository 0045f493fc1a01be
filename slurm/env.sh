# shellcheck shell=bash
# Sourced by slurm/*.sbatch on the compute node (not run): locate the checkout and the virtualenv.
#
#   LOWMODE_ROOT  repository checkout; default: the directory sbatch was called from ($SLURM_SUBMIT_DIR)
#   LOWMODE_VENV  virtualenv with lowmode installed; default: $LOWMODE_ROOT/.venv (its bin/ goes first on PATH,
#                 so lowmode-preprocess, lowmode-compare and python are the venv's even when jobs run as root)
# Sets PYTHON and changes into LOWMODE_ROOT so that relative paths (configs/, data/, runs/) mean the same as
# on the login node. Exits 2 with one line naming the variable when something is missing.

LOWMODE_VENV=${LOWMODE_VENV:-$LOWMODE_ROOT/.venv}
if [ ! -x "$LOWMODE_VENV/bin/python" ]; then
    echo "lowmode slurm: error: no python in LOWMODE_VENV=$LOWMODE_VENV (set LOWMODE_VENV to the virtualenv)" >&2
    exit 2
fi
export LOWMODE_ROOT LOWMODE_VENV
export PATH="$LOWMODE_VENV/bin:$PATH"
# shellcheck disable=SC2034 # used by the sourcing script
PYTHON="$LOWMODE_VENV/bin/python"
cd "$LOWMODE_ROOT" || { echo "lowmode slurm: error: cannot cd to LOWMODE_ROOT=$LOWMODE_ROOT" >&2; exit 2; }
