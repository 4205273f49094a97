#!/usr/bin/env bash
# freqtrade and `trading-agent backtest` side by side on the same synthetic candles (fee 0.1 %, no
# slippage, stake 100, one trade per pair): trades each, exact matches (same pair, entry and exit
# time and price), the cause of every other difference (compare.py), wall time and peak memory of
# each. No network: freqtrade's markets come from a local file (run_freqtrade.py).
#   compare.sh [--strategy sma|rsi] [PAIRS] [CANDLES]
#     sma: our sma_cross {"fast": 10, "slow": 30} and strategies/SmaCross.py (the default)
#     rsi: our rsi {"period": 14, "oversold": 30, "overbought": 70} and strategies/RsiCross.py
#     default 10 pairs x 105120 candles: a year of 5m, ~1 million
# Prints compare.py's JSON; exits non-zero if a step fails or a difference stays unexplained.
# Env: TRADING_AGENT (the binary; default target/release/trading-agent), OUT (work dir, kept).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
strategy=sma
if [[ ${1:-} == --strategy ]]; then strategy=${2:?--strategy sma|rsi}; shift 2; fi
case $strategy in
sma) class=SmaCross startup=31 ;;
rsi) class=RsiCross startup=420 ;;
*) echo "compare.sh: unknown strategy $strategy (sma or rsi)" >&2; exit 2 ;;
esac
pairs=${1:-10} candles=${2:-105120}
bin=${TRADING_AGENT:-${CARGO_TARGET_DIR:-$here/../../../target}/release/trading-agent}
[[ -x $bin ]] || { echo "compare.sh: no trading-agent binary at $bin (set TRADING_AGENT)" >&2; exit 2; }
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
ft=$("$here/venv.sh")
"$ft/python" "$here/make_data.py" "$out" "$pairs" "$candles"
mkdir -p "$out/user_data/strategies" && cp "$here/strategies/$class.py" "$out/user_data/strategies/"
csv=() && for f in "$out"/*USDT.csv; do s=$(basename "$f" .csv); csv+=(--csv "$s=$f"); done
# freqtrade moves the start by the strategy's startup candles; ours decides from that candle on.
from=$(date -u -d "@$((1735689600 + startup * 300))" +%Y-%m-%dT%H:%M:%SZ)
/usr/bin/time -f '%e %M %U %S' -o "$out/ours.time" "$bin" backtest --strategy-file "$out/$strategy.json" "${csv[@]}" \
    --from "$from" --to 2100-01-01 --slippage-bps 0 --fee-rate 0.001 --max-open-trades "$pairs" \
    --stake-amount 100 --no-progress --output "$out/ours.json" >"$out/ours.log" 2>&1 ||
    { tail -5 "$out/ours.log" >&2; echo "compare.sh: trading-agent backtest failed" >&2; exit 1; }
rm -rf "$out/user_data/backtest_results"
FT_MARKETS="$out/markets.json" /usr/bin/time -f '%e %M %U %S' -o "$out/ft.time" "$ft/python" "$here/run_freqtrade.py" \
    backtesting -c "$out/config.json" --strategy "$class" --timerange 20250101- --export trades >"$out/ft.log" 2>&1 ||
    { tail -20 "$out/ft.log" >&2; echo "compare.sh: freqtrade backtesting failed" >&2; exit 1; }
result=$("$ft/python" -c "import json,sys;print(json.load(open(sys.argv[1]))['latest_backtest'])" "$out/user_data/backtest_results/.last_result.json")
read -r ours_s ours_kb ours_user ours_sys <"$out/ours.time"
read -r ft_s ft_kb ft_user ft_sys <"$out/ft.time"
"$ft/python" "$here/compare.py" "$out/user_data/backtest_results/$result" "$out/ours.json" \
    --strategy "$strategy" --config "$out/config.json" \
    --timing "$ours_s" "$ours_kb" "$ft_s" "$ft_kb" \
    --cpu "$(awk "BEGIN {print $ours_user + $ours_sys}")" "$(awk "BEGIN {print $ft_user + $ft_sys}")" --candles "$((pairs * candles))"
