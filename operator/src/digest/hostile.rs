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

/// How a raw-TCP hostile registry answers one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehaviour {
    /// Accepts, reads the request, never answers.
    Silent,
    /// Sends the status line, then one header byte every 200 ms, forever.
    SlowHeaders,
    /// Complete headers (`Content-Length: 100`), then one body byte every 200 ms.
    SlowBody,
    /// Headers cut in the middle, then the connection closes.
    TruncatedHeaders,
    /// `Content-Length: 1000`, 10 bytes, then the connection closes.
    TruncatedBody,
    /// A manifest that never ends: `Content-Length` of 1 GiB, zeros streamed until the client
    /// hangs up.
    HugeManifest,
    /// The same without a length (chunked), so only the client's own cap can stop it.
    HugeChunkedManifest,
    /// `Content-Length: 18446744073709551615` and a short body.
    AbsurdLength,
    /// A chunk size that overflows 64 bits.
    BadChunkSize,
    /// One header line of 1 MiB.
    HugeHeader,
    /// Closes at once without a byte.
    Reset,
}

const MISBEHAVIOURS: [Misbehaviour; 11] = [
    Misbehaviour::Silent,
    Misbehaviour::SlowHeaders,
    Misbehaviour::SlowBody,
    Misbehaviour::TruncatedHeaders,
    Misbehaviour::TruncatedBody,
    Misbehaviour::HugeManifest,
    Misbehaviour::HugeChunkedManifest,
    Misbehaviour::AbsurdLength,
    Misbehaviour::BadChunkSize,
    Misbehaviour::HugeHeader,
    Misbehaviour::Reset,
];

/// What the raw hostile server did.
#[derive(Default)]
struct Served {
    connections: std::sync::atomic::AtomicU64,
    /// Most bytes written on one huge-manifest connection before the client hung up.
    most_huge_bytes: std::sync::atomic::AtomicU64,
}

/// Serve one connection of a registry that misbehaves as `lookup_behaviour` says for the
/// repository named in the request (`/v2/hostile/<n>/manifests/...`, n indexing
/// [`MISBEHAVIOURS`]). A HEAD is answered 200 without a digest for the body misbehaviours, so
/// the client goes on to GET the manifest.
async fn misbehave(mut stream: tokio::net::TcpStream, served: std::sync::Arc<Served>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    served.connections.fetch_add(1, Ordering::SeqCst);
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let head = text.starts_with("HEAD ");
    let index = text
        .split("/v2/hostile/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let behaviour = MISBEHAVIOURS[index % MISBEHAVIOURS.len()];
    let body_behaviour = matches!(
        behaviour,
        Misbehaviour::SlowBody
            | Misbehaviour::TruncatedBody
            | Misbehaviour::HugeManifest
            | Misbehaviour::HugeChunkedManifest
            | Misbehaviour::AbsurdLength
            | Misbehaviour::BadChunkSize
    );
    if head && body_behaviour {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n";
    let _ = match behaviour {
        Misbehaviour::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Misbehaviour::SlowHeaders => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ").await;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if stream.write_all(b"a").await.is_err() {
                    break Ok(());
                }
            }
        }
        Misbehaviour::SlowBody => {
            let _ = stream
                .write_all(format!("{ok}Content-Length: 100\r\n\r\n").as_bytes())
                .await;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if stream.write_all(b"{").await.is_err() {
                    break Ok(());
                }
            }
        }
        Misbehaviour::TruncatedHeaders => stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await,
        Misbehaviour::TruncatedBody => {
            stream
                .write_all(format!("{ok}Content-Length: 1000\r\n\r\n{{\"schemaV").as_bytes())
                .await
        }
        Misbehaviour::HugeManifest | Misbehaviour::HugeChunkedManifest => {
            let chunked = behaviour == Misbehaviour::HugeChunkedManifest;
            let headers = if chunked {
                format!("{ok}Transfer-Encoding: chunked\r\n\r\n")
            } else {
                format!("{ok}Content-Length: {}\r\n\r\n", 1u64 << 30)
            };
            let _ = stream.write_all(headers.as_bytes()).await;
            let zeros = vec![b'0'; 64 * 1024];
            let mut written: u64 = 0;
            while written < 1 << 30 {
                let sent = if chunked {
                    let mut frame = format!("{:x}\r\n", zeros.len()).into_bytes();
                    frame.extend_from_slice(&zeros);
                    frame.extend_from_slice(b"\r\n");
                    stream.write_all(&frame).await
                } else {
                    stream.write_all(&zeros).await
                };
                if sent.is_err() {
                    break;
                }
                written += zeros.len() as u64;
            }
            served.most_huge_bytes.fetch_max(written, Ordering::SeqCst);
            Ok(())
        }
        Misbehaviour::AbsurdLength => {
            stream
                .write_all(
                    format!("{ok}Content-Length: 18446744073709551615\r\n\r\n{{}}").as_bytes(),
                )
                .await
        }
        Misbehaviour::BadChunkSize => {
            stream
                .write_all(
                    format!("{ok}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx\r\n")
                        .as_bytes(),
                )
                .await
        }
        Misbehaviour::HugeHeader => {
            let mut answer = b"HTTP/1.1 200 OK\r\nX-Huge: ".to_vec();
            answer.extend(std::iter::repeat_n(b'h', 1 << 20));
            answer.extend_from_slice(b"\r\n\r\n");
            stream.write_all(&answer).await
        }
        Misbehaviour::Reset => Ok(()),
    };
}

