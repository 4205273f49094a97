from freqtrade.strategy import IStrategy
from pandas import DataFrame

class SmaCross(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    minimal_roi = {"0": 100}
    stoploss = -0.99
    startup_candle_count = 31
    use_exit_signal = True
    process_only_new_candles = True
    FAST, SLOW = 10, 30

    def populate_indicators(self, df: DataFrame, metadata: dict) -> DataFrame:
        df["fast"] = df["close"].rolling(self.FAST).mean()
        df["slow"] = df["close"].rolling(self.SLOW).mean()
        return df

    def populate_entry_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        up = (df["fast"] > df["slow"]) & (df["fast"].shift(1) <= df["slow"].shift(1))
        df.loc[up, "enter_long"] = 1
        return df

    def populate_exit_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        down = (df["fast"] < df["slow"]) & (df["fast"].shift(1) >= df["slow"].shift(1))
        df.loc[down, "exit_long"] = 1
        return df
