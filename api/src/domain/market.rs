//! Instruments, timeframes and candles, and the rules a candle must satisfy before it is stored.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// An instrument symbol such as `BTCUSDT`: 1 to 32 characters, upper-case letters, digits, `.`, `_`
/// or `-`, starting with a letter or digit (so it is safe in a URL path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Symbol(String);

impl Symbol {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = text.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 32
            && (bytes[0].is_ascii_uppercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._-".contains(b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a valid symbol (1-32 characters: A-Z, 0-9, '.', '_', '-')",
                truncate(text, 40)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Symbol::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Quotes user input in a message without letting a huge value through.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((idx, _)) => format!("{}…", &text[..idx]),
        None => text.to_owned(),
    }
}

/// Candle width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Timeframe {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "1d")]
    D1,
}

impl Timeframe {
    pub const ALL: [Timeframe; 7] = [
        Timeframe::M1,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::D1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::M30 => "30m",
            Timeframe::H1 => "1h",
            Timeframe::H4 => "4h",
            Timeframe::D1 => "1d",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 300,
            Timeframe::M15 => 900,
            Timeframe::M30 => 1800,
            Timeframe::H1 => 3600,
            Timeframe::H4 => 14_400,
            Timeframe::D1 => 86_400,
        }
    }

    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds())
    }

    /// Whether `t` is the start of a candle of this width (epoch-aligned, whole seconds).
    pub fn is_aligned(self, t: DateTime<Utc>) -> bool {
        t.timestamp_subsec_nanos() == 0 && t.timestamp().rem_euclid(self.seconds()) == 0
    }

    /// Start of the candle that contains `t`.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let secs = t.timestamp();
        let start = secs - secs.rem_euclid(self.seconds());
        Utc.timestamp_opt(start, 0).single().unwrap_or(t)
    }

    /// Open time of the newest candle that has closed at `now` (its close time is <= now).
    pub fn last_closed_open_time(self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.floor(now) - self.duration()
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Timeframe::ALL
            .into_iter()
            .find(|tf| tf.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a timeframe (one of 1m, 5m, 15m, 30m, 1h, 4h, 1d)",
                    truncate(text, 20)
                )
            })
    }
}

/// One OHLCV bar. Prices and volume are exact decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Candle {
    /// Start of the candle; must be aligned to the timeframe (e.g. a whole minute for 1m).
    pub open_time: DateTime<Utc>,
    #[schema(value_type = String, example = "101.25", pattern = "^[0-9]+(\\.[0-9]+)?$")]
    pub open: Decimal,
    #[schema(value_type = String, example = "102.00", pattern = "^[0-9]+(\\.[0-9]+)?$")]
    pub high: Decimal,
    #[schema(value_type = String, example = "100.50", pattern = "^[0-9]+(\\.[0-9]+)?$")]
    pub low: Decimal,
    #[schema(value_type = String, example = "101.75", pattern = "^[0-9]+(\\.[0-9]+)?$")]
    pub close: Decimal,
    #[schema(value_type = String, example = "12.5", pattern = "^[0-9]+(\\.[0-9]+)?$")]
    pub volume: Decimal,
}

impl Candle {
    /// Checks the candle's own consistency: non-negative values, `low <= open, close <= high`, and an
    /// open time aligned to `timeframe`.
    pub fn validate(&self, timeframe: Timeframe) -> Result<(), Invalid> {
        for (name, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
            ("volume", self.volume),
        ] {
            if value.is_sign_negative() && !value.is_zero() {
                return Err(Invalid::new(
                    name,
                    format!("must not be negative ({value})"),
                ));
            }
        }
        if self.high > max_price() {
            return Err(Invalid::new(
                "high",
                format!("must be at most {} ({})", max_price(), self.high),
            ));
        }
        if self.volume > max_volume() {
            return Err(Invalid::new(
                "volume",
                format!("must be at most {} ({})", max_volume(), self.volume),
            ));
        }
        if self.high.is_zero() {
            return Err(Invalid::new("high", "must be greater than 0"));
        }
        for (name, value) in [("open", self.open), ("close", self.close)] {
            if value < self.low {
                return Err(Invalid::new(
                    "low",
                    format!("must not exceed {name} ({} > {value})", self.low),
                ));
            }
            if value > self.high {
                return Err(Invalid::new(
                    "high",
                    format!("must not be below {name} ({} < {value})", self.high),
                ));
            }
        }
        if !timeframe.is_aligned(self.open_time) {
            return Err(Invalid::new(
                "open_time",
                format!(
                    "{} is not aligned to the {timeframe} timeframe",
                    self.open_time.to_rfc3339()
                ),
            ));
        }
        Ok(())
    }
}

