//! The seam between the controller and digest resolution.
//!
//! The controller asks an [`ImageResolver`] to turn `spec.image` into a pinned image.
//! [`RegistryResolver`] resolves tags at the registry (the operator's default);
//! [`DigestInSpec`] pins only images that already carry a digest and refuses tags. Either way a
//! mutable tag is never deployed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::freshness::{ManualTriggers, freshness};
pub use super::outcome::ImageOutcome;
use crate::digest::reference::{Digest, ImageReference, PinnedImage};
use crate::digest::webhook::Triggers;
use crate::digest::{Credentials, DigestResolver, DockerConfig};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::resource::{TradingAgent, UpdateMode};

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
    /// The `resolve-now` values already seen.
    manual: ManualTriggers,
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
            manual: ManualTriggers::default(),
        }
    }

    /// Credentials for `reference`'s registry from the agent's pull secrets (the first secret that
    /// names the registry wins, as for the kubelet).
    async fn credentials(
        &self,
        agent: &TradingAgent,
        reference: &ImageReference,
    ) -> Result<Option<Credentials>, Error> {
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
                    return Err(Error::PullSecretNotFound {
                        namespace: ns,
                        name: name.clone(),
                    });
                }
                Err(e) => {
                    return Err(Error::PullSecretUnreadable {
                        name: name.clone(),
                        detail: e.to_string(),
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
                .map_err(|e| Error::PullSecretInvalid {
                    name: name.clone(),
                    detail: e.to_string(),
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
            self.manual.is_new(agent).then(Instant::now),
            Instant::now(),
        );
        let result = self
            .digests
            .resolve(&reference, &tag, credentials.as_ref(), freshness)
            .await;
        self.metrics
            .observe_registry_requests(self.digests.request_count());
        settle(&reference, current, result)
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

impl ImageResolver for RegistryResolver {
    fn resolve<'a>(&'a self, agent: &'a TradingAgent) -> BoxFuture<'a, ImageOutcome> {
        Box::pin(async move {
            let (outcome, label) = self.resolve_tag(agent).await;
            self.metrics.record_resolution(label);
            outcome
        })
    }
}

/// The pure rule behind [`DigestInSpec`].
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
