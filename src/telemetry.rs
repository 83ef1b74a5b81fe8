//! Logging setup, once per process.

use tracing_subscriber::{EnvFilter, fmt};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Installs the global subscriber: `RUST_LOG` if set, otherwise `default_filter`.
/// Logs go to stderr.
///
/// Logging must never break the process: when stderr is gone (a log reader that
/// exited), tracing-subscriber's own error report (`log_internal_errors`) would
/// `eprintln!`, which panics on a broken pipe — and a panic in the signal task
/// meant SIGTERM no longer stopped the worker. So write errors are dropped.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
