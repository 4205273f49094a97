use super::*;
use crate::domain::strategy::CrossParams;
use chrono::TimeZone;
use rust_decimal::dec;

fn t(minute: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_735_689_600 + minute * 60, 0).unwrap() // 2025-01-01
}

fn limits() -> RiskLimits {
    RiskLimits {
        stake_amount: dec!(100),
        max_open_trades: 5,
        max_notional: dec!(1000),
        daily_loss_limit: dec!(500),
        fee_rate: dec!(0.001),
        slippage_bps: dec!(0),
        max_signal_age: chrono::Duration::minutes(15),
        max_price_age: chrono::Duration::minutes(5),
    }
}

fn sma(fast: u32, slow: u32, exits: Exits) -> BacktestStrategy {
    BacktestStrategy {
        id: 7,
        name: "sma".into(),
        params: StrategyParams::SmaCross(CrossParams { fast, slow }),
        exits,
        symbols: vec!["BTCUSDT".into()],
    }
}

fn input(closes: &[i64], strategy: BacktestStrategy) -> BacktestInput {
    BacktestInput {
        strategies: vec![strategy],
        timeframe: Timeframe::M1,
        series: vec![Series {
            symbol: "BTCUSDT".into(),
            candles: closes
                .iter()
                .enumerate()
                .map(|(i, c)| (t(i as i64), Decimal::from(*c)))
                .collect(),
        }],
        from: t(0),
        to: t(closes.len() as i64),
        limits: limits(),
        currency: "USDT".into(),
        starting_balance: dec!(1000),
    }
}

/// SMA(2)/SMA(3) on 10 10 10 10 20 20 5 5: the fast average crosses above at candle 4 (close 20)
/// and below at candle 6 (close 5).
#[test]
fn a_round_trip_by_hand() {
    let closes = [10, 10, 10, 10, 20, 20, 5, 5];
    let report = run(
        &input(&closes, sma(2, 3, Exits::default())),
        &mut Unmonitored,
    )
    .unwrap();
    assert_eq!(report.trades.len(), 1, "{:?}", report.trades);
    let trade = &report.trades[0];
    // Buy 100 / 20 = 5 at 20 (no slippage), fee 0.1; sell 5 at 5: 25, fee 0.025.
    assert_eq!(trade.entry_candle, t(4));
    assert_eq!(trade.opened_at, t(5), "executed at the candle's close");
    assert_eq!(
        (trade.quantity, trade.entry_price, trade.entry_fee),
        (dec!(5), dec!(20), dec!(0.1))
    );
    assert_eq!(trade.exit_candle, Some(t(6)));
    assert_eq!(trade.exit_price, Some(dec!(5)));
    assert_eq!(trade.exit_fee, Some(dec!(0.025)));
    // 25 - 0.025 - 100 - 0.1
    assert_eq!(trade.profit, Some(dec!(-75.125)));
    assert_eq!(trade.exit_reason, Some(ExitReason::ExitSignal));
    let s = &report.summary;
    assert_eq!((s.closed_trades, s.wins, s.losses), (1, 0, 1));
    assert_eq!(s.final_equity, dec!(924.875));
    assert_eq!(s.signals, 2);
    assert_eq!(s.steps, 8);
    // In the market after steps 5 and 6 (opened at the close of candle 4, closed at 6's).
    assert_eq!(s.exposure, 2.0 / 8.0);
    // Equity: 1000 ... 999.9 (5 x 20 + 899.9), then 924.875. Peak 1000 -> 924.875.
    assert_eq!(s.max_drawdown_abs, dec!(75.125));
    assert_eq!(s.per_pair["BTCUSDT"].profit, dec!(-75.125));
}

#[test]
fn no_look_ahead() {
    // Whatever comes after a candle cannot change a decision made at its close.
    let base = [10, 10, 10, 10, 20, 20, 5, 5];
    let full = run(&input(&base, sma(2, 3, Exits::default())), &mut Unmonitored).unwrap();
    let mut changed = base.to_vec();
    changed[6] = 30;
    changed[7] = 1;
    let other = run(
        &input(&changed, sma(2, 3, Exits::default())),
        &mut Unmonitored,
    )
    .unwrap();
    assert_eq!(
        (full.trades[0].entry_candle, full.trades[0].entry_price),
        (other.trades[0].entry_candle, other.trades[0].entry_price)
    );
    assert_eq!(full.equity[..6], other.equity[..6]);
    assert_ne!(full.trades[0].exit_candle, other.trades[0].exit_candle);
}

#[test]
fn a_stop_loss_closes_at_the_next_close() {
    let exits = Exits {
        stop_loss: Some(dec!(0.1)),
        ..Exits::default()
    };
    // Entry at 20 (candle 4); candle 5 closes at 17, 15 % below: the stop-loss sells at 17 at
    // the close of candle 5 (the protective pass sees the newest close).
    let closes = [10, 10, 10, 10, 20, 17, 18, 19];
    let report = run(&input(&closes, sma(2, 3, exits)), &mut Unmonitored).unwrap();
    let trade = &report.trades[0];
    assert_eq!(trade.exit_reason, Some(ExitReason::StopLoss));
    assert_eq!(trade.exit_candle, Some(t(5)));
    assert_eq!(trade.exit_price, Some(dec!(17)));
}

#[test]
fn warm_up_candles_before_the_range_are_read_not_traded() {
    let closes = [10, 10, 10, 10, 20, 20, 5, 5];
    let mut late = input(&closes, sma(2, 3, Exits::default()));
    late.from = t(5);
    let report = run(&late, &mut Unmonitored).unwrap();
    // The buy of candle 4 lies before the range; the sell of candle 6 has nothing to close.
    assert!(report.trades.is_empty());
    assert_eq!(report.summary.steps, 3);
    assert_eq!(report.summary.rejected["no_open_trade"], 1);
}

#[test]
fn bad_input_is_refused() {
    let mut unordered = input(&[1, 2, 3], sma(2, 3, Exits::default()));
    unordered.series[0].candles.swap(0, 1);
    assert!(matches!(
        run(&unordered, &mut Unmonitored),
        Err(BacktestError::Invalid(m)) if m.contains("out of order")
    ));
    let mut missing = input(&[1, 2, 3], sma(2, 3, Exits::default()));
    missing.strategies[0].symbols = vec!["ETHUSDT".into()];
    assert!(run(&missing, &mut Unmonitored).is_err());
    struct Expired;
    impl Monitor for Expired {
        fn progress(&mut self, _: u64, _: u64) -> Result<(), BacktestError> {
            Err(BacktestError::TimedOut { limit_secs: 1 })
        }
    }
    assert_eq!(
        run(
            &input(&[1, 2, 3], sma(2, 3, Exits::default())),
            &mut Expired
        ),
        Err(BacktestError::TimedOut { limit_secs: 1 })
    );
}
