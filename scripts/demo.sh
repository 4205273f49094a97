#!/usr/bin/env bash
# `make demo`: the golden path on a local stack, with readable progress.
#
#  1. local Kubernetes (harness), an OCI registry and PostgreSQL, all on loopback
#  2. the workload image built without a daemon and pushed as .../trading-agent:latest
#  3. the operator running against the cluster (on the host: kwok nodes run no processes)
#  4. a TradingAgent applied: three Deployments pinned to the digest, Ready
#  5. a new push under the same tag: the registry's notification rolls every Deployment forward
#  6. the workloads themselves on PostgreSQL: candles -> signals -> paper trades
#  7. the TradingAgent deleted: everything it owned is garbage-collected
#
# The stack stays up afterwards to explore; `make demo-down` stops it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
target=${CARGO_TARGET_DIR:-$cache/target}
demo="$cache/demo"
bin="$cache/bin"
export KUBECONFIG="$cache/cluster/kubeconfig"
kubectl() { "$bin/kubectl" "$@"; }
registry_port=${DEMO_REGISTRY_PORT:-25000}
registry="127.0.0.1:$registry_port"
webhook_port=${DEMO_WEBHOOK_PORT:-28443}
metrics_port=${DEMO_METRICS_PORT:-28080}
api_port=${DEMO_API_PORT:-28000}
token=demo-webhook-token
api_token=demo-api-token-0123456789
ns=desk

t0=$SECONDS
step_started=$SECONDS
step() {
    printf '\n\033[1m==> [%3ss] %s\033[0m\n' "$((SECONDS - t0))" "$*"
    step_started=$SECONDS
}
done_in() { printf '    done in %ss\n' "$((SECONDS - step_started))"; }
fail() { printf '\ndemo: %s\n' "$*" >&2; exit 1; }

mkdir -p "$demo/logs" "$demo/pids"

# start NAME CMD...: a background process of the demo, its PID recorded for demo-down.
start() {
    local name=$1
    shift
    setsid "$@" >"$demo/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$demo/pids/$name.pid"
}

wait_for() {
    local what=$1 timeout=$2 started=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - started < timeout)) || fail "$what: not ready after ${timeout}s"
        sleep 0.2
    done
}

"$root/scripts/demo-down.sh" --processes-only >/dev/null 2>&1 || true

step "1/7 local stack: Kubernetes, OCI registry, PostgreSQL (loopback only)"
"$root/tests/harness/cluster.sh" up >/dev/null
kubectl get nodes
mkdir -p "$demo/registry"
cat >"$demo/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $demo/registry/storage}, delete: {enabled: true}}
http: {addr: $registry}
notifications:
  endpoints:
    - name: trading-agent-operator
      url: http://127.0.0.1:$webhook_port/registry/notifications
      headers: {Authorization: ["Bearer $token"]}
      timeout: 2s
      threshold: 3
      backoff: 1s
