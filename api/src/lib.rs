//! The trading-agent workloads: one binary, three roles (`api`, `bot`, `strategy`) sharing one
//! domain core and one PostgreSQL layer.
//!
//! - [`domain`]: pure trading logic (indicators, strategies, risk checks, paper fills).
//! - [`store`]: PostgreSQL access; [`db`]: pool, migrations, readiness; [`schema`]: schema
//!   compatibility between releases (expand-only migrations).
//! - [`http`]: the REST API and OpenAPI document; [`server`]: probes and signals.
//! - [`workers`]: the strategy runner, the bot and webhook delivery; [`demo`]: a synthetic feed.
//! - [`faults`]: fail points for tests (feature `failpoints`).
//! - [`build`]: the build identity and image a process runs.
//! - [`app`]: start-up and shutdown of each role; [`config`]: flags and environment.

pub mod app;
pub mod backtest;
pub mod build;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod schema;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod workers;

pub use error::{Error, Result};

/// Installs rustls' ring provider as the process default (the webhook client needs one). Safe to
/// call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
