#!/usr/bin/env bash
# Our backtest against freqtrade's (issue 18): a year of 5-minute candles on 10 pairs (1,051,200
# candles), the SMA crossover and the RSI strategy, each run by both on the same candles. A step of
# tests/bench/run.sh (`make bench`; BENCH_SKIP_FREQTRADE=1 leaves it out) that also runs alone:
#
#   tests/bench/freqtrade/bench.sh OUT.json     measure; write the figures (or the failure) to OUT.json
#   tests/bench/freqtrade/bench.sh --report     measure, and rewrite the freqtrade section of RESULTS.md
#
# Per strategy (compare.sh): trades each, exact matches, the cause of every other difference,
# wall and CPU time and peak RSS of each from the same run, and the speed ratio. A strategy whose
# run fails is written as {"error": ...}: the report then says FAILED for it, never an earlier
# figure, and the exit status is non-zero.
#
# Knobs: TA_BIN (a built release binary; default: cargo build --release here),
# BENCH_FREQTRADE_PAIRS (10), BENCH_FREQTRADE_CANDLES (105120 per pair),
# BENCH_FREQTRADE_STRATEGIES ("sma rsi"), BENCH_RESULTS (the RESULTS.md that --report rewrites).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(cd "$here/.." && pwd)
root=$(cd "$here/../../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
pairs=${BENCH_FREQTRADE_PAIRS:-10}
candles=${BENCH_FREQTRADE_CANDLES:-105120}
report=false
if [[ ${1:-} == --report ]]; then
    report=true
    out=$(mktemp /tmp/ta-bench-freqtrade-XXXXXX.json)
else
    out=${1:?usage: bench.sh OUT.json | --report}
fi
log() { printf '==> [%s] freqtrade: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
work=$(mktemp -d /tmp/ta-bench-freqtrade-XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - >"$work/machine.json" <<PY
import json
print(json.dumps({
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "nproc": "$(nproc)",
    "load_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "commit": "$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- api tests ':!tests/bench/RESULTS.md' 2>/dev/null || echo '+local changes')",
}))
PY
write_report() {
    python3 "$bench/report.py" --freqtrade-section "$out" --machine "$work/machine.json" \
        --update "${BENCH_RESULTS:-$bench/RESULTS.md}"
    log "wrote the freqtrade section of ${BENCH_RESULTS:-$bench/RESULTS.md}"
}
# The whole step failed before any strategy ran: the report says so.
fail() {
    python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' "$*" >"$out"
    printf 'bench freqtrade: FAILED: %s\n' "$*" >&2
    if $report; then write_report || true; fi
    exit 1
}

if [[ -n ${TA_BIN:-} ]]; then
    ta=$TA_BIN
else
    log "building trading-agent (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$root" && cargo build --locked --quiet --release -p trading-agent) || fail "cargo build --release -p trading-agent failed"
    ta=$CARGO_TARGET_DIR/release/trading-agent
fi
"$here/venv.sh" >/dev/null || fail "installing freqtrade (tests/bench/freqtrade/venv.sh) failed"

status=0
for strategy in ${BENCH_FREQTRADE_STRATEGIES:-sma rsi}; do
    log "$strategy: $pairs pairs x $candles 5m candles, ours and freqtrade's"
    if TRADING_AGENT=$ta OUT=$work/$strategy "$here/compare.sh" --strategy "$strategy" "$pairs" "$candles" \
        >"$work/$strategy.json" 2>"$work/$strategy.log"; then
        :
    else
        status=1
        # compare.py's report (unexplained differences) or the failing step's message.
        if ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/$strategy.json" 2>/dev/null; then
            python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' \
                "$(tail -3 "$work/$strategy.log" | tr '\n' ' ')" >"$work/$strategy.json"
        fi
    fi
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("    " + (("FAILED: " + r["error"]) if "error" in r else "trades {} ours / {} freqtrade, exact {}, unexplained {}, ours {} s / {} MB, freqtrade {} s / {} MB, ratio {}".format(r["our_trades"], r["freqtrade_trades"], r["exact_matches"], r["unexplained_count"], r["ours_seconds"], r["ours_peak_rss_mb"], r["freqtrade_seconds"], r["freqtrade_peak_rss_mb"], r["speed_ratio"])))' "$work/$strategy.json" >&2
    rm -rf "${work:?}/$strategy"
done
python3 - "$work" "$pairs" "$candles" ${BENCH_FREQTRADE_STRATEGIES:-sma rsi} >"$out" <<'PY'
import json, sys
work, pairs, candles, strategies = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
print(json.dumps({"pairs": pairs, "candles_per_pair": candles,
                  "strategies": {s: json.load(open(f"{work}/{s}.json")) for s in strategies}}))
PY
if $report; then write_report; fi
exit $status
