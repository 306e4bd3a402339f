//! Log output: readable lines on a terminal, JSON lines for shipping,
//! written by guichet's log writer thread (see `guichet_gateway::log_writer`).

use std::io::IsTerminal;

use guichet_gateway::log_writer::{self, Flush, LineFormat};
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// `RUST_LOG` overrides `default_level`. The returned guard writes what is
/// still queued when `main` ends.
pub fn init(format: LogFormat, default_level: &str) -> Option<Flush> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let line_format = match format {
        LogFormat::Text => LineFormat::Text,
        LogFormat::Json => LineFormat::Json,
    };
    let (lines, flush) = log_writer::install(line_format)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(lines)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    Some(flush)
}
