//! Pinning one TradingAgent's image: the seam between the reconcile and the registries.
//!
//! Three levels, each named for what it turns into what:
//! - an [`ImagePinner`] turns an agent's `spec.image` into an [`ImageOutcome`] (pinned, kept, or
//!   unresolved and why), with the agent's policy: `mode: Pin`, pull secrets, freshness, keeping
//!   the pinned digest when the registry fails. [`RegistryPinner`] resolves tags (the operator's
//!   default); [`DigestOnlyPinner`] accepts only digests written in `spec.image`;
//! - a [`TagResolver`] turns `repository:tag` into a digest for every agent at once, through one
//!   coalescing cache;
//! - the [`RegistryClient`](super::client::RegistryClient) speaks the registry's HTTP API.
//!
//! Either way a mutable tag is never deployed.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::freshness::{
    AfterNotifiedPush, Freshness, ManualTriggers, NOTIFIED_PUSH_RETRIES, Push, after_notified_push,
    freshness,
};
pub use super::outcome::ImageOutcome;
use super::pull_secrets;
use crate::digest::TagResolver;
use crate::digest::reference::{Digest, ImageReference, PinnedImage};
use crate::digest::webhook::Triggers;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::resource::{TradingAgent, UpdateMode};

/// Turns a TradingAgent's `spec.image` into a pinned image (or says why it cannot).
pub trait ImagePinner: Send + Sync + 'static {
    /// What `agent`'s image is pinned to.
    fn pin<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, Pinning>;
}

/// What an agent's image is pinned to, and how old the registry's answer behind it is.
#[derive(Debug)]
pub struct Pinning {
    /// Pinned, kept, or unresolved and why.
    pub outcome: ImageOutcome,
    /// When the registry lookup that answered with a digest started (a cached answer is as old as
    /// its lookup); `None` when no registry answered with one. A poller comes back when this
    /// answer goes stale ([`super::freshness::until_stale`]), not a whole interval after it
    /// reused an answer that was already old.
    pub answered_at: Option<Instant>,
}

/// Pins images that carry a digest; leaves tag-only images unresolved (`DigestRequired`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestOnlyPinner;

impl ImagePinner for DigestOnlyPinner {
    fn pin<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, Pinning> {
        Box::pin(std::future::ready(Pinning {
            outcome: pin_if_digest(&agent.spec.image),
            answered_at: None,
        }))
    }
}

/// Resolves tags at the registry through one shared [`TagResolver`] (one cache, coalesced
/// lookups), with credentials from the agent's `imagePullSecrets`.
pub struct RegistryPinner {
    client: Client,
    tags: TagResolver,
    triggers: Arc<Triggers>,
    metrics: Metrics,
    /// The `resolve-now` values already seen.
    manual: ManualTriggers,
}

