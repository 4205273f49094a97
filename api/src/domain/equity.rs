//! The account's worth per quote currency: cash plus open positions at their latest price. The bot
//! records it periodically (`store::equity`), which is the dashboard's equity curve.

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

/// An open position, in the quote currency of its symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub quote_currency: String,
    pub quantity: Decimal,
    /// The latest close of its symbol (the entry price when there is no candle).
    pub price: Decimal,
}

/// What one quote currency is worth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Worth {
    #[schema(example = "USDT")]
    pub currency: String,
    /// Cash held in this currency.
    #[schema(value_type = String, example = "9500.25")]
    pub cash: Decimal,
    /// Open positions quoted in this currency, at their latest price.
    #[schema(value_type = String, example = "512.4")]
    pub positions: Decimal,
    /// `cash + positions`.
    #[schema(value_type = String, example = "10012.65")]
    pub equity: Decimal,
}

/// Worth per currency, by currency: every currency with cash, and every one an open position is
/// quoted in (with no cash, if the wallet lost track of it). Rounded to 8 decimals, as balances.
pub fn worth_by_currency(cash: &[(String, Decimal)], positions: &[Position]) -> Vec<Worth> {
    fn entry<'a>(out: &'a mut Vec<Worth>, currency: &str) -> &'a mut Worth {
        match out.iter().position(|w| w.currency == currency) {
            Some(i) => &mut out[i],
            None => {
                out.push(Worth {
                    currency: currency.to_owned(),
                    cash: Decimal::ZERO,
                    positions: Decimal::ZERO,
                    equity: Decimal::ZERO,
                });
                out.last_mut().expect("just pushed")
            }
        }
    }
    let mut out: Vec<Worth> = Vec::new();
    for (currency, amount) in cash {
        entry(&mut out, currency).cash += *amount;
    }
    for p in positions {
        entry(&mut out, &p.quote_currency).positions += p.quantity * p.price;
    }
    for w in &mut out {
        w.cash = w.cash.round_dp(8);
        w.positions = w.positions.round_dp(8);
        w.equity = w.cash + w.positions;
    }
    out.sort_by(|a, b| a.currency.cmp(&b.currency));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn positions_count_in_their_quote_currency() {
        let cash = [("USDT".into(), d("9000")), ("BTC".into(), d("0.5"))];
        let positions = [
            Position {
                quote_currency: "USDT".into(),
                quantity: d("0.01"),
                price: d("50000"),
            },
            Position {
                quote_currency: "USDT".into(),
                quantity: d("2"),
                price: d("3000.123456789"),
            },
            Position {
                quote_currency: "BTC".into(),
                quantity: d("10"),
                price: d("0.06"),
            },
            Position {
                quote_currency: "ETH".into(),
                quantity: d("1"),
                price: d("0.1"),
            },
        ];
        let worth = worth_by_currency(&cash, &positions);
        let row = |c: &str| worth.iter().find(|w| w.currency == c).unwrap().clone();
        assert_eq!(
            worth
                .iter()
                .map(|w| w.currency.as_str())
                .collect::<Vec<_>>(),
            ["BTC", "ETH", "USDT"]
        );
        assert_eq!(row("USDT").positions, d("6500.24691358"));
        assert_eq!(row("USDT").equity, d("15500.24691358"));
        assert_eq!(row("BTC").equity, d("1.1"));
        assert_eq!(row("ETH").cash, Decimal::ZERO);
        assert_eq!(row("ETH").equity, d("0.1"));
    }

    #[test]
    fn cash_alone_is_the_equity() {
        let worth = worth_by_currency(&[("USDT".into(), d("10000"))], &[]);
        assert_eq!(worth.len(), 1);
        assert_eq!(worth[0].equity, d("10000"));
        assert_eq!(worth[0].positions, Decimal::ZERO);
        assert!(worth_by_currency(&[], &[]).is_empty());
    }
}
