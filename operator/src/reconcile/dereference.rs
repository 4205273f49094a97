//! Stage 1, dereference (talks to the API server): read what a TradingAgent points at. Today that
//! is the database Secret, which must exist and hold its key before anything is deployed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, GetParams};

use super::Context;
use crate::error::{Error, Result};
use crate::resource::TradingAgent;

/// How long a database Secret found holding its key is trusted before it is read again. Every
/// change of a child reconciles its TradingAgent; without this, each of those reads the Secret
/// (1,000 agents polling every 10 s would be 100 reads a second). The Secret is not watched (that
/// would take list rights on every Secret), so a deletion was only ever noticed at the next
/// reconciliation; this bounds that delay for busy agents too.
pub const SECRET_RECHECK: Duration = Duration::from_secs(30);

/// What a TradingAgent points at, as found. A problem here is the user's to fix: it is reported
/// in the status (`Ready=False` with [`Error::reason`]) and nothing is deployed until it is gone.
#[derive(Debug, Default)]
pub struct Dereferenced {
    /// Why the database Secret cannot be used, if it cannot.
    pub database_secret: Option<Error>,
}

/// Read what `agent` points at. `Err` only when the API server could not answer.
pub async fn dereference(ctx: &Context, ns: &str, agent: &TradingAgent) -> Result<Dereferenced> {
    Ok(Dereferenced {
        database_secret: database_secret(ctx, ns, agent).await?,
    })
}

/// The database Secret must exist and hold the key. A Secret found holding the key is trusted for
/// [`SECRET_RECHECK`]; a missing one is read again on every retry, so it is noticed as soon as it
/// is created.
async fn database_secret(ctx: &Context, ns: &str, agent: &TradingAgent) -> Result<Option<Error>> {
    let reference = &agent.spec.database.secret_ref;
    let cache_key = SecretKeyRef {
        namespace: ns.to_owned(),
        name: reference.name.clone(),
        key: reference.key.clone(),
    };
    if ctx.database_secrets.is_trusted(&cache_key, Instant::now()) {
        return Ok(None);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // resourceVersion=0: served from the API server's watch cache, not a quorum read of etcd.
    let secret = match secrets.get_with(&reference.name, &GetParams::any()).await {
        Ok(secret) => Some(secret),
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        // Any other answer of the API server (a 403, say) is reported in the status like a
        // missing Secret, with the API server's message; transport errors are retried.
        Err(e @ kube::Error::Api(_)) => return Ok(Some(unreadable(ns, &reference.name, e))),
        Err(e) => return Err(e.into()),
    };
    let problem = match secret {
        None => Some(Error::SecretNotFound {
            namespace: ns.to_owned(),
            name: reference.name.clone(),
            key: reference.key.clone(),
        }),
        Some(secret) => {
            let has_key = secret
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(&reference.key))
                || secret
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&reference.key));
            (!has_key).then(|| Error::SecretKeyMissing {
                namespace: ns.to_owned(),
                name: reference.name.clone(),
                key: reference.key.clone(),
            })
        }
    };
    if problem.is_none() {
        ctx.database_secrets.trust(cache_key, Instant::now());
    }
    Ok(problem)
}

/// The problem reported for a Secret the API server refused to hand over.
fn unreadable(ns: &str, name: &str, error: kube::Error) -> Error {
    let message = match Error::from(error) {
        Error::Kube { detail, .. } => detail,
        other => other.to_string(),
    };
    Error::SecretUnreadable {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        message,
    }
}

/// A key of a Secret in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretKeyRef {
    /// Namespace of the Secret (the TradingAgent's).
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// The key it must hold.
    pub key: String,
}

/// Database Secrets found holding their key, and when: each is trusted for [`SECRET_RECHECK`].
#[derive(Debug, Default)]
pub struct TrustedSecrets {
    found: Mutex<HashMap<SecretKeyRef, Instant>>,
}

impl TrustedSecrets {
    /// Whether `key` was found less than [`SECRET_RECHECK`] before `now` (forgetting older finds).
    pub fn is_trusted(&self, key: &SecretKeyRef, now: Instant) -> bool {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.retain(|_, at| now.saturating_duration_since(*at) < SECRET_RECHECK);
        found.contains_key(key)
    }

    /// Remember that `key` was found holding its key at `at`.
    pub fn trust(&self, key: SecretKeyRef, at: Instant) {
        self.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SecretKeyRef {
        SecretKeyRef {
            namespace: "desk".into(),
            name: name.into(),
            key: "url".into(),
        }
    }

    #[test]
    fn a_found_secret_is_trusted_for_the_recheck_period_only() {
        let trusted = TrustedSecrets::default();
        let t0 = Instant::now();
        assert!(!trusted.is_trusted(&key("db"), t0), "never read: read it");
        trusted.trust(key("db"), t0);
        assert!(trusted.is_trusted(&key("db"), t0 + SECRET_RECHECK / 2));
        assert!(!trusted.is_trusted(&key("other"), t0), "per Secret and key");
        assert!(
            !trusted.is_trusted(&key("db"), t0 + SECRET_RECHECK),
            "read again after the recheck period"
        );
        assert!(
            !trusted.is_trusted(&key("db"), t0),
            "an expired find is forgotten, not revived"
        );
    }
}