EOF
start registry docker-registry serve "$demo/registry/config.yml"
wait_for "registry" 20 curl -fsS "http://$registry/v2/"
echo "    registry: http://$registry"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
# Outside $HOME: the server runs as the postgres user when we are root, and /root is private.
pgdata=${DEMO_PG_DIR:-${TMPDIR:-/tmp}/trading-agent-demo-postgres}
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
if [[ ! -d $pgdata/data ]]; then
    mkdir -p "$pgdata"
    [[ ${#as_pg[@]} -gt 0 ]] && chown postgres:postgres "$pgdata"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pgdata/data" -U postgres --auth=trust --no-sync >"$demo/logs/initdb.log" 2>&1 ||
        fail "initdb failed; see $demo/logs/initdb.log"
fi
pg_port=${DEMO_PG_PORT:-25432}
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata/data" -l "$pgdata/postgres.log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $pgdata" start >/dev/null
database_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
echo "    postgres: $database_url"
done_in

step "2/7 build the workload image (no Docker daemon) and push $registry/trading-agent:latest"
cargo build --quiet -p trading-agent -p trading-agent-operator
digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$registry/trading-agent:latest" \
    --port 8000 --insecure --label "org.opencontainers.image.version=demo-1" | tail -n 1)
echo "    pushed sha256 digest: $digest"
done_in

step "3/7 the operator: CRD installed, controller running against the cluster"
kubectl apply --server-side --force-conflicts --field-manager trading-agent-demo -f "$root/crds/tradingagents.yaml" >/dev/null
kubectl wait --for=condition=Established crd/tradingagents.tradingagents.dev --timeout=30s >/dev/null
operator_args=(--leader-election=false --namespace "$ns" --metrics-addr "127.0.0.1:$metrics_port" --log-format text)
image="$registry/trading-agent:latest"
if "$target/debug/trading-agent-operator" --help | grep -q -- --insecure-registry; then
    operator_args+=(--insecure-registry "$registry" --webhook-addr "127.0.0.1:$webhook_port")
    tags_supported=1
else
    # This build pins only digests given in spec.image: name the digest we just pushed.
    image="$registry/trading-agent:latest@$digest"
    tags_supported=
fi
WEBHOOK_TOKEN=$token start operator "$target/debug/trading-agent-operator" "${operator_args[@]}"
wait_for "operator /readyz" 60 curl -fsS "http://127.0.0.1:$metrics_port/readyz"
echo "    operator ready (metrics: http://127.0.0.1:$metrics_port/metrics, log: $demo/logs/operator.log)"
done_in

step "4/7 kubectl apply a TradingAgent (image $image)"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
kubectl -n "$ns" create secret generic desk-db --from-literal=url="$database_url" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<EOF | kubectl apply -f -
apiVersion: tradingagents.dev/v1alpha1
kind: TradingAgent
metadata: {name: alpha, namespace: $ns}
spec:
  image: $image
  imageUpdate: {mode: Track, interval: 30s, rollback: Auto}
  database: {secretRef: {name: desk-db, key: url}}
  api: {replicas: 2}
EOF
kubectl -n "$ns" wait --for=condition=Ready ta/alpha --timeout=120s
kubectl -n "$ns" get ta,deployments -o wide
echo "    pinned images:"
kubectl -n "$ns" get deployments -o jsonpath='{range .items[*]}      {.metadata.name}: {.spec.template.spec.containers[0].image}{"\n"}{end}'
done_in

step "5/7 push a new image under the same tag; the registry notifies the operator"
if [[ -n $tags_supported ]]; then
    pushed_at=$(date +%s%3N)
    new_digest=$("$root/scripts/build-image.sh" --binary "$target/debug/trading-agent" --ref "$registry/trading-agent:latest" \
        --port 8000 --insecure --label "org.opencontainers.image.version=demo-2" | tail -n 1)
    echo "    new digest: $new_digest"
    wait_for "rollout to $new_digest" 60 bash -c \
        "[[ \$($bin/kubectl -n $ns get deployments -o jsonpath='{.items[*].spec.template.spec.containers[0].image}' | tr ' ' '\n' | grep -c '$new_digest') -eq 3 ]]"
    echo "    all three Deployments pinned to the new digest $(($(date +%s%3N) - pushed_at)) ms after the push finished"
    kubectl -n "$ns" get ta alpha -o jsonpath='{range .status.history[*]}      {.digest} {.outcome}{"\n"}{end}'
else
    echo "    (this operator build does not resolve tags yet: skipped)"
fi
done_in

step "6/7 the workloads on PostgreSQL: candles -> signals -> paper trades"
agent="$target/debug/trading-agent"
DATABASE_URL=$database_url "$agent" migrate
DATABASE_URL=$database_url "$agent" seed-demo
DATABASE_URL=$database_url PORT=$api_port API_TOKEN=$api_token start api "$agent" api
DATABASE_URL=$database_url PORT=$((api_port + 1)) DEMO_FEED=true TICK_INTERVAL=1s start strategy "$agent" strategy
DATABASE_URL=$database_url PORT=$((api_port + 2)) TICK_INTERVAL=1s start bot "$agent" bot
wait_for "api /readyz" 60 curl -fsS "http://127.0.0.1:$api_port/readyz"
curl -fsS "http://127.0.0.1:$api_port/healthz"
echo
auth=(-H "Authorization: Bearer $api_token")
count() { curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/$1" | grep -o '"id":' | wc -l; }
echo "    components: $(curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/health/components" | grep -o '"role":"[a-z]*"' | tr '\n' ' ')"
echo "    strategies: $(count strategies)   (SMA/EMA crossover and RSI on 1m candles of BTCUSDT and ETHUSDT)"
# A crossover needs a 1-minute candle to close; wait a little for one, then show the same path by hand.
for _ in $(seq 1 10); do
    (($(count "signals?limit=100") > 0)) && break
    sleep 2
done
if (($(count "signals?limit=100") == 0)); then
    echo "    no crossover on the latest closed candle yet; forcing an entry (queued as a signal, executed by the bot)"
    curl -fsS "${auth[@]}" -H 'content-type: application/json' -d '{"symbol":"BTCUSDT","stake":"100"}' \
        "http://127.0.0.1:$api_port/api/v2/bot/force-enter" >/dev/null
fi
wait_for "a paper trade" 30 bash -c "curl -fsS -H 'Authorization: Bearer $api_token' 'http://127.0.0.1:$api_port/api/v2/trades?limit=1' | grep -q '\"id\":'"
printf '    signals: %s   orders: %s   trades: %s\n' "$(count "signals?limit=100")" "$(count "orders?limit=100")" "$(count "trades?limit=100")"
curl -fsS "${auth[@]}" "http://127.0.0.1:$api_port/api/v2/trades?limit=1" | head -c 400 | sed 's/^/    last trade: /'
echo
echo "    API:     http://127.0.0.1:$api_port/docs (token: $api_token)"
done_in

step "7/7 delete the TradingAgent: its Deployments, Service and PDB are garbage-collected"
kubectl -n "$ns" delete ta alpha --wait=true
wait_for "garbage collection" 60 bash -c "[[ -z \$($bin/kubectl -n $ns get deployments,services,pdb -o name) ]]"
kubectl -n "$ns" get deployments,services,pdb 2>&1 | sed 's/^/    /'
done_in

printf '\n\033[1mdemo complete in %ss.\033[0m The stack is still up:\n' "$((SECONDS - t0))"
cat <<EOT
  export KUBECONFIG=$KUBECONFIG; $bin/kubectl get ta -A
  operator log: $demo/logs/operator.log      API: http://127.0.0.1:$api_port/docs
Stop everything with: make demo-down
EOT
