#!/usr/bin/env bash
# `make demo`: the golden path (product.md §5) on a local stack, with readable progress and timings.
# The end-to-end suite runs the same script (tests/e2e/golden_path.rs), so what a person sees is
# what CI checks.
#
#  1. local Kubernetes (harness) with a real kubelet node, an OCI registry and PostgreSQL
#  2. the workload and operator images built without a daemon and pushed (…/trading-agent:latest)
#  3. `helm install` of the chart: the operator runs in its own pod as the chart's ServiceAccount;
#     then the registry that notifies its webhook Service is started
#  4. a TradingAgent applied: three Deployments pinned to the digest, real pods Ready, and a pod's
#     /healthz naming that digest
#  5. a new push under the same tag: the registry's notification rolls every pod forward; then a
#     push nobody announces: polling finds it within one interval
#  6. a real image that never becomes ready (its server listens on the pod's loopback only, so the
#     kubelet's probes fail): the operator rolls back to the last healthy digest, marks the bad one
#     rejected and reports Degraded, and the previous digest's pods serve again
#  7. the workloads themselves on PostgreSQL: candles -> signals -> paper trades, through the api
#     Service
#  8. the TradingAgent deleted: everything it owned is garbage-collected
#
# NODE=real (the default) runs all of it on the harness's real node (level 3: containerd pulls the
# images, the kubelet starts and probes the containers; needs root). NODE=kwok runs it on kwok's
# simulated nodes, which run no processes: the operator then runs on the host (as the chart's
# ServiceAccount, by impersonation), the bad image is one kwok keeps unready, and step 7 starts the
# workloads as host processes.
#
# The stack stays up afterwards to explore; `make demo-down` stops it. DEMO_CLEANUP=1 stops the
# demo's own processes and removes its namespace and release at the end (the suite sets it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
# Our own build products live in the clone (cargo's default), never in the shared cache: a warm
# target directory must not hide a broken build step.
target=${CARGO_TARGET_DIR:-$root/target}
demo=${DEMO_STATE:-$cache/demo}
bin="$cache/bin"
export KUBECONFIG="$cache/cluster/kubeconfig"
kubectl() { "$bin/kubectl" "$@"; }
helm() { "$bin/helm" "$@"; }
export NODE=${NODE:-real}
[[ $NODE == real || $NODE == kwok ]] || { echo "demo: NODE must be real or kwok, not $NODE" >&2; exit 2; }
real() { [[ $NODE == real ]]; }
registry_port=${DEMO_REGISTRY_PORT:-25000}
quiet_registry_port=${DEMO_QUIET_REGISTRY_PORT:-25001}
webhook_port=${DEMO_WEBHOOK_PORT:-28443}
metrics_port=${DEMO_METRICS_PORT:-28080}
api_port=${DEMO_API_PORT:-28000}
pg_port=${DEMO_PG_PORT:-25432}
ns=${DEMO_NAMESPACE:-desk}
release_ns=${DEMO_RELEASE_NAMESPACE:-trading-agent-system}
release=trading-agent-operator
token=demo-webhook-token
api_token=demo-api-token-0123456789

t0=$SECONDS
step_started=$SECONDS
step() {
    printf '\n\033[1m==> [%3ss] %s\033[0m\n' "$((SECONDS - t0))" "$*"
    step_started=$SECONDS
}
done_in() { printf '    step took %ss\n' "$((SECONDS - step_started))"; }
fail() {
    printf '\ndemo: %s\n' "$*" >&2
    if real; then
        echo "--- last lines of the operator pod's log" >&2
        kubectl -n "$release_ns" logs -l "app.kubernetes.io/instance=$release" --tail 15 >&2 2>/dev/null || true
        echo "--- pods of $ns" >&2
        kubectl -n "$ns" get pods -o wide >&2 2>/dev/null || true
    elif [[ -f $demo/logs/operator.log ]]; then
        echo "--- last lines of $demo/logs/operator.log" >&2
        tail -n 15 "$demo/logs/operator.log" >&2
    fi
    exit 1
}
now_ms() { date +%s%3N; }

