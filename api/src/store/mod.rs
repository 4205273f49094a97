//! PostgreSQL access, one module per group of tables. Queries are checked at run time
//! (`query_as` + `FromRow`): a clean clone builds without a database or committed offline data, and
//! the integration tests run every query against a real PostgreSQL.
//!
//! Row types double as API response bodies (they derive `Serialize` and `ToSchema`), so what the
//! API shows is what is stored; text columns with a fixed set of values decode into enums, which
//! the OpenAPI document lists.

pub mod backtests;
pub mod bot;
pub mod candles;
pub mod equity;
pub mod events;
pub mod heartbeats;
pub mod instruments;
pub mod signals;
pub mod strategies;
pub mod trading;
pub mod views;

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
text_enum!(signals::SignalStatus, signals::SignalStatus::parse);
text_enum!(trading::TradeStatus, trading::TradeStatus::parse);
text_enum!(trading::OrderStatus, trading::OrderStatus::parse);
text_enum!(BotState, BotState::parse);
text_enum!(StrategyKind, StrategyKind::parse);
text_enum!(Timeframe, |t: &str| t.parse::<Timeframe>().ok());

/// Page size of list endpoints when none is given, and the most one page can hold.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// A `NUMERIC` column decoded into a `Decimal` straight from PostgreSQL's binary digits.
///
/// sqlx's own decoder builds the value with one checked `Decimal` power, multiplication and
/// addition per base-10000 digit and then rescales, which made up a fifth of the CPU of a page of
/// trades. Here the digits are summed in a `u128` at the column's display scale; anything unusual
/// (zero, NaN or infinities, a scale above 28, a value beyond 96 bits, digits past the display
/// scale, the text format) goes to sqlx's decoder, so the result is always exactly sqlx's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgDecimal(pub rust_decimal::Decimal);

impl sqlx::Type<sqlx::Postgres> for PgDecimal {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <rust_decimal::Decimal as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <rust_decimal::Decimal as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for PgDecimal {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef;
        if !value.is_null()
            && value.format() == sqlx::postgres::PgValueFormat::Binary
            && let Some(d) = value.as_bytes().ok().and_then(numeric_from_binary)
        {
            return Ok(PgDecimal(d));
        }
        <rust_decimal::Decimal as sqlx::Decode<sqlx::Postgres>>::decode(value).map(PgDecimal)
    }
}

/// The binary `NUMERIC` (ndigits, weight, sign, dscale, then base-10000 digits), or `None` when
/// the value is not a plain non-zero number that fits exactly at its display scale.
pub fn numeric_from_binary(bytes: &[u8]) -> Option<rust_decimal::Decimal> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(bytes.get(i..i + 2)?.try_into().ok()?))
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let scale = word(6)? as i32;
    if ndigits == 0 || scale > 28 || bytes.len() != 8 + 2 * ndigits {
        return None;
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    const POW10: [u128; 5] = [1, 10, 100, 1000, 10_000];
    let mut mantissa: u128 = 0;
    for i in 0..ndigits {
        let digit = word(8 + 2 * i)? as u128;
        if digit >= 10_000 {
            return None;
        }
        // This digit's power of ten at the display scale.
        let exponent = 4 * (weight - i as i32) + scale;
        let part = if exponent >= 0 {
            // At most 10^32 (we bail out on overflow below) times a digit < 10^4.
            let mut p = digit;
            for _ in 0..exponent / 4 {
                p = p.checked_mul(10_000)?;
            }
            p.checked_mul(POW10[(exponent % 4) as usize])?
        } else if exponent > -4 {
            let div = POW10[(-exponent) as usize];
            if !digit.is_multiple_of(div) {
                return None;
            }
            digit / div
        } else {
            if digit != 0 {
                return None;
            }
            0
        };
        mantissa = mantissa.checked_add(part)?;
        if mantissa >= 1 << 96 {
            return None;
        }
    }
    if mantissa == 0 {
        return None;
    }
    let signed = if negative {
        -(mantissa as i128)
    } else {
        mantissa as i128
    };
    Some(rust_decimal::Decimal::from_i128_with_scale(
        signed,
        scale as u32,
    ))
}
