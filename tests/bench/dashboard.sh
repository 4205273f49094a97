#!/usr/bin/env bash
# The dashboard's speed (issue 17): "the page is interactive within 1 s on a local api holding
# 100,000 candles". A step of tests/bench/run.sh (`make bench`) that also runs alone:
#
#   tests/bench/dashboard.sh OUT.json       measure; write the figures (or the failure) to OUT.json
#   tests/bench/dashboard.sh --report       measure, and rewrite the dashboard section of RESULTS.md
#
# A throwaway PostgreSQL on a loopback port holding 100,000 one-minute candles of one instrument
# (plus the demo strategies' signals and trades on the newest of them), a release `trading-agent
# api`, and headless Debian chromium driven by playwright-core (api/dashboard/tests/bench.mjs says
# what "interactive" means and which ceilings the figures are compared with). Every process started
# here is stopped on exit. A failed measurement is written as {"error": ...} and the exit status is
# non-zero: the report then says FAILED, never an earlier figure.
#
# Knobs: BENCH_RUNS (5) visits of each kind, median reported; TA_BIN (a built release binary;
# default: cargo build --release here); CHROMIUM (/usr/bin/chromium); NODE_BINARY (node);
# BENCH_RESULTS (the RESULTS.md that --report rewrites).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
runs=${BENCH_RUNS:-5}
candles=100000
token=bench-token-0123456789abcdef
node_bin=${NODE_BINARY:-node}
report=false
if [[ ${1:-} == --report ]]; then
    report=true
    out=$(mktemp /tmp/ta-bench-dashboard-XXXXXX.json)
else
    out=${1:?usage: dashboard.sh OUT.json | --report}
fi

log() { printf '==> [%s] dashboard: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

work=$(mktemp -d /tmp/ta-bench-dash-XXXXXX) # outside /root: the postgres user must reach it
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
trap 'fail "interrupted"' INT TERM

# Any failure from here on is written to $out as the result, so no earlier figure can stand in.
fail() {
    python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' "$*" >"$out"
    printf 'bench dashboard: FAILED: %s\n' "$*" >&2
    if $report; then write_report || true; fi
    exit 1
}
write_report() {
    python3 "$here/report.py" --dashboard-section "$out" --machine "$work/machine.json" \
        --update "${BENCH_RESULTS:-$here/RESULTS.md}"
    log "wrote the dashboard section of ${BENCH_RESULTS:-$here/RESULTS.md}"
}
trap 'fail "line $LINENO: $BASH_COMMAND exited with $?"' ERR

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1 || true)
# What the run is measured on (the report prints it beside the figures).
python3 - >"$work/machine.json" <<EOF
import json, platform
print(json.dumps({
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "nproc": "$(nproc)",
    "cpu": """$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)""",
    "kernel": platform.release(),
    "postgres": "$("$pg_bin/postgres" --version 2>/dev/null || echo none)",
    "load_start": "$load_at_start",
    "node": "$("$node_bin" --version 2>/dev/null || echo none)",
    "commit": "$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- api tests ':!tests/bench/RESULTS.md' 2>/dev/null || echo '+local changes')",
}))
EOF

chromium=${CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || fail "$chromium is missing (scripts/deps.sh installs Debian's chromium)"
command -v "$node_bin" >/dev/null || fail "node is missing (scripts/deps.sh installs it)"

if [[ -n ${TA_BIN:-} ]]; then
    ta=$TA_BIN
else
    log "building trading-agent (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$root" && cargo build --locked --quiet --release -p trading-agent) || fail "cargo build --release -p trading-agent failed"
    ta=$CARGO_TARGET_DIR/release/trading-agent
fi
[[ -d $root/api/dashboard/node_modules/playwright-core ]] ||
    (cd "$root/api/dashboard" && npm ci --no-audit --no-fund >/dev/null) || fail "npm ci in api/dashboard failed"

# ---- PostgreSQL: a throwaway cluster on a free loopback port ----
[[ -n $pg_bin ]] || fail "no PostgreSQL server binaries under /usr/lib/postgresql"
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg=$work/pg
mkdir -p "$pg/socket"
[[ $(id -u) -ne 0 ]] || chown -R postgres:postgres "$pg"
pg_port=$(free_port)
as_pg "$pg_bin/initdb" --username=postgres --auth=trust --encoding=UTF8 --no-sync --pgdata "$pg/data" >/dev/null
pg_ctl_stop=(as_pg "$pg_bin/pg_ctl" --pgdata "$pg/data" --mode=immediate --wait stop)
as_pg "$pg_bin/pg_ctl" --pgdata "$pg/data" --log "$pg/postgres.log" --wait --timeout=60 \
    -o "-h 127.0.0.1 -p $pg_port -k $pg/socket -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