/// Largest price accepted (10^15): far above any real quote, far enough below `Decimal::MAX` that
/// fills, fees and balances computed from it cannot overflow.
pub fn max_price() -> Decimal {
    Decimal::from(1_000_000_000_000_000_i64)
}

/// Largest volume accepted (10^20).
pub fn max_volume() -> Decimal {
    Decimal::from(100_000_000_000_000_000_000_i128)
}

/// How far ahead of our clock a feed's clock may run: a candle that opens later than this after
/// `now` cannot have traded yet.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// Refuses a candle that opens in the future (beyond [`MAX_CLOCK_SKEW_SECS`]).
pub fn not_in_future(candle: &Candle, now: DateTime<Utc>) -> Result<(), Invalid> {
    if candle.open_time > now + chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        return Err(Invalid::new(
            "open_time",
            format!(
                "{} is in the future (now {})",
                candle.open_time.to_rfc3339(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    Ok(())
}

/// Validates a batch received at `now`: each candle, none in the future, no open time twice.
pub fn validate_batch(
    candles: &[Candle],
    timeframe: Timeframe,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    let mut seen = std::collections::HashSet::with_capacity(candles.len());
    for (i, candle) in candles.iter().enumerate() {
        candle
            .validate(timeframe)
            .and_then(|()| not_in_future(candle, now))
            .map_err(|e| e.within(&format!("candles[{i}]")))?;
        if !seen.insert(candle.open_time) {
            return Err(Invalid::new(
                format!("candles[{i}].open_time"),
                format!(
                    "{} appears twice in the batch",
                    candle.open_time.to_rfc3339()
                ),
            ));
        }
    }
    Ok(())
}

/// Parses candles from CSV with a header row naming at least `open_time,open,high,low,close,volume`
/// (any order, extra columns ignored). `open_time` is RFC 3339 or Unix time in seconds,
/// milliseconds, microseconds or nanoseconds. Candles opening after `now` are refused. Errors name
/// the line and column.
pub fn parse_csv(
    data: &[u8],
    timeframe: Timeframe,
    now: DateTime<Utc>,
) -> Result<Vec<Candle>, Invalid> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| Invalid::new("csv", format!("unreadable header row: {e}")))?
        .clone();
    let column = |name: &str| -> Result<usize, Invalid> {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| Invalid::new("csv", format!("header row has no `{name}` column")))
    };
    let idx = [
        column("open_time")?,
        column("open")?,
        column("high")?,
        column("low")?,
        column("close")?,
        column("volume")?,
    ];
    let mut candles = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| Invalid::new(format!("csv line {line}"), e.to_string()))?;
        let field = |i: usize| record.get(idx[i]).unwrap_or("");
        let decimal = |i: usize, name: &str| -> Result<Decimal, Invalid> {
            parse_decimal(field(i))
                .map_err(|problem| Invalid::new(format!("csv line {line}, {name}"), problem))
        };
        let open_time = parse_time(field(0))
            .map_err(|problem| Invalid::new(format!("csv line {line}, open_time"), problem))?;
        let candle = Candle {
            open_time,
            open: decimal(1, "open")?,
            high: decimal(2, "high")?,
            low: decimal(3, "low")?,
            close: decimal(4, "close")?,
            volume: decimal(5, "volume")?,
        };
        candle
            .validate(timeframe)
            .and_then(|()| not_in_future(&candle, now))
            .map_err(|e| Invalid::new(format!("csv line {line}, {}", e.field), e.problem))?;
        candles.push(candle);
        if candles.len() > MAX_CSV_ROWS {
            return Err(Invalid::new(
                "csv",
                format!("more than {MAX_CSV_ROWS} rows; split the file"),
            ));
        }
    }
    if candles.is_empty() {
        return Err(Invalid::new("csv", "no candle rows after the header"));
    }
    let mut seen = std::collections::HashSet::with_capacity(candles.len());
    for (i, c) in candles.iter().enumerate() {
        if !seen.insert(c.open_time) {
            return Err(Invalid::new(
                format!("csv line {}, open_time", i + 2),
                format!("{} appears twice in the file", c.open_time.to_rfc3339()),
            ));
        }
    }
    Ok(candles)
}

