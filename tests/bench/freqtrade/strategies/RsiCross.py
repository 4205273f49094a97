import talib.abstract as ta
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class RsiCross(IStrategy):
    """The equivalent of our `rsi` `{"period": 14, "oversold": 30, "overbought": 70}`: enter when
    RSI(14) rises above 30 (at or below it on the candle before), exit when it falls below 70 (at
    or above it before). RSI is TA-Lib's (`ta.RSI`, what freqtrade's templates use): Wilder's
    smoothing seeded with the mean of the first 14 changes, as ours. The comparisons are written
    out rather than `qtpylib.crossed_above`, whose previous-candle test is strict (`<`); ours is
    `<=` (api/src/domain/indicators.rs, `crossover`)."""

    INTERFACE_VERSION = 3
    timeframe = "5m"
    minimal_roi = {"0": 100}
    stoploss = -0.99
    # Our lookback for period 14 (StrategyParams::lookback): 14 + 1 changes for the seed, 404 for
    # its weight to fall below 1e-13, one more for the previous value.
    startup_candle_count = 420
    use_exit_signal = True
    process_only_new_candles = True
    PERIOD, OVERSOLD, OVERBOUGHT = 14, 30.0, 70.0

    def populate_indicators(self, df: DataFrame, metadata: dict) -> DataFrame:
        df["rsi"] = ta.RSI(df, timeperiod=self.PERIOD)
        return df

    def populate_entry_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        up = (df["rsi"] > self.OVERSOLD) & (df["rsi"].shift(1) <= self.OVERSOLD)
        df.loc[up, "enter_long"] = 1
        return df

    def populate_exit_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        down = (df["rsi"] < self.OVERBOUGHT) & (df["rsi"].shift(1) >= self.OVERBOUGHT)
        df.loc[down, "exit_long"] = 1
        return df
