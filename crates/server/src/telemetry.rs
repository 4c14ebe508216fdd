//! The server's own logs and spans: tracing to stderr as text or JSON lines, and, when
//! `log.otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) names a collector, spans exported
//! over OTLP/HTTP (protobuf) to `ENDPOINT/v1/traces`.
//!
//! The log filter comes from `RUST_LOG` when set (an operator's override for one run), else
//! from `[log] level`. stdout stays free for command output. Exported spans have a filter of
//! their own (Wharf's spans at `info`), so a quiet log does not silence traces. Spans leave in
//! batches from the exporter's own thread; [`Telemetry::shutdown`] sends what is left.

use crate::config::{LogFormat, LogSettings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use std::{
    io::IsTerminal,
    sync::atomic::{AtomicBool, Ordering},
};
use tracing_subscriber::{
    filter::Targets, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer,
};

/// The standard variable naming the collector when the configuration does not.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Whether spans are exported: request spans are made only then, so a server without a
/// collector pays nothing for them.
static SPANS_EXPORTED: AtomicBool = AtomicBool::new(false);

pub fn spans_exported() -> bool {
    SPANS_EXPORTED.load(Ordering::Relaxed)
}

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
    #[error("cannot set up span export to {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// What [`init`] set up; keep it until the process ends, then [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    spans: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans not yet exported (waits for the collector a few seconds at most).
    pub fn shutdown(self) {
        if let Some(provider) = self.spans {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "exporting the last spans failed");
            }
        }
    }
}

/// The collector's base URL, from the configuration or the environment.
pub fn otlp_endpoint(settings: &LogSettings) -> Option<String> {
    let from_env = || std::env::var(OTLP_ENDPOINT_ENV).ok();
    (settings.otlp_endpoint.clone().or_else(from_env)).filter(|url| !url.trim().is_empty())
}

/// Installs the global tracing subscriber. Call once, before anything logs.
pub fn init(settings: &LogSettings) -> Result<Telemetry, TelemetryError> {
    let (origin, value) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => ("RUST_LOG", value),
        _ => ("log.level", settings.level.clone()),
    };
    let filter = EnvFilter::try_new(&value).map_err(|source| TelemetryError::Filter {
        origin,
        value: value.clone(),
        source,
    })?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in files and collectors they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match settings.format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    let (spans, provider) = match otlp_endpoint(settings) {
        None => (None, None),
        Some(endpoint) => {
            let provider = tracer_provider(&endpoint)?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("wharf"))
                .with_filter(Targets::new().with_target("wharf", tracing::Level::INFO));
            (Some(layer), Some(provider))
        }
    };
    let exported = provider.is_some();
    (tracing_subscriber::registry().with(logs).with(spans))
        .try_init()
        .map_err(|source| TelemetryError::AlreadyInstalled {
            source: source.into(),
        })?;
    SPANS_EXPORTED.store(exported, Ordering::Relaxed);
    Ok(Telemetry { spans: provider })
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let base = endpoint.trim_end_matches('/');
    let traces = match base.ends_with("/v1/traces") {
        true => base.to_string(),
        false => format!("{base}/v1/traces"),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            source,
        })?;
    let resource = Resource::builder().with_service_name("wharf").build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
