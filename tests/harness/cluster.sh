#!/usr/bin/env bash
# The local Kubernetes of the test suite, the demo and the benchmarks: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (simulated nodes), all on loopback.
#
#   tests/harness/cluster.sh up       start (or reuse a healthy running) cluster; prints the kubeconfig
#   tests/harness/cluster.sh down     stop what `up` started (by PID) and remove its state
#   tests/harness/cluster.sh status   say what runs
#   tests/harness/cluster.sh env      print `export KUBECONFIG=...` for eval
#
# Environment: TRADING_AGENT_CACHE (default ~/.cache/trading-agent) holds binaries and the cluster
# state (cluster/); ETCD_PORT, ETCD_PEER_PORT, APISERVER_PORT pick the loopback ports; KWOK_NODES the
# number of fake nodes (default 2); NODE=real adds a real node (kubelet, containerd, kube-proxy:
# real-node.sh, README.md "Level 3"), and then the API server listens on that node's address
# (REAL_NODE_IP, default 198.51.100.2) instead of 127.0.0.1, so that pods reach it too.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
state="$cache/cluster"
pki="$state/pki"
logs="$state/logs"
pids="$state/pids"
kubeconfig="$state/kubeconfig"
etcd_port=${ETCD_PORT:-23790}
etcd_peer_port=${ETCD_PEER_PORT:-23800}
apiserver_port=${APISERVER_PORT:-26443}
kwok_nodes=${KWOK_NODES:-2}
node_mode=${NODE:-kwok}
[[ $node_mode == kwok || $node_mode == real ]] || { echo "cluster: NODE must be kwok or real, not $node_mode" >&2; exit 2; }
api_ip=127.0.0.1
[[ $node_mode == real ]] && api_ip=${REAL_NODE_IP:-198.51.100.2}
# kwok's pod lifecycle (stages); a running kwok started with another version of it is restarted.
kwok_config="$here/kwok/stages.yaml"
# Start order; `down` stops in reverse.
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

say() { printf '==> %s\n' "$*" >&2; }
fail() {
    printf 'cluster: %s\n' "$1" >&2
    [[ -n "${2:-}" && -f "$2" ]] && { printf -- '--- last lines of %s ---\n' "$2" >&2; tail -n 25 "$2" >&2; }
    exit 1
}

# pid_of NAME: the PID recorded for NAME if that process is alive and still the binary we started.
pid_of() {
    local file="$pids/$1.pid" pid
    [[ -f "$file" ]] || return 1
    pid=$(<"$file")
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    local argv0
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)
    [[ "$(basename "$argv0")" == "$1" ]] || return 1
    echo "$pid"
}

bin=$("$here/build-tools.sh" --print)
# The kubectl of the pinned release once built; the machine's own until then.
kubectl_() {
    local k=kubectl
    [[ -x "$bin/kubectl" ]] && k="$bin/kubectl"
    "$k" --kubeconfig "$kubeconfig" "$@"
}

healthy() {
    [[ -f "$kubeconfig" ]] || return 1
    # A cluster of the other mode (kwok only / with the real node) is not the one asked for.
    [[ "$(cat "$state/node-mode" 2>/dev/null || echo kwok)" == "$node_mode" ]] || return 1
    local c
    for c in "${components[@]}"; do pid_of "$c" >/dev/null || return 1; done
    kubectl_ get --raw /readyz >/dev/null 2>&1 || return 1
    [[ $node_mode == kwok ]] || "$here/real-node.sh" healthy
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME ARGS...: run the cached binary NAME in its own session, log to logs/NAME.log.
start() {
    local name=$1
    shift
    setsid "$bin/$name" "$@" >"$logs/$name.log" 2>&1 </dev/null &
    echo $! >"$pids/$name.pid"
}

# wait_until DESCRIPTION SECONDS LOG COMMAND...: poll COMMAND until it succeeds.
wait_until() {
    local what=$1 timeout=$2 log=$3 started=$SECONDS
    shift 3
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - started >= timeout)); then
            fail "$what: not ready after ${timeout}s" "$log"
        fi
        sleep 0.2
    done
}

