//! Shared helpers for the end-to-end suites: a throwaway PostgreSQL ([`postgres`]), a throwaway OCI
//! registry ([`registry`]) and access to the local cluster harness ([`cluster`]) and its real node
//! ([`real_node`]).
//!
//! Everything listens on loopback only and is removed when dropped.

pub mod cluster;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod real_node;
pub mod registry;
pub mod token_issuer;

/// What can go wrong while setting up a test fixture.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("did not start: {0}")]
    Startup(String),
    #[error("missing on this machine: {0}")]
    Missing(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
