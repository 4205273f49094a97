"""Trade-by-trade comparison of a freqtrade backtest result (its zip) and a `trading-agent
backtest --output` JSON, and the cause of every difference.

A trade matches exactly when pair, entry time and price, exit time and price are the same.
Documented differences: a trade still open at the end here that freqtrade force-exits at its last
candle, and a trade we open on the last candle (freqtrade fills at the next candle's open, which
does not exist).

Every other difference is traced to its cause. Both sides' signals are recomputed for every
candle: freqtrade's by the strategy's own code on the candles as freqtrade loads them, ours by a
replica of our arithmetic (api/src/domain/indicators.rs and strategy.rs: the indicator over the
strategy's lookback window, in the same order of float operations). Each replica must reproduce
its side's trades exactly (checked: otherwise the difference stays unexplained). A candle where
the two signals differ is then a *near tie* when the two lines (or the RSI and its level) are
within 1e-9 of each other (relative) on both sides: a float-rounding difference, not a different
rule. For SMA the exact answer (integer arithmetic on the 4-decimal prices) says which side is
right. Prints one JSON object; exits 1 if a difference remains unexplained.

Usage: compare.py FREQTRADE.zip OURS.json --strategy sma|rsi --data DIR --config CONFIG
                  [--timing OURS_S OURS_KB FT_S FT_KB] [--cpu OURS_CPU FT_CPU] [--candles N]
"""
import argparse, datetime as dt, json, os, sys, zipfile
from decimal import Decimal

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("freqtrade_zip")
p.add_argument("ours_json")
p.add_argument("--strategy", choices=["sma", "rsi"], required=True)
p.add_argument("--config", required=True, help="the freqtrade config the run used")
p.add_argument("--timing", nargs=4, type=float)
p.add_argument("--cpu", nargs=2, type=float, help="CPU seconds (user + system): ours, freqtrade's")
p.add_argument("--candles", type=int)
p.add_argument("--show", type=int, default=10, help="differences printed in full")
args = p.parse_args()

FAST, SLOW = 10, 30                           # sma_cross {"fast": 10, "slow": 30}
PERIOD, OVERSOLD, OVERBOUGHT = 14, 30.0, 70.0  # rsi {"period": 14, "oversold": 30, "overbought": 70}
LOOKBACK = {"sma": SLOW + 1, "rsi": 420}      # StrategyParams::lookback
# The first candle both decide on: freqtrade drops its startup candles (the strategy's
# startup_candle_count), compare.sh starts ours there too.
STARTUP = {"sma": 31, "rsi": 420}
NEAR = 1e-9
TIE = 1e-12  # indicators::TIE

with zipfile.ZipFile(args.freqtrade_zip) as z:
    name = next(n for n in z.namelist()
                if n.endswith(".json") and "_config" not in n and "meta" not in n)
    result = json.loads(z.read(name))
ft = result["strategy"][next(iter(result["strategy"]))]["trades"]
ours_report = json.load(open(args.ours_json))
ours = ours_report["trades"]


