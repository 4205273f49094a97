//! The crate's one error type. Each variant has a metric label (`failures_total{reason=…}`).

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// The Secret named by `spec.database.secretRef` does not exist.
    #[error("Secret {namespace}/{name} (spec.database.secretRef) not found")]
    SecretNotFound {
        /// Namespace of the TradingAgent.
        namespace: String,
        /// Name of the Secret.
        name: String,
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

    /// An object from the API server lacks a field it always has (name, namespace, uid).
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),

    /// Encoding an object failed.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),

    /// Encoding the CRD as YAML failed.
    #[error("YAML serialization: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),

    /// The Lease-based leader election failed.
    #[error("leader election: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),

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
    Io(#[from] std::io::Error),
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(status)) if status.code == 422 => "invalid",
            Error::Kube(_) => "kube_api",
            Error::SecretNotFound { .. } => "secret_not_found",
            Error::SecretKeyMissing { .. } => "secret_key_missing",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Serialization(_) | Error::Yaml(_) => "serialization",
            Error::LeaderElection(_) | Error::Leadership(_) => "leader_election",
            Error::KubeConfig(_) => "kube_config",
            Error::RegistryClient(_) => "registry_client",
            Error::Io(_) => "io",
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
}
