"""Writes the same synthetic 5m candles for freqtrade (user_data/data/binance/<BASE>_USDT-5m.json,
freqtrade's json OHLCV format) and for `trading-agent backtest` (<BASE>USDT.csv), the markets
freqtrade would load from the exchange (markets.json), freqtrade's config and our strategy file.

Each candle opens at the previous close, so freqtrade's fill (the next candle's open) and ours (the
signal candle's close) are the same price. Usage: make_data.py DIR PAIRS CANDLES
"""
import json, os, random, sys

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
    with open(f"{out}/user_data/data/binance/{base}_USDT-5m.json", "w") as f:
        json.dump(rows, f)
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
    "fee": 0.001, "dataformat_ohlcv": "json",
    "exchange": {"name": "binance", "key": "", "secret": "",
                 "pair_whitelist": [f"{b}/USDT" for b in bases], "pair_blacklist": []},
    "pairlists": [{"method": "StaticPairList"}],
    "entry_pricing": {"price_side": "same", "use_order_book": False, "price_last_balance": 0.0},
    "exit_pricing": {"price_side": "same", "use_order_book": False},
    "user_data_dir": f"{out}/user_data", "datadir": f"{out}/user_data/data/binance",
    "bot_name": "compare", "internals": {},
}, open(f"{out}/config.json", "w"))
json.dump({"name": "sma", "kind": "sma_cross", "params": {"fast": 10, "slow": 30},
           "symbols": [f"{b}USDT" for b in bases], "timeframe": "5m"}, open(f"{out}/sma.json", "w"))
