//! `repository:tag` → digest for every TradingAgent at once: one [`RegistryClient`] behind one
//! shared, coalescing [`DigestCache`], so registry traffic grows with distinct images, not with
//! agents. How fresh an answer must be is the caller's [`Freshness`].

use std::time::Instant;

use super::cache::{CacheKey, DigestCache};
use super::client::RegistryClient;
use super::credentials::Credentials;
use super::freshness::Freshness;
use crate::digest::reference::{Digest, ImageReference};
use crate::error::Error;

/// Resolves image tags to digests through one [`RegistryClient`] and one [`DigestCache`].
pub struct TagResolver {
    client: RegistryClient,
    cache: DigestCache,
}

impl TagResolver {
    /// A resolver asking registries through `client`, with an empty cache.
    pub fn new(client: RegistryClient) -> Self {
        Self {
            client,
            cache: DigestCache::default(),
        }
    }

    /// The digest `tag` of `image` points at, at most as stale as `freshness` allows.
    pub async fn resolve(
        &self,
        image: &ImageReference,
        tag: &str,
        credentials: Option<&Credentials>,
        freshness: Freshness,
    ) -> Result<Digest, Error> {
        self.resolve_dated(image, tag, credentials, freshness)
            .await
            .0
    }

    /// As [`Self::resolve`], with when the lookup that answered started.
    pub async fn resolve_dated(
        &self,
        image: &ImageReference,
        tag: &str,
        credentials: Option<&Credentials>,
        freshness: Freshness,
    ) -> (Result<Digest, Error>, Instant) {
        let key = CacheKey {
            registry: image.registry().to_owned(),
            repository: image.repository().to_owned(),
            tag: tag.to_owned(),
            credentials: credentials.cloned(),
        };
        self.cache
            .get_or_resolve_dated(key, freshness.not_before(), || {
                self.client.resolve_tag(image, tag, credentials)
            })
            .await
    }

    /// As [`Self::resolve`] with each of `candidates` in turn until the registry accepts one, as
    /// the kubelet tries every matching credential (none: anonymous). The last refusal is the
    /// answer when none is accepted.
    pub async fn resolve_with_any(
        &self,
        image: &ImageReference,
        tag: &str,
        candidates: &[Credentials],
        freshness: Freshness,
    ) -> Result<Digest, Error> {
        self.resolve_with_any_dated(image, tag, candidates, freshness)
            .await
            .0
    }

    /// As [`Self::resolve_with_any`], with when the lookup that answered started.
    pub async fn resolve_with_any_dated(
        &self,
        image: &ImageReference,
        tag: &str,
        candidates: &[Credentials],
        freshness: Freshness,
    ) -> (Result<Digest, Error>, Instant) {
        let Some((last, others)) = candidates.split_last() else {
            return self.resolve_dated(image, tag, None, freshness).await;
        };
        for credentials in others {
            match self
                .resolve_dated(image, tag, Some(credentials), freshness)
                .await
            {
                (Err(Error::RegistryUnauthorized { .. }), _) => continue,
                answer => return answer,
            }
        }
        self.resolve_dated(image, tag, Some(last), freshness).await
    }

    /// HTTP requests sent to registries so far (for metrics and tests).
    pub fn request_count(&self) -> u64 {
        self.client.request_count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;
    use crate::digest::cache::MAX_ENTRIES;
    use crate::digest::client::RegistryClientConfig;
    use crate::digest::client::loopback::{LoopbackRegistry, answer};

    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Memory stays bounded however many distinct tags are resolved: 100,000 tags, each with its
    /// own pull-secret credentials, through the real client against a loopback registry. Prints
    /// the resident set size; ignored by default (about a minute):
    /// `cargo test -p trading-agent-operator --lib -- --ignored rss_with_100k --nocapture`.
    /// The kubelet tries every matching credential: a refused one is followed by the next.
    #[tokio::test]
    async fn the_next_matching_credential_is_tried_after_a_refusal() {
        use base64::Engine;
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("second:right")
        );
        let digest = format!("sha256:{}", "cd".repeat(32));
        let expected = digest.clone();
        let registry = LoopbackRegistry::start(move |seen, _| {
            if seen.authorization.as_deref() == Some(good.as_str()) {
                answer(200, &[("docker-content-digest", &digest)], "")
            } else {
                answer(401, &[("www-authenticate", r#"Basic realm="r""#)], "")
            }
        })
        .await;
        let resolver = TagResolver::new(
            RegistryClient::new(RegistryClientConfig {
                insecure_hosts: [registry.host()].into(),
                request_timeout: Duration::from_secs(5),
            })
            .unwrap(),
        );
        let image = ImageReference::parse(&format!("{}/acme/app", registry.host())).unwrap();
        let fresh = Freshness::MaxAge(Duration::ZERO);
        let first = Credentials::basic("first", "wrong");
        let second = Credentials::basic("second", "right");
        let resolved = resolver
            .resolve_with_any(&image, "v1", &[first.clone(), second], fresh)
            .await;
        assert_eq!(resolved.map(|d| d.as_str().to_owned()), Ok(expected));
        match resolver
            .resolve_with_any(&image, "v1", &[first], fresh)
            .await
        {
            Err(Error::RegistryUnauthorized { detail, .. }) => {
                assert!(detail.contains("first"), "{detail}")
            }
            other => panic!("expected RegistryUnauthorized, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "measurement: 100,000 HTTP requests"]
    async fn rss_with_100k_distinct_tags() {
        const TAGS: usize = 100_000;
        let digest = format!("sha256:{}", "ab".repeat(32));
        let registry = LoopbackRegistry::start(move |_, _| {
            answer(200, &[("docker-content-digest", &digest)], "")
        })
        .await;
        let client = RegistryClient::new(RegistryClientConfig {
            insecure_hosts: [registry.host()].into(),
            request_timeout: Duration::from_secs(10),
        })
        .unwrap();
        let resolver = TagResolver::new(client);
        let image = ImageReference::parse(&format!("{}/acme/app", registry.host())).unwrap();
        let before = rss_kib();
        let mut peak = before;
        let mut done = 0;
        let mut lookups = futures::stream::iter(0..TAGS)
            .map(|n| {
                let (resolver, image) = (&resolver, &image);
                async move {
                    let credentials = Credentials::basic(
                        format!("robot-{n}"),
                        format!("rotated-password-{n:032}"),
                    );
                    resolver
                        .resolve(
                            image,
                            &format!("build-{n}"),
                            Some(&credentials),
                            Freshness::MaxAge(Duration::from_secs(300)),
                        )
                        .await
                }
            })
            .buffer_unordered(32);
        while let Some(result) = lookups.next().await {
            result.unwrap();
            done += 1;
            if done % 10_000 == 0 {
                peak = peak.max(rss_kib());
            }
        }
        drop(lookups);
        let after = rss_kib();
        let cached = resolver.cache.len();
        println!(
            "{TAGS} distinct tags resolved ({} requests): RSS {before} KiB before, {after} KiB after, peak {peak} KiB; {cached} cache entries (cap {MAX_ENTRIES})",
            resolver.request_count()
        );
        assert!(cached <= MAX_ENTRIES);
        assert_eq!(resolver.request_count(), TAGS as u64);
    }
}
