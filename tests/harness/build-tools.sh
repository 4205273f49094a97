#!/usr/bin/env bash
# Builds (once) and caches every binary the local cluster harness needs, keyed by version, outside
# the clone: kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and helm (and, with
# NODE=real, the kubelet and kube-proxy of the real node).
# Idempotent: a binary already in the cache is reused. Prints the cache's bin folder on the last line.
#
#   tests/harness/build-tools.sh            build what is missing
#   tests/harness/build-tools.sh --print    only print the bin folder
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
bin="$cache/bin"
logs="$cache/build-logs"
mkdir -p "$bin" "$logs"

if [[ "${1:-}" == "--print" ]]; then
    echo "$bin"
    exit 0
fi

# One build at a time per cache (two `make test` runs at once would otherwise race).
exec 9>"$cache/build.lock"
flock 9

# Read-only module mode: the tools modules' go.mod and go.sum are complete and tracked; a build
# must never rewrite them (a change there is a reviewed commit, not a side effect of `make`).
export GOFLAGS=-mod=readonly
export GOTOOLCHAIN=local

step() { printf '==> %s\n' "$*" >&2; }

# build NAME VERSION DIR GO-ARGS...: go build into $bin/NAME-VERSION unless it exists.
build() {
    local name=$1 version=$2 dir=$3
    shift 3
    local out="$bin/$name-$version"
    if [[ -x "$out" ]]; then
        return 0
    fi
    local log="$logs/$name-$version.log"
    step "building $name $version (log: $log; first build only, this can take many minutes)"
    local started=$SECONDS
    # /usr/bin/time -v records the peak memory of the build in the log.
    if ! (cd "$dir" && /usr/bin/time -v go build -trimpath -o "$out.tmp" "$@") >"$log" 2>&1; then
        rm -f "$out.tmp"
        echo "build-tools: building $name $version failed; see $log" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    mv "$out.tmp" "$out"
    local peak
    peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    step "built $name $version in $((SECONDS - started))s (peak RSS of the go build: ${peak:-?} KiB)"
}

k8s_minor=${KUBERNETES_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# The real node (NODE=real, level 3) also needs the kubelet and kube-proxy.
[[ ${NODE:-kwok} == real ]] && k8s_cmds+=(kubelet kube-proxy)
for cmd in "${k8s_cmds[@]}"; do
    build "$cmd" "$KUBERNETES_VERSION" "$here/tools/kubernetes" -ldflags "$k8s_ldflags" "k8s.io/kubernetes/cmd/$cmd"
done
build etcd "$ETCD_VERSION" "$here/tools/etcd" -ldflags "-s -w" .

# kwok and helm have no replace lines in their go.mod: plain `go install` into a temp GOBIN.
# install_tool NAME VERSION PACKAGE [CACHE-SUFFIX] [GO-INSTALL-ARGS...]
install_tool() {
    local name=$1 version=$2 pkg=$3 suffix=${4:-}
    shift 3
    shift $(($# > 0 ? 1 : 0))
    local ldflags="-s -w $*"
    local out="$bin/$name-$version$suffix"
    if [[ -x "$out" ]]; then
        return 0
    fi
    local log="$logs/$name-$version.log" gobin
    gobin=$(mktemp -d)
    step "installing $name $version (log: $log)"
    if ! (GOBIN="$gobin" GOFLAGS= go install -trimpath -ldflags "$ldflags" "$pkg@$version") >"$log" 2>&1; then
        rm -rf "$gobin"
        echo "build-tools: installing $name $version failed; see $log" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    mv "$gobin/$name" "$out"
    rm -rf "$gobin"
}
install_tool kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
# helm with the version ldflags its own release builds carry (helm's Makefile): without them it
# reports no version and assumes Kubernetes v1.20 offline, so `helm template` of a chart with a
# kubeVersion constraint fails. The Kubernetes version is the one of helm's client-go (0.Y -> 1.Y),
# as helm's Makefile derives it. The cache name says so, so an older helm build is not reused.
helm_client_go=$(GOFLAGS= go mod download -json "helm.sh/helm/v3@$HELM_VERSION" 2>/dev/null |
    sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' | xargs -r grep -m1 -o 'k8s.io/client-go v0\.[0-9]*' | sed 's/.*v0\.//')
[[ -n $helm_client_go ]] || { echo "build-tools: cannot read helm $HELM_VERSION's client-go version" >&2; exit 1; }
install_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "-k8s1.$helm_client_go" \
    -X "helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
    -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_client_go" \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
    -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_client_go"

# Stable names for the current pins, so scripts and tests need not know the versions.
for pair in kube-apiserver:$KUBERNETES_VERSION kube-controller-manager:$KUBERNETES_VERSION \
    kube-scheduler:$KUBERNETES_VERSION kubectl:$KUBERNETES_VERSION etcd:$ETCD_VERSION kwok:$KWOK_VERSION \
    helm:$HELM_VERSION-k8s1.$helm_client_go; do
    ln -sfn "$bin/${pair%%:*}-${pair#*:}" "$bin/${pair%%:*}"
done
for cmd in kubelet kube-proxy; do
    if [[ -x "$bin/$cmd-$KUBERNETES_VERSION" ]]; then ln -sfn "$bin/$cmd-$KUBERNETES_VERSION" "$bin/$cmd"; fi
done
echo "$bin"
