#!/usr/bin/env bash
# Side by side (issue 20): the operator against Keel and against the API server's own ceiling, on
# the local cluster harness and a real docker-registry, in one run. Run by tests/bench/run.sh
# (`make bench`; BENCH_SKIP_COMPARE=1 skips it) and alone:
#
#   tests/bench/compare.sh OUT.json     measure, write the figures as JSON (run.sh's way)
#   tests/bench/compare.sh --report     measure, then rewrite only the "Side by side" section of
#                                       tests/bench/RESULTS.md (BENCH_RESULTS: another file)
#
# 1. Keel (github.com/keel-hq/keel) from the Go module proxy, cached by version in
#    $TRADING_AGENT_CACHE/bin like the harness's Kubernetes binaries. When it cannot be fetched or
#    built, the section says FAILED with the go command's own error, never an older figure, and
#    the next closest tool that builds is measured instead: Argo CD Image Updater with Argo CD
#    (tests/bench/peer-argocd.sh, same cluster, same N; BENCH_SKIP_PEER=1 skips it).
# 2. For each N in BENCH_COMPARE_COUNTS (default "1 100 1000" TradingAgents, 3 Deployments each):
#    ta-bench-operator (tests/src/bin/ta-bench-operator.rs): converge, registry requests per
#    polling interval, push → all re-pinned with the notification and by polling, delete, each
#    with the API server's writes and CPU seconds by process; then the ceiling: the operator
#    stopped, a plain client loop patching the same number of Deployments' images with
#    BENCH_CEILING_IN_FLIGHT (96 = the operator's 32 reconciliations × 3 Deployments) in flight.
#
# Knobs: BENCH_COMPARE_COUNTS, BENCH_SCALE_INTERVAL (10 s polling interval), BENCH_CEILING_IN_FLIGHT,
# KEEL_VERSION (default: latest), BENCH_SKIP_PEER and peer-argocd.sh's own. The cluster harness is
# started (and stopped afterwards) only if it is not already up; TRADING_AGENT_CACHE, ETCD_PORT,
# ETCD_PEER_PORT, APISERVER_PORT choose which.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
counts=${BENCH_COMPARE_COUNTS:-1 100 1000}
interval=${BENCH_SCALE_INTERVAL:-10}
in_flight=${BENCH_CEILING_IN_FLIGHT:-96}
keel_version=${KEEL_VERSION:-latest}

log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

report=
out=${1:-}
if [[ $out == --report ]]; then
    report=1
    out=
