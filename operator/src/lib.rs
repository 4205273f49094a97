//! The TradingAgent operator: turns one `TradingAgent` resource into api, bot and strategy
//! Deployments (plus the api Service and PodDisruptionBudget) pinned to an image digest.
//!
//! The tree is the architecture (dependencies point down this list, never up):
//! - [`runtime`] — the process: configuration, leader election, HTTP servers, logs.
//! - [`reconcile`] — one TradingAgent at a time, in stages; pure stages apart from the ones that
//!   talk to the API server.
//! - [`digest`] — from `spec.image` to a pinned digest: references, registries, the shared cache,
//!   freshness, the registry webhook.
//! - [`backtest`] — the `Backtest` resource: one backtest of a digest, run as a Job.
//! - [`resource`] — the custom resource types (the CRD is generated from them); [`error`] — the
//!   crate's one error type; [`metrics`] — the Prometheus metrics every part records.

pub mod backtest;
pub mod digest;
pub mod error;
pub mod metrics;
pub mod reconcile;
pub mod resource;
pub mod runtime;

pub use error::{Error, Result};
pub use resource::{Role, TradingAgent, TradingAgentSpec, TradingAgentStatus};
pub use runtime::{Config, Operator, WebhookToken};
/// Cancels a running [`Operator`] (re-exported so embedders and tests need no extra dependency).
pub use tokio_util::sync::CancellationToken;
