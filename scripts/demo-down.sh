#!/usr/bin/env bash
# Stops what `make demo` started (by PID): the operator, the workloads, the registries and
# PostgreSQL; then the cluster, unless --processes-only.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
demo=${DEMO_STATE:-$cache/demo}
# ours PID PROGRAM: PID still runs PROGRAM, started by this demo (its environment names this demo's
# state folder). A PID the system has since given to another process is never signalled.
ours() {
    local pid=$1 program=$2 argv0
    [[ -r /proc/$pid/cmdline ]] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)
    [[ $(basename "$argv0") == "$program" ]] || return 1
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "DEMO_STATE=$demo"
}
for pidfile in "$demo"/pids/*.pid; do
    [[ -f $pidfile ]] || continue
    read -r pid program <"$pidfile"
    if [[ -z ${program:-} ]] || ! ours "$pid" "$program"; then
        [[ -d /proc/$pid ]] && echo "left pid $pid alone: it is no longer the demo's ${program:-process}"
        rm -f "$pidfile"
        continue
    fi
    if kill -TERM "$pid" 2>/dev/null; then
        # Wait for it to exit (the api drains for a few seconds), so its port is free again.
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
done
pgdata=$(cat "$demo/pgdata" 2>/dev/null || true)
if [[ -n $pgdata && -f $pgdata/data/postmaster.pid ]]; then
    as_pg=()
    [[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata/data" -m fast -w stop >/dev/null && echo "stopped postgres"
fi
[[ ${1:-} == --processes-only ]] && exit 0
[[ -n $pgdata ]] && rm -rf "$pgdata"
rm -rf "$demo"
"$root/tests/harness/cluster.sh" down
