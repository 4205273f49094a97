//! A fault-injecting HTTP proxy to put in front of the real registry: it forwards every request
//! unchanged unless told to misbehave (strip `Docker-Content-Digest`, answer 429 with
//! `Retry-After`, answer 503), and it records every request it sees, so tests can count manifest
//! requests and check when they arrived. The registry behind it is always the real one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::{Error, Result};

/// How the proxy misbehaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward faithfully.
    #[default]
    None,
    /// Forward, but drop `Docker-Content-Digest` from manifest responses.
    StripDigestHeader,
    /// Answer manifest requests with 429 and this `Retry-After` (seconds) the next `times` times.
    RateLimit { retry_after_secs: u64, times: u32 },
    /// Answer everything with 503.
    Unavailable,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    fault: Mutex<Fault>,
    seen: Mutex<Vec<SeenRequest>>,
}

/// A running proxy on 127.0.0.1; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies to `upstream_host` (`127.0.0.1:<port>`, plain HTTP). Must be called inside a Tokio runtime.
    pub async fn start(upstream_host: &str) -> Result<Self> {
        let state = Arc::new(ProxyState {
            upstream: format!("http://{upstream_host}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Startup(format!("proxy client: {e}")))?,
            fault: Mutex::default(),
            seen: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `127.0.0.1:<port>`: use it as the registry host in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().expect("fault lock") = fault;
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    /// Requests for manifests (`/v2/<name>/manifests/<reference>`), of any method.
    pub fn manifest_requests(&self) -> Vec<SeenRequest> {
        self.seen()
            .into_iter()
            .filter(|r| r.path.contains("/manifests/"))
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    let is_manifest = path.contains("/manifests/");
    let fault = {
        let mut fault = state.fault.lock().expect("fault lock");
        let current = fault.clone();
        // A rate limit counts down on the manifest requests it answers.
        if let Fault::RateLimit {
            retry_after_secs,
            times,
        } = current
            && is_manifest
        {
            *fault = if times > 1 {
                Fault::RateLimit {
                    retry_after_secs,
                    times: times - 1,
                }
            } else {
                Fault::None
            };
        }
        current
    };
    let response = match fault {
        Fault::Unavailable => plain(StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new()),
        Fault::RateLimit {
            retry_after_secs, ..
        } if is_manifest => {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from(retry_after_secs));
            plain(StatusCode::TOO_MANY_REQUESTS, headers)
        }
        _ => {
            let mut response = upstream(&state, request, &path_and_query).await;
            if fault == Fault::StripDigestHeader && is_manifest {
                response.headers_mut().remove("docker-content-digest");
            }
            response
        }
    };
    state.seen.lock().expect("seen lock").push(SeenRequest {
        at: Instant::now(),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    });
    response
}

async fn upstream(state: &ProxyState, request: Request, path_and_query: &str) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return plain(StatusCode::BAD_REQUEST, HeaderMap::new());
    };
    let mut headers = parts.headers.clone();
    headers.remove("host");
    let sent = state
        .http
        .request(parts.method, format!("{}{path_and_query}", state.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = sent else {
        return plain(StatusCode::BAD_GATEWAY, HeaderMap::new());
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    // Hop-by-hop: the body is re-framed by our own server.
    headers.remove("transfer-encoding");
    headers.remove("connection");
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn plain(status: StatusCode, headers: HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