generate_pki() {
    mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=trading-agent-harness-ca" \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr
        printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:$api_ip,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
            "extendedKeyUsage=serverAuth" >apiserver.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile apiserver.ext -out apiserver.crt
        openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=harness-admin" -keyout admin.key -out admin.csr
        printf 'extendedKeyUsage=clientAuth\n' >admin.ext
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile admin.ext -out admin.crt
        if [[ $node_mode == real ]]; then
            # The API server's client certificate towards the kubelet (logs, exec, port-forward).
            openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
                -keyout kubelet-client.key -out kubelet-client.csr
            openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile admin.ext -out kubelet-client.crt
        fi
        openssl genrsa -out sa.key 2048
        openssl rsa -in sa.key -pubout -out sa.pub
    ) >"$logs/pki.log" 2>&1 || fail "generating certificates failed" "$logs/pki.log"
}

write_kubeconfig() {
    cat >"$kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: harness
  cluster:
    server: https://$api_ip:$apiserver_port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: harness-admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: harness
  context: {cluster: harness, user: harness-admin}
current-context: harness
EOF
    mv "$kubeconfig.tmp" "$kubeconfig"
}

create_nodes() {
    local i
    for ((i = 0; i < kwok_nodes; i++)); do
        cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/role: agent
    type: kwok
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "64", memory: 256Gi, pods: "1000"}
---
EOF
    done | kubectl_ apply -f - >"$logs/nodes.log" 2>&1 || fail "creating the kwok nodes failed" "$logs/nodes.log"
}

# start_kwok: run kwok with our stages and remember which version of them it runs.
start_kwok() {
    say "starting kwok $KWOK_VERSION and $kwok_nodes fake node(s) (stages: $kwok_config)"
    start kwok --kubeconfig "$kubeconfig" --config "$kwok_config" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --manage-nodes-with-label-selector= --manage-single-node= \
        --cidr 10.244.0.0/16 --node-ip 10.244.0.1 --node-lease-duration-seconds 40
    sha256sum <"$kwok_config" >"$state/kwok-stages.sha256"
}

kwok_stages_current() {
    [[ -f "$state/kwok-stages.sha256" ]] && sha256sum <"$kwok_config" | cmp -s - "$state/kwok-stages.sha256"
}

wait_kwok_nodes() {
    local i
    for ((i = 0; i < kwok_nodes; i++)); do
        wait_until "kwok node kwok-node-$i Ready" 60 "$logs/kwok.log" \
            kubectl_ wait --for=condition=Ready "node/kwok-node-$i" --timeout=1s
    done
}