as_pg "$pg_bin/createdb" --host=127.0.0.1 --port="$pg_port" --username=postgres bench
db_url=postgres://postgres@127.0.0.1:$pg_port/bench
psql_() { as_pg "$pg_bin/psql" --host=127.0.0.1 --port="$pg_port" --username=postgres --dbname=bench \
    --no-psqlrc -v ON_ERROR_STOP=1 -qAt -c "$1"; }

# ---- data: 100,000 candles; a strategy with signals and trades on the newest; equity snapshots ----
log "seeding $candles candles"
DATABASE_URL=$db_url LOG_LEVEL=warn "$ta" migrate >/dev/null
psql_ "INSERT INTO instruments (symbol, base_asset, quote_asset) VALUES ('DASHUSDT', 'DASH', 'USDT');
       INSERT INTO candles (symbol, timeframe, open_time, open, high, low, close, volume)
       SELECT 'DASHUSDT', '1m', date_trunc('minute', now()) - make_interval(mins => i), p, p + 0.5, p - 0.5, p, 1
       FROM (SELECT i, round((100 + 10 * sin(i / 50.0))::numeric, 2) AS p FROM generate_series(1, $candles) i) s;
       INSERT INTO strategies (name, kind, symbols, timeframe, params, enabled)
       VALUES ('dash-sma', 'sma_cross', ARRAY['DASHUSDT'], '1m', '{\"fast\": 20, \"slow\": 50}', true);
       INSERT INTO signals (strategy_id, symbol, timeframe, candle_open_time, action, price, reason, status)
       SELECT 1, 'DASHUSDT', '1m', date_trunc('minute', now()) - make_interval(mins => i),
              CASE WHEN i % 100 = 0 THEN 'buy' ELSE 'sell' END, 100, 'bench', 'executed'
       FROM generate_series(50, 950, 50) i;
       INSERT INTO trades (symbol, strategy_id, status, quantity, entry_price, entry_fee, opened_at,
                           exit_price, exit_fee, closed_at, profit)
       SELECT 'DASHUSDT', 1, 'closed', 1, 100, 0.1, date_trunc('minute', now()) - make_interval(mins => i + 40),
              101, 0.1, date_trunc('minute', now()) - make_interval(mins => i), 0.8
       FROM generate_series(100, 900, 100) i;
       INSERT INTO equity_snapshots (currency, taken_at, cash, positions, equity)
       SELECT 'USDT', date_trunc('minute', now()) - make_interval(mins => i), 10000 + i % 97, 0, 10000 + i % 97
       FROM generate_series(1, 1440) i;
       ANALYZE;" >/dev/null || fail "seeding the database failed"
stored=$(psql_ "SELECT count(*) FROM candles WHERE symbol = 'DASHUSDT'")
[[ $stored == "$candles" ]] || fail "the database holds $stored candles, expected $candles"

# ---- the api ----
api_port=$(free_port)
DATABASE_URL=$db_url API_TOKEN=$token PORT=$api_port BIND_ADDRESS=127.0.0.1 LOG_LEVEL=warn \
    SHUTDOWN_DELAY=0s "$ta" api >"$work/api.log" 2>&1 &
pids+=("$!")
for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/readyz" 2>/dev/null) == 200 ]] && break
    sleep 0.05
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/readyz") == 200 ]] ||
    fail "the api was not ready within 30 s: $(tail -5 "$work/api.log")"

# ---- measure ----
log "time to interactive in chromium, $runs visits of each page (plus one warm-up)"
load_at_measure=$(cut -d' ' -f1-3 /proc/loadavg)
BASE_URL=http://127.0.0.1:$api_port API_TOKEN=$token SYMBOL=DASHUSDT RUNS=$runs CHROMIUM=$chromium \
    "$node_bin" "$root/api/dashboard/tests/bench.mjs" >"$work/result.json" 2>"$work/bench.log" ||
    fail "api/dashboard/tests/bench.mjs failed: $(tail -5 "$work/bench.log")"
python3 - "$work/result.json" "$candles" "$load_at_start" "$load_at_measure" >"$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r["candles_stored"] = int(sys.argv[2])
r["load_start"], r["load_measure"] = sys.argv[3], sys.argv[4]
for key in ("overview_ms", "market_ms", "fetch_ms", "blank_ms"):
    assert len(r[key]) == r["runs"], f"{key}: {len(r[key])} of {r['runs']} runs"
print(json.dumps(r))
EOF
python3 - "$out" >&2 <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
m = {k: statistics.median(r[k]) for k in ("overview_ms", "market_ms", "market_drawn_ms", "fetch_ms", "blank_ms")}
print("    overview {overview_ms:.0f} ms, market {market_ms:.0f} ms (drawn {market_drawn_ms:.0f} ms), "
      "chart JSON by a plain fetch {fetch_ms:.1f} ms, blank page {blank_ms:.0f} ms".format(**m))
EOF

if $report; then
    write_report
fi
