//! The webhook's body (a registry notification envelope) is network input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trading_agent_operator::digest::pushed_tags;

fuzz_target!(|body: &[u8]| {
    let _ = pushed_tags(body);
});
