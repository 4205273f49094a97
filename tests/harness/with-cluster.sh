#!/usr/bin/env bash
# Runs a command with the local cluster up: starts it if it is not running, and stops it afterwards
# only if this script started it (a developer's running cluster is left alone). KEEP_CLUSTER=1 keeps
# a cluster this script started.
#
#   tests/harness/with-cluster.sh cargo test --workspace
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

started=
if ! "$here/cluster.sh" status 2>/dev/null | grep -q '^api server: ready'; then
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
