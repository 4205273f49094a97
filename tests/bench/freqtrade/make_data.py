"""Writes the same synthetic 5m candles for freqtrade (user_data/data/binance/<BASE>_USDT-5m.feather,
freqtrade's default OHLCV format, written by freqtrade's own data handler) and for `trading-agent backtest` (<BASE>USDT.csv), the markets
freqtrade would load from the exchange (markets.json), freqtrade's config and our strategy files (sma.json, rsi.json).

Each candle opens at the previous close, so freqtrade's fill (the next candle's open) and ours (the
signal candle's close) are the same price. Feather stores the floats themselves; freqtrade's json
format would not do: pandas' `read_json`, which freqtrade reads it with, parses hundreds of prices
per pair one unit in the last place off (it is not correctly rounded without `precise_float`), so
the two sides would not see the same closes. Usage: make_data.py DIR PAIRS CANDLES
"""
import json, os, random, sys
from pathlib import Path

import pandas as pd
from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType

out, pairs, candles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bases = ["BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC", "LINK", "AVAX", "TRX"][:pairs]
os.makedirs(f"{out}/user_data/data/binance", exist_ok=True)
random.seed(11)
start_ms = 1735689600 * 1000  # 2025-01-01
markets = {}
for base in bases:
    price, rows, csv = 100.0, [], ["open_time,open,high,low,close,volume"]
    for i in range(candles):
        t = start_ms + i * 300_000
        o = price
        c = round(max(1.0, o * (1 + random.gauss(0, 0.004))), 4)
        rows.append([t, o, max(o, c), min(o, c), c, 1.0])
        csv.append(f"{t // 1000},{o},{max(o, c)},{min(o, c)},{c},1")
        price = c
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"], unit="ms", utc=True)
    get_datahandler(Path(f"{out}/user_data/data/binance"), "feather").ohlcv_store(
        f"{base}/USDT", "5m", frame, CandleType.SPOT)
    with open(f"{out}/{base}USDT.csv", "w") as f:
        f.write("\n".join(csv) + "\n")
    markets[f"{base}/USDT"] = {
        "id": f"{base}USDT", "symbol": f"{base}/USDT", "base": base, "quote": "USDT", "settle": None,
        "baseId": base, "quoteId": "USDT", "settleId": None, "type": "spot", "spot": True,
        "margin": False, "swap": False, "future": False, "option": False, "active": True,
        "contract": False, "linear": None, "inverse": None, "contractSize": None, "expiry": None,
        "expiryDatetime": None, "strike": None, "optionType": None, "taker": 0.001, "maker": 0.001,
        "precision": {"amount": 1e-8, "price": 1e-8, "base": 1e-8, "quote": 1e-8},
        "limits": {"amount": {"min": 1e-8, "max": 1e9}, "price": {"min": 1e-8, "max": 1e9},
                   "cost": {"min": 0.0, "max": None}, "leverage": {"min": 1, "max": 1}},
        "info": {},
    }
json.dump(markets, open(f"{out}/markets.json", "w"))
json.dump({
    "max_open_trades": pairs, "stake_currency": "USDT", "stake_amount": 100, "dry_run": True,
    "dry_run_wallet": 10000, "timeframe": "5m", "trading_mode": "spot", "margin_mode": "",
    "fee": 0.001, "dataformat_ohlcv": "feather",
    "exchange": {"name": "binance", "key": "", "secret": "",
                 "pair_whitelist": [f"{b}/USDT" for b in bases], "pair_blacklist": []},
    "pairlists": [{"method": "StaticPairList"}],
    "entry_pricing": {"price_side": "same", "use_order_book": False, "price_last_balance": 0.0},
    "exit_pricing": {"price_side": "same", "use_order_book": False},
    "user_data_dir": f"{out}/user_data", "datadir": f"{out}/user_data/data/binance",
    "bot_name": "compare", "internals": {},
}, open(f"{out}/config.json", "w"))
symbols = [f"{b}USDT" for b in bases]
json.dump({"name": "sma", "kind": "sma_cross", "params": {"fast": 10, "slow": 30},
           "symbols": symbols, "timeframe": "5m"}, open(f"{out}/sma.json", "w"))
json.dump({"name": "rsi", "kind": "rsi", "params": {"period": 14, "oversold": 30, "overbought": 70},
           "symbols": symbols, "timeframe": "5m"}, open(f"{out}/rsi.json", "w"))