impl RegistryPinner {
    /// A pinner reading pull secrets with `client`, asking registries through `tags`, and
    /// honouring the pushes recorded in `triggers`.
    pub fn new(
        client: Client,
        tags: TagResolver,
        triggers: Arc<Triggers>,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            tags,
            triggers,
            metrics,
            manual: ManualTriggers::default(),
        }
    }

    /// The outcome, the metrics label of how it came about, and when the lookup that answered
    /// started.
    async fn resolve_tag(
        &self,
        agent: &TradingAgent,
    ) -> (ImageOutcome, &'static str, Option<Instant>) {
        let reference = match ImageReference::parse(&agent.spec.image) {
            Ok(reference) => reference,
            Err(_) => return (pin_if_digest(&agent.spec.image), "unresolved", None),
        };
        let Some(tag) = reference.tag_to_resolve().map(str::to_owned) else {
            return (pin_if_digest(&agent.spec.image), "given", None);
        };
        let current = current_pin(agent, &reference);
        if agent.spec.image_update.mode == UpdateMode::Pin
            && let Some(pinned) = current.clone()
        {
            return (ImageOutcome::Pinned(pinned), "pin_mode", None);
        }
        let credentials = match pull_secrets::credentials(&self.client, agent, &reference).await {
            Ok(credentials) => credentials,
            Err(problem) => {
                let (outcome, label) = settle(&reference, current, Err(problem));
                return (outcome, label, None);
            }
        };
        let freshness = freshness(
            agent.spec.image_update.poll_interval().ok().flatten(),
            self.triggers.pushed_at(reference.repository(), &tag),
            self.manual.is_new(agent).then(Instant::now),
            Instant::now(),
        );
        // The lookups after a notified push below start later still: dating the answer by this
        // one only brings the next poll forward.
        let (mut result, answered_at) = self
            .tags
            .resolve_with_any_dated(&reference, &tag, &credentials, freshness)
            .await;
        // Until the registry has answered what the last notification named: once it has, a
        // different answer is the tag moving on, and waiting for the notified digest would
        // report a lagging registry that is not (a notified push, then a silent one).
        if let Some(push) = self.triggers.last_push(reference.repository(), &tag)
            && !push.seen
            && let Some(expected) = push.expected.clone()
        {
            result = self
                .await_notified_push(
                    &reference,
                    &tag,
                    &credentials,
                    &current,
                    &expected,
                    &push,
                    result,
                )
                .await;
        }
        self.metrics
            .observe_registry_requests(self.tags.request_count());
        if let Ok(digest) = &result {
            let queued = self.triggers.answered(
                &ObjectRef::from_obj(agent),
                &reference,
                &tag,
                digest,
                Instant::now(),
            );
            if queued > 0 {
                info!(
                    image = reference.name(), tag, %digest, queued,
                    "the tag moved without a notification: every TradingAgent following it is reconciled now"
                );
            }
        }
        let answered_at = result.is_ok().then_some(answered_at);
        let (outcome, label) = settle(&reference, current, result);
        (outcome, label, answered_at)
    }

    /// After a push notification named `expected`: look the tag up again, with the bounded
    /// back-off of [`after_notified_push`], while the registry still answers the digest pinned
    /// before (CNCF Distribution notifies before it moves the tag in storage). When it never
    /// moves, the registry's answer stands (the notification alone is never trusted); if that
    /// answer is the digest already pinned, the status says why nothing moved, until the tag
    /// moves or another push is notified (later lookups do not wait again).
    #[allow(clippy::too_many_arguments)]
    async fn await_notified_push(
        &self,
        reference: &ImageReference,
        tag: &str,
        credentials: &[crate::digest::Credentials],
        current: &Option<PinnedImage>,
        expected: &Digest,
        push: &Push,
        mut result: Result<Digest, Error>,
    ) -> Result<Digest, Error> {
        let before = current.as_ref().map(PinnedImage::digest);
        let mut attempt = if push.waited_out {
            NOTIFIED_PUSH_RETRIES
        } else {
            0
        };
        let mut waited = std::time::Duration::ZERO;
        loop {
            let Ok(answered) = &result else {
                return result;
            };
            match after_notified_push(expected, before, answered, attempt) {
                AfterNotifiedPush::Converged => {
                    if attempt > 0 {
                        info!(
                            repository = reference.repository(), tag, digest = %answered,
                            lookups = attempt + 1, waited_ms = waited.as_millis() as u64,
                            "the registry moved the notified tag after the notification"
                        );
                    }
                    if answered == expected {
                        self.triggers.seen(reference.repository(), tag, push.at);
                    }
                    return result;
                }
                AfterNotifiedPush::LookAgainIn(wait) => {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    attempt += 1;
                    result = self
                        .tags
                        .resolve_with_any(
                            reference,
                            tag,
                            credentials,
                            Freshness::StartedAfter(Instant::now()),
                        )
                        .await;
                }
                AfterNotifiedPush::GaveUp => {
                    let problem = Error::NotifiedPushNotSeen {
                        repository: reference.repository().to_owned(),
                        tag: tag.to_owned(),
                        expected: expected.to_string(),
                        answered: answered.to_string(),
                    };
                    if !push.waited_out {
                        self.triggers
                            .waited_out(reference.repository(), tag, push.at);
                        warn!(
                            error = %problem, waited_ms = waited.as_millis() as u64,
                            "registry notification not confirmed by the registry"
                        );
                    }
                    return if Some(answered) == before {
                        Err(problem)
                    } else {
                        result
                    };
                }
            }
        }
    }
}

