# shellcheck shell=bash
# Shared by scripts/slurm-up.sh and scripts/slurm-down.sh (sourced, not run): paths and pid-file helpers.
# Daemons are only ever signalled through the pid files under $DIR/run, never looked up by name.

DIR=${LOWMODE_SLURM_DIR:-/var/tmp/lowmode-slurm}
CONF=${LOWMODE_SLURM_CONF:-/etc/slurm/slurm.conf}
MARKER="# written by lowmode scripts/slurm-up.sh"
export SLURM_CONF=$CONF

# pid_of NAME: print the pid recorded in $DIR/run/NAME.pid if that process is alive and still NAME
# (the check guards against a recycled pid); print nothing otherwise.
pid_of() {
    local pidfile="$DIR/run/$1.pid" pid comm
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0
    [[ $comm == "$1"* ]] && echo "$pid"
    return 0
}

# stop_daemon NAME: SIGTERM the recorded pid, wait up to 10 s, then SIGKILL; remove the pid file.
stop_daemon() {
    local name=$1 pid
    pid=$(pid_of "$name")
    if [ -z "$pid" ]; then
        rm -f "$DIR/run/$name.pid"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "stopped $name (pid $pid)"
            rm -f "$DIR/run/$name.pid"
            return 0
        fi
        sleep 0.1
    done
    echo "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$DIR/run/$name.pid"
}

# ours: true when $CONF was written by slurm-up.sh (so this is our test cluster, safe to manage).
ours() {
    head -n 1 "$CONF" 2>/dev/null | grep -qF "$MARKER"
}
