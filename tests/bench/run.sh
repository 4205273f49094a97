#!/usr/bin/env bash
# The benchmarks of issue 7 that exist so far; rewrites tests/bench/RESULTS.md. Run by `make bench`.
#
#   1. Workload API side by side, one throwaway PostgreSQL for all, wrk on loopback:
#      `trading-agent api` (release build) vs the seed's stack rebuilt (tests/bench/fastapi_app:
#      FastAPI + uvicorn + asyncpg, pinned, in a venv in the cache) vs a bare hyper server
#      (tests/bench/hyper-hello, the ceiling): GET /healthz, GET /api/v2/trades?limit=100 over a
#      seeded table, PUT /api/v2/candles (rows/s); process start -> /readyz 200, memory at rest.
#   1b. Dashboard: time to interactive in headless chromium with 100,000 candles stored
#      (tests/bench/dashboard.sh, which also runs alone; api/dashboard/tests/bench.mjs).
#   2. Strategy runner: the Criterion bench api/benches/indicators.rs (1,000 symbols x 500 candles).
#   3. Operator, against the local cluster harness (started and stopped here if it was not up):
#      apply -> three Deployments, p50/p99 over 200 TradingAgents applied one by one (operator.py);
#      then 1,000 TradingAgents at once on one tag of a real docker-registry: converge time, peak
#      RSS, registry requests per polling interval, push -> all re-pinned with the registry's
#      notification and by polling alone (ta-bench-operator, tests/src/bin/ta-bench-operator.rs).
#   4. Backtest against freqtrade (tests/bench/freqtrade/bench.sh, which also runs alone): a year of
#      5m candles on 10 pairs, SMA crossover and RSI; trades, exact matches, speed ratio, peak RSS.
#   5. Side by side (issue 20, tests/bench/compare.sh, which also runs alone): Keel from the Go module
#      proxy (FAILED with the go command's error when it cannot be built) and the API server's
#      ceiling (a plain client loop patching the same Deployments), for 1, 100 and 1,000 agents,
#      with the API server's writes per agent lifecycle.
#   6. Level 3 (issue 20, tests/bench/level3.sh, which also runs alone; needs root): a push -> every
#      pod of one desk serving the new digest on the harness's real kubelet node, the operator
#      (notified and polled) against Argo CD Image Updater (polled).
#
# FastAPI runs twice: with 1 uvicorn worker (the seed's `uvicorn.run`) and with 2 (this machine's
# cores); its CPU per request counts every worker process.
#
# Installs what it needs, idempotently (wrk and PostgreSQL from Debian, the Python venv), and stops
# every process it started when it exits, however it exits. Traffic goes to 127.0.0.1 only.
#
# Knobs (environment): BENCH_RUNS (3) repetitions of every figure, BENCH_DURATION (10s) per wrk run,
# BENCH_THREADS (2) and BENCH_CONNECTIONS (64) for the GET runs, BENCH_UPSERT_CONNECTIONS (8) and
# BENCH_BATCH (1000 candles per PUT), BENCH_STARTUP_RUNS (5), BENCH_SKIP_CRITERION=1, BENCH_SKIP_PROFILE=1,
# BENCH_SKIP_OPERATOR=1, BENCH_OPERATOR_COUNT (200), BENCH_SKIP_SCALE=1, BENCH_SCALE_COUNT (1000),
# BENCH_SCALE_INTERVAL (10 s polling interval of the scale run), BENCH_SKIP_DASHBOARD=1, BENCH_SKIP_FREQTRADE=1,
# BENCH_DASHBOARD_RUNS (5 visits of each dashboard page), BENCH_SKIP_COMPARE=1, BENCH_COMPARE_COUNTS ("1 100 1000"),
# BENCH_CEILING_IN_FLIGHT (96), BENCH_SKIP_LEVEL3=1, BENCH_LEVEL3_ROUNDS (5),
# BENCH_RESULTS (where to write; default tests/bench/RESULTS.md).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
runs=${BENCH_RUNS:-3}
duration=${BENCH_DURATION:-10s}
threads=${BENCH_THREADS:-2}
conns=${BENCH_CONNECTIONS:-64}
upsert_conns=${BENCH_UPSERT_CONNECTIONS:-8}
batch=${BENCH_BATCH:-1000}
symbols_per_thread=8
startup_runs=${BENCH_STARTUP_RUNS:-5}
operator_count=${BENCH_OPERATOR_COUNT:-200}
scale_count=${BENCH_SCALE_COUNT:-1000}
scale_interval=${BENCH_SCALE_INTERVAL:-10}
results_md=${BENCH_RESULTS:-$here/RESULTS.md}
venv=$cache/venv-bench
token=bench-token-0123456789abcdef
trades_rows=10000