/// The digest pinned for `agent`'s current `spec.image` (none after the reference changed).
pub fn current_pin(agent: &TradingAgent, reference: &ImageReference) -> Option<PinnedImage> {
    let image = agent.status.as_ref()?.image.as_ref()?;
    if image.reference != agent.spec.image {
        return None;
    }
    let digest = Digest::parse(image.digest.as_deref()?).ok()?;
    Some(reference.pinned_to(digest))
}

/// The outcome of a resolution (and its metric label): a digest is pinned; a failure keeps the
/// digest already pinned for this reference, or leaves nothing to deploy when there is none.
pub fn settle(
    reference: &ImageReference,
    current: Option<PinnedImage>,
    result: Result<Digest, Error>,
) -> (ImageOutcome, &'static str) {
    match (result, current) {
        (Ok(digest), _) => (
            ImageOutcome::Pinned(reference.pinned_to(digest)),
            "resolved",
        ),
        (Err(problem), Some(pinned)) => (ImageOutcome::Kept { pinned, problem }, "kept"),
        (Err(problem), None) => (ImageOutcome::Unresolved(problem), "unresolved"),
    }
}

impl ImagePinner for RegistryPinner {
    fn pin<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, Pinning> {
        Box::pin(async move {
            let (outcome, label, answered_at) = self.resolve_tag(agent).await;
            self.metrics.record_resolution(label);
            Pinning {
                outcome,
                answered_at,
            }
        })
    }
}

/// The pure rule behind [`DigestOnlyPinner`].
pub fn pin_if_digest(image: &str) -> ImageOutcome {
    match ImageReference::parse(image) {
        Err(e) => ImageOutcome::Unresolved(Error::InvalidImageReference {
            image: image.to_owned(),
            detail: e.to_string(),
        }),
        Ok(reference) => match reference.digest().cloned() {
            Some(digest) => ImageOutcome::Pinned(reference.pinned_to(digest)),
            None => ImageOutcome::Unresolved(Error::DigestRequired {
                image: image.to_owned(),
                reference: reference.to_string(),
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
                assert_eq!(b.reason(), "DigestRequired");
                assert!(b.to_string().contains("never deploys a mutable tag"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(pin_if_digest("app"), ImageOutcome::Unresolved(b) if b.reason() == "DigestRequired")
        );
    }

    #[test]
    fn a_failure_keeps_the_pinned_digest_or_deploys_nothing() {
        let reference = ImageReference::parse("registry.example.com/acme/app:stable").unwrap();
        let digest = crate::digest::reference::Digest::parse(DIGEST).unwrap();
        let down = || Error::RegistryUnreachable {
            host: "registry.example.com".into(),
            detail: "connection refused".into(),
        };
        let pinned = reference.pinned_to(digest.clone());
        assert_eq!(
            settle(&reference, None, Ok(digest.clone())),
            (ImageOutcome::Pinned(pinned.clone()), "resolved")
        );
        assert_eq!(
            settle(&reference, Some(pinned.clone()), Err(down())),
            (
                ImageOutcome::Kept {
                    pinned,
                    problem: down()
                },
                "kept"
            )
        );
        assert_eq!(
            settle(&reference, None, Err(down())),
            (ImageOutcome::Unresolved(down()), "unresolved")
        );
    }

    #[test]
    fn a_malformed_reference_says_why() {
        match pin_if_digest("Bad//Image") {
            ImageOutcome::Unresolved(b) => {
                assert_eq!(b.reason(), "InvalidImageReference");
                assert!(b.to_string().starts_with("spec.image"));
            }
            other => panic!("{other:?}"),
        }
    }
}
