//! The TradingAgent operator: turns one `TradingAgent` resource into api, bot and strategy
//! Deployments (plus the api Service and PodDisruptionBudget) pinned to an image digest.
//!
//! Pure cores, thin edges:
//! - [`resource`] — the custom resource types; the CRD is generated from them.
//! - [`image`] — image references and digests (distribution grammar).
//! - [`desired`] — the build stage: the objects a TradingAgent should own.
//! - [`status`] — the next status from what was observed; conditions.
//! - [`backoff`] — per-object retry delays.
//! - [`resolver`] — the seam where digests are resolved; [`rollout`] — what to pin given how
//!   the last rollout went (rollback, rejected digests).
//! - [`registry`] — digest resolution at the registry: client, auth, pull secrets, shared cache.
//! - [`applied`] — whether a cached child already is what applying would make it.
//! - [`controller`] — the reconcile stages against the API server.
//! - [`webhook`] — registry push notifications that trigger reconciles at once.
//! - [`written`] — telling a cache that lags behind our own status write from someone else's.
//! - [`operator`], [`server`], [`metrics`], [`telemetry`] — the process around it.

pub mod applied;
pub mod backoff;
pub mod controller;
pub mod desired;
pub mod error;
pub mod image;
pub mod metrics;
pub mod operator;
pub mod registry;
pub mod resolver;
pub mod resource;
pub mod rollout;
pub mod server;
pub mod status;
pub mod telemetry;
pub mod webhook;
pub mod written;

pub use error::{Error, Result};
pub use operator::{Config, Operator, WebhookToken};
pub use resource::{Role, TradingAgent, TradingAgentSpec, TradingAgentStatus};
/// Cancels a running [`Operator`] (re-exported so embedders and tests need no extra dependency).
pub use tokio_util::sync::CancellationToken;
