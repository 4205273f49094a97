#!/usr/bin/env bash
# freqtrade and `trading-agent backtest` side by side on the same synthetic candles (SMA 10/30
# crossover, fee 0.1 %, no slippage, stake 100, one trade per pair): trades each, exact matches
# (same pair, entry and exit time and price), wall time and peak memory of each. No network:
# freqtrade's markets come from a local file (run_freqtrade.py).
#   compare.sh [PAIRS] [CANDLES]     (default 10 pairs x 105120 candles: a year of 5m, ~1 million)
# Env: TRADING_AGENT (the binary; default target/release/trading-agent), OUT (work dir).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pairs=${1:-10} candles=${2:-105120}
bin=${TRADING_AGENT:-$here/../../../target/release/trading-agent}
out=${OUT:-$(mktemp -d)}
ft=$("$here/venv.sh")
"$ft/python" "$here/make_data.py" "$out" "$pairs" "$candles"
mkdir -p "$out/user_data/strategies" && cp "$here/strategies/SmaCross.py" "$out/user_data/strategies/"
csv=() && for f in "$out"/*USDT.csv; do s=$(basename "$f" .csv); csv+=(--csv "$s=$f"); done
# freqtrade moves the start by its 31 startup candles; ours decides from the 31st candle on.
from=$(date -u -d "@$((1735689600 + 31 * 300))" +%Y-%m-%dT%H:%M:%SZ)
/usr/bin/time -f '%e %M' -o "$out/ours.time" "$bin" backtest --strategy-file "$out/sma.json" "${csv[@]}" \
    --from "$from" --to 2100-01-01 --slippage-bps 0 --fee-rate 0.001 --max-open-trades "$pairs" \
    --stake-amount 100 --no-progress --output "$out/ours.json" > "$out/ours.log"
FT_MARKETS="$out/markets.json" /usr/bin/time -f '%e %M' -o "$out/ft.time" "$ft/python" "$here/run_freqtrade.py" \
    backtesting -c "$out/config.json" --strategy SmaCross --timerange 20250101- --export trades > "$out/ft.log" 2>&1
result=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['latest_backtest'])" "$out/user_data/backtest_results/.last_result.json")
read -r ours_s ours_kb < "$out/ours.time"
read -r ft_s ft_kb < "$out/ft.time"
"$ft/python" "$here/compare.py" "$out/user_data/backtest_results/$result" "$out/ours.json" \
    --timing "$ours_s" "$ours_kb" "$ft_s" "$ft_kb" --candles "$((pairs * candles))"
