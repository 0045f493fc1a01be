#!/usr/bin/env bash
# Stop the single-node test cluster started by scripts/slurm-up.sh (`make slurm-down`).
#
# Cancels this cluster's jobs, then stops slurmd, slurmctld and munged by the PIDs recorded in
# $LOWMODE_SLURM_DIR/run/*.pid (never by process name). A munged that slurm-up did not start (no pid file)
# is left running. State and logs stay in $LOWMODE_SLURM_DIR for inspection.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/slurm-conf/common.sh
. "$HERE/slurm-conf/common.sh" # DIR, CONF, pid_of, stop_daemon, ours

log() { echo "slurm-down: $*"; }

# cancel_jobs: only on our own cluster (a slurm.conf written by slurm-up.sh) with a controller that answers.
cancel_jobs() {
    ours && [ -n "$(pid_of slurmctld)" ] && scontrol ping >/dev/null 2>&1 || return 0
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    [ -n "$jobs" ] || return 0
    log "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
    # shellcheck disable=SC2086
    scancel $jobs || true
    for _ in $(seq 30); do
        [ -z "$(squeue -h -t PD,R,CG,S -o %A 2>/dev/null)" ] && return 0
        sleep 1
    done
    log "warning: jobs still listed after 30 s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
}

cancel_jobs
for name in slurmd slurmctld munged; do
    if [ -z "$(pid_of "$name")" ]; then
        log "$name not running (no live pid in $DIR/run/$name.pid)"
    fi
    stop_daemon "$name" | sed 's/^/slurm-down: /'
done
