//! Shared helpers for the end-to-end suites: throwaway PostgreSQL and OCI registry, and a client for
//! the local cluster harness.
