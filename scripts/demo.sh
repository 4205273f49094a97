#!/usr/bin/env bash
# `make demo`: the golden path (product.md §5) on a local stack, with readable progress and timings.
# The end-to-end suite runs the same script (tests/e2e/golden_path.rs), so what a person sees is
# what CI checks.
#
#  1. local Kubernetes (harness), an OCI registry and PostgreSQL, all on loopback
#  2. the workload and operator images built without a daemon and pushed (…/trading-agent:latest)
#  3. `helm install` of the chart; the operator runs on the host (kwok nodes run no processes) as
#     the chart's ServiceAccount, so it has exactly the RBAC the chart grants
#  4. a TradingAgent applied: three Deployments pinned to the digest, Ready
#  5. a new push under the same tag: the registry's notification rolls every Deployment forward;
#     then a push nobody announces: polling finds it within one interval
#  6. a push of an image that never becomes ready: after the progress deadline the operator rolls
#     back to the last healthy digest, marks the bad one rejected and reports Degraded
#  7. the workloads themselves on PostgreSQL: candles -> signals -> paper trades
#  8. the TradingAgent deleted: everything it owned is garbage-collected
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
registry_port=${DEMO_REGISTRY_PORT:-25000}
quiet_registry_port=${DEMO_QUIET_REGISTRY_PORT:-25001}
registry="127.0.0.1:$registry_port"
quiet_registry="127.0.0.1:$quiet_registry_port"
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
    [[ -f $demo/logs/operator.log ]] && { echo "--- last lines of $demo/logs/operator.log" >&2; tail -n 15 "$demo/logs/operator.log" >&2; }
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

# The demo's fixed loopback ports (each can be moved with its DEMO_*_PORT variable) must be free.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for named in "DEMO_REGISTRY_PORT=$registry_port" "DEMO_QUIET_REGISTRY_PORT=$quiet_registry_port" \
    "DEMO_WEBHOOK_PORT=$webhook_port" "DEMO_METRICS_PORT=$metrics_port" "DEMO_PG_PORT=$pg_port" \
    "DEMO_API_PORT=$api_port" "DEMO_API_PORT+1 (strategy)=$((api_port + 1))" "DEMO_API_PORT+2 (bot)=$((api_port + 2))"; do
    port=${named##*=}
    port_free "$port" || fail "port $port (${named%=*}) is in use on 127.0.0.1; stop what holds it (ss -ltnp 'sport = :$port') or set ${named%%[=+ ]*} to a free port"
done

step "1/8 local stack: Kubernetes, OCI registry, PostgreSQL (loopback only)"
"$root/tests/harness/cluster.sh" up >/dev/null
kubectl get nodes
# Two registry processes on one storage: the first notifies the operator of every push, the second
# (same images) notifies nobody, for the polling part of step 5.
mkdir -p "$demo/registry"
registry_config() {
    cat <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $demo/registry/storage}, delete: {enabled: true}}
http: {addr: $1}
EOF
}
{
    registry_config "$registry"
    cat <<EOF
notifications:
  endpoints:
    - name: trading-agent-operator
      url: http://127.0.0.1:$webhook_port/registry/notifications
      headers: {Authorization: ["Bearer $token"]}
      timeout: 2s
      threshold: 3
      backoff: 1s
EOF
} >"$demo/registry/config.yml"
registry_config "$quiet_registry" >"$demo/registry/quiet.yml"
start registry docker-registry serve "$demo/registry/config.yml"
start registry-quiet docker-registry serve "$demo/registry/quiet.yml"
wait_for "registry" 20 curl -fsS "http://$registry/v2/"
wait_for "registry (no notifications)" 20 curl -fsS "http://$quiet_registry/v2/"
echo "    registry: http://$registry (notifies the operator), http://$quiet_registry (same storage, silent)"
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
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata/data" -l "$pgdata/postgres.log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $pgdata" start >"$demo/logs/pg_ctl.log" 2>&1 || {
    cat "$demo/logs/pg_ctl.log" >&2
    tail -n 20 "$pgdata/postgres.log" >&2 2>/dev/null
    fail "PostgreSQL did not start on 127.0.0.1:$pg_port (pg_ctl output above; server log $pgdata/postgres.log)"
}
database_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
echo "    postgres: $database_url"
done_in

