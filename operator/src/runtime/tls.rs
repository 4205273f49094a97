//! TLS for the registry webhook (rustls): a certificate and key read from PEM files, typically a
//! `kubernetes.io/tls` Secret mounted by the chart. They are read once at start: a renewed
//! certificate takes effect when the pod restarts (no hot reload).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::error::{Error, Result};

/// A client that has not finished its TLS handshake by then is dropped, so idle connections
/// cannot pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the webhook's certificate chain and private key are (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTls {
    /// The certificate chain, leaf first (`tls.crt`).
    pub cert: PathBuf,
    /// The private key, PKCS#8, PKCS#1 or SEC1 (`tls.key`).
    pub key: PathBuf,
}

impl WebhookTls {
    /// The rustls server configuration (HTTP/2 and HTTP/1.1 offered by ALPN). A missing or
    /// malformed file is an error naming it.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let certs = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::WebhookTls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                Error::WebhookTls(format!(
                    "{} and {} do not make a usable certificate and key: {e}",
                    self.cert.display(),
                    self.key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::WebhookTls(format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::WebhookTls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::WebhookTls(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::WebhookTls(format!("cannot read {}: {e}", path.display())))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        Error::WebhookTls(format!(
            "{} holds no usable private key: {e}",
            path.display()
        ))
    })
}

/// Serve `app` over TLS on `listener` until `shutdown` is cancelled (connections in flight are
/// left to finish on their own; a webhook request is short).
pub fn serve_tls(
    listener: TcpListener,
    app: Router,
    config: Arc<ServerConfig>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let acceptor = TlsAcceptor::from(config);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        debug!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "webhook TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, "webhook TLS handshake timed out");
                        return;
                    }
                };
                let service = TowerToHyperService::new(app);
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await
                {
                    debug!(%peer, error = %e, "webhook connection ended with an error");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `127.0.0.1`, written to a temporary folder.
    fn self_signed(dir: &Path) -> (WebhookTls, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let tls = WebhookTls {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let pem = cert.cert.pem();
        std::fs::write(&tls.cert, &pem).unwrap();
        std::fs::write(&tls.key, cert.key_pair.serialize_pem()).unwrap();
        (tls, pem)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("webhook-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A real TLS handshake on loopback: a client trusting the certificate reaches the router
    /// over HTTPS (HTTP/1.1, and HTTP/2 chosen by ALPN); a client that does not trust it is refused; plain HTTP
    /// gets no answer.
    #[tokio::test]
    async fn the_webhook_answers_over_tls_with_the_configured_certificate() {
        let dir = temp_dir("handshake");
        let (tls, pem) = self_signed(&dir);
        let config = tls.server_config().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let shutdown = CancellationToken::new();
        let server = serve_tls(listener, app, config, &shutdown);

        let url = format!("https://{addr}/ping");
        for http2 in [false, true] {
            let mut builder = reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
            if !http2 {
                builder = builder.http1_only();
            }
            let response = builder.build().unwrap().get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.version() == reqwest::Version::HTTP_2,
                http2,
                "{:?}",
                response.version()
            );
            assert_eq!(response.text().await.unwrap(), "pong");
        }

        let untrusting = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        let refused = untrusting.get(&url).send().await.unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        let plain = reqwest::Client::new()
            .get(format!("http://{addr}/ping"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        assert!(plain.is_err(), "plain HTTP must not be answered: {plain:?}");

        shutdown.cancel();
        server.await.unwrap().unwrap();
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn missing_or_malformed_files_are_errors_that_name_them() {
        let dir = temp_dir("bad");
        let (tls, _) = self_signed(&dir);
        let missing = WebhookTls {
            cert: dir.join("nope.crt"),
            key: tls.key.clone(),
        };
        let message = missing.server_config().unwrap_err().to_string();
        assert!(message.contains("nope.crt"), "{message}");
        std::fs::write(dir.join("garbage.key"), "not a key").unwrap();
        let garbage = WebhookTls {
            cert: tls.cert.clone(),
            key: dir.join("garbage.key"),
        };
        let message = garbage.server_config().unwrap_err().to_string();
        assert!(message.contains("garbage.key"), "{message}");
        // A key that does not match the certificate.
        let other = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        std::fs::write(dir.join("other.key"), other.key_pair.serialize_pem()).unwrap();
        let mismatched = WebhookTls {
            cert: tls.cert.clone(),
            key: dir.join("other.key"),
        };
        assert!(mismatched.server_config().is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
