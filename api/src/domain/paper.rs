//! The paper exchange: fills at the candle close, moved against us by the slippage, with a fee on
//! the notional. Quantities and amounts are rounded to 8 decimal places (quantity down, so a
//! buy never costs more than its stake).

use rust_decimal::{Decimal, RoundingStrategy};

use super::Action;

/// Decimal places of quantities, prices and amounts.
pub const SCALE: u32 = 8;

/// A simulated execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    pub price: Decimal,
    pub quantity: Decimal,
    /// `price * quantity`.
    pub notional: Decimal,
    pub fee: Decimal,
}

/// Fill price after slippage: above the close for a buy, below it for a sell.
pub fn fill_price(action: Action, close: Decimal, slippage_bps: Decimal) -> Option<Decimal> {
    let slip = slippage_bps.checked_div(Decimal::from(10_000))?;
    let factor = match action {
        Action::Buy => Decimal::ONE.checked_add(slip)?,
        Action::Sell => Decimal::ONE.checked_sub(slip)?,
    };
    Some(
        close
            .checked_mul(factor)?
            .round_dp_with_strategy(SCALE, RoundingStrategy::MidpointAwayFromZero)
            .normalize(),
    )
}

/// Buys for `stake` quote units. `None` when the stake buys nothing at this price (or the numbers
/// are out of range: all arithmetic is checked, a fill can never panic).
pub fn buy(
    close: Decimal,
    stake: Decimal,
    fee_rate: Decimal,
    slippage_bps: Decimal,
) -> Option<Fill> {
    let price = fill_price(Action::Buy, close, slippage_bps)?;
    if price <= Decimal::ZERO {
        return None;
    }
    let quantity = stake
        .checked_div(price)?
        .round_dp_with_strategy(SCALE, RoundingStrategy::ToZero);
    if quantity <= Decimal::ZERO {
        return None;
    }
    fill(price, quantity, fee_rate)
}

/// Sells `quantity`.
pub fn sell(
    close: Decimal,
    quantity: Decimal,
    fee_rate: Decimal,
    slippage_bps: Decimal,
) -> Option<Fill> {
    let price = fill_price(Action::Sell, close, slippage_bps)?;
    if price <= Decimal::ZERO || quantity <= Decimal::ZERO {
        return None;
    }
    fill(price, quantity, fee_rate)
}

fn fill(price: Decimal, quantity: Decimal, fee_rate: Decimal) -> Option<Fill> {
    let notional = price.checked_mul(quantity)?.round_dp(SCALE);
    // A quantity too small to be worth a unit of the last decimal place is no order at all.
    if notional <= Decimal::ZERO {
        return None;
    }
    let fee = notional
        .checked_mul(fee_rate)?
        .round_dp_with_strategy(SCALE, RoundingStrategy::AwayFromZero);
    // Both must stay addable to a balance.
    notional.checked_add(fee)?;
    Some(Fill {
        price,
        quantity,
        notional,
        fee,
    })
}

/// Cash spent by a buy.
pub fn cost(entry: &Fill) -> Decimal {
    entry.notional + entry.fee
}

/// An open position valued at a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub quantity: Decimal,
    pub entry_price: Decimal,
    pub entry_fee: Decimal,
    /// The latest price (the entry price when none is known).
    pub price: Decimal,
}

/// Open positions valued together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Valuation {
    /// Entry notional plus entry fee.
    pub in_trades: Decimal,
    /// Quantity at the latest price.
    pub market_value: Decimal,
    pub open_trades: usize,
}

/// Values `positions`. `None` when a value leaves the decimal range (stored prices and quantities
/// come from clients: the arithmetic is checked, never a panic).
pub fn value(positions: &[Position]) -> Option<Valuation> {
    let mut valuation = Valuation {
        open_trades: positions.len(),
        ..Valuation::default()
    };
    for p in positions {
        let cost = p
            .quantity
            .checked_mul(p.entry_price)?
            .checked_add(p.entry_fee)?;
        valuation.in_trades = valuation.in_trades.checked_add(cost)?;
        let worth = p.quantity.checked_mul(p.price)?;
        valuation.market_value = valuation.market_value.checked_add(worth)?;
    }
    Some(valuation)
}

