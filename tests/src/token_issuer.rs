//! A token issuer for the registry's Bearer flow (the distribution token specification): the
//! registry is configured with `auth: token:` pointing here, answers anonymous requests with a
//! `WWW-Authenticate: Bearer realm=…` challenge, and accepts the JWTs this issuer signs. Clients
//! authenticate to the issuer with HTTP Basic.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use crate::process::run_checked;
use crate::{Error, Result};

pub const SERVICE: &str = "trading-agent-test-registry";
pub const ISSUER: &str = "trading-agent-test-issuer";

struct IssuerState {
    user: String,
    password: String,
    key: jsonwebtoken::EncodingKey,
    certificate_der_base64: String,
    issued: AtomicU64,
}

/// A running token issuer on 127.0.0.1; stops when dropped.
pub struct TokenIssuer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    state: Arc<IssuerState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct TokenQuery {
    service: Option<String>,
    scope: Option<String>,
}

impl TokenIssuer {
    /// Starts an issuer that grants pull and push to `user`/`password` only. Needs a Tokio runtime.
    pub async fn start(user: &str, password: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ta-token-issuer-")
            .tempdir()?;
        generate_certificate(dir.path())?;
        let key_pem = std::fs::read(dir.path().join("issuer.key"))?;
        let der = std::fs::read(dir.path().join("issuer.der"))?;
        let state = Arc::new(IssuerState {
            user: user.into(),
            password: password.into(),
            key: jsonwebtoken::EncodingKey::from_rsa_pem(&key_pem)
                .map_err(|e| Error::Startup(format!("issuer key: {e}")))?,
            certificate_der_base64: base64::engine::general_purpose::STANDARD.encode(der),
            issued: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/token", axum::routing::get(issue))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            dir,
            state,
            task,
        })
    }

    /// The registry's `auth:` section (for [`crate::registry::RegistryOptions::auth_yaml`]).
    pub fn registry_auth_yaml(&self) -> String {
        format!(
            "  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.addr,
            self.dir.path().join("issuer.crt").display()
        )
    }

    /// `127.0.0.1:port` of the realm: plain HTTP, so the operator must list it as an insecure
    /// registry host before it follows the realm.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.state.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn generate_certificate(dir: &Path) -> Result<()> {
    run_checked(
        Command::new("openssl")
            .current_dir(dir)
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=token-issuer",
            ])
            .args(["-keyout", "issuer.key", "-out", "issuer.crt"]),
        "openssl req (token issuer certificate)",
    )?;
    run_checked(
        Command::new("openssl").current_dir(dir).args([
            "x509",
            "-in",
            "issuer.crt",
            "-outform",
            "DER",
            "-out",
            "issuer.der",
        ]),
        "openssl x509 -outform DER",
    )
}

async fn issue(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    if !basic_auth_matches(&headers, &state.user, &state.password) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let access: Vec<serde_json::Value> = query
        .scope
        .iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let n = state.issued.fetch_add(1, Ordering::SeqCst);
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": state.user, "aud": query.service.unwrap_or_else(|| SERVICE.into()),
        "exp": now + 300, "nbf": now.saturating_sub(5), "iat": now, "jti": format!("token-{n}"),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(vec![state.certificate_der_base64.clone()]);
    match jsonwebtoken::encode(&header, &claims, &state.key) {
        Ok(token) => axum::Json(
            serde_json::json!({"token": token, "access_token": token, "expires_in": 300}),
        )
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn basic_auth_matches(headers: &HeaderMap, user: &str, password: &str) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{user}:{password}").as_bytes()
}
