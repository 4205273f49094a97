//! The seam between the controller and digest resolution.
//!
//! The controller asks an [`ImageResolver`] to turn `spec.image` into a [`PinnedImage`]. Until the
//! registry-backed resolver exists, [`DigestInSpec`] pins only images that already carry a
//! digest and refuses tags: a mutable tag is never deployed.

use futures::future::BoxFuture;

use crate::image::ImageReference;
use crate::resource::TradingAgent;
use crate::status::{Blocked, ImageOutcome, reasons};

/// Turns a TradingAgent's `spec.image` into a pinned image (or says why it cannot).
pub trait ImageResolver: Send + Sync + 'static {
    /// Resolve the image of `agent`.
    fn resolve<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, ImageOutcome>;
}

/// Pins images that carry a digest; leaves tag-only images unresolved (`DigestRequired`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestInSpec;

impl ImageResolver for DigestInSpec {
    fn resolve<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, ImageOutcome> {
        Box::pin(std::future::ready(pin_if_digest(&agent.spec.image)))
    }
}

/// The pure rule behind [`DigestInSpec`].
pub fn pin_if_digest(image: &str) -> ImageOutcome {
    match ImageReference::parse(image) {
        Err(e) => ImageOutcome::Unresolved(Blocked {
            reason: reasons::INVALID_IMAGE_REFERENCE,
            message: format!("spec.image {image:?}: {e}"),
        }),
        Ok(reference) => match reference.digest().cloned() {
            Some(digest) => ImageOutcome::Pinned(reference.pinned_to(digest)),
            None => ImageOutcome::Unresolved(Blocked {
                reason: reasons::DIGEST_REQUIRED,
                message: format!(
                    "spec.image {image:?} names a tag but no digest; this operator build does not resolve tags at a registry and never deploys a mutable tag: use {}@sha256:<digest>",
                    reference
                ),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_digest_is_used_as_given() {
        match pin_if_digest(&format!("registry.example.com/acme/app:stable@{DIGEST}")) {
            ImageOutcome::Pinned(p) => {
                assert_eq!(p.digest().as_str(), DIGEST);
                assert_eq!(
                    p.image(),
                    format!("registry.example.com/acme/app:stable@{DIGEST}")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_tag_is_never_deployed() {
        match pin_if_digest("registry.example.com/acme/app:stable") {
            ImageOutcome::Unresolved(b) => {
                assert_eq!(b.reason, "DigestRequired");
                assert!(b.message.contains("never deploys a mutable tag"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(pin_if_digest("app"), ImageOutcome::Unresolved(b) if b.reason == "DigestRequired")
        );
    }

    #[test]
    fn a_malformed_reference_says_why() {
        match pin_if_digest("Bad//Image") {
            ImageOutcome::Unresolved(b) => {
                assert_eq!(b.reason, "InvalidImageReference");
                assert!(b.message.starts_with("spec.image"));
            }
            other => panic!("{other:?}"),
        }
    }
}
