#!/usr/bin/env bash
# Runs a command with the local cluster up: starts it if it is not running, and stops it afterwards
# only if this script started it (a developer's running cluster is left alone). KEEP_CLUSTER=1 keeps
# a cluster this script started.
#
#   tests/harness/with-cluster.sh cargo test --workspace
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# A running cluster is never restarted under someone else's feet: without NODE, the command joins it
# in whatever mode it runs; with a NODE it does not run in, the command is refused.
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
# (status is captured first: `status | grep -q` under pipefail fails when grep stops reading early)
status=$("$here/cluster.sh" status 2>/dev/null || true)
if grep -q '^kube-apiserver: running' <<<"$status"; then
    running_mode=$(cat "$cache/cluster/node-mode" 2>/dev/null || echo kwok)
    if [[ -z ${NODE:-} ]]; then
        export NODE=$running_mode
    elif [[ $NODE != "$running_mode" ]]; then
        echo "with-cluster: a cluster runs with NODE=$running_mode, not NODE=$NODE; run with NODE=$running_mode, or stop it first (make cluster-down)" >&2
        exit 2
    fi
fi
started=
status=$("$here/cluster.sh" status 2>/dev/null || true)
if ! grep -q '^api server: ready' <<<"$status"; then
    "$here/cluster.sh" up >/dev/null
    started=1
fi
cleanup() {
    if [[ -n $started && -z ${KEEP_CLUSTER:-} ]]; then
        "$here/cluster.sh" down >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
KUBECONFIG=$("$here/cluster.sh" env | sed 's/^export KUBECONFIG=//')
export KUBECONFIG
"$@"
