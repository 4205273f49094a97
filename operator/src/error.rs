//! The crate's one error type. Every failure is a variant of [`Error`], and what the rest of
//! the operator needs from a failure is derived here, once:
//!
//! - [`Error::metric_label`] — the `reason` label of `reconcile_failures_total` (snake_case);
//! - [`Error::reason`] — the status condition's reason (CamelCase, part of the API) for the
//!   failures a user must fix; [`Error::condition_message`] — the condition's message, naming the
//!   field to fix.
//!
//! `Error` is `Clone + Eq`: one registry answer, failures included, is cached and shared by every
//! TradingAgent waiting for it, and kept in `ImageOutcome`. Errors of other crates are therefore
//! kept as their message (and, for the Kubernetes API, the HTTP status the labels need).
//!
//! A leaf: it depends on [`crate::resource`] (the condition reasons) and nothing else here.

use std::time::Duration;

use crate::resource::conditions::reasons;

/// Everything that can go wrong in the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ---- Image references and digests (parsing).
    /// Nothing to parse.
    #[error("image reference is empty")]
    ReferenceEmpty,
    /// The registry part is not a host name, IPv4/IPv6 address or port.
    #[error("invalid registry {0:?}: expected a host name or address with an optional :port")]
    ReferenceInvalidDomain(String),
    /// A repository path segment breaks the grammar.
    #[error(
        "invalid repository path segment {0:?}: lower-case letters and digits separated by '.', '_', '__' or dashes"
    )]
    ReferenceInvalidPathComponent(String),
    /// The repository contains upper-case letters.
    #[error("repository {0:?} must be lower-case")]
    ReferenceUppercase(String),
    /// Registry and repository together are too long.
    #[error("image name is longer than 255 characters")]
    ReferenceNameTooLong,
    /// The tag breaks the grammar.
    #[error(
        "invalid tag {0:?}: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    ReferenceInvalidTag(String),
    /// A digest is not `algorithm:hex`.
    #[error("invalid digest {0:?}: expected sha256:<64 lower-case hex digits>")]
    DigestMalformed(String),
    /// A well-formed digest of an algorithm other than sha256.
    #[error("unsupported digest algorithm {0:?}: only sha256 is pinned")]
    DigestUnsupportedAlgorithm(String),

    // ---- `spec.image` cannot be pinned (ImageResolved=False).
    /// `spec.image` does not parse.
    #[error("spec.image {image:?}: {detail}")]
    InvalidImageReference {
        /// `spec.image` as written.
        image: String,
        /// What is wrong with it.
        detail: String,
    },
    /// `spec.image` is a tag and this build resolves no tags.
    #[error(
        "spec.image {image:?} names a tag but no digest; this operator build does not resolve tags at a registry and never deploys a mutable tag: use {reference}@sha256:<digest>"
    )]
    DigestRequired {
        /// `spec.image` as written.
        image: String,
        /// The reference, normalised, to put the digest after.
        reference: String,
    },
    /// The tag points at a digest whose rollout failed.
    #[error("{0}")]
    DigestRejected(String),
    /// A Secret named in `spec.imagePullSecrets` does not exist.
    #[error(
        "Secret {name:?} named in spec.imagePullSecrets does not exist in namespace {namespace:?}"
    )]
    PullSecretNotFound {
        /// Namespace of the TradingAgent.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
    /// A Secret named in `spec.imagePullSecrets` could not be read.
    #[error("Secret {name:?} named in spec.imagePullSecrets could not be read: {detail}")]
    PullSecretUnreadable {
        /// Name of the Secret.
        name: String,
        /// The API server's answer.
        detail: String,
    },
    /// A Secret named in `spec.imagePullSecrets` is not a registry credential.
    #[error("Secret {name:?} named in spec.imagePullSecrets: {detail}")]
    PullSecretInvalid {
        /// Name of the Secret.
        name: String,
        /// What is wrong with it (a `PullSecret…` variant's message).
        detail: String,
    },
    /// A pull secret's type is not a registry credential.
    #[error(
        "Secret type {0:?} is not a registry credential (want kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg)"
    )]
    PullSecretUnsupportedType(String),
    /// A pull secret lacks the key its type requires.
    #[error("Secret has no key {0:?}")]
    PullSecretKeyMissing(&'static str),
    /// A pull secret's key does not hold that format.
    #[error("Secret key {key:?} is not valid JSON of that format: {detail}")]
    PullSecretMalformed {
        /// The key.
        key: &'static str,
        /// The parser's complaint.
        detail: String,
    },

    // ---- The registry's answer.
    /// The registry refused the credentials.
    #[error("registry {host} refused the credentials for {repository} ({detail})")]
    RegistryUnauthorized {
        /// Registry host.
        host: String,
        /// Repository.
        repository: String,
        /// The registry's explanation.
        detail: String,
    },
    /// The tag does not exist.
    #[error("{repository}:{tag} not found at {host}")]
    TagNotFound {
        /// Registry host.
        host: String,
        /// Repository.
        repository: String,
        /// Tag.
        tag: String,
    },
    /// The registry asked us to slow down.
    #[error("registry {host} rate-limited us; next request in {}s", retry_in.as_secs().max(1))]
    RegistryRateLimited {
        /// Registry host.
        host: String,
        /// How long until the next request.
        retry_in: Duration,
    },
    /// The registry could not be reached.
    #[error("registry {host} unreachable: {detail}")]
    RegistryUnreachable {
        /// Registry host.
        host: String,
        /// Why.
        detail: String,
    },
    /// The registry answered something else than a manifest.
    #[error("registry {host} answered {status} for {repository}:{tag}")]
    RegistryUnexpectedStatus {
        /// Registry host.
        host: String,
        /// Repository.
        repository: String,
        /// Tag.
        tag: String,
        /// HTTP status.
        status: u16,
    },
    /// The registry's digest does not parse.
    #[error("registry {host} answered with an invalid digest: {detail}")]
    RegistryInvalidDigest {
        /// Registry host.
        host: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A push notification named a digest that the registry did not answer for the tag, even
    /// after looking again with a bounded back-off: the registry's answer is kept (a notification
    /// alone never pins). Reported until the tag moves or another push is notified.
    #[error(
        "a registry notification announced {repository}:{tag} as {expected}, but the registry still answers {answered} after looking again for several seconds; the notification alone is not trusted"
    )]
    NotifiedPushNotSeen {
        /// Repository.
        repository: String,
        /// Tag.
        tag: String,
        /// The digest the notification named.
        expected: String,
        /// What the registry answers.
        answered: String,
    },

    // ---- The operator's own set-up.
    /// The webhook's TLS certificate or key cannot be used.
    #[error("webhook TLS: {0}")]
    WebhookTls(String),

    // ---- Registry notifications (the webhook's body).
    /// The body is not JSON.
    #[error("body is not JSON: {0}")]
    NotificationNotJson(String),
    /// The body is JSON of another shape.
    #[error(r#"body is neither a Distribution notification envelope ({{"events": [...]}}) nor {{"repository": "...", "tag": "..."}}"#)]
    NotificationUnknownShape,

    // ---- What the resource points at (Ready=False; the reconcile is retried with back-off).
    /// The Secret named by `spec.database.secretRef` does not exist.
    #[error("Secret {namespace}/{name} (spec.database.secretRef) not found")]
    SecretNotFound {
        /// Namespace of the TradingAgent.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The key it should hold.
        key: String,
    },
    /// The Secret exists but lacks the key.
    #[error("Secret {namespace}/{name} has no key {key:?} (spec.database.secretRef.key)")]
    SecretKeyMissing {
        /// Namespace of the TradingAgent.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// The database Secret could not be read (any API error but 404: a 403, say).
    #[error("Secret {namespace}/{name} (spec.database.secretRef) cannot be read: {message}")]
    SecretUnreadable {
        /// Namespace of the TradingAgent.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// The API server refused to apply an object the spec makes (400, 403 or 422).
    #[error("the API server refused the objects of this spec ({status}): {message}")]
    SpecRejected {
        /// HTTP status of the refusal.
        status: u16,
        /// The API server's message.
        message: String,
    },

    // ---- The operator's own failures.
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {detail}")]
    Kube {
        /// The HTTP status of an API error (none for transport failures).
        status: Option<u16>,
        /// kube's description.
        detail: String,
    },
    /// An object from the API server lacks a field it always has (name, namespace, uid).
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
    /// Encoding an object failed.
    #[error("serialization: {0}")]
    Serialization(String),
    /// Encoding the CRD as YAML failed.
    #[error("YAML serialization: {0}")]
    Yaml(String),
    /// Leader election stopped working.
    #[error("leader election: {0}")]
    Leadership(String),
    /// No usable kubeconfig or in-cluster configuration.
    #[error("Kubernetes client configuration: {0}")]
    KubeConfig(String),
    /// The registry HTTP client could not be built.
    #[error("registry client: {0}")]
    RegistryClient(String),
    /// The operator's own HTTP server failed.
    #[error("HTTP server: {0}")]
    Io(String),
    /// A reconciliation panicked; caught, so only this TradingAgent's reconciliation failed (and
    /// is retried with back-off), never the process.
    #[error("reconciliation panicked: {0}")]
    ReconcilePanicked(String),
    /// The controller's stream ended without a shutdown being asked for (the process exits
    /// non-zero so that it is restarted).
    #[error("the controller stopped unexpectedly")]
    ControllerStopped,

    // ---- The bot's trading state, through the api (reported in `status.trading`, never fatal).
    /// The api could not be asked or answered badly; `reason` is the `Trading` condition's.
    #[error("{message}")]
    TradingApi {
        /// `ApiUnreachable`, `ApiTokenRejected` or `ApiNotAvailable`.
        reason: &'static str,
        /// What went wrong, naming the request.
        message: String,
    },
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        let status = match &error {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        };
        let detail = match &error {
            // The API server's own message, without kube's debug dump of the Status.
            kube::Error::Api(status) => {
                format!("{} ({} {})", status.message, status.code, status.reason)
            }
            other => other.to_string(),
        };
        Error::Kube { status, detail }
    }
}

