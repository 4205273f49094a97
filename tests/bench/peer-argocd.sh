#!/usr/bin/env bash
# The peer measured beside the operator when Keel cannot be built (issue 20): Argo CD Image Updater
# with Argo CD (application-controller, repo-server, redis) on the local cluster harness and a real
# docker-registry. Run by tests/bench/compare.sh, and alone:
#
#   tests/bench/peer-argocd.sh OUT.json     build what is missing, measure every N, write the JSON
#   tests/bench/peer-argocd.sh --build      only build (or find) the binaries
#
# Binaries come from the Go module proxy, cached by version in $TRADING_AGENT_CACHE/bin like the
# harness's Kubernetes binaries: argocd-image-updater-$ARGOCD_IMAGE_UPDATER_VERSION,
# argocd-$ARGOCD_VERSION (one binary, every component by ARGOCD_BINARY_NAME) and
# kustomize-$KUSTOMIZE_VERSION (the version that Argo CD release pins). Exact versions only: the
# proxy this machine reaches refuses the modules' version lists. When a binary cannot be fetched or
# built, OUT.json carries the go command's error and every N is FAILED, never an older figure.
#
# Knobs: BENCH_PEER_COUNTS (default BENCH_COMPARE_COUNTS, else "1 100 1000" Deployments, one
# Application each; on 2 busy cores 1,000 takes about 25 minutes, most of it the Image Updater's
# rate-limited cycles), BENCH_SCALE_INTERVAL (the Image Updater's polling interval, default 10 s),
# PEER_LOGS (keep the components' logs there), the three versions above. The cluster harness is
# started (and stopped afterwards) only if it is not already up; TRADING_AGENT_CACHE, ETCD_PORT,
# ETCD_PEER_PORT, APISERVER_PORT choose which.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
counts=${BENCH_PEER_COUNTS:-${BENCH_COMPARE_COUNTS:-1 100 1000}}
interval=${BENCH_SCALE_INTERVAL:-10}
# v0.12.2 is the newest Image Updater the proxy serves whole: v0.13.0 to v0.17.x and v1.0.1+ are
# refused (403), and v1.0.0 builds its registry-scanner from a local replace whose module version
# (registry-scanner v1.0.0) the proxy does not have (404); the one it has, v0.1.0, lacks v1.0.0's
# API (`undefined: log.LoggerFromContext`). The build step below records that error live.
updater_version=${ARGOCD_IMAGE_UPDATER_VERSION:-v0.12.2}
argocd_version=${ARGOCD_VERSION:-v3.1.9}
kustomize_version=${KUSTOMIZE_VERSION:-v5.7.0}

log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

