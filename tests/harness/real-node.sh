#!/usr/bin/env bash
# Level 3 of the harness: one real node (kubelet + containerd + runc + the CNI bridge + kube-proxy)
# beside the kwok nodes. Driven by cluster.sh when NODE=real; not meant to be called by hand except
# for `allow-registry` and `status`.
#
#   real-node.sh host-up                 before the API server starts: the node's address (dummy
#                                        interface) and a snapshot of the host settings we change
#   real-node.sh up                      containerd, kubelet and kube-proxy; waits for the node Ready
#   real-node.sh healthy                 exit 0 when all three run and the node is Ready
#   real-node.sh down                    stop them, kill the pods' processes, restore the host
#   real-node.sh status                  say what runs
#   real-node.sh allow-registry HOST:PORT   let containerd pull over plain HTTP from a registry on this
#                                        host (127.0.0.1 or the node's address)
#
# Environment (defaults in brackets): REAL_NODE_NAME [real-node-0], REAL_NODE_IP [198.51.100.2],
# REAL_NODE_INTERFACE [ta-node0], REAL_NODE_BRIDGE [ta-cni0], REAL_NODE_POD_CIDR [10.77.0.0/24].
# Only one real node can run on a machine at a time: kube-proxy's and the kubelet's iptables chains
# have fixed names.
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
real="$state/real-node"
# Outside $state on purpose: it must outlive a crash that lost the cluster state, so that the
# next `down` still knows what the host looked like before.
snapshot="$cache/real-node-host-before"
bin=$("$here/build-tools.sh" --print)

node_name=${REAL_NODE_NAME:-real-node-0}
node_ip=${REAL_NODE_IP:-198.51.100.2}
iface=${REAL_NODE_INTERFACE:-ta-node0}
bridge=${REAL_NODE_BRIDGE:-ta-cni0}
pod_cidr=${REAL_NODE_POD_CIDR:-10.77.0.0/24}
apiserver_port=${APISERVER_PORT:-26443}
# Every pod cgroup lives under this root in each hierarchy, so teardown finds exactly ours.
cgroup_root=trading-agent-real-node
sock="$real/containerd/containerd.sock"
# The label and taint that keep pods apart: only pods that tolerate the taint run here, and only
# pods that select the label avoid the kwok nodes (see README.md, "Level 3").
node_label=trading-agent.dev/node=real
node_taint=trading-agent.dev/node=real:NoSchedule
# The sysctls the kubelet, kube-proxy and the bridge plugin may change; restored at teardown.
sysctls=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
    net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
    net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Host paths the components create outside our folders (hard-coded in containerd 1.6 and the
# kubelet: its device-plugin socket stays in /var/lib/kubelet whatever --root-dir says), and
# util-linux's /run/mount (umount's table).
host_paths=(/run/netns /var/lib/cni /run/containerd /var/log/containers /var/lib/kubelet /run/mount)

say() { printf '==> %s\n' "$*" >&2; }
fail() {
    printf 'real-node: %s\n' "$1" >&2
    [[ -n "${2:-}" && -f "$2" ]] && { printf -- '--- last lines of %s ---\n' "$2" >&2; tail -n 25 "$2" >&2; }
    exit 1
}

pid_of() {
    local file="$pids/$1.pid" pid argv0
    [[ -f "$file" ]] || return 1
    pid=$(<"$file")
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)
    [[ "$(basename "$argv0")" == "$1" ]] || return 1
    echo "$pid"
}

kubectl_() {
    local k=kubectl
    [[ -x "$bin/kubectl" ]] && k="$bin/kubectl"
    "$k" --kubeconfig "$kubeconfig" "$@"
}

# start NAME BINARY ARGS...: run in its own session, log to logs/NAME.log.
start() {
    local name=$1 binary=$2
    shift 2
    setsid "$binary" "$@" >"$logs/$name.log" 2>&1 </dev/null &
    echo $! >"$pids/$name.pid"
}

stop_pid() {
    local pid=$1 waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
}