def utc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def parse(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- the candles as freqtrade loads them (its own data handler) ----
from freqtrade.configuration import Configuration  # noqa: E402
from freqtrade.data.history import load_pair_history  # noqa: E402

config = Configuration.from_files([args.config])
csv_dir = os.path.dirname(os.path.abspath(args.config))  # make_data.py writes <SYMBOL>.csv beside it
pairs = config["exchange"]["pair_whitelist"]
frames = {pair: load_pair_history(pair=pair, timeframe=config["timeframe"], datadir=config["datadir"],
                                  data_format=config.get("dataformat_ohlcv", "feather"))
          for pair in pairs}
STEP = dt.timedelta(minutes=5)


# ---- freqtrade's signals: the strategy's own code on those frames ----
def freqtrade_signals(df):
    """enter, exit (bool arrays) and the indicator columns, by the strategy file's methods."""
    import importlib.util, types
    here = os.path.dirname(os.path.abspath(__file__))
    cls_name = {"sma": "SmaCross", "rsi": "RsiCross"}[args.strategy]
    spec = importlib.util.spec_from_file_location(cls_name, f"{here}/strategies/{cls_name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, cls_name)
    me = types.SimpleNamespace(**{k: getattr(cls, k) for k in dir(cls) if k.isupper()})
    df = cls.populate_indicators(me, df.copy(), {})
    df = cls.populate_entry_trend(me, df, {})
    df = cls.populate_exit_trend(me, df, {})
    enter = (df.get("enter_long", 0) == 1).to_numpy()
    exit_ = (df.get("exit_long", 0) == 1).to_numpy()
    return enter, exit_, df


# ---- ours: a replica of our float arithmetic, vectorised over every window end ----
def our_sma_last_two(c, period, lookback):
    """indicators::sma over each window c[e-lookback+1 ..= e]: the last two values."""
    m = len(c) - lookback + 1
    w = lambda k: c[k:k + m]  # noqa: E731  (the k-th value of every window)
    s = np.full(m, -0.0)
    for k in range(period):
        s = s + w(k)
    prev, cur = None, s / period
    for k in range(period, lookback):
        s = s + (w(k) - w(k - period))
        prev, cur = cur, s / period
    return prev, cur


def our_rsi_last_two(c, period, lookback):
    """indicators::rsi (Wilder) over each window: the last two values."""
    m = len(c) - lookback + 1
    w = lambda k: c[k:k + m]  # noqa: E731
    gain, loss = np.zeros(m), np.zeros(m)
    for k in range(1, period + 1):
        ch = w(k) - w(k - 1)
        gain = np.where(ch > 0, gain + ch, gain)
        loss = np.where(ch > 0, loss, loss - ch)
    n = float(period)
    ag, al = gain / n, loss / n

    def value(ag, al):
        with np.errstate(divide="ignore", invalid="ignore"):
            v = 100.0 - 100.0 / (1.0 + ag / al)
        return np.where(al == 0.0, np.where(ag == 0.0, 50.0, 100.0), v)

    prev, cur = None, value(ag, al)
    for k in range(period + 1, lookback):
        ch = w(k) - w(k - 1)
        ag = (ag * (n - 1.0) + np.maximum(ch, 0.0)) / n
        al = (al * (n - 1.0) + np.maximum(-ch, 0.0)) / n
        prev, cur = cur, value(ag, al)
    return prev, cur


def pad(a, lookback):
    return np.concatenate([np.full(lookback - 1, np.nan), a])


def our_signals(c):
    """buy, sell (bool arrays) and the values they were decided on, per candle."""
    lb = LOOKBACK[args.strategy]
    if args.strategy == "sma":
        pf, f = our_sma_last_two(c, FAST, lb)
        ps, s = our_sma_last_two(c, SLOW, lb)
        pf, f, ps, s = (pad(x, lb) for x in (pf, f, ps, s))
        before, now = side(pf, ps), side(f, s)
        return (before <= 0) & (now > 0), (before >= 0) & (now < 0), {"fast": f, "slow": s}
    prev, cur = (pad(x, lb) for x in our_rsi_last_two(c, PERIOD, lb))
    return ((side(prev, OVERSOLD) <= 0) & (side(cur, OVERSOLD) > 0),
            (side(prev, OVERBOUGHT) >= 0) & (side(cur, OVERBOUGHT) < 0), {"rsi": cur})


def side(a, b):
    """indicators::crossover's comparison: -1, 0 or 1, values within TIE (relative) equal; NaN
    (before the first value) compares as nothing (2: neither a crossing up nor down)."""
    with np.errstate(invalid="ignore"):
        tie = np.abs(a - b) <= TIE * np.maximum(np.abs(a), np.abs(b))
        out = np.where(tie, 0, np.sign(a - b))
    return np.where(np.isnan(a) | np.isnan(np.broadcast_to(b, np.shape(a))), np.nan, out)


def simulate(times, enter, exit_, first, last_fill):
    """One trade per pair from a signal series: (entry candle, exit candle or None). A signal on
    candle i fills at the close of i (ours) = the open of i + 1 (freqtrade)."""
    out, open_at = [], None
    for i in range(first, len(times)):
        if open_at is None and enter[i] and i < last_fill:
            open_at = i
        elif open_at is not None and exit_[i] and i < last_fill:
            out.append((times[open_at], times[i]))
            open_at = None
    if open_at is not None:
        out.append((times[open_at], None))
    return out


def exact_sma_side(c, i):
    """Sign of SMA(fast) - SMA(slow) at candle i in exact arithmetic on the 4-decimal prices."""
    ints = np.rint(c * 10_000).astype(np.int64)
    sf, ss = int(ints[i - FAST + 1:i + 1].sum()), int(ints[i - SLOW + 1:i + 1].sum())
    return (sf * SLOW > ss * FAST) - (sf * SLOW < ss * FAST)


# ---- compare the trades ----
ft_by = {(t["pair"].replace("/", ""), utc(t["open_timestamp"])): t for t in ft}
ours_by = {(t["symbol"], parse(t["opened_at"])): t for t in ours}
last_candle = {pair.replace("/", ""): frames[pair]["date"].iloc[-1].to_pydatetime() for pair in pairs}
exact, documented, different = 0, [], []
for key, o in ours_by.items():
    f = ft_by.get(key)
    if f is None:
        if key[1] == last_candle[key[0]] + STEP:
            documented.append(f"{key[0]} {key[1]}: opened here on the last candle (freqtrade fills at the next open)")
        else:
            different.append((key[0], key[1], "only ours"))
        continue
    same_entry = Decimal(str(f["open_rate"])) == Decimal(o["entry_price"])
    if o["closed_at"] is None:
        if f["exit_reason"] == "force_exit" and same_entry:
            documented.append(f"{key[0]} {key[1]}: open at the end here, force-exited by freqtrade")
        else:
            different.append((key[0], key[1], f"open here, {f['exit_reason']} in freqtrade"))
        continue
    same_exit = utc(f["close_timestamp"]) == parse(o["closed_at"]) and \
        Decimal(str(f["close_rate"])) == Decimal(o["exit_price"])
    if same_entry and same_exit:
        exact += 1
    else:
        different.append((key[0], key[1], f"freqtrade {f['open_rate']}->{f['close_rate']} at "
                          f"{utc(f['close_timestamp'])}, ours {o['entry_price']}->{o['exit_price']} at {o['closed_at']}"))
for key in ft_by.keys() - ours_by.keys():
    different.append((key[0], key[1], "only freqtrade"))

# ---- explain them: signal by signal ----
classes, unexplained, shown, replicas_ok = {}, [], [], True
signal_diffs = {}
for pair in pairs:
    sym = pair.replace("/", "")
    df = frames[pair]
    times = [t.to_pydatetime() for t in df["date"]]
    c = df["close"].to_numpy(dtype=np.float64)
    # Ours reads the CSV's decimals (as f64, correctly rounded: window::ClosePrice); both sides
    # must see the same closes, or the comparison compares the data, not the strategies.
    ours_c = np.array([float(line.split(",")[4]) for line in open(f"{csv_dir}/{sym}.csv").read().split()[1:]])
    if len(ours_c) != len(c) or (ours_c != c).any():
        mismatched = len(ours_c) != len(c) or int((ours_c != c).sum())
        unexplained.append(f"{sym}: freqtrade loaded other closes than ours reads ({mismatched})")
        continue
    fe, fx, fdf = freqtrade_signals(df)
    oe, ox, ovals = our_signals(c)
    start = STARTUP[args.strategy]
    # Each replica must make its side's trades (fill = close of the signal candle).
    ft_sim = simulate(times, fe, fx, start, len(times) - 1)
    our_sim = simulate(times, oe, ox, start, len(times))
    ft_real = sorted((utc(t["open_timestamp"]) - STEP, None if t["exit_reason"] == "force_exit" else utc(t["close_timestamp"]) - STEP)
                     for t in ft if t["pair"] == pair)
    our_real = sorted((parse(t["entry_candle"]), parse(t["exit_candle"]) if t["exit_candle"] else None)
                      for t in ours if t["symbol"] == sym)
    if sorted(ft_sim) != ft_real or sorted(our_sim) != our_real:
        replicas_ok = False
        unexplained.append(f"{sym}: a replica does not reproduce its side's trades "
                           f"(freqtrade {sorted(ft_sim) == ft_real}, ours {sorted(our_sim) == our_real})")
        continue
    for i in np.nonzero((fe != oe) | (fx != ox))[0]:
        if i < start:
            continue
        if args.strategy == "sma":
            f_gap = abs(fdf["fast"].iat[i] - fdf["slow"].iat[i]) / fdf["slow"].iat[i]
            f_prev = abs(fdf["fast"].iat[i - 1] - fdf["slow"].iat[i - 1]) / fdf["slow"].iat[i - 1]
            o_gap = abs(ovals["fast"][i] - ovals["slow"][i]) / ovals["slow"][i]
            o_prev = abs(ovals["fast"][i - 1] - ovals["slow"][i - 1]) / ovals["slow"][i - 1]
            near = min(f_gap, f_prev) < NEAR and min(o_gap, o_prev) < NEAR
            e_now, e_prev = exact_sma_side(c, i), exact_sma_side(c, i - 1)
            exact_enter, exact_exit = e_prev <= 0 and e_now > 0, e_prev >= 0 and e_now < 0
            right = ("ours" if (oe[i], ox[i]) == (exact_enter, exact_exit) else
                     "freqtrade" if (fe[i], fx[i]) == (exact_enter, exact_exit) else "neither")
            cls = (f"near tie of SMA({FAST}) and SMA({SLOW}) "
                   f"({'an exact tie' if 0 in (e_now, e_prev) else 'no exact tie'}; exact arithmetic agrees with {right})")
            detail = (f"{sym} candle {times[i]}: freqtrade enter={fe[i]} exit={fx[i]} fast {fdf['fast'].iat[i - 1]!r}->{fdf['fast'].iat[i]!r} "
                      f"slow {fdf['slow'].iat[i - 1]!r}->{fdf['slow'].iat[i]!r}; ours enter={oe[i]} exit={ox[i]} "
                      f"fast {ovals['fast'][i - 1]!r}->{ovals['fast'][i]!r} slow {ovals['slow'][i - 1]!r}->{ovals['slow'][i]!r}; "
                      f"exact sign(fast-slow) {e_prev}->{e_now}")
        else:
            fr, orr = fdf["rsi"].to_numpy(), ovals["rsi"]
            gaps = [abs(x - lvl) / lvl for x in (fr[i - 1], fr[i], orr[i - 1], orr[i]) for lvl in (OVERSOLD, OVERBOUGHT)]
            near = min(gaps) < NEAR
            cls = "near tie of RSI and its level (TA-Lib's float RSI vs ours)"
            detail = (f"{sym} candle {times[i]}: freqtrade enter={fe[i]} exit={fx[i]} rsi {fr[i - 1]!r}->{fr[i]!r}; "
                      f"ours enter={oe[i]} exit={ox[i]} rsi {orr[i - 1]!r}->{orr[i]!r}")
        if not near:
            cls = "signals differ away from a tie (unexplained)"
            unexplained.append(detail)
        signal_diffs.setdefault(sym, []).append((times[i], cls))
        classes.setdefault(cls, {"signals": 0, "trades": 0})["signals"] += 1
        if len(shown) < args.show:
            shown.append(f"[{cls}] {detail}")

# Each differing trade is put down to the first differing signal of its pair at or before it
# (while the replicas reproduce both sides, a trade can only differ after a signal does).
for sym, when, what in different:
    causes = [cls for t, cls in signal_diffs.get(sym, []) if t <= when]
    if causes and replicas_ok:
        classes[causes[-1]]["trades"] += 1
    else:
        unexplained.append(f"{sym} {when}: {what} (no differing signal before it)")

report = {"strategy": args.strategy, "freqtrade_trades": len(ft), "our_trades": len(ours),
          "exact_matches": exact, "documented_differences": len(documented),
          "documented": documented[:10], "differing_trades": len(different),
          "explained": classes, "examples": shown,
          "unexplained_count": len(unexplained), "unexplained": unexplained[:20],
          "rejected_here": ours_report["summary"].get("rejected", {})}
if args.timing:
    ours_s, ours_kb, ft_s, ft_kb = args.timing
    report.update(candles=args.candles, ours_seconds=ours_s, freqtrade_seconds=ft_s,
                  speed_ratio=round(ft_s / ours_s, 1) if ours_s else None,
                  ours_peak_rss_mb=round(ours_kb / 1024), freqtrade_peak_rss_mb=round(ft_kb / 1024))
if args.cpu:
    report.update(ours_cpu_seconds=args.cpu[0], freqtrade_cpu_seconds=args.cpu[1],
                  cpu_ratio=round(args.cpu[1] / args.cpu[0], 1) if args.cpu[0] else None)
print(json.dumps(report, indent=1))
sys.exit(1 if unexplained else 0)