up() {
    bin=$("$here/build-tools.sh" | tail -n 1) || fail "building the harness binaries failed (see the messages above)"
    if healthy; then
        if ! kwok_stages_current; then
            # Only kwok restarts: the API server, etcd and everything in them stay.
            local pid waited=0
            pid=$(pid_of kwok)
            say "kwok's stages changed: restarting kwok (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
                sleep 0.1
                waited=$((waited + 1))
            done
            kill -KILL "$pid" 2>/dev/null || true
            start_kwok
            wait_kwok_nodes
            pid_of kwok >/dev/null || fail "kwok exited during start-up" "$logs/kwok.log"
        fi
        say "cluster already running; kubeconfig: $kubeconfig"
        echo "$kubeconfig"
        return 0
    fi
    # Leftovers of a crash or of a half-started cluster: stop what we can identify, start afresh.
    down quiet
    local port
    for port in "$etcd_port" "$etcd_peer_port" "$apiserver_port"; do
        port_free "$port" || fail "port 127.0.0.1:$port is taken by another process (set ETCD_PORT / ETCD_PEER_PORT / APISERVER_PORT)"
    done
    mkdir -p "$logs" "$pids"
    local t0=$SECONDS
    echo "$node_mode" >"$state/node-mode"
    if [[ $node_mode == real ]]; then
        say "preparing the host for the real node (address $api_ip)"
        "$here/real-node.sh" host-up
    fi
    say "generating certificates and service-account keys ($pki)"
    generate_pki

    say "starting etcd $ETCD_VERSION on 127.0.0.1:$etcd_port"
    start etcd --name harness --data-dir "$state/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster "harness=http://127.0.0.1:$etcd_peer_port" \
        --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
    wait_until "etcd" 30 "$logs/etcd.log" curl -fsS "http://127.0.0.1:$etcd_port/health"

    say "starting kube-apiserver $KUBERNETES_VERSION on https://$api_ip:$apiserver_port"
    local real_flags=()
    [[ $node_mode == real ]] && real_flags=(--kubelet-client-certificate "$pki/kubelet-client.crt"
        --kubelet-client-key "$pki/kubelet-client.key" --kubelet-preferred-address-types InternalIP,Hostname)
    start kube-apiserver "${real_flags[@]}" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address "$api_ip" --advertise-address "$api_ip" --secure-port "$apiserver_port" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range 10.96.0.0/16 \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins PodNodeSelector,PodTolerationRestriction \
        --allow-privileged=true \
        --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
        --enable-priority-and-fairness=false \
        --profiling=false --v 1
    write_kubeconfig
    wait_until "kube-apiserver" 90 "$logs/kube-apiserver.log" kubectl_ get --raw /readyz

    say "starting kube-controller-manager and kube-scheduler"
    start kube-controller-manager --kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig" \
        --authorization-kubeconfig "$kubeconfig" --leader-elect=false \
        --bind-address 127.0.0.1 --secure-port 0 \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --use-service-account-credentials=false \
        --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ephemeral-volume,-pv-protection,-pvc-protection,-ttl' \
        --kube-api-qps 500 --kube-api-burst 1000 --concurrent-deployment-syncs 20 --concurrent-replicaset-syncs 20 \
        --concurrent-gc-syncs 40 --v 1
    start kube-scheduler --kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig" \
        --authorization-kubeconfig "$kubeconfig" --leader-elect=false \
        --bind-address 127.0.0.1 --secure-port 0 --v 1

    start_kwok
    create_nodes
    wait_kwok_nodes
    wait_until "default service account (kube-controller-manager)" 60 "$logs/kube-controller-manager.log" \
        kubectl_ get serviceaccount default -n default
    local c
    for c in "${components[@]}"; do
        pid_of "$c" >/dev/null || fail "$c exited during start-up" "$logs/$c.log"
    done
    [[ $node_mode == kwok ]] || "$here/real-node.sh" up
    say "cluster ready in $((SECONDS - t0))s; kubeconfig: $kubeconfig (logs: $logs)"
    echo "$kubeconfig"
}

down() {
    local quiet=${1:-} i c pid
    # The real node first (a no-op without one): its pods, runtime and host changes.
    local real_node_down=1
    "$here/real-node.sh" down || real_node_down=
    for ((i = ${#components[@]} - 1; i >= 0; i--)); do
        c=${components[i]}
        if pid=$(pid_of "$c"); then
            kill -TERM "$pid" 2>/dev/null || true
            local waited=0
            while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
                sleep 0.1
                waited=$((waited + 1))
            done
            kill -KILL "$pid" 2>/dev/null || true
            [[ -n "$quiet" ]] || say "stopped $c (pid $pid)"
        fi
    done
    # Something the real node mounted is still there: removing the folder could reach into it.
    [[ -n $real_node_down ]] || fail "the real node's teardown is incomplete (see above); $state is kept"
    if [[ -d "$state" ]]; then
        # Keep the last run's logs for a post-mortem; everything else goes.
        if [[ -d "$logs" ]]; then
            rm -rf "$cache/cluster-logs"
            mv "$logs" "$cache/cluster-logs"
        fi
        rm -rf "$state"
        [[ -n "$quiet" ]] || say "removed $state (last logs kept in $cache/cluster-logs)"
    fi
}

status() {
    local c pid
    for c in "${components[@]}"; do
        if pid=$(pid_of "$c"); then echo "$c: running (pid $pid)"; else echo "$c: stopped"; fi
    done
    local running_mode
    running_mode=$(cat "$state/node-mode" 2>/dev/null || echo kwok)
    [[ $running_mode == real ]] && "$here/real-node.sh" status
    # Without NODE, status reports the cluster in whatever mode it runs.
    if [[ -f $kubeconfig && -n ${NODE:-} && $running_mode != "$node_mode" ]]; then
        echo "api server: running with NODE=$running_mode, not the NODE=$node_mode asked for (up restarts it)"
    elif NODE=$running_mode node_mode=$running_mode healthy; then
        echo "api server: ready; kubeconfig: $kubeconfig"
    else
        echo "api server: not ready"
    fi
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
env) echo "export KUBECONFIG=$kubeconfig" ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
