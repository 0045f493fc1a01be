#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (`make slurm-up`) for the slurm/ scripts and tests/slurm.
#
# Installs slurm-wlm + munge (Debian) if missing, creates a munge key if missing, writes slurm.conf for
# localhost from scripts/slurm-conf/slurm.conf.in, starts munged, slurmctld and slurmd as daemons (their PIDs
# are recorded under $LOWMODE_SLURM_DIR/run/) and waits until the node is idle. Idempotent: daemons that are
# already running are left alone. Needs root (apt-get, daemons). Stop with scripts/slurm-down.sh.
#
# Environment (defaults):
#   LOWMODE_SLURM_DIR=/var/tmp/lowmode-slurm   state, spool, pid files and logs
#   LOWMODE_SLURM_CONF=/etc/slurm/slurm.conf   where the config goes (elsewhere: export SLURM_CONF=... for clients)
#   LOWMODE_SLURM_PARTITION=debug              the one (default) partition
#   LOWMODE_SLURM_CTLD_PORT=6817 LOWMODE_SLURM_SLURMD_PORT=6818
#   LOWMODE_SLURM_TIMEOUT=60                   seconds to wait for the node to become idle
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/slurm-conf/common.sh
. "$HERE/slurm-conf/common.sh" # DIR, CONF, MARKER, pid_of, stop_daemon, ours
PARTITION=${LOWMODE_SLURM_PARTITION:-debug}
CTLD_PORT=${LOWMODE_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LOWMODE_SLURM_SLURMD_PORT:-6818}
TIMEOUT=${LOWMODE_SLURM_TIMEOUT:-60}
TEMPLATE="$HERE/slurm-conf/slurm.conf.in"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
NODE=$(hostname -s)

log() { echo "slurm-up: $*"; }

# fail MESSAGE: one-line error, exit 1. die MESSAGE: the same plus the daemons' log tails (start-up problems).
fail() {
    echo "slurm-up: error: $*" >&2
    exit 1
}

die() {
    echo "slurm-up: error: $*" >&2
    local f
    for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" /var/log/munge/munged.log; do
        [ -r "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

install_packages() {
    local missing=0 cmd
    for cmd in munged slurmctld slurmd sbatch; do
        command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing=1
    done
    [ "$missing" = 0 ] && return 0
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; } \
        || fail "apt-get install slurm-wlm munge failed"
}

ensure_munge_key() {
    [ -s "$MUNGE_KEY" ] && return 0
    log "creating $MUNGE_KEY"
    mkdir -p "$(dirname "$MUNGE_KEY")"
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    chown munge:munge "$MUNGE_KEY" "$(dirname "$MUNGE_KEY")"
    chmod 0400 "$MUNGE_KEY"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running"
        return 0
    fi
    mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chmod 0755 "$MUNGE_RUN"
    # munged refuses world-writable or foreign-owned key/socket dirs; run it as munge like Debian's unit does.
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_RUN/munged.pid" || die "munged failed to start"
    cp "$MUNGE_RUN/munged.pid" "$DIR/run/munged.pid"
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munged started but munge -n | unmunge fails"
    log "munged started (pid $(cat "$DIR/run/munged.pid"))"
}

# render_conf: print slurm.conf for this machine (the node line is `slurmd -C`'s: CPUs, topology, RealMemory).
render_conf() {
    local node_line
    node_line=$(/usr/sbin/slurmd -C | head -n 1)
    [[ $node_line == NodeName=* ]] || die "unexpected \`slurmd -C\` output: $node_line"
    sed -e "s|@NODE_LINE@|$node_line|" -e "s|@NODE@|$NODE|g" -e "s|@DIR@|$DIR|g" \
        -e "s|@PARTITION@|$PARTITION|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" \
        -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" "$TEMPLATE"
}

# write_conf: install the rendered config; never overwrites a slurm.conf that this script did not write.
write_conf() {
    local tmp
    if [ -e "$CONF" ] && ! ours; then
        fail "$CONF exists and was not written by slurm-up.sh; refusing to overwrite it" \
            "(set LOWMODE_SLURM_CONF to another path)"
    fi
    mkdir -p "$(dirname "$CONF")"
    tmp=$(mktemp "$CONF.XXXXXX")
    render_conf >"$tmp"
    chmod 0644 "$tmp"
    if [ -e "$CONF" ] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 1 # unchanged
    fi
    mv "$tmp" "$CONF" || fail "cannot write $CONF"
    log "wrote $CONF"
}

start_daemon() {
    local name=$1
    if [ -n "$(pid_of "$name")" ]; then
        log "$name already running (pid $(cat "$DIR/run/$name.pid"))"
        return 0
    fi
    # The daemon forks, then writes its own pid file ($DIR/run/NAME.pid, set in slurm.conf).
    rm -f "$DIR/run/$name.pid"
    "/usr/sbin/$name" -f "$CONF" || die "$name failed to start"
    for _ in $(seq 50); do
        [ -n "$(pid_of "$name")" ] && { log "$name started (pid $(cat "$DIR/run/$name.pid"))"; return 0; }
        sleep 0.2
    done
    die "$name did not write $DIR/run/$name.pid within 10 s"
}

wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state resumed=0
    while [ $SECONDS -lt "$deadline" ]; do
        state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1 || true)
        case $state in
            idle | mix | alloc | comp)
                log "node $NODE is $state (partition $PARTITION) after ${SECONDS}s"
                return 0
                ;;
            drain* | down | drng)
                # Left over from an earlier unclean stop; the daemons are up now, so put the node back.
                if [ "$resumed" = 0 ]; then
                    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi
                ;;
        esac
        sleep 0.5
    done
    die "node $NODE not idle after ${TIMEOUT}s (sinfo state: '${state:-none}')"
}

main() {
    [ "$(id -u)" = 0 ] || fail "needs root (installs packages, runs slurmctld/slurmd as root)"
    [ -r "$TEMPLATE" ] || fail "template $TEMPLATE not found"
    install_packages
    mkdir -p "$DIR"/{state,spool,run,log}
    ensure_munge_key
    start_munge
    if write_conf; then
        # Some settings (ports, cred_expire, the node line) only take effect on a restart, not a reconfigure.
        stop_daemon slurmd
        stop_daemon slurmctld
    fi
    start_daemon slurmctld
    start_daemon slurmd
    wait_idle
    [ "$CONF" = /etc/slurm/slurm.conf ] || log "clients need: export SLURM_CONF=$CONF"
}

main "$@"