log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- clean-up: every process this script starts is recorded here and stopped on exit ----
work=$(mktemp -d /tmp/ta-bench-XXXXXX) # outside /root: the postgres user must reach it
chmod 755 "$work"
pids=()
pg_ctl_stop=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if ((${#pg_ctl_stop[@]})); then "${pg_ctl_stop[@]}" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until GET url answers 200 (30 s at most).
wait_200() {
    local url=$1
    for _ in $(seq 600); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) == 200 ]] && return 0
        sleep 0.05
    done
    die "no 200 from $url within 30 s"
}

# ---- install (idempotent) ----
log "installing what is missing (wrk, PostgreSQL, the Python venv)"
if ! command -v wrk >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "wrk is missing (sudo apt-get install wrk)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
    }
fi
"$root/scripts/deps.sh"
requirements=$here/fastapi_app/requirements.txt
stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/uvicorn || $(cat "$venv/.requirements-sha256" 2>/dev/null) != "$stamp" ]]; then
    log "installing the FastAPI stack into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$stamp" >"$venv/.requirements-sha256"
fi

# ---- build ----
log "building trading-agent and hyper-hello (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$root" && cargo build --locked --quiet --release -p trading-agent)
cargo build --locked --quiet --release --manifest-path "$here/hyper-hello/Cargo.toml"
ta=$CARGO_TARGET_DIR/release/trading-agent
hyper_bin=$CARGO_TARGET_DIR/release/hyper-hello

