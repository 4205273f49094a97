//! A registry's `WWW-Authenticate` header is network input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trading_agent_operator::digest::challenge;

fuzz_target!(|header: &str| {
    let _ = challenge::parse(header);
});