out=${1:-}
[[ -n $out ]] || { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
work=$(mktemp -d /tmp/ta-bench-peer-XXXXXX)
trap 'rm -rf "$work"' EXIT
bin=$("$root/tests/harness/build-tools.sh" --print)
mkdir -p "$bin"
modcache=$(go env GOMODCACHE)
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
# sum.golang.org has no record of these modules' versions (its lookup answers 404), so their
# checksums cannot be verified against it; the proxy's zip is used as served.
export GONOSUMDB=github.com/argoproj-labs

errors=$work/errors.jsonl
: >"$errors"
# fail WHAT LOGFILE: record a build failure with the go command's own words.
fail() {
    log "$1: cannot be built here:"
    grep -v '^go: downloading' "$2" | tail -n 30 | sed 's/^/    /' >&2
    python3 -c 'import json,sys; print(json.dumps({"what": sys.argv[1], "error": "\n".join(l for l in open(sys.argv[2]).read().splitlines() if not l.startswith("go: downloading"))[-3000:].strip()}))' \
        "$1" "$2" >>"$errors"
}

# module_build NAME VERSION MODULE PACKAGE [LDFLAGS]: go build a module's main package inside the
# module's own tree (its go.mod has replace directives, which `go install m@v` refuses).
module_build() {
    local name=$1 version=$2 module=$3 package=$4 ldflags=${5:-}
    local target=$bin/$name-$version blog=$work/$name-build.log
    [[ -x $target ]] && return 0
    log "$name $version: building from the Go module proxy ($module@$version)"
    if ! go mod download "$module@$version" >"$blog" 2>&1; then
        fail "$name $version" "$blog"
        return 1
    fi
    local src=$work/src-$name
    cp -r "$modcache/$module@$version" "$src" && chmod -R u+w "$src"
    if (cd "$src" && nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$target.tmp" "$package") >>"$blog" 2>&1; then
        mv "$target.tmp" "$target"
    else
        rm -f "$target.tmp"
        fail "$name $version" "$blog"
        return 1
    fi
}

built=1
module_build argocd-image-updater "$updater_version" github.com/argoproj-labs/argocd-image-updater ./cmd \
    "-X github.com/argoproj-labs/argocd-image-updater/pkg/version.version=${updater_version#v}" || built=
module_build argocd "$argocd_version" github.com/argoproj/argo-cd/v3 ./cmd \
    "-X github.com/argoproj/argo-cd/v3/common.version=${argocd_version#v}" || built=
# Argo CD's CRDs come from its module (a cached binary does not bring them back to the module cache).
if [[ -n $built ]] && ! go mod download "github.com/argoproj/argo-cd/v3@$argocd_version" >"$work/crds.log" 2>&1; then
    fail "Argo CD $argocd_version's CRDs" "$work/crds.log"
    built=
fi
if [[ ! -x $bin/kustomize-$kustomize_version ]]; then
    log "kustomize $kustomize_version: go install sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version"
    if (GOBIN=$work/gobin nice -n 10 go install -trimpath -ldflags '-s -w' \
        "sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version") >"$work/kustomize-build.log" 2>&1; then
        mv "$work/gobin/kustomize" "$bin/kustomize-$kustomize_version"
    else
        fail "kustomize $kustomize_version" "$work/kustomize-build.log"
        built=
    fi
fi
# Why not the newest Image Updater (v1.0.0): its registry-scanner, asked of the proxy each run.
# The proxy's own answer: without the fallback to `direct` (no github.com from here).
why_not_v1=$(GOPROXY=$(go env GOPROXY | cut -d, -f1) go mod download -json \
    github.com/argoproj-labs/argocd-image-updater/registry-scanner@v1.0.0 2>&1 |
    python3 -c 'import json,sys; t=sys.stdin.read(); print(json.loads(t).get("Error","") if t.strip().startswith("{") else t.strip())' || true)

runs=$work/runs.jsonl
: >"$runs"
if [[ -n $built && ${1:-} != --build ]]; then
    command -v redis-server >/dev/null || { log "redis-server is missing (Debian package redis-server)"; built=; }
fi
if [[ ${1:-} == --build ]]; then
    [[ -n $built ]] && log "built: $bin/argocd-image-updater-$updater_version $bin/argocd-$argocd_version $bin/kustomize-$kustomize_version"
    [[ -n $built ]]
    exit
fi
if [[ -n $built ]]; then
    tools_bin=$("$root/tests/harness/build-tools.sh" | tail -n 1)
    export KUBECONFIG=$cache/cluster/kubeconfig
    for n in $counts; do
        log "Argo CD Image Updater $updater_version + Argo CD $argocd_version: $n Deployments, polling every ${interval}s"
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        if "$root/tests/harness/with-cluster.sh" python3 "$here/peer_argocd.py" \
            --argocd "$bin/argocd-$argocd_version" --argocd-version "$argocd_version" \
            --updater "$bin/argocd-image-updater-$updater_version" --updater-version "$updater_version" \
            --kustomize "$bin/kustomize-$kustomize_version" \
            --crds "$modcache/github.com/argoproj/argo-cd/v3@$argocd_version/manifests/crds" \
            --kubectl "$tools_bin/kubectl" --count "$n" --interval "$interval" \
            ${PEER_LOGS:+--keep-logs "$PEER_LOGS"} >"$work/run-$n.json" && [[ -s $work/run-$n.json ]]; then
            :
        else
            log "Argo CD Image Updater at $n: FAILED (see above)"
        fi
        python3 -c 'import json,sys
try:
    r=json.load(open(sys.argv[1]))
except Exception:
    r={"count": int(sys.argv[3]), "error": "peer_argocd.py failed at "+sys.argv[3]+" Deployments before printing a result (its messages are in the bench log)"}
r["load"]=sys.argv[2]; print(json.dumps(r))' "$work/run-$n.json" "$load" "$n" >>"$runs"
    done
fi

python3 - "$errors" "$runs" "$updater_version" "$argocd_version" "$kustomize_version" "$why_not_v1" >"$out" <<'EOF'
import json, sys
errors = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
result = {"tool": "Argo CD Image Updater + Argo CD", "updater_version": sys.argv[3],
          "argocd_version": sys.argv[4], "kustomize_version": sys.argv[5],
          "why_not_v1": sys.argv[6], "runs": runs}
if errors:
    result["error"] = "\n\n".join(e["what"] + ":\n" + e["error"] for e in errors)
print(json.dumps(result))
EOF