mkdir -p "$demo/logs" "$demo/pids"

# start NAME CMD...: a background process of the demo. Its PID and program name are recorded for
# demo-down, which signals it only while that PID still runs that program with this demo's state.
start() {
    local name=$1 program
    shift
    program=$(for word in "$@"; do [[ $word == env || $word == *=* ]] || { basename "$word"; break; }; done)
    setsid "$@" >"$demo/logs/$name.log" 2>&1 </dev/null &
    printf '%s %s\n' "$!" "$program" >"$demo/pids/$name.pid"
}

wait_for() {
    local what=$1 timeout=$2 started=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - started < timeout)) || fail "$what: not done after ${timeout}s"
        sleep 0.1
    done
}

# pinned_to DIGEST: all three Deployments run DIGEST.
pinned_to() {
    [[ $(kubectl -n "$ns" get deployments -l app.kubernetes.io/instance=alpha \
        -o jsonpath='{.items[*].spec.template.spec.containers[0].image}' | tr ' ' '\n' | grep -c "@$1\$") -eq 3 ]]
}
show_pins() {
    kubectl -n "$ns" get deployments -o jsonpath='{range .items[*]}      {.metadata.name}: {.spec.template.spec.containers[0].image}{"\n"}{end}'
}

export DEMO_STATE=$demo
"$root/scripts/demo-down.sh" --processes-only >/dev/null 2>&1 || true
cleanup() {
    helm uninstall "$release" --namespace "$release_ns" >/dev/null 2>&1 || true
    kubectl delete namespace "$ns" "$release_ns" --wait=false >/dev/null 2>&1 || true
    "$root/scripts/demo-down.sh" --processes-only >/dev/null 2>&1 || true
}
# DEMO_CLEANUP=1 (the suite): leave nothing behind, whether the run passes or fails.
[[ -n ${DEMO_CLEANUP:-} ]] && trap cleanup EXIT

