//! `repository:tag` → digest for every TradingAgent at once: one [`RegistryClient`] behind one
//! shared, coalescing [`DigestCache`], so registry traffic grows with distinct images, not with
//! agents. How fresh an answer must be is the caller's [`Freshness`].

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
        let key = CacheKey {
            registry: image.registry().to_owned(),
            repository: image.repository().to_owned(),
            tag: tag.to_owned(),
            credentials: credentials.cloned(),
        };
        self.cache
            .get_or_resolve(key, freshness.not_before(), || {
                self.client.resolve_tag(image, tag, credentials)
            })
            .await
    }

    /// HTTP requests sent to registries so far (for metrics and tests).
    pub fn request_count(&self) -> u64 {
        self.client.request_count()
    }
}
