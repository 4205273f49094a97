//! Randomized hostile input, bounded so it runs in every `cargo test`: the parsers that network
//! and user input reach never panic, and the real registry client against a loopback registry
//! answering random statuses, headers and bodies (truncated, huge, slow) always returns an answer
//! or an error. (cargo-fuzz targets for the same parsers live in `fuzz/`.)

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::http::HeaderValue;

use super::client::loopback::{LoopbackRegistry, answer};
use super::client::{MAX_RATE_LIMIT_BACKOFF, parse_retry_after};
use super::credentials::{DOCKER_CFG, DOCKER_CONFIG_JSON, DockerConfig};
use super::{Credentials, RegistryClient, RegistryClientConfig};
use crate::digest::reference::{Digest, ImageReference};
use crate::digest::{challenge, pushed_tags};

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Text built from fragments the grammars care about, plus arbitrary bytes.
    fn text(&mut self, fragments: &[&str], max_parts: usize) -> String {
        let mut out = String::new();
        for _ in 0..self.below(max_parts + 1) {
            if self.below(4) == 0 {
                let c = char::from_u32(self.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}');
                out.push(c);
            } else {
                out.push_str(self.pick(fragments));
            }
        }
        out
    }
}

const REFERENCE_FRAGMENTS: &[&str] = &[
    "a",
    "Z",
    "0",
    "9",
    ".",
    "-",
    "_",
    "__",
    "/",
    ":",
    "@",
    "sha256",
    "sha512",
    ":5000",
    "[::1]",
    "localhost",
    "docker.io",
    "library",
    "@sha256:",
    "..",
    "//",
    " ",
    "abababababababababababababababababababababababababababababababab",
];
const HEADER_FRAGMENTS: &[&str] = &[
    "Bearer",
    "Basic",
    " ",
    "realm",
    "=",
    "\"",
    "\\",
    ",",
    "service",
    "scope",
    "http://",
    "https://",
    "127.0.0.1",
    "repository:a:pull",
    "error",
    "\"\"",
    "=,",
];
const JSON_FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "events",
    "auths",
    "action",
    "push",
    "target",
    "repository",
    "tag",
    "mediaType",
    "auth",
    "username",
    "password",
    "identitytoken",
    "1e999",
    "-1",
    "null",
    "true",
    "\"a\"",
    "\\u0000",
    "{\"auths\":{",
];
const RETRY_AFTER_FRAGMENTS: &[&str] = &[
    "0",
    "1",
    "9",
    "18446744073709551615",
    "99999999999999999999",
    "-",
    "+",
    " ",
    "Fri, ",
    "31 Dec 9999 23:59:59 GMT",
    "01 Jan 1970 00:00:00 GMT",
    "GMT",
    ".",
];

const ROUNDS: usize = 20_000;

#[test]
fn parsers_never_panic_on_random_input() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let now = SystemTime::now();
    for _ in 0..ROUNDS {
        let reference = rng.text(REFERENCE_FRAGMENTS, 12);
        if let Ok(parsed) = ImageReference::parse(&reference) {
            let _ = (
                parsed.api_host(),
                parsed.repository(),
                parsed.tag_to_resolve(),
            );
        }
        let _ = Digest::parse(&reference);

        let _ = challenge::parse(&rng.text(HEADER_FRAGMENTS, 16));

        let body = rng.text(JSON_FRAGMENTS, 24);
        let _ = pushed_tags(body.as_bytes());
        let data = BTreeMap::from([
            (".dockerconfigjson".to_owned(), body.clone().into_bytes()),
            (".dockercfg".to_owned(), body.into_bytes()),
        ]);
        for kind in [DOCKER_CONFIG_JSON, DOCKER_CFG] {
            if let Ok(config) = DockerConfig::from_secret(kind, &data) {
                let _ = config.candidates(&rng.text(REFERENCE_FRAGMENTS, 4), "a/b");
            }
        }

        if let Ok(value) = HeaderValue::from_str(&rng.text(RETRY_AFTER_FRAGMENTS, 6))
            && let Some(wait) = parse_retry_after(&value, now)
        {
            assert!(wait <= MAX_RATE_LIMIT_BACKOFF, "{value:?} -> {wait:?}");
        }
    }
}

/// The real client against a registry answering at random. Every lookup ends in an answer or an
/// error (never a panic, never a hang beyond the request timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_survives_a_registry_answering_at_random() {
    const LOOKUPS: usize = 400;
    let seed = std::sync::atomic::AtomicU64::new(0x0dd_ba11_cafe_f00d);
    let registry = LoopbackRegistry::start(move |_, addr| {
        let mut rng =
            Rng(seed.fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::SeqCst));
        let status = [
            200, 200, 201, 204, 301, 302, 307, 400, 401, 401, 403, 404, 405, 429, 429, 500, 501,
            502, 503, 999,
        ][rng.below(20)];
        let realm = [
            format!("http://{addr}/token"),
            "http://169.254.169.254/latest".to_owned(),
            "file:///etc/passwd".to_owned(),
            format!("https://{addr}/token"),
        ][rng.below(4)]
        .clone();
        let challenge = match rng.below(4) {
            0 => format!(r#"Bearer realm="{realm}",service="s",scope="repository:acme/app:pull""#),
            1 => "Basic realm=\"r\"".to_owned(),
            2 => rng.text(HEADER_FRAGMENTS, 10),
            _ => String::new(),
        };
        let retry_after = rng.text(RETRY_AFTER_FRAGMENTS, 3);
        let digest = match rng.below(3) {
            0 => format!("sha256:{}", "ab".repeat(32)),
            1 => rng.text(REFERENCE_FRAGMENTS, 4),
            _ => String::new(),
        };
        let body = match rng.below(4) {
            0 => rng.text(JSON_FRAGMENTS, 30),
            1 => r#"{"token":"t","expires_in":18446744073709551615}"#.to_owned(),
            2 => "x".repeat(5 * 1024 * 1024),
            _ => String::new(),
        };
        let location = format!("http://{addr}/v2/acme/app/manifests/elsewhere");
        let mut headers: Vec<(&str, &str)> = vec![("location", &location)];
        for (name, value) in [
            ("www-authenticate", challenge.as_str()),
            ("retry-after", retry_after.as_str()),
            ("docker-content-digest", digest.as_str()),
        ] {
            if !value.is_empty() && HeaderValue::from_str(value).is_ok() && rng.below(2) == 0 {
                headers.push((name, value));
            }
        }
        let status = if (100..=999).contains(&status) {
            status
        } else {
            500
        };
        answer(status, &headers, &body)
    })
    .await;
    let config = RegistryClientConfig {
        insecure_hosts: [registry.host()].into(),
        request_timeout: Duration::from_secs(5),
    };
    let image = ImageReference::parse(&format!("{}/acme/app", registry.host())).unwrap();
    let credentials = Credentials::basic("u", "p");
    let mut answered = 0;
    for n in 0..LOOKUPS {
        let with = (n % 2 == 0).then_some(&credentials);
        // A fresh client each time: one 429 would otherwise back the whole host off.
        let client = RegistryClient::new(config.clone()).unwrap();
        let result = client.resolve_tag(&image, &format!("t{n}"), with).await;
        answered += 1;
        if let Err(crate::error::Error::RegistryRateLimited { retry_in, .. }) = &result {
            assert!(*retry_in <= MAX_RATE_LIMIT_BACKOFF);
        }
    }
    println!(
        "hostile registry: {answered} lookups, {} requests served, 0 panics",
        registry.seen().len()
    );
    assert_eq!(answered, LOOKUPS);
}
