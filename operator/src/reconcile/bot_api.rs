//! Stage 5b, the trading look (talks to the api workload): read the bot's state, set the declared
//! one when they differ, and read balance, profit and the bot's heartbeat, through the api Service
//! with the token of `spec.api.tokenSecretRef`. A thin edge: every request has a timeout, every
//! answer a size bound, and every failure becomes an [`Error::TradingApi`] reported in
//! `status.trading`, never a failed reconciliation. What to call is decided in [`super::trading`].

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, GetParams};
use kube::runtime::reflector::ObjectRef;
use serde::de::DeserializeOwned;

use super::Context;
use super::build::api_service_name;
use super::trading::{
    BalanceView, BotView, ComponentView, Look, ProfitView, control_path, correction, from_api,
    last_bot_tick,
};
use crate::error::Error;
use crate::resource::conditions::reasons;
use crate::resource::{Role, TradingAgent};

/// Longest wait for a connection to the api.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read (the bot's answers are a few hundred bytes; a wallet of many currencies a
/// few KiB).
pub const MAX_BODY: usize = 256 * 1024;

/// The HTTP client of the trading look.
#[derive(Clone, Debug)]
pub struct BotApi {
    http: reqwest::Client,
}

impl BotApi {
    /// A client with the timeouts above, no proxy and no redirects (a ClusterIP answers itself),
    /// and no idle connections kept: kube-proxy's rules apply to new connections only, so a kept
    /// one stays wherever it was first routed. Opened before the rules for a new Service existed,
    /// it went past the cluster (on one CI machine, to an egress proxy answering 404 to every
    /// look for as long as the looks kept it alive); kept across a rollout, it would reach a pod
    /// on its way out. A look is a handful of requests every few seconds: connecting anew is cheap.
    pub fn new() -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .no_proxy()
            .build()
            .map_err(|e| unreachable_error(format!("HTTP client: {e}")))?;
        Ok(Self { http })
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        base: &str,
        token: &str,
        path: &str,
    ) -> Result<T, Error> {
        let what = format!("{method} {path}");
        let response = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| unreachable_error(format!("{what}: {}", describe(&e))))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Error::TradingApi {
                reason: reasons::API_TOKEN_REJECTED,
                message: format!(
                    "{what}: the api refused the token of spec.api.tokenSecretRef ({status})"
                ),
            });
        }
        let body = read_bounded(response, &what).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(unreachable_error(format!("{what}: {status}: {text}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| unreachable_error(format!("{what}: unexpected answer: {e}")))
    }
}

/// The answer's body, refused beyond [`MAX_BODY`] (read chunk by chunk: never all of a huge one).
async fn read_bounded(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, Error> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY as u64)
    {
        return Err(unreachable_error(format!(
            "{what}: answer larger than {MAX_BODY} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unreachable_error(format!("{what}: {}", describe(&e))))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(unreachable_error(format!(
                "{what}: answer larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn unreachable_error(message: String) -> Error {
    Error::TradingApi {
        reason: reasons::API_UNREACHABLE,
        message,
    }
}

fn not_available(message: String) -> Error {
    Error::TradingApi {
        reason: reasons::API_NOT_AVAILABLE,
        message,
    }
}

/// reqwest's error with its cause ("error sending request" alone says nothing).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// The api's base URL: its Service's ClusterIP (from the cache) and port. The ClusterIP, not the
/// Service's DNS name, so the look works wherever the operator runs as long as kube-proxy (or its
/// replacement) routes Service addresses, with or without cluster DNS.
fn base_url(ctx: &Context, ns: &str, agent: &TradingAgent) -> Result<String, Error> {
    let name = api_service_name(&agent.name_any());
    let service = ctx
        .stores
        .services
        .get(&ObjectRef::<Service>::new(&name).within(ns))
        .ok_or_else(|| not_available(format!("the api Service {name:?} does not exist yet")))?;
    let ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .filter(|ip| !ip.is_empty() && ip != "None")
        .ok_or_else(|| not_available(format!("the api Service {name:?} has no ClusterIP yet")))?;
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    Ok(format!("http://{host}:{}", agent.spec.api.port))
}

/// The api token from the Secret `spec.api.tokenSecretRef` names.
async fn token(ctx: &Context, ns: &str, agent: &TradingAgent) -> Result<String, Error> {
    let reference = agent
        .spec
        .api
        .token_secret_ref
        .as_ref()
        .ok_or_else(|| Error::TradingApi {
            reason: reasons::API_TOKEN_REJECTED,
            message: "spec.trading needs spec.api.tokenSecretRef".to_owned(),
        })?;
    let rejected = |message: String| Error::TradingApi {
        reason: reasons::API_TOKEN_REJECTED,
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = secrets
        .get_with(&reference.name, &GetParams::any())
        .await
        .map_err(|e| {
            rejected(format!(
                "Secret {:?} named by spec.api.tokenSecretRef cannot be read: {e}",
                reference.name
            ))
        })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .ok_or_else(|| {
            rejected(format!(
                "Secret {:?} has no key {:?} (spec.api.tokenSecretRef.key)",
                reference.name, reference.key
            ))
        })?;
    let token = String::from_utf8(value.0.clone())
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    if token.is_empty() {
        return Err(rejected(format!(
            "Secret {:?} key {:?} (spec.api.tokenSecretRef) is empty or not text",
            reference.name, reference.key
        )));
    }
    Ok(token)
}

/// Look at the bot through the api and set the declared state if it is in another.
pub async fn look(ctx: &Context, ns: &str, agent: &TradingAgent) -> Look {
    let declared = agent
        .spec
        .trading
        .as_ref()
        .map(|t| t.state)
        .unwrap_or_default();
    let mut look = Look::default();
    let Some(api) = ctx.bot_api.as_ref() else {
        look.error = Some(unreachable_error(
            "the operator's HTTP client could not be built".to_owned(),
        ));
        return look;
    };
    // The Service routes nowhere yet: asking would only time out, or leave the cluster.
    let pods = super::pods::agent_pods(&ctx.stores.pods, ns, &agent.name_any());
    if !super::pods::any_ready(&pods, Role::Api) {
        look.error = Some(not_available(format!(
            "the api has no Ready pod yet (Service {:?})",
            api_service_name(&agent.name_any())
        )));
        return look;
    }
    let base = match base_url(ctx, ns, agent) {
        Ok(base) => base,
        Err(e) => {
            look.error = Some(e);
            return look;
        }
    };
    let token = match token(ctx, ns, agent).await {
        Ok(token) => token,
        Err(e) => {
            look.error = Some(e);
            return look;
        }
    };
    let get = reqwest::Method::GET;
    let found: BotView = match api.request(get.clone(), &base, &token, "/api/v2/bot").await {
        Ok(found) => found,
        Err(e) => {
            look.error = Some(e);
            return look;
        }
    };
    look.found = Some(found.clone());
    look.bot = Some(found.clone());
    match from_api(&found.state) {
        None => {
            look.error = Some(unreachable_error(format!(
                "GET /api/v2/bot: unknown bot state {:?}",
                found.state
            )));
        }
        Some(observed) => {
            if let Some(state) = correction(declared, observed) {
                match api
                    .request::<BotView>(reqwest::Method::POST, &base, &token, control_path(state))
                    .await
                {
                    Ok(after) => {
                        look.applied = Some(state);
                        look.bot = Some(after);
                    }
                    Err(e) => look.error = Some(e),
                }
            }
        }
    }
    // The figures: a failure here leaves the state's part of the look intact.
    let (balance, profit, components) = tokio::join!(
        api.request::<BalanceView>(get.clone(), &base, &token, "/api/v2/balance"),
        api.request::<ProfitView>(get.clone(), &base, &token, "/api/v2/profit"),
        api.request::<Vec<ComponentView>>(get, &base, &token, "/api/v2/health/components"),
    );
    let mut failures = Vec::new();
    match balance {
        Ok(b) => look.balance = Some(b),
        Err(e) => failures.push(e),
    }
    match profit {
        Ok(p) => look.profit = Some(p),
        Err(e) => failures.push(e),
    }
    match components {
        Ok(c) => look.last_bot_tick = last_bot_tick(&c),
        Err(e) => failures.push(e),
    }
    if look.error.is_none() {
        look.error = failures.into_iter().next();
    }
    look
}
