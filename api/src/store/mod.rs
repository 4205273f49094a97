//! PostgreSQL access, one module per group of tables. Queries are checked at run time
//! (`query_as` + `FromRow`): a clean clone builds without a database or committed offline data, and
//! the integration tests run every query against a real PostgreSQL.
//!
//! Row types double as API response bodies (they derive `Serialize` and `ToSchema`), so what the
//! API shows is what is stored.

pub mod bot;
pub mod candles;
pub mod events;
pub mod instruments;
pub mod signals;
pub mod strategies;
pub mod trading;

use crate::domain::{Action, BotState, StrategyKind, Timeframe};

// Text columns with a CHECK constraint decode into their enums (`#[sqlx(try_from = "String")]`).
macro_rules! text_enum {
    ($ty:ty, $parse:expr) => {
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                $parse(&text)
                    .ok_or_else(|| format!("unexpected {} value `{text}`", stringify!($ty)))
            }
        }
    };
}

text_enum!(Action, Action::parse);
text_enum!(BotState, BotState::parse);
text_enum!(StrategyKind, StrategyKind::parse);
text_enum!(Timeframe, |t: &str| t.parse::<Timeframe>().ok());

/// Page size of list endpoints when none is given, and the most one page can hold.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
