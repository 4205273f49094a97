"""Trade-by-trade comparison of a freqtrade backtest result (its zip) and a `trading-agent
backtest --output` JSON. A trade matches exactly when pair, entry time and price, exit time and
price are the same. Prints one JSON object; exits 1 if a difference is not a documented one
(freqtrade's force-exit at the end of the data, where ours leaves the trade open).

Usage: compare.py FREQTRADE.zip OURS.json [--timing OURS_S OURS_KB FT_S FT_KB] [--candles N]
"""
import argparse, datetime as dt, json, sys, zipfile
from decimal import Decimal

p = argparse.ArgumentParser()
p.add_argument("freqtrade_zip")
p.add_argument("ours_json")
p.add_argument("--timing", nargs=4, type=float)
p.add_argument("--candles", type=int)
args = p.parse_args()

with zipfile.ZipFile(args.freqtrade_zip) as z:
    name = next(n for n in z.namelist()
                if n.endswith(".json") and "_config" not in n and "meta" not in n)
    result = json.loads(z.read(name))
ft = result["strategy"][next(iter(result["strategy"]))]["trades"]
ours = json.load(open(args.ours_json))["trades"]

def utc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)

def parse(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

ft_by = {(t["pair"].replace("/", ""), utc(t["open_timestamp"])): t for t in ft}
ours_by = {(t["symbol"], parse(t["opened_at"])): t for t in ours}
exact, documented, unexplained = 0, [], []
for key, o in ours_by.items():
    f = ft_by.get(key)
    if f is None:
        unexplained.append(f"only ours: {key[0]} {key[1]}")
        continue
    same_entry = Decimal(str(f["open_rate"])) == Decimal(o["entry_price"])
    if o["closed_at"] is None:
        if f["exit_reason"] == "force_exit" and same_entry:
            documented.append(f"{key[0]} {key[1]}: open at the end here, force-exited by freqtrade")
        else:
            unexplained.append(f"{key[0]} {key[1]}: open here, {f['exit_reason']} in freqtrade")
        continue
    same_exit = utc(f["close_timestamp"]) == parse(o["closed_at"]) and \
        Decimal(str(f["close_rate"])) == Decimal(o["exit_price"])
    if same_entry and same_exit:
        exact += 1
    else:
        unexplained.append(f"{key[0]} {key[1]}: freqtrade {f['open_rate']}->{f['close_rate']} "
                           f"at {utc(f['close_timestamp'])}, ours {o['entry_price']}->{o['exit_price']} at {o['closed_at']}")
for key in ft_by.keys() - ours_by.keys():
    unexplained.append(f"only freqtrade: {key[0]} {key[1]}")
report = {"freqtrade_trades": len(ft), "our_trades": len(ours), "exact_matches": exact,
          "documented_differences": documented, "unexplained_differences": unexplained[:20],
          "unexplained_count": len(unexplained)}
if args.timing:
    ours_s, ours_kb, ft_s, ft_kb = args.timing
    report.update(candles=args.candles, ours_seconds=ours_s, freqtrade_seconds=ft_s,
                  speed_ratio=round(ft_s / ours_s, 1) if ours_s else None,
                  ours_peak_rss_mb=round(ours_kb / 1024), freqtrade_peak_rss_mb=round(ft_kb / 1024))
print(json.dumps(report, indent=1))
sys.exit(1 if unexplained else 0)
