//! From `spec.image` to a pinned digest.
//!
//! Owns image references ([`reference`]), the registry protocol ([`client`], [`challenge`]),
//! registry credentials ([`credentials`]), the shared lookup cache ([`cache`], [`tag_resolver`]),
//! the per-agent pinning policy ([`pinner`]) and the registry webhook ([`webhook`],
//! [`notification`]).
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
pub mod reference;
pub mod tag_resolver;
pub mod webhook;

pub use cache::{CacheKey, DigestCache};
pub use client::{RegistryClient, RegistryClientConfig};
pub use credentials::{Credentials, DockerConfig};
pub use freshness::Freshness;
pub use notification::{PushedTag, pushed_tags};
pub use outcome::ImageOutcome;
pub use reference::{Digest, ImageReference, PinnedImage};
pub use tag_resolver::DigestResolver;
