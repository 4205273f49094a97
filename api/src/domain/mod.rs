//! The pure core: market data rules, indicators, strategies, risk checks and the paper exchange.
//! Nothing here touches the network, the clock or the database, so all of it is unit-tested with
//! hand-computed values.

pub mod equity;
pub mod execution;
pub mod exits;
pub mod indicators;
pub mod market;
pub mod paper;
pub mod risk;
pub mod stats;
pub mod strategy;
pub mod window;

pub use market::{Candle, Symbol, Timeframe};
pub use risk::{BotState, RiskLimits};
pub use strategy::{Action, StrategyKind, StrategyParams};

/// A rule broken by an input: the message names the field and the problem (e.g.
/// `candles[3].low: must not exceed open (101.5 > 100)`), and becomes a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same problem, reported under a parent path (`low` → `candles[3].low`).
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            problem: self.problem,
        }
    }
}
