#!/usr/bin/env bash
# Level 3 side by side (issue 20, part 4): push -> every pod of one trading desk serving the new
# digest on the harness's real kubelet node, the operator (notified and polled) against the peer
# (Argo CD Image Updater + Argo CD, polled), same node, same registry, same image, one run.
# Needs root (the real node). Run by tests/bench/run.sh when NODE=real, and alone:
#
#   tests/bench/level3.sh OUT.json     measure, write the figures as JSON
#   tests/bench/level3.sh --report     measure, then rewrite only the "Level 3" section of
#                                      tests/bench/RESULTS.md (BENCH_RESULTS: another file)
#
# Knobs: BENCH_LEVEL3_ROUNDS (pushes per tool and mode, default 5), BENCH_SCALE_INTERVAL (both
# tools' polling interval, default 10 s), LEVEL3_LOGS (keep every process's log there), and
# peer-argocd.sh's versions. The cluster harness is brought up with NODE=real (and stopped
# afterwards) only if it is not already up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
export NODE=real
rounds=${BENCH_LEVEL3_ROUNDS:-5}
interval=${BENCH_SCALE_INTERVAL:-10}
updater_version=${ARGOCD_IMAGE_UPDATER_VERSION:-v0.12.2}
argocd_version=${ARGOCD_VERSION:-v3.1.9}
kustomize_version=${KUSTOMIZE_VERSION:-v5.7.0}

log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

report=
out=${1:-}
if [[ $out == --report ]]; then
    report=1
    out=$cache/bench-level3.json
fi
[[ -n $out ]] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { log "level 3 needs root (the harness's real node)"; exit 2; }

fail_json() {
    python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' "$1" >"$out"
    log "level 3: FAILED: $1"
    exit 1
}

log "building the operator and the workload (release) and the peer (cached by version)"
(cd "$root" && cargo build --locked --quiet --release -p trading-agent-operator -p trading-agent \
    --bin trading-agent-operator --bin trading-agent) || fail_json "cargo build failed (its messages are above)"
"$here/peer-argocd.sh" --build || fail_json "the peer cannot be built here (tests/bench/peer-argocd.sh --build says why above)"
bin=$("$root/tests/harness/build-tools.sh" --print)
tools_bin=$("$root/tests/harness/build-tools.sh" | tail -n 1)
crds=$(go env GOMODCACHE)/github.com/argoproj/argo-cd/v3@$argocd_version/manifests/crds
export KUBECONFIG=$cache/cluster/kubeconfig
load=$(cut -d' ' -f1-3 /proc/loadavg)
commit="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- operator api tests ':!tests/bench/RESULTS.md' 2>/dev/null || echo '+local changes')"
run=$(mktemp /tmp/ta-level3-XXXXXX.json)
trap 'rm -f "$run"' EXIT
if ! "$root/tests/harness/with-cluster.sh" sh -c '"$1" apply -f "$2" >/dev/null && "$1" wait --for=condition=Established \
    --timeout=60s crd/tradingagents.tradingagents.dev >/dev/null && shift 2 && exec python3 "$@"' _ \
    "$tools_bin/kubectl" "$root/crds/tradingagents.yaml" "$here/level3.py" \
    --operator "$CARGO_TARGET_DIR/release/trading-agent-operator" --workload "$CARGO_TARGET_DIR/release/trading-agent" \
    --build-image "$root/scripts/build-image.sh" --real-node "$root/tests/harness/real-node.sh" \
    --kubectl "$tools_bin/kubectl" --argocd "$bin/argocd-$argocd_version" \
    --updater "$bin/argocd-image-updater-$updater_version" --kustomize "$bin/kustomize-$kustomize_version" \
    --crds "$crds" --rounds "$rounds" --interval "$interval" \
    --versions "{\"updater_version\": \"$updater_version\", \"argocd_version\": \"$argocd_version\"}" >"$run"; then
    [[ -s $run ]] || fail_json "tests/bench/level3.py failed before printing a result (its messages are above)"
fi
python3 - "$run" "$load" "$(cut -d' ' -f1-3 /proc/loadavg)" "$commit" >"$out" <<'EOF'
import datetime, json, sys
result = json.load(open(sys.argv[1]))
result.update({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "load_start": sys.argv[2], "load_end": sys.argv[3], "commit": sys.argv[4]})
print(json.dumps(result))
EOF
if [[ -n $report ]]; then
    python3 "$here/report.py" --level3-section "$out" --update "${BENCH_RESULTS:-$here/RESULTS.md}"
    log "rewrote the level 3 section of ${BENCH_RESULTS:-$here/RESULTS.md}"
fi
python3 -c 'import json,sys; sys.exit(1 if "error" in json.load(open(sys.argv[1])) else 0)' "$out"