wait_until() {
    local what=$1 timeout=$2 log=$3 started=$SECONDS
    shift 3
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - started < timeout)) || fail "$what: not ready after ${timeout}s" "$log"
        sleep 0.2
    done
}

# ---- the host -------------------------------------------------------------------------------

iptables_chains() { # FAMILY(iptables|ip6tables): "table chain" for every chain
    "$1-save" 2>/dev/null | awk '/^\*/ {t=substr($1,2)} /^:/ {print t, substr($1,2)}' || true
}

take_snapshot() {
    [[ -d "$snapshot" ]] && return 0 # an earlier run's snapshot is the truth until restored
    mkdir -p "$snapshot.tmp"
    local s p
    for s in "${sysctls[@]}"; do
        sysctl -n "$s" >/dev/null 2>&1 && printf '%s=%s\n' "$s" "$(sysctl -n "$s")"
    done >"$snapshot.tmp/sysctls"
    iptables_chains iptables >"$snapshot.tmp/iptables-chains"
    iptables_chains ip6tables >"$snapshot.tmp/ip6tables-chains"
    for p in "${host_paths[@]}"; do [[ -e $p ]] && echo "$p"; done >"$snapshot.tmp/paths" || true
    ls /run/netns 2>/dev/null >"$snapshot.tmp/netns" || true
    mv "$snapshot.tmp" "$snapshot"
}

host_up() {
    take_snapshot
    if ! ip link show "$iface" >/dev/null 2>&1; then
        # This VM's kernel has no dummy driver: a bridge without ports is an equally inert home.
        ip link add "$iface" type dummy 2>/dev/null || ip link add "$iface" type bridge ||
            fail "cannot create the interface $iface for the node's address (needs root)"
    fi
    ip addr replace "$node_ip/32" dev "$iface"
    ip link set "$iface" up
}

# Remove our iptables chains (KUBE-*, CNI-* that were not there before) and every rule jumping to them.
restore_iptables() {
    local family=$1 before="$snapshot/$1-chains" ours table chain rule
    command -v "$family-save" >/dev/null || return 0
    ours=$(iptables_chains "$family" | grep -E ' (KUBE|CNI)-' | grep -vxF -f "$before" 2>/dev/null || true)
    [[ -n $ours ]] || return 0
    for table in $(awk '{print $1}' <<<"$ours" | sort -u); do
        local names
        names=$(awk -v t="$table" '$1 == t {print $2}' <<<"$ours")
        # Rules (in any chain) that jump to one of our chains: delete them one by one.
        "$family-save" -t "$table" | { grep '^-A ' || true; } | while read -r rule; do
            local target
            target=$(sed -n 's/.* -[jg] \([^ ]*\).*/\1/p' <<<"$rule")
            grep -qxF "$target" <<<"$names" || continue
            eval "$family -t $table ${rule/#-A/-D}" 2>/dev/null || true
        done
        for chain in $names; do "$family" -t "$table" -F "$chain" 2>/dev/null || true; done
        for chain in $names; do "$family" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
}

host_down() {
    # Nothing of ours on the host without a snapshot: never touch what another cache's node made.
    [[ -d "$snapshot" ]] || return 0
    # Interfaces: the pods' veths went with their network namespaces; the bridge and ours remain.
    local link
    for link in "$bridge" "$iface"; do
        if ip link show "$link" >/dev/null 2>&1; then ip link delete "$link"; fi
    done
    restore_iptables iptables
    restore_iptables ip6tables
    local line
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        [[ "$(sysctl -n "${line%%=*}" 2>/dev/null)" == "${line#*=}" ]] || sysctl -q -w "$line" >/dev/null || true
    done <"$snapshot/sysctls"
    # Network namespaces the runtime made (cni-<uuid>) and that were not there before.
    local ns
    for ns in $(ls /run/netns 2>/dev/null | grep '^cni-' | grep -vxF -f "$snapshot/netns" || true); do
        ip netns delete "$ns" 2>/dev/null || { umount "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"; }
    done
    # The kubelet's /var/log/containers links into our pod logs.
    if [[ -d /var/log/containers ]]; then
        find /var/log/containers -maxdepth 1 -type l -lname "$real/*" -delete 2>/dev/null || true
    fi
    local p
    for p in "${host_paths[@]}"; do
        grep -qxF "$p" "$snapshot/paths" && continue
        case $p in
        /var/lib/cni | /run/containerd | /var/lib/kubelet | /run/mount) rm -rf --one-file-system "$p" ;;
        *) rmdir "$p" 2>/dev/null || true ;; # only when empty: someone else may use it by now
        esac
    done
    rm -rf "$snapshot"
}