/// The real client against a registry that answers slowly, cuts headers and bodies, and streams
/// manifests that never end. Every lookup ends in an error within its time bound (the request
/// timeout, for each request a lookup makes), the client stops reading a manifest at its size
/// cap, and nothing panics. Prints the request counts and the bounds observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_stays_bounded_against_slow_truncated_and_huge_answers() {
    use futures::StreamExt;
    use std::sync::atomic::Ordering;
    const ROUNDS: usize = 2;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let served = std::sync::Arc::new(Served::default());
    let accepting = served.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(misbehave(stream, accepting.clone()));
        }
    });
    let client = RegistryClient::new(RegistryClientConfig {
        insecure_hosts: [host.clone()].into(),
        request_timeout: TIMEOUT,
    })
    .unwrap();
    let lookups: Vec<(Misbehaviour, Duration, Result<Digest, crate::error::Error>)> =
        futures::stream::iter(0..MISBEHAVIOURS.len() * ROUNDS)
            .map(|n| {
                let (client, host) = (&client, &host);
                async move {
                    let behaviour = MISBEHAVIOURS[n % MISBEHAVIOURS.len()];
                    let image = ImageReference::parse(&format!(
                        "{host}/hostile/{}",
                        n % MISBEHAVIOURS.len()
                    ))
                    .unwrap();
                    let started = std::time::Instant::now();
                    let result = client.resolve_tag(&image, &format!("t{n}"), None).await;
                    (behaviour, started.elapsed(), result)
                }
            })
            .buffer_unordered(MISBEHAVIOURS.len())
            .collect()
            .await;
    server.abort();
    let slowest = lookups.iter().map(|(_, took, _)| *took).max().unwrap();
    for (behaviour, took, result) in &lookups {
        assert!(result.is_err(), "{behaviour:?} gave a digest: {result:?}");
        // HEAD then GET, each bounded by the request timeout.
        assert!(
            *took <= TIMEOUT * 2 + Duration::from_secs(1),
            "{behaviour:?} took {took:?}"
        );
    }
    let most_huge = served.most_huge_bytes.load(Ordering::SeqCst);
    println!(
        "hostile raw registry: {} lookups, {} connections served, {} requests counted by the client, slowest lookup {} ms, at most {} KiB of a 1 GiB manifest sent before the client hung up, 0 panics",
        lookups.len(),
        served.connections.load(Ordering::SeqCst),
        client.request_count(),
        slowest.as_millis(),
        most_huge / 1024
    );
    // The client reads at most MAX_MANIFEST_BYTES (4 MiB); what the kernel buffers is on top.
    assert!(most_huge > 0, "the huge manifests were streamed");
    assert!(
        most_huge < 32 * 1024 * 1024,
        "the client kept reading a huge manifest: {most_huge} bytes"
    );
}