step "2/8 build the images (no Docker daemon) and push $registry/trading-agent:latest"
echo "    cargo build --locked: trading-agent, trading-agent-operator, ta-push (first build takes minutes)"
cargo build --locked --quiet --bin trading-agent --bin trading-agent-operator --bin ta-push
for binary in trading-agent trading-agent-operator ta-push; do
    [[ -x $target/debug/$binary ]] || fail "cargo build did not produce $target/debug/$binary"
done
digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-1" | tail -n 1)
echo "    trading-agent:latest          $digest"
operator_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent-operator" \
    --ref "$registry/trading-agent-operator:0.1.0" --port 8080 --insecure | tail -n 1)
echo "    trading-agent-operator:0.1.0  $operator_digest"
done_in

step "3/8 helm install the chart; the operator runs as its ServiceAccount"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
kubectl create namespace "$release_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$release_ns" create secret generic registry-webhook --from-literal=token="$token" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm upgrade --install "$release" "$root/charts/trading-agent-operator" --namespace "$release_ns" \
    --wait=false \
    --set image.repository="$registry/trading-agent-operator" --set image.digest="$operator_digest" \
    --set watchNamespace="$ns" --set webhook.tokenSecret.name=registry-webhook \
    --set "insecureRegistries={$registry,$quiet_registry}" >"$demo/logs/helm.log" || fail "helm install failed: $demo/logs/helm.log"
sa="system:serviceaccount:$release_ns:$release"
echo "    release $release in $release_ns; RBAC of $sa:"
kubectl auth can-i --list -n "$ns" --as "$sa" | grep -E 'tradingagents|deployments|secrets|events' | sed 's/^/      /'
# A kubeconfig that impersonates the ServiceAccount: every call the operator makes is authorised
# as the chart's RBAC alone allows.
kubectl config view --raw --minify | sed "s|^  user:\$|  user:\n    as: $sa|" >"$demo/operator.kubeconfig"
grep -q "as: $sa" "$demo/operator.kubeconfig" || fail "could not write the impersonating kubeconfig"
start operator env KUBECONFIG="$demo/operator.kubeconfig" WEBHOOK_TOKEN="$token" POD_NAMESPACE="$release_ns" \
    "$target/debug/trading-agent-operator" --namespace "$ns" --lease-name "$release" \
    --metrics-addr "127.0.0.1:$metrics_port" --webhook-addr "127.0.0.1:$webhook_port" \
    --insecure-registry "$registry" --insecure-registry "$quiet_registry" --log-format text
wait_for "operator /readyz" 60 curl -fsS "http://127.0.0.1:$metrics_port/readyz"
echo "    operator ready: metrics http://127.0.0.1:$metrics_port/metrics, log $demo/logs/operator.log"
done_in

step "4/8 kubectl apply a TradingAgent with image $registry/trading-agent:latest"
kubectl -n "$ns" create secret generic desk-db --from-literal=url="$database_url" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<EOF | kubectl apply -f -
apiVersion: tradingagents.dev/v1alpha1
kind: TradingAgent
metadata: {name: alpha, namespace: $ns}
spec:
  image: $registry/trading-agent:latest
  imageUpdate: {mode: Track, interval: 0s, rollback: Auto, verify: 5s}   # polling off until step 5's silent push; a new digest is watched 5s once rolled out
  progressDeadlineSeconds: 10
  database: {secretRef: {name: desk-db, key: url}}
  api: {replicas: 2}
EOF
kubectl -n "$ns" wait --for=condition=Ready ta/alpha --timeout=120s
pinned_to "$digest" || fail "Deployments are not pinned to $digest"
[[ $(kubectl -n "$ns" get ta alpha -o jsonpath='{.spec.imageUpdate.interval}') == 0s ]] ||
    fail "polling must be off (interval 0s) for the notified push of step 5"
kubectl -n "$ns" get ta alpha
show_pins
done_in