# Kill every process in our pod cgroups (the containers outlive containerd and the kubelet), then
# the runtime shims of our containerd, then remove the cgroups deepest first.
kill_pods() {
    local dirs pid
    dirs=$(find /sys/fs/cgroup/*/"$cgroup_root" /sys/fs/cgroup/"$cgroup_root" -maxdepth 0 -type d 2>/dev/null || true)
    [[ -n $dirs ]] || return 0
    local round
    for round in 1 2 3; do
        for pid in $(find $dirs -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        sleep 0.2
    done
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" || true); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    local d
    for d in $dirs; do
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [[ -d $d ]] && say "warning: cgroup $d is still in use"
    done
    return 0
}

unmount_ours() {
    local m
    # Deepest first; overlay roots, secret tmpfs volumes and the kubelet's bind mount of its root.
    for m in $(findmnt -rn -o TARGET | grep -F "$real" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if findmnt -rn -o TARGET | grep -qF "$real"; then
        fail "mounts under $real remain after teardown: $(findmnt -rn -o TARGET | grep -F "$real" | tr '\n' ' ')"
    fi
}

# ---- containerd, kubelet, kube-proxy --------------------------------------------------------

# A pause image of our own: a static program that calls pause(), packed with umoci. Built once per
# source version into the cache, imported into containerd at every start.
pause_ref() {
    echo "harness.trading-agent.invalid/pause:$(sha256sum "$here/real-node/pause.c" | cut -c1-12)"
}

build_pause_image() {
    local tag archive
    tag=$(sha256sum "$here/real-node/pause.c" | cut -c1-12)
    archive="$cache/images/pause-$tag.tar"
    if [[ ! -f $archive ]]; then
        say "building the pause image ($archive)"
        local work
        work=$(mktemp -d)
        (
            set -e
            cc -static -Os -s -o "$work/pause" "$here/real-node/pause.c"
            umoci init --layout "$work/layout"
            umoci new --image "$work/layout:$tag"
            umoci unpack --rootless --image "$work/layout:$tag" "$work/bundle" >/dev/null
            install -m 0755 "$work/pause" "$work/bundle/rootfs/pause"
            umoci repack --image "$work/layout:$tag" "$work/bundle" >/dev/null
            umoci config --image "$work/layout:$tag" --config.entrypoint /pause --config.user 65535:65535 \
                --architecture amd64 --os linux
            mkdir -p "$cache/images"
            skopeo copy --quiet "oci:$work/layout:$tag" "oci-archive:$archive.tmp:$(pause_ref)"
            mv "$archive.tmp" "$archive"
        ) >"$logs/pause-image.log" 2>&1 || { rm -rf "$work"; fail "building the pause image failed" "$logs/pause-image.log"; }
        rm -rf "$work"
    fi
    echo "$archive"
}

write_pki() {
    (
        cd "$pki"
        local who subj
        for who in kubelet kube-proxy kubelet-client; do
            case $who in
            kubelet) subj="/O=system:nodes/CN=system:node:$node_name" ;;
            kube-proxy) subj="/CN=system:kube-proxy" ;;
            kubelet-client) subj="/O=system:masters/CN=kube-apiserver-kubelet-client" ;;
            esac
            [[ -f $who.crt ]] && continue
            openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$who.key" -out "$who.csr"
            printf 'extendedKeyUsage=clientAuth\n' >"$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile "$who.ext" -out "$who.crt"
        done
        if [[ ! -f kubelet-serving.crt ]]; then
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$node_name" -keyout kubelet-serving.key -out kubelet-serving.csr
            printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$node_ip" "$node_name" >kubelet-serving.ext
            openssl x509 -req -in kubelet-serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile kubelet-serving.ext -out kubelet-serving.crt
        fi
    ) >>"$logs/pki.log" 2>&1 || fail "generating the node's certificates failed" "$logs/pki.log"
}

kubeconfig_for() { # NAME: a kubeconfig with NAME's client certificate
    local who=$1
    cat >"$real/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: harness
  cluster:
    server: https://$node_ip:$apiserver_port
    certificate-authority: $pki/ca.crt
users:
- name: $who
  user:
    client-certificate: $pki/$who.crt
    client-key: $pki/$who.key
contexts:
- name: harness
  context: {cluster: harness, user: $who}
current-context: harness
EOF
}

write_containerd_config() {
    mkdir -p "$real/containerd/certs.d" "$real/cni/net.d" "$real/cni/ipam"
    cat >"$real/containerd/config.toml" <<EOF
# Written by tests/harness/real-node.sh: the harness's own containerd (root, state and socket in
# the cluster folder), used only by the real node's kubelet.
version = 2
root = "$real/containerd/root"
state = "$real/containerd/state"
# The opt plugin would create /opt/containerd; the others are snapshotters and tracing we do not use.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(pause_ref)"
  # This VM withholds CAP_SYS_RESOURCE even from root: runc cannot set a negative oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$real/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    # One hosts.toml per loopback test registry (allow-registry): plain HTTP there, nowhere else.
    config_path = "$real/containerd/certs.d"
EOF
    cat >"$real/cni/net.d/10-trading-agent.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "trading-agent-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$real/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
    mkdir -p "$real/kubelet" "$real/pod-logs" "$real/volume-plugins"
    cat >"$real/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $node_ip
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$sock
cgroupDriver: cgroupfs
# cgroup v1 here: supported in maintenance mode, with a warning.
failCgroupV1: false
cgroupsPerQOS: true
cgroupRoot: /$cgroup_root
enforceNodeAllocatable: []
failSwapOn: false
protectKernelDefaults: false
podLogsDir: $real/pod-logs
volumePluginDir: $real/volume-plugins
registerWithTaints:
- {key: ${node_taint%%=*}, value: real, effect: NoSchedule}
maxPods: 50
serializeImagePulls: false
# The disk is shared with everything else on the machine: evict only when it is really full.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
# No image garbage collection: containerd 1.6 does not pin the sandbox image, so on a nearly full disk
# the kubelet removed the pause image between two tests and every later pod failed to start. The
# images live under the cluster's state folder and go with it at teardown.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 95
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
EOF
}

allow_registry() {
    local host=$1
    # Registries on this host only: loopback, or the node's own address (one that pods reach too).
    local ip=${node_ip//./\\.}
    [[ $host =~ ^(127\.0\.0\.1|localhost|$ip):[0-9]+$ ]] ||
        fail "allow-registry: only registries on this host (127.0.0.1:PORT or $node_ip:PORT), not $host"
    mkdir -p "$real/containerd/certs.d/$host"
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
        "$host" "$host" >"$real/containerd/certs.d/$host/hosts.toml"
}

node_ready() {
    [[ "$(kubectl_ get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

healthy() {
    local c
    for c in containerd kubelet kube-proxy; do pid_of "$c" >/dev/null || return 1; done
    node_ready
}

up() {
    [[ -x "$bin/kubelet" && -x "$bin/kube-proxy" ]] || fail "kubelet or kube-proxy missing in $bin (NODE=real tests/harness/build-tools.sh builds them)"
    [[ $(id -u) -eq 0 ]] || fail "the real node needs root (network namespaces, cgroups, iptables)"
    local cmd
    for cmd in containerd runc ctr iptables ip cc umoci skopeo; do
        command -v "$cmd" >/dev/null || fail "$cmd missing (make deps installs it)"
    done
    [[ -x /usr/lib/cni/bridge ]] || fail "/usr/lib/cni/bridge missing (Debian package containernetworking-plugins; make deps)"
    mkdir -p "$real" "$logs" "$pids"
    local t0=$SECONDS archive
    archive=$(build_pause_image)
    write_pki
    kubeconfig_for kubelet
    kubeconfig_for kube-proxy
    write_containerd_config
    write_kubelet_config
    local d
    for d in /sys/fs/cgroup/*/; do
        [[ -f "$d/cgroup.procs" ]] || continue
        mkdir -p "$d$cgroup_root"
        # cgroup v1 cpuset: a new group has no CPUs or memory nodes until given its parent's.
        if [[ -f "$d/cpuset.cpus" ]]; then
            cat "$d/cpuset.cpus" >"$d$cgroup_root/cpuset.cpus"
            cat "$d/cpuset.mems" >"$d$cgroup_root/cpuset.mems"
        fi
    done

    say "starting containerd $(containerd --version | awk '{print $3}') (socket $sock)"
    start containerd "$(command -v containerd)" --config "$real/containerd/config.toml" --log-level warn
    wait_until "containerd" 30 "$logs/containerd.log" ctr --address "$sock" version
    ctr --address "$sock" -n k8s.io images import "$archive" >"$logs/pause-import.log" 2>&1 ||
        fail "importing the pause image failed" "$logs/pause-import.log"

    say "starting kubelet $KUBERNETES_VERSION as node $node_name ($node_ip)"
    local t_kubelet=$SECONDS
    start kubelet "$bin/kubelet" --config "$real/kubelet-config.yaml" --kubeconfig "$real/kubelet.kubeconfig" \
        --root-dir "$real/kubelet" --hostname-override "$node_name" --node-ip "$node_ip" \
        --node-labels "$node_label" --v 1
    say "starting kube-proxy $KUBERNETES_VERSION (iptables)"
    start kube-proxy "$bin/kube-proxy" --kubeconfig "$real/kube-proxy.kubeconfig" --proxy-mode iptables \
        --hostname-override "$node_name" --cluster-cidr "$pod_cidr" --nodeport-addresses "$node_ip/32" \
        --bind-address "$node_ip" --healthz-bind-address "$node_ip:10256" --metrics-bind-address "$node_ip:10249" \
        --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 --v 1
    wait_until "node $node_name Ready" 90 "$logs/kubelet.log" node_ready
    local ready_after=$((SECONDS - t_kubelet))
    wait_until "kube-proxy" 30 "$logs/kube-proxy.log" curl -fsS "http://$node_ip:10256/healthz"
    for cmd in containerd kubelet kube-proxy; do
        pid_of "$cmd" >/dev/null || fail "$cmd exited during start-up" "$logs/$cmd.log"
    done
    say "real node $node_name Ready ${ready_after}s after the kubelet started; level 3 up in $((SECONDS - t0))s"
}

down() {
    local c pid
    for c in kube-proxy kubelet; do
        if pid=$(pid_of "$c"); then stop_pid "$pid"; fi
    done
    [[ -d $real || -d $snapshot ]] && kill_pods
    if pid=$(pid_of containerd); then stop_pid "$pid"; fi
    [[ -d $real ]] && unmount_ours
    host_down
    return 0
}

status() {
    local c pid
    for c in containerd kubelet kube-proxy; do
        if pid=$(pid_of "$c"); then echo "$c: running (pid $pid)"; else echo "$c: stopped"; fi
    done
    if node_ready; then echo "node $node_name: Ready ($node_ip)"; else echo "node $node_name: not ready"; fi
}

# Sourced (for a manual check of one step): define the functions only.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

case "${1:-}" in
host-up) host_up ;;
up) up ;;
healthy) healthy ;;
down) down ;;
status) status ;;
allow-registry) allow_registry "${2:?allow-registry HOST:PORT}" ;;
*)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
