//! `/metrics`: every registered metric in the Prometheus exposition format.

use super::{AppState, Problem, ProblemCode};
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};

/// `prometheus_client` writes OpenMetrics 1.0 text (it ends with `# EOF`), which Prometheus
/// negotiates and scrapes under this media type.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Server metrics for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    // Open by default; a token or user when `security.metrics_public = false`.
    security((), ("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Metrics in OpenMetrics text format", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 500, description = "The metrics could not be encoded",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(disk) = &state.disk {
        // The gauge keeps its last value when statvfs fails; `/readyz` reports the failure.
        let _ = disk.free_bytes();
    }
    state
        .engine
        .refresh_projection_lags(state.resource_series_max)
        .await;
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(METRICS_CONTENT_TYPE),
            )],
            body,
        )
            .into_response(),
        Err(error) => Problem::new(ProblemCode::Internal)
            .with_detail(format!("encoding metrics failed: {error}"))
            .into_response(),
    }
}