fi
[[ -n $out || -n $report ]] || { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
work=$(mktemp -d /tmp/ta-bench-compare-XXXXXX)
trap 'rm -rf "$work"' EXIT
# --report keeps its JSON in the cache, so a failed report step loses no measurement.
[[ -n $out ]] || out=$cache/bench-compare.json
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. Keel, from the Go module proxy (GOFLAGS=-mod=mod: Keel's own go.mod decides) ----
keel_json=$work/keel.json
bin=$("$root/tests/harness/build-tools.sh" --print)
keel_bin=$bin/keel-$keel_version
if [[ -x $keel_bin ]]; then
    printf '{"version": "%s", "binary": "%s"}\n' "$keel_version" "$keel_bin" >"$keel_json"
else
    log "Keel $keel_version: go install github.com/keel-hq/keel/cmd/keel@$keel_version"
    gobin=$(mktemp -d)
    if (GOBIN=$gobin GOFLAGS=-mod=mod GOTOOLCHAIN=local go install -trimpath -ldflags '-s -w' \
        "github.com/keel-hq/keel/cmd/keel@$keel_version") >"$work/keel-build.log" 2>&1; then
        mv "$gobin/keel" "$keel_bin"
        printf '{"version": "%s", "binary": "%s"}\n' "$keel_version" "$keel_bin" >"$keel_json"
    else
        log "Keel: cannot be built here:"
        sed 's/^/    /' "$work/keel-build.log" >&2
        python3 -c 'import json,sys; print(json.dumps({"version": sys.argv[1], "error": open(sys.argv[2]).read().strip()}))' \
            "$keel_version" "$work/keel-build.log" >"$keel_json"
    fi
    rm -rf "$gobin"
fi
# A Keel binary would be driven here (Deployments annotated keel.sh/policy=force, match-tag,
# keel.sh/trigger=poll; the registry's notifications to /v1/webhooks/registry). No driver is
# written yet, because no Keel binary could ever be built on this machine to write it against.
if python3 -c 'import json,sys; sys.exit("error" in json.load(open(sys.argv[1])))' "$keel_json"; then
    python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); k["error"]="Keel "+k["version"]+" is built ("+k["binary"]+") but tests/bench/compare.sh has no Keel driver yet"; print(json.dumps(k))' \
        "$keel_json" >"$keel_json.tmp" && mv "$keel_json.tmp" "$keel_json"
fi

# When Keel cannot be built, the next closest tool that can: Argo CD Image Updater with Argo CD
# (tests/bench/peer-argocd.sh, same cluster, same N; BENCH_SKIP_PEER=1 skips it). Its failure is
# written as FAILED with its reason, never an older figure.
peer_json=$work/peer.json
if [[ -z ${BENCH_SKIP_PEER:-} ]] && ! python3 -c 'import json,sys; sys.exit("error" in json.load(open(sys.argv[1])))' "$keel_json"; then
    if ! "$here/peer-argocd.sh" "$peer_json" || [[ ! -s $peer_json ]]; then
        log "the peer (Argo CD Image Updater): FAILED (see above)"
        [[ -s $peer_json ]] || printf '{"error": "tests/bench/peer-argocd.sh failed before writing its result (its messages are in the bench log)"}\n' >"$peer_json"
    fi
fi

# ---- 2. ours and the ceiling, per N ----
log "building the operator and ta-bench-operator (release)"
(cd "$root" && cargo build --locked --quiet --release -p trading-agent-operator -p trading-agent-tests \
    --bin trading-agent-operator --bin ta-bench-operator)
tools_bin=$("$root/tests/harness/build-tools.sh" | tail -n 1)
export KUBECONFIG=$cache/cluster/kubeconfig
runs=$work/runs.jsonl
: >"$runs"
for n in $counts; do
    log "ours and the ceiling: $n TradingAgents ($((3 * n)) Deployments), polling every ${interval}s"
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    if "$root/tests/harness/with-cluster.sh" sh -c '"$1" apply -f "$2" >/dev/null && "$1" wait --for=condition=Established \
        --timeout=60s crd/tradingagents.tradingagents.dev >/dev/null && "$3" --operator "$4" --count "$5" \
        --interval "$6" --ceiling-in-flight "$7"' _ "$tools_bin/kubectl" "$root/crds/tradingagents.yaml" \
        "$CARGO_TARGET_DIR/release/ta-bench-operator" "$CARGO_TARGET_DIR/release/trading-agent-operator" \
        "$n" "$interval" "$in_flight" >"$work/run-$n.json" && [[ -s $work/run-$n.json ]]; then
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["load"]=sys.argv[2]; print(json.dumps(r))' \
            "$work/run-$n.json" "$load" >>"$runs"
    else
        log "ours and the ceiling at $n: FAILED (see above)"
        printf '{"count": %s, "load": "%s", "error": "ta-bench-operator failed at %s agents (its messages are in the bench log)"}\n' \
            "$n" "$load" "$n" >>"$runs"
    fi
done

python3 - "$keel_json" "$runs" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- operator tests ':!tests/bench/RESULTS.md' 2>/dev/null || echo '+local changes')" \
    "$peer_json" >"$out" <<'EOF'
import json, os, sys, datetime
keel = json.load(open(sys.argv[1]))
runs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "load_start": sys.argv[3], "load_end": sys.argv[4], "commit": sys.argv[5],
          "keel": keel, "runs": runs}
if os.path.exists(sys.argv[6]):
    result["peer"] = json.load(open(sys.argv[6]))
print(json.dumps(result))
EOF
if [[ -n $report ]]; then
    python3 "$here/report.py" --compare-section "$out" --update "${BENCH_RESULTS:-$here/RESULTS.md}"
    log "rewrote the side-by-side section of ${BENCH_RESULTS:-$here/RESULTS.md}"
fi
