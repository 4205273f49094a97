//! JSON bodies written straight into one preallocated buffer, for the list endpoints that send
//! hundreds of rows (`GET /api/v2/trades`). The bytes are exactly what `serde_json` writes for the
//! same value (the tests compare the two); what is saved is serde's per-string escaping scan and
//! the `fmt` machinery behind decimals and timestamps, which dominated the profile of those pages.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Timelike, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// A body already serialised as JSON.
pub struct JsonBytes(pub Vec<u8>);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Values that can write themselves as JSON, byte for byte as `serde_json` would.
pub trait WriteJson: Serialize {
    fn write_json(&self, out: &mut Vec<u8>);
}

/// `[a,b,...]` of rows, into a buffer sized for `row_hint` bytes per row.
pub fn array<T: WriteJson>(rows: &[T], row_hint: usize) -> JsonBytes {
    let mut out = Vec::with_capacity(2 + rows.len() * row_hint);
    out.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        row.write_json(&mut out);
    }
    out.push(b']');
    JsonBytes(out)
}

/// Any `Serialize` value through serde_json (the slow path for unusual values).
pub fn serde(out: &mut Vec<u8>, value: &impl Serialize) {
    // Writing into a Vec cannot fail, and none of the values here fails to serialise.
    let _ = serde_json::to_writer(out, value);
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde(out, &s);
    }
}

pub fn int(out: &mut Vec<u8>, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

pub fn opt_int(out: &mut Vec<u8>, n: Option<i64>) {
    match n {
        Some(n) => int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// A decimal as rust_decimal's serde writes it: a string such as `"-12.50"` (the scale kept).
pub fn decimal(out: &mut Vec<u8>, d: &Decimal) {
    let mantissa = d.mantissa();
    if mantissa == 0 {
        // Zero's sign and scale rules are rust_decimal's own: leave them to it.
        serde(out, d);
        return;
    }
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(mantissa.unsigned_abs()).as_bytes();
    let scale = d.scale() as usize;
    out.push(b'"');
    if mantissa < 0 {
        out.push(b'-');
    }
    if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(whole);
        if scale > 0 {
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
    }
    out.push(b'"');
}

pub fn opt_decimal(out: &mut Vec<u8>, d: Option<&Decimal>) {
    match d {
        Some(d) => decimal(out, d),
        None => out.extend_from_slice(b"null"),
    }
}

/// A timestamp as chrono's serde writes it: RFC 3339 in UTC with `Z`, and as many fraction
/// digits as needed (none, 3, 6 or 9).
pub fn timestamp(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Extended years and leap seconds: chrono's own rules.
        serde(out, t);
        return;
    }
    let mut b = [0u8; 32];
    fn two(b: &mut [u8], n: u32) {
        b[0] = b'0' + (n / 10) as u8;
        b[1] = b'0' + (n % 10) as u8;
    }
    let y = year as u32;
    b[0] = b'"';
    two(&mut b[1..], y / 100);
    two(&mut b[3..], y % 100);
    b[5] = b'-';
    two(&mut b[6..], t.month());
    b[8] = b'-';
    two(&mut b[9..], t.day());
    b[11] = b'T';
    two(&mut b[12..], t.hour());
    b[14] = b':';
    two(&mut b[15..], t.minute());
    b[17] = b':';
    two(&mut b[18..], t.second());
    let mut len = 20;
    let (mut fraction, digits) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    if digits > 0 {
        b[len] = b'.';
        for i in (0..digits).rev() {
            b[len + 1 + i] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        len += 1 + digits;
    }
    b[len] = b'Z';
    b[len + 1] = b'"';
    out.extend_from_slice(&b[..len + 2]);
}

pub fn opt_timestamp(out: &mut Vec<u8>, t: Option<&DateTime<Utc>>) {
    match t {
        Some(t) => timestamp(out, t),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn same<T: Serialize>(value: &T, write: impl Fn(&mut Vec<u8>, &T)) {
        let mut out = Vec::new();
        write(&mut out, value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(value).unwrap()
        );
    }

    #[test]
    fn decimals_match_serde() {
        for text in [
            "0",
            "0.00000000",
            "-0",
            "1",
            "-1",
            "10",
            "0.1",
            "-0.1",
            "0.00000001",
            "-0.00000001",
            "123.45",
            "-98765.43210000",
            "100.50",
            "0.5",
            "1000000",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "12345678.9",
        ] {
            let d = Decimal::from_str(text).unwrap();
            same(&d, decimal);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = (x as i64 >> (x % 50)) as i128 * if x & 1 == 0 { 1 } else { 1_000_003 };
            let d = Decimal::from_i128_with_scale(m, (x % 29) as u32);
            same(&d, decimal);
        }
    }

    #[test]
    fn timestamps_match_serde() {
        let base = Utc.with_ymd_and_hms(2026, 11, 24, 5, 7, 9).unwrap();
        for nanos in [
            0,
            1,
            120,
            5_000,
            123_000,
            999_000,
            1_000_000,
            125_000_000,
            999_999_999,
        ] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            same(&t, timestamp);
        }
        for t in [
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
        ] {
            same(&t, timestamp);
        }
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 400_000_000_000) as i64 - 100_000_000_000;
            let nanos = match x % 4 {
                0 => 0,
                1 => (x >> 8) as u32 % 1000 * 1_000_000,
                2 => (x >> 8) as u32 % 1_000_000 * 1000,
                _ => (x >> 8) as u32 % 1_000_000_000,
            };
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            same(&t, timestamp);
        }
    }

    #[test]
    fn strings_and_ints_match_serde() {
        for s in [
            "BTCUSDT",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "ünïcode ✓",
            "\u{1}",
        ] {
            same(&s, |out, s| string(out, s));
        }
        for n in [0i64, 1, -1, i64::MAX, i64::MIN, 42] {
            same(&n, |out, n| int(out, *n));
        }
    }
}