# The demo's fixed ports (each can be moved with its DEMO_*_PORT variable) must be free.
port_free() { ! (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }
for named in "DEMO_REGISTRY_PORT=$registry_port" "DEMO_QUIET_REGISTRY_PORT=$quiet_registry_port" \
    "DEMO_WEBHOOK_PORT=$webhook_port" "DEMO_METRICS_PORT=$metrics_port" "DEMO_PG_PORT=$pg_port" \
    "DEMO_API_PORT=$api_port" "DEMO_API_PORT+1 (strategy)=$((api_port + 1))" "DEMO_API_PORT+2 (bot)=$((api_port + 2))"; do
    port=${named##*=}
    port_free "$port" || fail "port $port (${named%=*}) is in use on 127.0.0.1; stop what holds it (ss -ltnp 'sport = :$port') or set ${named%%[=+ ]*} to a free port"
done

if real; then
    step "1/8 local stack: Kubernetes with a real kubelet node, OCI registry, PostgreSQL"
else
    step "1/8 local stack: Kubernetes on kwok nodes, OCI registry, PostgreSQL (loopback only)"
fi
"$root/tests/harness/cluster.sh" up >/dev/null
kubectl get nodes -o wide
if real; then
    # Pods reach the host at the node's address: the registries and PostgreSQL listen there too.
    node_name=${REAL_NODE_NAME:-real-node-0}
    host=$(kubectl get node "$node_name" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
    [[ -n $host ]] || fail "the real node $node_name reports no InternalIP"
    pod_cidr=${REAL_NODE_POD_CIDR:-10.77.0.0/24}
    for port in "$registry_port" "$quiet_registry_port"; do
        port_free "$port" "$host" || fail "port $port is in use on $host; set DEMO_REGISTRY_PORT / DEMO_QUIET_REGISTRY_PORT"
    done
else
    host=127.0.0.1
fi
registry="$host:$registry_port"
quiet_registry="$host:$quiet_registry_port"
# Two registry processes on one storage: the silent one now, for the builds; the one that notifies
# the operator's webhook in step 3, once the webhook's address is known. Step 5's polled push goes
# to the silent one.
mkdir -p "$demo/registry"
registry_config() {
    cat <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $demo/registry/storage}, delete: {enabled: true}}
http: {addr: $1}
EOF
}
registry_config "$quiet_registry" >"$demo/registry/quiet.yml"
start registry-quiet docker-registry serve "$demo/registry/quiet.yml"
wait_for "registry (no notifications)" 20 curl -fsS "http://$quiet_registry/v2/"
if real; then
    # containerd on the node pulls over plain HTTP from exactly these two registries.
    "$root/tests/harness/real-node.sh" allow-registry "$registry" >/dev/null
    "$root/tests/harness/real-node.sh" allow-registry "$quiet_registry" >/dev/null
fi
echo "    registry: http://$quiet_registry (silent); http://$registry (same storage) notifies the operator from step 3"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
# Outside $HOME: the server runs as the postgres user when we are root, and /root is private.
pgdata=${DEMO_PG_DIR:-${TMPDIR:-/tmp}/trading-agent-demo-postgres-$pg_port}
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
if [[ ! -d $pgdata/data ]]; then
    mkdir -p "$pgdata"
    [[ ${#as_pg[@]} -gt 0 ]] && chown postgres:postgres "$pgdata"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pgdata/data" -U postgres --auth=trust --no-sync >"$demo/logs/initdb.log" 2>&1 ||
        fail "initdb failed; see $demo/logs/initdb.log"
fi
echo "$pgdata" >"$demo/pgdata"
listen=127.0.0.1
if real; then
    # The pods connect from their subnet to the node's address.
    listen="127.0.0.1,$host"
    grep -qF "host all all $pod_cidr trust" "$pgdata/data/pg_hba.conf" ||
        echo "host all all $pod_cidr trust" >>"$pgdata/data/pg_hba.conf"
fi
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata/data" -l "$pgdata/postgres.log" -w \
    -o "-h $listen -p $pg_port -k $pgdata" start >"$demo/logs/pg_ctl.log" 2>&1 || {
    cat "$demo/logs/pg_ctl.log" >&2
    tail -n 20 "$pgdata/postgres.log" >&2 2>/dev/null
    fail "PostgreSQL did not start on 127.0.0.1:$pg_port (pg_ctl output above; server log $pgdata/postgres.log)"
}
database_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
pod_database_url="postgres://postgres@$host:$pg_port/postgres"
echo "    postgres: $pod_database_url"
done_in

step "2/8 build the images (no Docker daemon) and push …/trading-agent:latest"
echo "    cargo build --locked: trading-agent, trading-agent-operator, ta-push (first build takes minutes)"
cargo build --locked --quiet --bin trading-agent --bin trading-agent-operator --bin ta-push
for binary in trading-agent trading-agent-operator ta-push; do
    [[ -x $target/debug/$binary ]] || fail "cargo build did not produce $target/debug/$binary"
done
digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$quiet_registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-1" | tail -n 1)
echo "    trading-agent:latest          $digest"
operator_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent-operator" \
    --ref "$quiet_registry/trading-agent-operator:0.1.0" --port 8080 --insecure | tail -n 1)
echo "    trading-agent-operator:0.1.0  $operator_digest"
done_in

if real; then
    step "3/8 helm install the chart: the operator in its own pod on the real node"
else
    step "3/8 helm install the chart; the operator runs on the host as its ServiceAccount"
fi
# Pods of the harness's real node run only in namespaces that select it and tolerate its taint
# (tests/harness/README.md, "Level 3"); the product's own pod templates stay as users get them.
on_real_node() {
    kubectl annotate namespace "$1" --overwrite \
        "scheduler.alpha.kubernetes.io/node-selector=trading-agent.dev/node=real" \
        'scheduler.alpha.kubernetes.io/defaultTolerations=[{"key":"trading-agent.dev/node","operator":"Equal","value":"real","effect":"NoSchedule"}]' >/dev/null
}
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
kubectl create namespace "$release_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
if real; then
    on_real_node "$ns"
    on_real_node "$release_ns"
fi
kubectl -n "$release_ns" create secret generic registry-webhook --from-literal=token="$token" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm_wait=(--wait=false)
real && helm_wait=(--wait --timeout 180s)
helm upgrade --install "$release" "$root/charts/trading-agent-operator" --namespace "$release_ns" \
    "${helm_wait[@]}" \
    --set image.repository="$quiet_registry/trading-agent-operator" --set image.digest="$operator_digest" \
    --set watchNamespace="$ns" --set webhook.tokenSecret.name=registry-webhook \
    --set "insecureRegistries={$registry,$quiet_registry}" >"$demo/logs/helm.log" 2>&1 || fail "helm install failed: $demo/logs/helm.log"
sa="system:serviceaccount:$release_ns:$release"
echo "    release $release in $release_ns; RBAC of $sa:"
kubectl auth can-i --list -n "$ns" --as "$sa" | grep -E 'tradingagents|deployments|secrets|events' | sed 's/^/      /'
if real; then
    kubectl -n "$release_ns" get pods -o wide | sed 's/^/    /'
    operator_ip=$(kubectl -n "$release_ns" get pods -l "app.kubernetes.io/instance=$release" \
        -o jsonpath='{.items[0].status.podIP}')
    wait_for "operator /readyz" 60 curl -fsS "http://$operator_ip:8080/readyz"
    # The webhook Service has no selector: the leader publishes its own pod in the Service's
    # EndpointSlice, and kube-proxy sends every notification there.
    webhook_ip=$(kubectl -n "$release_ns" get service "$release-webhook" -o jsonpath='{.spec.clusterIP}')
    [[ -n $webhook_ip ]] || fail "no webhook Service $release-webhook in $release_ns"
    webhook_url="http://$webhook_ip:8443/registry/notifications"
    echo "    operator ready in its pod: metrics http://$operator_ip:8080/metrics; webhook Service $webhook_url"
else
    # A kubeconfig that impersonates the ServiceAccount: every call the operator makes is authorised
    # as the chart's RBAC alone allows.
    kubectl config view --raw --minify | sed "s|^  user:\$|  user:\n    as: $sa|" >"$demo/operator.kubeconfig"
    grep -q "as: $sa" "$demo/operator.kubeconfig" || fail "could not write the impersonating kubeconfig"
    start operator env KUBECONFIG="$demo/operator.kubeconfig" WEBHOOK_TOKEN="$token" POD_NAMESPACE="$release_ns" \
        "$target/debug/trading-agent-operator" --namespace "$ns" --lease-name "$release" \
        --metrics-addr "127.0.0.1:$metrics_port" --webhook-addr "127.0.0.1:$webhook_port" \
        --insecure-registry "$registry" --insecure-registry "$quiet_registry" --log-format text
    wait_for "operator /readyz" 60 curl -fsS "http://127.0.0.1:$metrics_port/readyz"
    webhook_url="http://127.0.0.1:$webhook_port/registry/notifications"
    echo "    operator ready: metrics http://127.0.0.1:$metrics_port/metrics, log $demo/logs/operator.log"
fi
{
    registry_config "$registry"
    cat <<EOF
notifications:
  endpoints:
    - name: trading-agent-operator
      url: $webhook_url
      headers: {Authorization: ["Bearer $token"]}
      timeout: 2s
      threshold: 3
      backoff: 1s
EOF
} >"$demo/registry/config.yml"
start registry docker-registry serve "$demo/registry/config.yml"
wait_for "registry" 20 curl -fsS "http://$registry/v2/"
echo "    registry http://$registry notifies $webhook_url of every push"
done_in

# serving DIGEST: every live pod of the TradingAgent runs DIGEST (the kubelet's imageID), is ready,
# and its /healthz, asked at the pod's address, names DIGEST. Real node only.
serving() {
    local lines line deleting ip ready image port healthz count=0
    lines=$(kubectl -n "$ns" get pods -l app.kubernetes.io/instance=alpha -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}|{.status.podIP}|{.status.containerStatuses[0].ready}|{.status.containerStatuses[0].imageID}|{.spec.containers[0].ports[0].containerPort}{"\n"}{end}')
    while IFS='|' read -r deleting ip ready image port; do
        [[ -z $deleting ]] || continue
        [[ $ready == true && $image == *"@$1" && -n $ip ]] || return 1
        healthz=$(curl -fsS --max-time 2 "http://$ip:$port/healthz") || return 1
        [[ $healthz == *"\"digest\":\"$1\""* ]] || return 1
        count=$((count + 1))
    done <<<"$lines"
    ((count == 4))   # api ×2, bot, strategy
}
show_pods() {
    kubectl -n "$ns" get pods -o wide | sed 's/^/    /'
    local ip
    ip=$(kubectl -n "$ns" get pods -l app.kubernetes.io/component=api \
        -o jsonpath='{.items[?(@.status.containerStatuses[0].ready==true)].status.podIP}')
    ip=${ip%% *}
    echo "    /healthz of an api pod ($ip): $(curl -fsS --max-time 2 "http://$ip:8000/healthz")"
}
# The api, reached from this host: its Service through kube-proxy on the real node, else the host
# process of step 7.
api_url="http://127.0.0.1:$api_port"
auth=(-H "Authorization: Bearer $api_token")

step "4/8 kubectl apply a TradingAgent with image $registry/trading-agent:latest"
kubectl -n "$ns" create secret generic desk-db --from-literal=url="$pod_database_url" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" create secret generic desk-api --from-literal=token="$api_token" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
agent="$target/debug/trading-agent"
if real; then
    # The candle history first, so the strategy pods' first ticks see its closing breakout.
    DATABASE_URL=$database_url "$agent" seed-demo 2>"$demo/logs/seed.log" | sed 's/^/    /' ||
        fail "trading-agent seed-demo failed: $demo/logs/seed.log"
fi
deadline=10
real && deadline=20   # real pods pull, start and pass their probes
cat <<EOF | kubectl apply -f -
apiVersion: tradingagents.dev/v1alpha1
kind: TradingAgent
metadata: {name: alpha, namespace: $ns}
spec:
  image: $registry/trading-agent:latest
  imageUpdate: {mode: Track, interval: 0s, rollback: Auto, verify: 5s}   # polling off until step 5's silent push; a new digest is watched 5s once rolled out
  progressDeadlineSeconds: $deadline
  database: {secretRef: {name: desk-db, key: url}}
  api: {replicas: 2, tokenSecretRef: {name: desk-api, key: token}}
  strategy: {env: [{name: DEMO_FEED, value: "true"}, {name: TICK_INTERVAL, value: 1s}]}
  bot: {env: [{name: TICK_INTERVAL, value: 1s}]}
EOF
kubectl -n "$ns" wait --for=condition=Ready ta/alpha --timeout=180s
pinned_to "$digest" || fail "Deployments are not pinned to $digest"
[[ $(kubectl -n "$ns" get ta alpha -o jsonpath='{.spec.imageUpdate.interval}') == 0s ]] ||
    fail "polling must be off (interval 0s) for the notified push of step 5"
kubectl -n "$ns" get ta alpha
show_pins
if real; then
    wait_for "every pod serving $digest" 60 serving "$digest"
    show_pods
fi
done_in

step "5/8 new pushes under the same tag: by notification (polling off), then by polling"
new_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-2" | tail -n 1)
pushed_at=$(now_ms)
wait_for "rollout to $new_digest" 30 pinned_to "$new_digest"
echo "    notified push $new_digest: all three Deployments re-pinned $(($(now_ms) - pushed_at)) ms after the push completed"
echo "    (polling is off, interval 0s: only the registry's notification can explain it)"
if real; then
    wait_for "every pod serving $new_digest" 90 serving "$new_digest"
    echo "    every pod serving $new_digest (pulled, started, ready, /healthz): $(($(now_ms) - pushed_at)) ms after the push"
fi
kubectl -n "$ns" get ta alpha -o jsonpath='{range .status.history[*]}      history: {.digest}  {.outcome}{"\n"}{end}' | tail -n 1
kubectl -n "$ns" wait --for=condition=Ready ta/alpha --timeout=60s >/dev/null
kubectl -n "$ns" patch ta alpha --type merge -p '{"spec":{"imageUpdate":{"interval":"2s"}}}' >/dev/null
echo "    polling on: interval 2s; next, a push to a registry process that notifies no one"
polled_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$quiet_registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-3" | tail -n 1)
pushed_at=$(now_ms)
wait_for "rollout to $polled_digest by polling" 30 pinned_to "$polled_digest"
echo "    silent push $polled_digest: found by polling (interval 2s) and re-pinned $(($(now_ms) - pushed_at)) ms after the push"
if real; then
    wait_for "every pod serving $polled_digest" 90 serving "$polled_digest"
    echo "    every pod serving $polled_digest: $(($(now_ms) - pushed_at)) ms after the push"
fi
kubectl -n "$ns" wait --for=condition=Ready ta/alpha --timeout=60s >/dev/null
done_in

step "6/8 push an image that never becomes ready: rollback after the progress deadline (${deadline}s)"
if real; then
    # A real image of the workload whose server listens on the pod's loopback only: the container
    # runs, but the kubelet's probes never reach it.
    bad_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$registry/trading-agent:latest" \
        --port 8000 --insecure --env BIND_ADDRESS=127.0.0.1 --label "org.opencontainers.image.version=demo-bad" | tail -n 1)
    echo "    pushed $bad_digest (BIND_ADDRESS=127.0.0.1: the kubelet's probes cannot reach it)"
else
    bad_digest=$("$target/debug/ta-push" "$registry" trading-agent latest never-ready)
    echo "    pushed $bad_digest (kwok keeps its pods unready)"
fi
wait_for "rollout to the bad digest" 30 pinned_to "$bad_digest"
pushed_at=$(now_ms)
wait_for "rollback to $polled_digest" 120 pinned_to "$polled_digest"
echo "    rolled back to $polled_digest $(($(now_ms) - pushed_at)) ms after the bad rollout started"
# The Deployments' own ProgressDeadlineExceeded fades as the rollback rolls out; the operator's verdict stays.
wait_for "Degraded=True reason RolledBack" 30 bash -c \
    "[[ \$($bin/kubectl -n $ns get ta alpha -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}') == RolledBack ]]"
kubectl -n "$ns" get ta alpha -o jsonpath='    Degraded: {.status.conditions[?(@.type=="Degraded")].status} ({.status.conditions[?(@.type=="Degraded")].reason}): {.status.conditions[?(@.type=="Degraded")].message}{"\n"}    rejectedDigests: {.status.image.rejectedDigests}{"\n"}'
if real; then
    wait_for "the previous digest's pods serving again" 90 serving "$polled_digest"
    echo "    the previous digest's pods serve again: $(($(now_ms) - pushed_at)) ms after the bad rollout started"
    show_pods
fi
echo "    history:"
kubectl -n "$ns" get ta alpha -o jsonpath='{range .status.history[*]}      {.digest}  {.outcome}{"\n"}{end}'
echo "    events:"
kubectl -n "$ns" get events --field-selector involvedObject.name=alpha --sort-by=.lastTimestamp \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message --no-headers 2>/dev/null | tail -n 6 | cut -c1-150 | sed 's/^/      /'
done_in

step "7/8 the workloads on PostgreSQL: candles -> signals -> paper trades"
if real; then
    api_url="http://$(kubectl -n "$ns" get service alpha-api -o jsonpath='{.spec.clusterIP}:{.spec.ports[0].port}')"
    echo "    the api pods through their Service: $api_url (kube-proxy); the bot and strategy pods tick every 1s"
else
    DATABASE_URL=$database_url "$agent" migrate >"$demo/logs/migrate.log" 2>&1 || {
        cat "$demo/logs/migrate.log" >&2
        fail "trading-agent migrate failed (its output above, also in $demo/logs/migrate.log)"
    }
    DATABASE_URL=$database_url "$agent" seed-demo | sed 's/^/    /'
    # The workloads listen on loopback only (their default, 0.0.0.0, is for pods).
    export BIND_ADDRESS=127.0.0.1
    DATABASE_URL=$database_url PORT=$api_port API_TOKEN=$api_token start api "$agent" api
    DATABASE_URL=$database_url PORT=$((api_port + 1)) DEMO_FEED=true TICK_INTERVAL=1s start strategy "$agent" strategy
    DATABASE_URL=$database_url PORT=$((api_port + 2)) TICK_INTERVAL=1s start bot "$agent" bot
    unset BIND_ADDRESS
fi
wait_for "api /readyz" 60 curl -fsS "$api_url/readyz"
echo "    /healthz: $(curl -fsS "$api_url/healthz")"
count() { curl -fsS "${auth[@]}" "$api_url/api/v2/$1" | grep -o '"id":' | wc -l; }
echo "    strategies: $(count strategies)   (SMA/EMA crossover and RSI on 1m candles of BTCUSDT and ETHUSDT)"
# The seeded history ends in a breakout that every demo strategy buys: the strategy runner's first
# tick writes the signals, and the bot turns them into paper trades within seconds.
strategy_trades() {
    curl -fsS "${auth[@]}" "$api_url/api/v2/trades?limit=100" | grep -o '"strategy_id":[0-9]' | wc -l
}
has_strategy_trade() { (($(strategy_trades) > 0)); }
wait_for "a paper trade from a strategy signal" 30 has_strategy_trade
printf '    strategy signals: %s   orders: %s   trades from strategy signals: %s\n' \
    "$(curl -fsS "${auth[@]}" "$api_url/api/v2/signals?limit=100" | grep -o '"strategy_id":[0-9]' | wc -l)" \
    "$(count "orders?limit=100")" "$(strategy_trades)"
curl -fsS "${auth[@]}" "$api_url/api/v2/signals?limit=6" |
    grep -o '"reason":"[^"]*"' | head -n 3 | sed 's/^"reason":/      signal: /' || true
echo "    API: $api_url/docs (token: $api_token)"
done_in

step "8/8 delete the TradingAgent: its Deployments, Service and PDB are garbage-collected"
kubectl -n "$ns" delete ta alpha --wait=true
wait_for "garbage collection" 60 bash -c "[[ -z \$($bin/kubectl -n $ns get deployments,services,pdb -o name) ]]"
echo "    $ns: $(kubectl -n "$ns" get deployments,services,pdb 2>&1)"
done_in

printf '\n\033[1mgolden path complete in %ss.\033[0m\n' "$((SECONDS - t0))"
if [[ -n ${DEMO_CLEANUP:-} ]]; then
    echo "cleaning up on exit: release, namespaces, processes"
else
    cat <<EOT
The stack is still up:
  export KUBECONFIG=$KUBECONFIG; $bin/kubectl get ta -A
  operator log: $(real && echo "kubectl -n $release_ns logs -l app.kubernetes.io/instance=$release" || echo "$demo/logs/operator.log")
  API: $api_url/docs (token: $api_token)
Stop everything with: make demo-down
EOT
fi
