//! The trading endpoints, one file per concern: signals, orders (and the manual-order queue),
//! trades, the account (balance and profit) and bot control. Manual orders (POST /orders,
//! force-enter, force-exit) are queued as manual signals: the bot executes them through the same
//! risk checks and transaction as strategy signals, so there is one execution path.

mod account;
mod bot;
mod orders;
mod signals;
mod trades;

pub use account::*;
pub use bot::*;
pub use orders::*;
pub use signals::*;
pub use trades::*;