/// Cash received from a sell.
pub fn proceeds(exit: &Fill) -> Decimal {
    exit.notional - exit.fee
}

/// Realised profit of a round trip, net of both fees (`None` out of the decimal range).
pub fn profit(entry_notional: Decimal, entry_fee: Decimal, exit: &Fill) -> Option<Decimal> {
    proceeds(exit)
        .checked_sub(entry_notional)?
        .checked_sub(entry_fee)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn buy_by_hand() {
        // close 200, 5 bps -> 200.1; stake 100 -> qty 0.49975012 (rounded down);
        // notional 0.49975012 * 200.1 = 99.99999901; fee 0.1% = 0.09999999901 -> 0.1 (up)
        let f = buy(dec!(200), dec!(100), dec!(0.001), dec!(5)).unwrap();
        assert_eq!(f.price, dec!(200.1));
        assert_eq!(
            fill_price(Action::Sell, dec!(200), dec!(5)),
            Some(dec!(199.9))
        );
        assert_eq!(f.quantity, dec!(0.49975012));
        assert_eq!(f.notional, dec!(99.99999901));
        assert_eq!(f.fee, dec!(0.1));
        assert!(cost(&f) <= dec!(100.1));
    }

    #[test]
    fn sell_and_profit_by_hand() {
        // Entry: qty 0.5 at 200 (no slippage), notional 100, fee 0.1.
        let entry = buy(dec!(200), dec!(100), dec!(0.001), dec!(0)).unwrap();
        assert_eq!(
            (entry.quantity, entry.notional, entry.fee),
            (dec!(0.5), dec!(100), dec!(0.1))
        );
        // Exit at close 220 with 10 bps: price 219.78, notional 109.89, fee 0.10989.
        let exit = sell(dec!(220), entry.quantity, dec!(0.001), dec!(10)).unwrap();
        assert_eq!(exit.price, dec!(219.78));
        assert_eq!(exit.notional, dec!(109.89));
        assert_eq!(exit.fee, dec!(0.10989));
        // 109.89 - 0.10989 - 100 - 0.1 = 9.68011
        assert_eq!(
            profit(entry.notional, entry.fee, &exit),
            Some(dec!(9.68011))
        );
    }

    #[test]
    fn nothing_to_fill() {
        assert_eq!(buy(dec!(0), dec!(100), dec!(0.001), dec!(5)), None);
        assert_eq!(
            buy(dec!(1000000000), dec!(0.000001), dec!(0.001), dec!(0)),
            None
        );
        assert_eq!(sell(dec!(10), dec!(0), dec!(0.001), dec!(0)), None);
        // A stake that buys 0.00000002 at 0.05: the notional rounds to 0, no fill.
        assert_eq!(
            buy(dec!(0.05), dec!(0.000000001), dec!(0.001), dec!(0)),
            None
        );
        assert_eq!(
            sell(dec!(0.05), dec!(0.00000002), dec!(0.001), dec!(0)),
            None
        );
        // Out-of-range numbers give no fill instead of a panic.
        assert_eq!(buy(Decimal::MAX, dec!(100), dec!(0.001), dec!(5)), None);
        assert_eq!(sell(Decimal::MAX, dec!(2), dec!(0.001), dec!(0)), None);
    }

    #[test]
    fn valuation_is_checked() {
        let p = Position {
            quantity: dec!(2),
            entry_price: dec!(100),
            entry_fee: dec!(0.2),
            price: dec!(110),
        };
        let v = value(&[p, p]).unwrap();
        assert_eq!(v.in_trades, dec!(400.4));
        assert_eq!(v.market_value, dec!(440));
        assert_eq!(v.open_trades, 2);
        // 10^20 units bought at 10^-8 and now quoted at 10^15: beyond Decimal, no panic.
        let huge = Position {
            quantity: dec!(100000000000000000000),
            entry_price: dec!(0.00000001),
            entry_fee: dec!(0),
            price: dec!(1000000000000000),
        };
        assert_eq!(value(&[huge]), None);
    }
}
