//! The seam between the controller and digest resolution.
//!
//! The controller asks an [`ImageResolver`] to turn `spec.image` into a pinned image.
//! [`RegistryResolver`] resolves tags at the registry (the operator's default);
//! [`DigestInSpec`] pins only images that already carry a digest and refuses tags. Either way a
//! mutable tag is never deployed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::digest::reference::{ImageReference, PinnedImage};
use crate::digest::webhook::Triggers;
use crate::digest::{Credentials, DigestResolver, DockerConfig, Freshness};
use crate::metrics::Metrics;
use crate::reconcile::rollback::current_pin;
use crate::reconcile::status::{Blocked, ImageOutcome, reasons};
use crate::resource::{TradingAgent, UpdateMode};

/// The annotation that asks for a fresh resolution: set it to any new value
/// (`kubectl annotate ta alpha tradingagents.dev/resolve-now="$(date +%s)" --overwrite`).
pub const RESOLVE_NOW_ANNOTATION: &str = "tradingagents.dev/resolve-now";

/// How many `resolve-now` values are remembered; beyond that the memory starts afresh (costing at
/// most one extra lookup per annotated TradingAgent).
const MANUAL_TRIGGERS_REMEMBERED: usize = 10_000;

/// How old a cached answer may be when polling is off (`interval: 0s`): the resync period.
pub const UNPOLLED_MAX_AGE: Duration = crate::reconcile::RESYNC_INTERVAL;

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

/// Resolves tags at the registry through one shared [`DigestResolver`] (one cache, coalesced
/// lookups), with credentials from the agent's `imagePullSecrets`.
pub struct RegistryResolver {
    client: Client,
    digests: DigestResolver,
    triggers: Arc<Triggers>,
    metrics: Metrics,
    /// The last `resolve-now` annotation value seen, per object UID.
    manual: Mutex<HashMap<String, String>>,
}

impl RegistryResolver {
    /// A resolver reading pull secrets with `client`, asking registries through `digests`, and
    /// honouring the pushes recorded in `triggers`.
    pub fn new(
        client: Client,
        digests: DigestResolver,
        triggers: Arc<Triggers>,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            digests,
            triggers,
            metrics,
            manual: Mutex::default(),
        }
    }

    /// Whether `agent` carries a `resolve-now` value not seen before (remembered from now on).
    fn manual_trigger(&self, agent: &TradingAgent) -> bool {
        let Some(value) = agent.annotations().get(RESOLVE_NOW_ANNOTATION) else {
            return false;
        };
        let key = agent.uid().unwrap_or_else(|| agent.name_any());
        let mut seen = self.manual.lock().expect("manual trigger lock");
        if seen.get(&key) == Some(value) {
            return false;
        }
        if seen.len() >= MANUAL_TRIGGERS_REMEMBERED {
            seen.clear();
        }
        seen.insert(key, value.clone());
        true
    }

    /// Credentials for `reference`'s registry from the agent's pull secrets (the first secret that
    /// names the registry wins, as for the kubelet).
    async fn credentials(
        &self,
        agent: &TradingAgent,
        reference: &ImageReference,
    ) -> Result<Option<Credentials>, Blocked> {
        if agent.spec.image_pull_secrets.is_empty() {
            return Ok(None);
        }
        let ns = agent.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut config = DockerConfig::default();
        for name in agent.spec.image_pull_secrets.iter().map(|s| &s.name) {
            let secret = match secrets.get_opt(name).await {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    return Err(Blocked {
                        reason: reasons::PULL_SECRET_NOT_FOUND,
                        message: format!(
                            "Secret {name:?} named in spec.imagePullSecrets does not exist in namespace {ns:?}"
                        ),
                    });
                }
                Err(e) => {
                    return Err(Blocked {
                        reason: reasons::PULL_SECRET_UNREADABLE,
                        message: format!(
                            "Secret {name:?} named in spec.imagePullSecrets could not be read: {e}"
                        ),
                    });
                }
            };
            let data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            let parsed = DockerConfig::from_secret(secret.type_.as_deref().unwrap_or(""), &data)
                .map_err(|e| Blocked {
                    reason: reasons::PULL_SECRET_INVALID,
                    message: format!("Secret {name:?} named in spec.imagePullSecrets: {e}"),
                })?;
            config.extend(parsed);
        }
        Ok(config.credentials_for(reference.registry()).cloned())
    }

    async fn resolve_tag(&self, agent: &TradingAgent) -> (ImageOutcome, &'static str) {
        let reference = match ImageReference::parse(&agent.spec.image) {
            Ok(reference) => reference,
            Err(_) => return (pin_if_digest(&agent.spec.image), "unresolved"),
        };
        let Some(tag) = reference.tag_to_resolve().map(str::to_owned) else {
            return (pin_if_digest(&agent.spec.image), "given");
        };
        let current = current_pin(agent, &reference);
        if agent.spec.image_update.mode == UpdateMode::Pin
            && let Some(pinned) = current.clone()
        {
            return (ImageOutcome::Pinned(pinned), "pin_mode");
        }
        let credentials = match self.credentials(agent, &reference).await {
            Ok(credentials) => credentials,
            Err(problem) => return settle(&reference, current, Err(problem)),
        };
        let freshness = freshness(
            agent.spec.image_update.poll_interval().ok().flatten(),
            self.triggers.pushed_at(reference.repository(), &tag),
            self.manual_trigger(agent).then(Instant::now),
            Instant::now(),
        );
        let result = self
            .digests
            .resolve(&reference, &tag, credentials.as_ref(), freshness)
            .await;
        self.metrics
            .observe_registry_requests(self.digests.request_count());
        let result = result.map_err(|e| Blocked {
            reason: e.reason(),
            message: e.to_string(),
        });
        settle(&reference, current, result)
    }
}