impl Error {
    /// An API server refusal of applied objects that only a change of the spec (or of quotas and
    /// policies) fixes, as [`Error::SpecRejected`]; other errors as they are (retried).
    pub fn as_spec_rejection(self) -> Self {
        match self {
            Error::Kube {
                status: Some(status @ (400 | 403 | 422)),
                detail,
            } => Error::SpecRejected {
                status,
                message: detail,
            },
            other => other,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Serialization(error.to_string())
    }
}

impl From<serde_yaml_ng::Error> for Error {
    fn from(error: serde_yaml_ng::Error) -> Self {
        Error::Yaml(error.to_string())
    }
}

impl From<kube_lease_manager::LeaseManagerError> for Error {
    fn from(error: kube_lease_manager::LeaseManagerError) -> Self {
        Error::Leadership(error.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error.to_string())
    }
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube {
                status: Some(409), ..
            } => "conflict",
            Error::Kube {
                status: Some(403), ..
            } => "forbidden",
            Error::Kube {
                status: Some(422), ..
            } => "invalid",
            Error::Kube { .. } => "kube_api",
            Error::SecretNotFound { .. } => "secret_not_found",
            Error::SecretKeyMissing { .. } => "secret_key_missing",
            Error::SecretUnreadable { .. } => "secret_unreadable",
            Error::SpecRejected { .. } => "spec_rejected",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Serialization(_) | Error::Yaml(_) => "serialization",
            Error::Leadership(_) => "leader_election",
            Error::KubeConfig(_) => "kube_config",
            Error::RegistryClient(_) => "registry_client",
            Error::WebhookTls(_) => "webhook_tls",
            Error::Io(_) => "io",
            Error::ReconcilePanicked(_) => "panic",
            Error::ControllerStopped => "controller_stopped",
            Error::TradingApi { .. } => "trading_api",
            Error::ReferenceEmpty
            | Error::ReferenceInvalidDomain(_)
            | Error::ReferenceInvalidPathComponent(_)
            | Error::ReferenceUppercase(_)
            | Error::ReferenceNameTooLong
            | Error::ReferenceInvalidTag(_)
            | Error::DigestMalformed(_)
            | Error::DigestUnsupportedAlgorithm(_)
            | Error::InvalidImageReference { .. } => "invalid_image_reference",
            Error::DigestRequired { .. } => "digest_required",
            Error::DigestRejected(_) => "digest_rejected",
            Error::PullSecretNotFound { .. } => "pull_secret_not_found",
            Error::PullSecretUnreadable { .. } => "pull_secret_unreadable",
            Error::PullSecretInvalid { .. }
            | Error::PullSecretUnsupportedType(_)
            | Error::PullSecretKeyMissing(_)
            | Error::PullSecretMalformed { .. } => "pull_secret_invalid",
            Error::RegistryUnauthorized { .. } => "registry_unauthorized",
            Error::TagNotFound { .. } => "tag_not_found",
            Error::RegistryRateLimited { .. } => "registry_rate_limited",
            Error::RegistryUnreachable { .. } => "registry_unreachable",
            Error::RegistryUnexpectedStatus { .. } | Error::RegistryInvalidDigest { .. } => {
                "registry_error"
            }
            Error::NotificationNotJson(_) | Error::NotificationUnknownShape => "bad_notification",
            Error::NotifiedPushNotSeen { .. } => "notified_push_not_seen",
        }
    }

    /// The reason of the status condition that reports this failure (`ImageResolved` or
    /// `Ready`): CamelCase, part of the API.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::SecretNotFound { .. } => reasons::SECRET_NOT_FOUND,
            Error::SecretKeyMissing { .. } => reasons::SECRET_KEY_MISSING,
            Error::SecretUnreadable { .. } => reasons::SECRET_UNREADABLE,
            Error::SpecRejected { status: 403, .. } => reasons::APPLY_FORBIDDEN,
            Error::SpecRejected { .. } => reasons::INVALID_SPEC,
            Error::ReferenceEmpty
            | Error::ReferenceInvalidDomain(_)
            | Error::ReferenceInvalidPathComponent(_)
            | Error::ReferenceUppercase(_)
            | Error::ReferenceNameTooLong
            | Error::ReferenceInvalidTag(_)
            | Error::DigestMalformed(_)
            | Error::DigestUnsupportedAlgorithm(_)
            | Error::InvalidImageReference { .. } => reasons::INVALID_IMAGE_REFERENCE,
            Error::DigestRequired { .. } => reasons::DIGEST_REQUIRED,
            Error::DigestRejected(_) => reasons::DIGEST_REJECTED,
            Error::PullSecretNotFound { .. } => reasons::PULL_SECRET_NOT_FOUND,
            Error::PullSecretUnreadable { .. } => reasons::PULL_SECRET_UNREADABLE,
            Error::PullSecretInvalid { .. }
            | Error::PullSecretUnsupportedType(_)
            | Error::PullSecretKeyMissing(_)
            | Error::PullSecretMalformed { .. } => reasons::PULL_SECRET_INVALID,
            Error::RegistryUnauthorized { .. } => "RegistryUnauthorized",
            Error::TagNotFound { .. } => "TagNotFound",
            Error::RegistryRateLimited { .. } => "RegistryRateLimited",
            Error::RegistryUnreachable { .. } => "RegistryUnreachable",
            Error::RegistryUnexpectedStatus { .. } | Error::RegistryInvalidDigest { .. } => {
                "RegistryError"
            }
            Error::NotificationNotJson(_) | Error::NotificationUnknownShape => "BadNotification",
            Error::NotifiedPushNotSeen { .. } => "NotifiedPushNotSeen",
            Error::Kube { .. }
            | Error::MissingObjectKey(_)
            | Error::Serialization(_)
            | Error::Yaml(_)
            | Error::Leadership(_)
            | Error::KubeConfig(_)
            | Error::RegistryClient(_)
            | Error::WebhookTls(_)
            | Error::Io(_)
            | Error::ReconcilePanicked(_)
            | Error::ControllerStopped => "ReconcileError",
            Error::TradingApi { reason, .. } => reason,
        }
    }

    /// The message of the status condition that reports this failure: what to fix, and where.
    /// The same as the error's text, except for the database Secret, whose condition also says
    /// how to fix it.
    pub fn condition_message(&self) -> String {
        match self {
            Error::SecretNotFound {
                namespace,
                name,
                key,
            } => format!(
                "Secret {name:?} named by spec.database.secretRef.name does not exist in namespace {namespace:?}; create it with the database URL under key {key:?}"
            ),
            Error::SecretKeyMissing { name, key, .. } => {
                format!("Secret {name:?} has no key {key:?} (spec.database.secretRef.key)")
            }
            Error::SecretUnreadable { name, message, .. } => format!(
                "Secret {name:?} named by spec.database.secretRef.name cannot be read: {message}"
            ),
            Error::SpecRejected { message, .. } => {
                format!("the API server refused this spec's objects: {message}")
            }
            other => other.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_snake_case_and_distinct_for_user_errors() {
        let not_found = Error::SecretNotFound {
            namespace: "desk".into(),
            name: "db".into(),
            key: "url".into(),
        };
        let key = Error::SecretKeyMissing {
            namespace: "desk".into(),
            name: "db".into(),
            key: "url".into(),
        };
        assert_eq!(not_found.metric_label(), "secret_not_found");
        assert_eq!(key.metric_label(), "secret_key_missing");
        assert_eq!(
            not_found.to_string(),
            "Secret desk/db (spec.database.secretRef) not found"
        );
        for e in [not_found, key, Error::MissingObjectKey("metadata.uid")] {
            let label = e.metric_label();
            assert!(
                label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
        }
    }

    #[test]
    fn condition_reason_and_message_are_derived_from_the_error() {
        let not_found = Error::SecretNotFound {
            namespace: "desk".into(),
            name: "db".into(),
            key: "url".into(),
        };
        assert_eq!(not_found.reason(), "SecretNotFound");
        assert!(
            not_found
                .condition_message()
                .contains("spec.database.secretRef.name"),
            "{}",
            not_found.condition_message()
        );
        let down = Error::RegistryUnreachable {
            host: "r".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(down.reason(), "RegistryUnreachable");
        assert_eq!(down.metric_label(), "registry_unreachable");
        assert_eq!(down.condition_message(), down.to_string());
        assert_eq!(
            Error::ReferenceEmpty.reason(),
            "InvalidImageReference",
            "a parse error of spec.image says so"
        );
        let conflict: Error = kube::Error::Api(Box::new(
            kube::core::Status::failure("the object has been modified", "Conflict").with_code(409),
        ))
        .into();
        assert_eq!(conflict.metric_label(), "conflict");
    }

    #[test]
    fn messages_quote_the_limits_the_parsers_use() {
        use crate::digest::credentials::{DOCKER_CFG, DOCKER_CONFIG_JSON};
        use crate::digest::reference::NAME_TOTAL_LENGTH_MAX;
        assert!(
            Error::ReferenceNameTooLong
                .to_string()
                .contains(&NAME_TOTAL_LENGTH_MAX.to_string())
        );
        let unsupported = Error::PullSecretUnsupportedType("Opaque".into()).to_string();
        assert!(unsupported.contains(DOCKER_CONFIG_JSON) && unsupported.contains(DOCKER_CFG));
    }
}
