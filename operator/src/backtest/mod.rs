//! The `Backtest` resource: a backtest of a strategy on an exact image digest, run as a Job.
//!
//! - [`resource`] — the custom resource type (the CRD is generated from it);
//! - [`job`] — the Job, a pure function of the Backtest and what it runs on;
//! - [`status`] — the status and events, pure functions of what the Job and its pod report;
//! - [`controller`] — the controller that talks to the API server.
//!
//! The result travels in the pod's termination message: the CLI writes its short JSON summary to
//! `/dev/termination-log` (`--summary-file`), the kubelet copies it into the pod's status, and the
//! controller reads it once the Job has finished. The Job connects to the database read-only
//! (the CLI's `default_transaction_read_only=on`).

pub mod controller;
pub mod job;
pub mod resource;
pub mod status;

pub use resource::{Backtest, BacktestSpec, BacktestStatus};