# ---- PostgreSQL: a throwaway cluster on a free loopback port ----
pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -1)
[[ -n $pg_bin ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg=$work/pg
mkdir -p "$pg/socket"
[[ $(id -u) -ne 0 ]] || chown -R postgres:postgres "$pg"
pg_port=$(free_port)
log "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
as_pg "$pg_bin/initdb" --username=postgres --auth=trust --encoding=UTF8 --no-sync --pgdata "$pg/data" >/dev/null
pg_ctl_stop=(as_pg "$pg_bin/pg_ctl" --pgdata "$pg/data" --mode=immediate --wait stop)
as_pg "$pg_bin/pg_ctl" --pgdata "$pg/data" --log "$pg/postgres.log" --wait --timeout=60 \
    -o "-h 127.0.0.1 -p $pg_port -k $pg/socket -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
as_pg "$pg_bin/createdb" --host=127.0.0.1 --port="$pg_port" --username=postgres bench
db_url=postgres://postgres@127.0.0.1:$pg_port/bench
psql_() { as_pg "$pg_bin/psql" --host=127.0.0.1 --port="$pg_port" --username=postgres --dbname=bench \
    --no-psqlrc -v ON_ERROR_STOP=1 -qAt -c "$1"; }

# ---- schema and data ----
log "migrating and seeding ($trades_rows closed trades)"
DATABASE_URL=$db_url LOG_LEVEL=warn "$ta" migrate >/dev/null
psql_ "INSERT INTO instruments (symbol, base_asset, quote_asset)
       SELECT 'SYM' || i || 'USDT', 'SYM' || i, 'USDT' FROM generate_series(1, 20) i;
       INSERT INTO instruments (symbol, base_asset, quote_asset)
       SELECT p || t || 'X' || k, p || t || 'X' || k, 'USDT'
       FROM unnest(ARRAY['RS', 'PY']) p, generate_series(1, $threads) t, generate_series(1, $symbols_per_thread) k;
       INSERT INTO trades (symbol, status, quantity, entry_price, entry_fee, opened_at,
                           exit_price, exit_fee, closed_at, profit)
       SELECT 'SYM' || (1 + i % 20) || 'USDT', 'closed',
              round((0.001 + random())::numeric, 8), round((100 + random() * 1000)::numeric, 2),
              round((random() * 0.5)::numeric, 8), now() - make_interval(mins => 2 * i + 1),
              round((100 + random() * 1000)::numeric, 2), round((random() * 0.5)::numeric, 8),
              now() - make_interval(mins => 2 * i), round(((random() - 0.5) * 100)::numeric, 8)
       FROM generate_series(1, $trades_rows) i;
       ANALYZE;"

# ---- the three servers, all up at once (idle ones cost nothing), runs interleaved ----
rust_port=$(free_port)
py_port=$(free_port)
py2_port=$(free_port)
hyper_port=$(free_port)
log "starting trading-agent api :$rust_port, FastAPI/uvicorn :$py_port, hyper-hello :$hyper_port"
DATABASE_URL=$db_url API_TOKEN=$token PORT=$rust_port BIND_ADDRESS=127.0.0.1 LOG_LEVEL=warn \
    SHUTDOWN_DELAY=0s "$ta" api >"$work/rust.log" 2>&1 &
rust_pid=$!
pids+=("$rust_pid")
DATABASE_URL=$db_url API_TOKEN=$token "$venv/bin/uvicorn" --app-dir "$here/fastapi_app" app:app \
    --host 127.0.0.1 --port "$py_port" --workers 1 --loop uvloop --http httptools \
    --no-access-log --log-level warning >"$work/fastapi.log" 2>&1 &
py_pid=$!
pids+=("$py_pid")
DATABASE_URL=$db_url API_TOKEN=$token "$venv/bin/uvicorn" --app-dir "$here/fastapi_app" app:app \
    --host 127.0.0.1 --port "$py2_port" --workers 2 --loop uvloop --http httptools \
    --no-access-log --log-level warning >"$work/fastapi2.log" 2>&1 &
py2_pid=$!
pids+=("$py2_pid")
"$hyper_bin" "127.0.0.1:$hyper_port" >"$work/hyper.log" 2>&1 &
hyper_pid=$!
pids+=("$hyper_pid")
wait_200 "http://127.0.0.1:$rust_port/readyz"
wait_200 "http://127.0.0.1:$py_port/readyz"
wait_200 "http://127.0.0.1:$py2_port/readyz"
wait_200 "http://127.0.0.1:$hyper_port/healthz"

# Same answers from both implementations before anything is timed.
auth=(-H "Authorization: Bearer $token")
for p in "$rust_port" "$py_port"; do
    curl -sf "http://127.0.0.1:$p/healthz" | python3 -c 'import json,sys; b=json.load(sys.stdin); assert b["status"]=="ok" and b["timestamp"], b'
    curl -sf "${auth[@]}" "http://127.0.0.1:$p/api/v2/trades?limit=100" >"$work/trades-$p.json"
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); assert len(t)==100 and t[0]["status"]=="closed", len(t)' "$work/trades-$p.json"
done
python3 - "$work/trades-$rust_port.json" "$work/trades-$py_port.json" <<'EOF'
import json, sys
from decimal import Decimal
a, b = (json.load(open(p)) for p in sys.argv[1:])
norm = lambda t: {k: (str(Decimal(v).normalize()) if k in ("quantity","entry_price","entry_fee","exit_price","exit_fee","profit","peak_price") and v is not None else v)
                  for k, v in t.items() if not k.endswith("_at")}
assert [norm(t) for t in a] == [norm(t) for t in b], "the two trade lists differ"
EOF
trades_bytes_rust=$(stat -c %s "$work/trades-$rust_port.json")
trades_bytes_py=$(stat -c %s "$work/trades-$py_port.json")

results=$work/results.jsonl
: >"$results"
cat "$here/wrk/upsert.lua" "$here/wrk/report.lua" >"$work/upsert.lua"

declare -A server_pid=([rust]=$rust_pid [fastapi]=$py_pid [fastapi2]=$py2_pid [hyper]=$hyper_pid)
clk_tck=$(getconf CLK_TCK)
# CPU time (user + system, clock ticks) the process and its children (uvicorn's workers) have used so
# far. Exited children count too (cutime + cstime), so a restarted worker loses nothing.
cpu_ticks() {
    local pid total=0 t
    for pid in "$1" $(pgrep -P "$1" || true); do
        t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# wrk_run SCENARIO SERVER RUN ARGS...: one wrk run, its BENCH line (plus the CPU seconds the server
# used during it) appended to results.jsonl.
wrk_run() {
    local scenario=$1 server=$2 run=$3
    shift 3
    local line pid=${server_pid[$server]} before after
    before=$(cpu_ticks "$pid")
    line=$(wrk --timeout 10s "$@" | sed -n 's/^BENCH //p')
    after=$(cpu_ticks "$pid")
    [[ -n $line ]] || die "wrk printed no result for $scenario/$server"
    printf '{"scenario":"%s","server":"%s","run":%s,"cpu_s":%s,%s\n' "$scenario" "$server" "$run" \
        "$(awk -v t=$((after - before)) -v hz="$clk_tck" 'BEGIN {print t / hz}')" "${line#\{}" >>"$results"
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); e=r["connect_errors"]+r["read_errors"]+r["write_errors"]+r["timeouts"]; print("    {scenario:8} {server:8} run {run}: {rps:>10.1f} req/s  p99 {p99:.2f} ms  non-2xx {non_2xx}  errors {e}".format(p99=r["p99_us"]/1000, e=e, **r))' "$(tail -1 "$results")" >&2
}

healthz() { wrk_run healthz "$2" "$3" -t"$threads" -c"$conns" -d"$4" -s "$here/wrk/report.lua" "http://127.0.0.1:$1/healthz"; }
trades() { wrk_run trades "$2" "$3" -t"$threads" -c"$conns" -d"$4" -s "$here/wrk/report.lua" "${auth[@]}" "http://127.0.0.1:$1/api/v2/trades?limit=100"; }
upsert() {
    BENCH_SYMBOL_PREFIX=$5 BENCH_BATCH=$batch BENCH_SYMBOLS_PER_THREAD=$symbols_per_thread API_TOKEN=$token \
        wrk_run upsert "$2" "$3" -t"$threads" -c"$upsert_conns" -d"$4" -s "$work/upsert.lua" "http://127.0.0.1:$1"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rest_rust=$(rss_kb "$rust_pid") rest_py=$(rss_kb "$py_pid") rest_hyper=$(rss_kb "$hyper_pid")

log "warm-up (3 s per server and scenario; not recorded)"
: >"$work/warmup.jsonl"
results_real=$results
results=$work/warmup.jsonl
for s in "rust $rust_port" "fastapi $py_port" "fastapi2 $py2_port" "hyper $hyper_port"; do
    set -- $s
    healthz "$2" "$1" 0 3s 2>/dev/null
    [[ $1 == hyper ]] && continue
    trades "$2" "$1" 0 3s 2>/dev/null
    upsert "$2" "$1" 0 3s "$([[ $1 == rust ]] && echo RS || echo PY)" 2>/dev/null
done
results=$results_real

load_at_measure=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring: $runs runs of $duration each, load average $load_at_measure"
for run in $(seq "$runs"); do
    healthz "$rust_port" rust "$run" "$duration"
    healthz "$py_port" fastapi "$run" "$duration"
    healthz "$py2_port" fastapi2 "$run" "$duration"
    healthz "$hyper_port" hyper "$run" "$duration"
    trades "$rust_port" rust "$run" "$duration"
    trades "$py_port" fastapi "$run" "$duration"
    trades "$py2_port" fastapi2 "$run" "$duration"
    upsert "$rust_port" rust "$run" "$duration" RS
    upsert "$py_port" fastapi "$run" "$duration" PY
    upsert "$py2_port" fastapi2 "$run" "$duration" PY
done

# ---- profile (perf, when it works here): where the CPU goes under the GET loads ----
profile=$work/profile.txt
: >"$profile"
if [[ -z ${BENCH_SKIP_PROFILE:-} ]] && command -v perf >/dev/null; then
    log "profiling each server for 4 s under each GET load (perf record, by DSO and symbol)"
    for case in "rust healthz" "fastapi healthz" "hyper healthz" "rust trades" "fastapi trades"; do
        set -- $case
        pid=${server_pid[$1]}
        port=$rust_port
        [[ $1 == fastapi ]] && port=$py_port
        [[ $1 == hyper ]] && port=$hyper_port
        path=/healthz
        [[ $2 == trades ]] && path="/api/v2/trades?limit=100"
        wrk -t"$threads" -c"$conns" -d6s "${auth[@]}" "http://127.0.0.1:$port$path" >/dev/null 2>&1 &
        wrk_pid=$!
        pids+=("$wrk_pid")
        sleep 1
        if perf record -q -F 499 -p "$pid" -o "$work/perf.data" -- sleep 4 >/dev/null 2>&1; then
            {
                echo "### $1, $2"
                echo
                echo '```'
                perf report -i "$work/perf.data" --stdio --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -6 || true
                echo "  top symbols:"
                perf report -i "$work/perf.data" --stdio --sort sym 2>/dev/null | grep -E '^ +[0-9]' | head -12 || true
                echo '```'
                echo
            } >>"$profile"
        fi
        wait "$wrk_pid" || true
    done
fi

# The upserts really wrote: every symbol of both servers holds exactly one batch of rows.
expected=$((threads * symbols_per_thread * batch))
for p in RS PY; do
    got=$(psql_ "SELECT count(*) FROM candles WHERE symbol LIKE '$p%'")
    [[ $got == "$expected" ]] || die "candles of $p: $got rows, expected $expected"
done

# ---- dashboard: interactive within 1 s on an api holding 100,000 candles ----
# tests/bench/dashboard.sh (which also runs alone): its own throwaway PostgreSQL with 100,000
# candles, this release binary, headless chromium. A failure is reported as FAILED in RESULTS.md and
# the other figures are still taken.
dashboard_json=$work/dashboard.json
if [[ -z ${BENCH_SKIP_DASHBOARD:-} ]]; then
    log "dashboard: 100,000 candles, time to interactive in chromium (${BENCH_DASHBOARD_RUNS:-5} visits of each page)"
    TA_BIN=$ta BENCH_RUNS=${BENCH_DASHBOARD_RUNS:-5} "$here/dashboard.sh" "$dashboard_json" ||
        log "dashboard: FAILED (see above); RESULTS.md will say so"
    [[ -s $dashboard_json ]] || echo '{"error": "tests/bench/dashboard.sh wrote no result"}' >"$dashboard_json"
else
    echo '{"skipped": "BENCH_SKIP_DASHBOARD=1"}' >"$dashboard_json"
fi

# ---- backtest: ours against freqtrade, a year of 5m candles on 10 pairs (~1 million) ----
# tests/bench/freqtrade/bench.sh (which also runs alone): SMA crossover and RSI, trades each, exact
# matches and the cause of every difference, speed ratio and peak memory of each from the same run
# (freqtrade 2026.9 from PyPI, markets from a local file, no network). A failure is reported as
# FAILED in RESULTS.md and the other figures are still taken.
freqtrade_json=$work/freqtrade.json
if [[ -z ${BENCH_SKIP_FREQTRADE:-} ]]; then
    log "backtest: trading-agent vs freqtrade, 10 pairs x 105120 5m candles, SMA crossover and RSI"
    TA_BIN=$ta "$here/freqtrade/bench.sh" "$freqtrade_json" ||
        log "backtest vs freqtrade: FAILED or unexplained differences (see above); RESULTS.md will say so"
    [[ -s $freqtrade_json ]] || echo '{"error": "tests/bench/freqtrade/bench.sh wrote no result"}' >"$freqtrade_json"
else
    echo '{"skipped": "BENCH_SKIP_FREQTRADE=1"}' >"$freqtrade_json"
fi

after=$work/after.json
python3 - "$rust_pid" "$py_pid" "$hyper_pid" "$py2_pid" >"$after" <<'EOF'
import json, os, sys
def mem(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out
def tree(pid):
    # uvicorn --workers 2: the supervisor and its workers, summed.
    pids = [pid] + [p for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/stat") and
                    open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == pid]
    total = {"VmRSS": 0, "VmHWM": 0}
    for p in pids:
        for k, v in mem(p).items():
            total[k] += v
    return total
out = {name: mem(pid) for name, pid in zip(("rust", "fastapi", "hyper"), sys.argv[1:4])}
out["fastapi2"] = tree(sys.argv[4])
print(json.dumps(out))
EOF
for pid in "$rust_pid" "$py_pid" "$hyper_pid" "$py2_pid"; do kill -TERM "$pid" 2>/dev/null || true; done

# ---- start-up: process start -> /readyz 200 with the database up ----
log "start-up: $startup_runs runs each"
startup=$work/startup.jsonl
: >"$startup"
for run in $(seq "$startup_runs"); do
    p=$(free_port)
    env DATABASE_URL="$db_url" API_TOKEN="$token" PORT="$p" BIND_ADDRESS=127.0.0.1 LOG_LEVEL=warn SHUTDOWN_DELAY=0s \
        python3 "$here/startup.py" "$p" rust -- "$ta" api >>"$startup"
    p=$(free_port)
    env DATABASE_URL="$db_url" API_TOKEN="$token" \
        python3 "$here/startup.py" "$p" fastapi -- "$venv/bin/uvicorn" --app-dir "$here/fastapi_app" app:app \
        --host 127.0.0.1 --port "$p" --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning >>"$startup"
done
sed 's/^/    /' "$startup" >&2

# ---- strategy runner: Criterion ----
criterion=$work/criterion.json
echo '{}' >"$criterion"
if [[ -z ${BENCH_SKIP_CRITERION:-} ]]; then
    log "strategy runner: cargo bench -p trading-agent --bench indicators"
    # Criterion's files of an earlier run must never stand in for this one's.
    rm -rf "$CARGO_TARGET_DIR/criterion/tick"
    (cd "$root" && cargo bench --locked --quiet -p trading-agent --bench indicators -- \
        --warm-up-time 2 --measurement-time 8 --noplot) >"$work/criterion.log" 2>&1 ||
        { tail -n 30 "$work/criterion.log" >&2; die "cargo bench -p trading-agent --bench indicators failed"; }
    grep -E '^tick/|time:' "$work/criterion.log" >&2 || true
    python3 - "$CARGO_TARGET_DIR/criterion/tick" >"$criterion" <<'EOF'
import json, os, sys
out = {}
for name in ("indicators", "evaluate"):
    path = os.path.join(sys.argv[1], name, "new", "sample.json")
    if os.path.exists(path):
        s = json.load(open(path))
        out[name] = [t / i for t, i in zip(s["times"], s["iters"])]  # ns per tick, one per sample
print(json.dumps(out))
EOF
fi

# ---- operator: apply -> three Deployments, one by one, against the local cluster ----
operator_json=$work/operator.json
echo '{}' >"$operator_json"
if [[ -z ${BENCH_SKIP_OPERATOR:-} ]]; then
    log "operator: building (release) and applying $operator_count TradingAgents one by one"
    (cd "$root" && cargo build --locked --quiet --release -p trading-agent-operator)
    tools_bin=$("$root/tests/harness/build-tools.sh" --print)
    export KUBECONFIG=$cache/cluster/kubeconfig
    # with-cluster.sh: brings the harness up if it is down, and then down again afterwards.
    "$root/tests/harness/with-cluster.sh" python3 "$here/operator.py" --kubectl "$tools_bin/kubectl" \
        --operator "$CARGO_TARGET_DIR/release/trading-agent-operator" --crd "$root/crds/tradingagents.yaml" \
        --count "$operator_count" >"$operator_json" || {
        log "operator: FAILED (see above); RESULTS.md will say so"
        echo '{"error": "tests/bench/operator.py failed (its messages are in the bench log)"}' >"$operator_json"
    }
fi
scale_json=$work/scale.json
echo '{}' >"$scale_json"
if [[ -z ${BENCH_SKIP_SCALE:-} ]]; then
    log "operator at scale: $scale_count TradingAgents at once, polling every ${scale_interval}s, pushes (a few minutes)"
    (cd "$root" && cargo build --locked --quiet --release -p trading-agent-operator -p trading-agent-tests \
        --bin trading-agent-operator --bin ta-bench-operator)
    tools_bin=$("$root/tests/harness/build-tools.sh" --print)
    export KUBECONFIG=$cache/cluster/kubeconfig
    # The CRD (operator.py installs it too, but this part can run alone).
    "$root/tests/harness/with-cluster.sh" sh -c '"$1" apply -f "$2" >/dev/null && "$1" wait --for=condition=Established \
        --timeout=60s crd/tradingagents.tradingagents.dev >/dev/null && "$3" --operator "$4" --count "$5" \
        --interval "$6" --ceiling-in-flight 0' _ "$tools_bin/kubectl" "$root/crds/tradingagents.yaml" \
        "$CARGO_TARGET_DIR/release/ta-bench-operator" "$CARGO_TARGET_DIR/release/trading-agent-operator" \
        "$scale_count" "$scale_interval" >"$scale_json" || {
        log "operator at scale: FAILED (see above); RESULTS.md will say so"
        echo '{"error": "ta-bench-operator failed (its messages are in the bench log)"}' >"$scale_json"
    }
fi

# ---- side by side: Keel and the API server's ceiling (tests/bench/compare.sh, also runs alone) ----
compare_json=$work/compare.json
if [[ -z ${BENCH_SKIP_COMPARE:-} ]]; then
    log "side by side: Keel, ours and the ceiling at ${BENCH_COMPARE_COUNTS:-1 100 1000} agents"
    "$here/compare.sh" "$compare_json" || {
        log "side by side: FAILED (see above); RESULTS.md will say so"
        echo '{"keel": {"error": "tests/bench/compare.sh failed (see the bench log)"}, "runs": []}' >"$compare_json"
    }
else
    echo '{"skipped": "BENCH_SKIP_COMPARE=1"}' >"$compare_json"
fi

# ---- level 3: one desk's pods on the real node, ours against the peer (tests/bench/level3.sh) ----
level3_json=$work/level3.json
if [[ -z ${BENCH_SKIP_LEVEL3:-} ]]; then
    log "level 3: push -> every pod of one desk serving the new digest on the real node, ours and the peer"
    "$here/level3.sh" "$level3_json" || log "level 3: FAILED (see above); RESULTS.md will say so"
    [[ -s $level3_json ]] || echo '{"error": "tests/bench/level3.sh failed before writing its result (see the bench log)"}' >"$level3_json"
else
    echo '{"skipped": "BENCH_SKIP_LEVEL3=1"}' >"$level3_json"
fi

# ---- machine and versions, then RESULTS.md ----
machine=$work/machine.json
python3 - >"$machine" <<EOF
import json, platform
info = {
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "nproc": "$(nproc)",
    "memory": "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)",
    "cpu": """$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)""",
    "kernel": platform.release(),
    "load_start": "$load_at_start",
    "load_measure": "$load_at_measure",
    "load_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "rustc": "$(rustc --version)",
    "python": "$("$venv/bin/python" --version 2>&1)",
    "python_packages": "$("$venv/bin/pip" freeze 2>/dev/null | grep -iE '^(fastapi|uvicorn|asyncpg|uvloop|httptools|starlette|pydantic)==' | tr '\n' ' ')",
    "postgres": "$("$pg_bin/postgres" --version)",
    "wrk": "$(wrk -v 2>&1 | head -1)",
    "commit": "$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- api operator tests ':!tests/bench/RESULTS.md' 2>/dev/null || echo '+local changes')",
    "runs": $runs, "duration": "$duration", "threads": $threads, "conns": $conns,
    "upsert_conns": $upsert_conns, "batch": $batch, "startup_runs": $startup_runs,
    "trades_rows": $trades_rows,
    "trades_bytes": {"rust": $trades_bytes_rust, "fastapi": $trades_bytes_py},
    "rest_kb": {"rust": $rest_rust, "fastapi": $rest_py, "hyper": $rest_hyper},
}
print(json.dumps(info))
EOF
python3 "$here/report.py" --machine "$machine" --results "$results" --startup "$startup" \
    --after "$after" --criterion "$criterion" --profile "$profile" --operator "$operator_json" --scale "$scale_json" \
    --dashboard "$dashboard_json" --freqtrade "$freqtrade_json" --compare "$compare_json" --level3 "$level3_json" >"$results_md.tmp"
mv "$results_md.tmp" "$results_md"
log "wrote $results_md"
sed -n '/^| figure/,/^$/p' "$results_md"
