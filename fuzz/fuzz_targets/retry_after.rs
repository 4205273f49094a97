//! A registry's `Retry-After` is network input: any value gives no wait or one clamped to
//! `MAX_RATE_LIMIT_BACKOFF`.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use trading_agent_operator::digest::client::{MAX_RATE_LIMIT_BACKOFF, parse_retry_after};

fuzz_target!(|input: (&[u8], u64)| {
    let (raw, now) = input;
    let Ok(value) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let now = UNIX_EPOCH.checked_add(Duration::from_secs(now % (1 << 40))).unwrap_or(UNIX_EPOCH);
    if let Some(wait) = parse_retry_after(&value, now) {
        assert!(wait <= MAX_RATE_LIMIT_BACKOFF);
    }
});
