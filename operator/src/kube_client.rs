//! The Kubernetes client, built like `kube::Client::try_default` but with `TCP_NODELAY` on.
//!
//! kube's own builder leaves Nagle's algorithm on. A request with a body (every server-side apply
//! and status patch) leaves the TLS stream in more than one segment, so the last segment waits for
//! the API server's delayed ACK: about 40 ms per write on Linux. A reconcile makes five writes, so
//! that was most of the time from `kubectl apply` to three Deployments (measured: p50 184 ms with
//! Nagle, see tests/bench/RESULTS.md for the figure without).

use std::time::Duration;

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use kube::{Client, Config};
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

use crate::error::{Error, Result};

/// The client for the kubeconfig or in-cluster configuration `kube` infers.
pub async fn infer() -> Result<Client> {
    let config = Config::infer()
        .await
        .map_err(|e| Error::KubeConfig(e.to_string()))?;
    from_config(config)
}

/// The client for `config`, with `TCP_NODELAY` on every connection.
pub fn from_config(config: Config) -> Result<Client> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| Error::KubeConfig(format!("TLS: {e}")))?;
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);

    let auth = config
        .auth_layer()
        .map_err(|e| Error::KubeConfig(format!("authentication: {e}")))?;
    let headers = config
        .extra_headers_layer()
        .map_err(|e| Error::KubeConfig(format!("headers: {e}")))?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(auth)
        .layer(headers)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}
