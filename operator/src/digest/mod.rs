//! From `spec.image` to a pinned digest.
//!
//! | file | owns | talks to |
//! |---|---|---|
//! | [`reference`](mod@reference) | image references and digests (distribution grammar) | pure |
//! | [`outcome`] | what pinning comes to: pinned, kept, unresolved | pure |
//! | [`pinner`] | one agent's policy: `ImagePinner`, `RegistryPinner`, `DigestOnlyPinner` | — |
//! | [`freshness`] | every freshness rule: polling interval, pushes, manual trigger, cached errors, requeue | pure |
//! | [`tag_resolver`], [`cache`] | `repository:tag` → digest for all agents, one coalescing cache | — |
//! | [`client`], [`challenge`] | the registry's HTTP API and its auth challenges | registries |
//! | [`credentials`] | registry credentials in Secret formats | pure |
//! | [`pull_secrets`] | reading an agent's `imagePullSecrets` | API server |
//! | [`notification`], [`webhook`] | registry push notifications that trigger reconciles at once | HTTP |
//!
//! May depend on [`crate::resource`], [`crate::error`] and [`crate::metrics`]; never on
//! [`crate::reconcile`] or [`crate::runtime`].

pub mod cache;
pub mod challenge;
pub mod client;
pub mod credentials;
pub mod freshness;
pub mod notification;
pub mod outcome;
pub mod pinner;
pub mod pull_secrets;
pub mod reference;
pub mod tag_resolver;
pub mod webhook;

#[cfg(test)]
mod hostile;

pub use cache::{CacheKey, DigestCache};
pub use client::{RegistryClient, RegistryClientConfig};
pub use credentials::{Credentials, DockerConfig};
pub use freshness::Freshness;
pub use notification::{PushedTag, pushed_tags};
pub use outcome::ImageOutcome;
pub use reference::{Digest, ImageReference, PinnedImage};
pub use tag_resolver::TagResolver;
