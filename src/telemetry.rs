//! The process's own telemetry: log lines on stderr (text or JSON), filtered by
//! `LLM_LOADTEST_LOG` (an env-filter such as `debug`) or a default level.

use crate::config::LogFormat;

/// Install the global subscriber once, at start-up.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LLM_LOADTEST_LOG").unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
