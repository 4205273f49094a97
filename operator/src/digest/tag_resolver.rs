//! Digest resolution at the registry: the OCI distribution client ([`client`]), credentials from
//! `imagePullSecrets` ([`credentials`]), auth challenges ([`challenge`]) and the shared, coalescing
//! cache ([`cache`]) that keeps registry traffic proportional to distinct images, not to agents.

use super::cache::{CacheKey, DigestCache};
use super::client::RegistryClient;
use super::credentials::Credentials;
use super::freshness::Freshness;
use crate::digest::reference::{Digest, ImageReference};
use crate::error::Error;

/// Resolves image tags to digests through one [`RegistryClient`] and one [`DigestCache`].
pub struct DigestResolver {
    client: RegistryClient,
    cache: DigestCache,
}

impl DigestResolver {
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