/// Most rows one CSV import accepts.
pub const MAX_CSV_ROWS: usize = 200_000;

/// A decimal from text; `NaN`, `inf` and friends are refused by name.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err(format!("`{}` is not a finite number", truncate(text, 40)));
    }
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| format!("`{}` is not a decimal number", truncate(text, 40)))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(n) = text.parse::<i64>() {
        // By magnitude, as exchange exports write them: 10 digits are seconds, 13 milliseconds,
        // 16 microseconds, 19 nanoseconds (each unit starts at 10^11 of itself, i.e. 1973).
        let t = match n.unsigned_abs() {
            0..100_000_000_000 => Utc.timestamp_opt(n, 0).single(),
            100_000_000_000..100_000_000_000_000 => Utc.timestamp_millis_opt(n).single(),
            100_000_000_000_000..100_000_000_000_000_000 => Utc.timestamp_micros(n).single(),
            _ => Some(Utc.timestamp_nanos(n)),
        };
        return t.ok_or_else(|| format!("`{text}` is out of range"));
    }
    Err(format!(
        "`{}` is neither RFC 3339 nor a Unix timestamp",
        truncate(text, 40)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock of these tests: 2026-01-01T00:00:30Z.
    fn now() -> DateTime<Utc> {
        t("2026-01-01T00:00:30Z")
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn candle(open: &str, high: &str, low: &str, close: &str) -> Candle {
        Candle {
            open_time: t("2024-01-01T00:05:00Z"),
            open: d(open),
            high: d(high),
            low: d(low),
            close: d(close),
            volume: d("1"),
        }
    }

    #[test]
    fn symbols() {
        assert!(Symbol::parse("BTCUSDT").is_ok());
        assert!(Symbol::parse("BTC-USD").is_ok());
        assert!(Symbol::parse("btcusdt").is_err());
        assert!(Symbol::parse("").is_err());
        assert!(Symbol::parse("-BTC").is_err());
        assert!(Symbol::parse("BTC/USDT").is_err());
        assert!(Symbol::parse(&"A".repeat(33)).is_err());
    }

    #[test]
    fn timeframe_alignment_and_closing() {
        let tf = Timeframe::M5;
        assert!(tf.is_aligned(t("2024-01-01T00:05:00Z")));
        assert!(!tf.is_aligned(t("2024-01-01T00:06:00Z")));
        assert!(!tf.is_aligned(t("2024-01-01T00:05:00.5Z")));
        assert!(Timeframe::D1.is_aligned(t("2024-01-02T00:00:00Z")));
        assert!(!Timeframe::H4.is_aligned(t("2024-01-01T02:00:00Z")));
        // At 00:07:30 the 00:00 candle has closed (it ended at 00:05); the 00:05 one has not.
        assert_eq!(
            tf.last_closed_open_time(t("2024-01-01T00:07:30Z")),
            t("2024-01-01T00:00:00Z")
        );
        // Exactly at 00:10 the 00:05 candle has just closed.
        assert_eq!(
            tf.last_closed_open_time(t("2024-01-01T00:10:00Z")),
            t("2024-01-01T00:05:00Z")
        );
        assert_eq!("15m".parse::<Timeframe>(), Ok(Timeframe::M15));
        assert!("2m".parse::<Timeframe>().is_err());
    }

    #[test]
    fn candle_rules() {
        assert_eq!(
            candle("100", "102", "99", "101").validate(Timeframe::M5),
            Ok(())
        );
        let err = candle("100", "102", "100.5", "101")
            .validate(Timeframe::M5)
            .unwrap_err();
        assert_eq!(err.to_string(), "low: must not exceed open (100.5 > 100)");
        let err = candle("100", "100.5", "99", "101")
            .validate(Timeframe::M5)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "high: must not be below close (100.5 < 101)"
        );
        let err = candle("-1", "102", "99", "101")
            .validate(Timeframe::M5)
            .unwrap_err();
        assert_eq!(err.field, "open");
        let err = candle("100", "102", "99", "101")
            .validate(Timeframe::M15)
            .unwrap_err();
        assert_eq!(err.field, "open_time");
        assert!(err.problem.contains("not aligned to the 15m timeframe"));
        let err = candle("100", "1000000000000001", "99", "101")
            .validate(Timeframe::M5)
            .unwrap_err();
        assert_eq!(err.field, "high");
        let mut zero_volume = candle("100", "102", "99", "101");
        zero_volume.volume = Decimal::ZERO;
        assert_eq!(zero_volume.validate(Timeframe::M5), Ok(()));
    }

    #[test]
    fn batch_rejects_duplicates_with_index() {
        let c = candle("100", "102", "99", "101");
        let err = validate_batch(&[c.clone(), c], Timeframe::M5, now()).unwrap_err();
        assert_eq!(err.field, "candles[1].open_time");
    }

    #[test]
    fn csv_parsing() {
        let data = b"open_time,open,high,low,close,volume\n\
            2024-01-01T00:00:00Z,100,101,99,100.5,10\n\
            1704067260,100.5,102,100,101,12\n\
            1704067320000,101,101.5,100.5,101.25,0\n";
        let candles = parse_csv(data, Timeframe::M1, now()).unwrap();
        assert_eq!(candles.len(), 3);
        assert_eq!(candles[1].open_time, t("2024-01-01T00:01:00Z"));
        assert_eq!(candles[2].open_time, t("2024-01-01T00:02:00Z"));
        assert_eq!(candles[2].close, d("101.25"));

        let err = parse_csv(b"open_time,open,high,low,close\n", Timeframe::M1, now()).unwrap_err();
        assert_eq!(err.to_string(), "csv: header row has no `volume` column");

        let err = parse_csv(
            b"open_time,open,high,low,close,volume\n2024-01-01T00:00:00Z,NaN,1,1,1,1\n",
            Timeframe::M1,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "csv line 2, open: `NaN` is not a finite number"
        );

        let err = parse_csv(
            b"open_time,open,high,low,close,volume\n2024-01-01T00:00:30Z,1,1,1,1,1\n",
            Timeframe::M1,
            now(),
        )
        .unwrap_err();
        assert_eq!(err.field, "csv line 2, open_time");

        let err = parse_csv(
            b"open_time,open,high,low,close,volume\n",
            Timeframe::M1,
            now(),
        )
        .unwrap_err();
        assert!(err.problem.contains("no candle rows"));
    }

    /// Issue 16: a 16-digit timestamp parsed as milliseconds landed about the year 55,000.
    #[test]
    fn csv_timestamps_in_every_unit() {
        for stamp in [
            "1704067260",
            "1704067260000",
            "1704067260000000",
            "1704067260000000000",
        ] {
            let data = format!("open_time,open,high,low,close,volume\n{stamp},1,1,1,1,1\n");
            let candles = parse_csv(data.as_bytes(), Timeframe::M1, now()).unwrap();
            assert_eq!(candles[0].open_time, t("2024-01-01T00:01:00Z"), "{stamp}");
        }
    }

    /// Issue 16: candles in the future were accepted.
    #[test]
    fn candles_in_the_future_are_refused() {
        let future = "open_time,open,high,low,close,volume\n2026-01-01T00:02:00Z,1,1,1,1,1\n";
        let err = parse_csv(future.as_bytes(), Timeframe::M1, now()).unwrap_err();
        assert_eq!(err.field, "csv line 2, open_time");
        assert!(err.problem.contains("in the future"), "{err}");
        let mut c = candle("1", "1", "1", "1");
        c.open_time = t("2026-01-01T00:05:00Z");
        let err = validate_batch(&[c.clone()], Timeframe::M5, now()).unwrap_err();
        assert_eq!(err.field, "candles[0].open_time");
        // Within the clock skew allowed, and the candle forming now, are fine.
        c.open_time = t("2026-01-01T00:00:00Z");
        assert_eq!(validate_batch(&[c], Timeframe::M5, now()), Ok(()));
    }
}
