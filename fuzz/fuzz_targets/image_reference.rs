//! `spec.image` is user input: parsing any string ends in a reference or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trading_agent_operator::digest::{Digest, ImageReference};

fuzz_target!(|input: &str| {
    if let Ok(reference) = ImageReference::parse(input) {
        let _ = (reference.api_host(), reference.repository(), reference.tag_to_resolve());
        if let Some(digest) = reference.digest() {
            assert!(Digest::parse(digest.as_str()).is_ok(), "a parsed digest parses again");
        }
    }
    let _ = Digest::parse(input);
});
