//! The server's own logs: tracing to stderr as text or JSON lines.
//!
//! The filter comes from `RUST_LOG` when set (an operator's override for one run), else from
//! `[log] level`. stdout stays free for command output.

use crate::config::{LogFormat, LogSettings};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {value:?} from {origin}: {source}")]
    Filter {
        /// `RUST_LOG` or `log.level`.
        origin: &'static str,
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed: {source}")]
    AlreadyInstalled {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Installs the global tracing subscriber. Call once, before anything logs.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    let (origin, value) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => ("RUST_LOG", value),
        _ => ("log.level", settings.level.clone()),
    };
    let filter = EnvFilter::try_new(&value).map_err(|source| TelemetryError::Filter {
        origin,
        value: value.clone(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in files and collectors they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|source| TelemetryError::AlreadyInstalled { source })
}