/// The outcome of a resolution (and its metric label): a digest is pinned; a failure keeps the
/// digest already pinned for this reference, or leaves nothing to deploy when there is none.
pub fn settle(
    reference: &ImageReference,
    current: Option<PinnedImage>,
    result: Result<crate::digest::reference::Digest, Blocked>,
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

impl ImageResolver for RegistryResolver {
    fn resolve<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, ImageOutcome> {
        Box::pin(async move {
            let (outcome, label) = self.resolve_tag(agent).await;
            self.metrics.record_resolution(label);
            outcome
        })
    }
}

/// How fresh a resolution must be: no older than the polling interval (or the resync period when
/// polling is off), and started after the last push notification of the tag and after a manual
/// trigger.
pub fn freshness(
    interval: Option<Duration>,
    pushed_at: Option<Instant>,
    manual_at: Option<Instant>,
    now: Instant,
) -> Freshness {
    let max_age = interval.unwrap_or(UNPOLLED_MAX_AGE);
    let not_before = [now.checked_sub(max_age), pushed_at, manual_at]
        .into_iter()
        .flatten()
        .max();
    match not_before {
        Some(at) => Freshness::StartedAfter(at),
        None => Freshness::MaxAge(max_age),
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
    fn freshness_is_the_strictest_of_interval_push_and_manual_trigger() {
        let now = Instant::now() + Duration::from_secs(3600);
        let at = |f: Freshness| match f {
            Freshness::StartedAfter(t) => now.duration_since(t),
            Freshness::MaxAge(_) => panic!("expected a bound"),
        };
        assert_eq!(
            at(freshness(Some(Duration::from_secs(2)), None, None, now)),
            Duration::from_secs(2)
        );
        assert_eq!(at(freshness(None, None, None, now)), UNPOLLED_MAX_AGE);
        let pushed = now - Duration::from_millis(100);
        assert_eq!(
            at(freshness(
                Some(Duration::from_secs(2)),
                Some(pushed),
                None,
                now
            )),
            Duration::from_millis(100)
        );
        // An old push does not loosen the interval.
        let old = now - Duration::from_secs(60);
        assert_eq!(
            at(freshness(
                Some(Duration::from_secs(2)),
                Some(old),
                None,
                now
            )),
            Duration::from_secs(2)
        );
        assert_eq!(
            at(freshness(None, Some(old), Some(now), now)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_failure_keeps_the_pinned_digest_or_deploys_nothing() {
        let reference = ImageReference::parse("registry.example.com/acme/app:stable").unwrap();
        let digest = crate::digest::reference::Digest::parse(DIGEST).unwrap();
        let down = || Blocked {
            reason: "RegistryUnreachable",
            message: "registry registry.example.com unreachable: connection refused".into(),
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
                assert_eq!(b.reason, "InvalidImageReference");
                assert!(b.message.starts_with("spec.image"));
            }
            other => panic!("{other:?}"),
        }
    }
}
