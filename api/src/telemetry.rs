//! Logging through `tracing`: text for people, one JSON object per line for log pipelines.

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogFormat};

/// Installs the global subscriber. Fails on a bad filter so that a typo in LOG_LEVEL is reported at
/// start instead of silently logging nothing.
pub fn init(format: LogFormat, filter: &str) -> Result<(), ConfigError> {
    let mut filter = EnvFilter::try_new(filter)
        .map_err(|e| ConfigError(format!("LOG_LEVEL `{filter}` is not a valid filter: {e}")))?;
    // PostgreSQL's NOTICEs ("relation already exists, skipping" on every migration run) are noise.
    if let Ok(directive) = "sqlx::postgres::notice=warn".parse() {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // A second init (tests running several roles in one process) keeps the first subscriber.
    let _ = result;
    Ok(())
}