step "5/8 new pushes under the same tag: by notification (polling off), then by polling"
new_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-2" | tail -n 1)
pushed_at=$(now_ms)
wait_for "rollout to $new_digest" 30 pinned_to "$new_digest"
echo "    notified push $new_digest: all three Deployments re-pinned $(($(now_ms) - pushed_at)) ms after the push completed"
echo "    (polling is off, interval 0s: only the registry's notification can explain it)"
kubectl -n "$ns" get ta alpha -o jsonpath='{range .status.history[*]}      history: {.digest}  {.outcome}{"\n"}{end}' | tail -n 1
kubectl -n "$ns" patch ta alpha --type merge -p '{"spec":{"imageUpdate":{"interval":"2s"}}}' >/dev/null
echo "    polling on: interval 2s; next, a push to a registry process that notifies no one"
polled_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$quiet_registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-3" | tail -n 1)
pushed_at=$(now_ms)
wait_for "rollout to $polled_digest by polling" 30 pinned_to "$polled_digest"
echo "    silent push $polled_digest: found by polling (interval 2s) and re-pinned $(($(now_ms) - pushed_at)) ms after the push"
kubectl -n "$ns" wait --for=condition=Ready ta/alpha --timeout=60s >/dev/null
done_in

step "6/8 push an image that never becomes ready: rollback after the progress deadline (10s)"
bad_digest=$("$target/debug/ta-push" "$registry" trading-agent latest never-ready)
echo "    pushed $bad_digest (kwok keeps its pods unready)"
wait_for "rollout to the bad digest" 30 pinned_to "$bad_digest"
pushed_at=$(now_ms)
wait_for "rollback to $polled_digest" 90 pinned_to "$polled_digest"
echo "    rolled back to $polled_digest $(($(now_ms) - pushed_at)) ms after the bad rollout started"
# The Deployments' own ProgressDeadlineExceeded fades as the rollback rolls out; the operator's verdict stays.
wait_for "Degraded=True reason RolledBack" 30 bash -c \
    "[[ \$($bin/kubectl -n $ns get ta alpha -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}') == RolledBack ]]"
kubectl -n "$ns" get ta alpha -o jsonpath='    Degraded: {.status.conditions[?(@.type=="Degraded")].status} ({.status.conditions[?(@.type=="Degraded")].reason}): {.status.conditions[?(@.type=="Degraded")].message}{"\n"}    rejectedDigests: {.status.image.rejectedDigests}{"\n"}'
echo "    history:"
kubectl -n "$ns" get ta alpha -o jsonpath='{range .status.history[*]}      {.digest}  {.outcome}{"\n"}{end}'
echo "    events:"
kubectl -n "$ns" get events --field-selector involvedObject.name=alpha --sort-by=.lastTimestamp \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message --no-headers 2>/dev/null | tail -n 6 | cut -c1-150 | sed 's/^/      /'
done_in

step "7/8 the workloads on PostgreSQL: candles -> signals -> paper trades"
agent="$target/debug/trading-agent"
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
wait_for "api /readyz" 60 curl -fsS "http://127.0.0.1:$api_port/readyz"
echo "    /healthz: $(curl -fsS "http://127.0.0.1:$api_port/healthz")"
auth=(-H "Authorization: Bearer $api_token")
count() { curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/$1" | grep -o '"id":' | wc -l; }
echo "    strategies: $(count strategies)   (SMA/EMA crossover and RSI on 1m candles of BTCUSDT and ETHUSDT)"
# The seeded history ends in a breakout that every demo strategy buys: the strategy runner's first
# tick writes the signals, and the bot turns them into paper trades within seconds.
strategy_trades() {
    curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/trades?limit=100" | grep -o '"strategy_id":[0-9]' | wc -l
}
has_strategy_trade() { (($(strategy_trades) > 0)); }
wait_for "a paper trade from a strategy signal" 30 has_strategy_trade
printf '    strategy signals: %s   orders: %s   trades from strategy signals: %s\n' \
    "$(curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/signals?limit=100" | grep -o '"strategy_id":[0-9]' | wc -l)" \
    "$(count "orders?limit=100")" "$(strategy_trades)"
curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/signals?limit=6" |
    grep -o '"reason":"[^"]*"' | head -n 3 | sed 's/^"reason":/      signal: /' || true
echo "    API: http://127.0.0.1:$api_port/docs (token: $api_token)"
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
  operator log: $demo/logs/operator.log      API: http://127.0.0.1:$api_port/docs
Stop everything with: make demo-down
EOT
fi
