//! Liveness and readiness probes: `/healthz` says the process answers, `/readyz` says it should
//! get traffic (store open, not shutting down), with warnings that need an operator but do
//! not stop traffic (the disk nearly full; see `disk_space`).

use super::{AppState, Problem, ProblemCode};
use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;
use wharf_engine::alerts::AlertState;

/// Body of a successful probe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok` for liveness, `ready` for readiness.
    #[schema(example = "ok")]
    pub status: String,
    /// Conditions that do not stop traffic but need an operator: the disk nearly full, alerts
    /// firing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Liveness: the process is running and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is alive", body = ProbeStatus))
)]
pub async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus {
        status: "ok".to_string(),
        warnings: Vec::new(),
    })
}

/// Readiness: the store is open, the server is not shutting down, and no alert whose rule
/// holds readiness is firing. Other firing alerts are warnings.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready for traffic; `warnings` lists conditions to act on", body = ProbeStatus),
        (status = 503, description = "Not ready: starting, shutting down, or an alert that holds readiness is firing",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeStatus>, Problem> {
    if let Some(reason) = state.readiness.blocker() {
        return Err(Problem::new(ProblemCode::Unavailable).with_detail(reason.describe()));
    }
    let failing = state.engine.alerts_failing_readiness();
    if !failing.is_empty() {
        let detail = format!("alerts firing that hold readiness: {}", failing.join(", "));
        return Err(Problem::new(ProblemCode::Unavailable).with_detail(detail));
    }
    // statvfs is one quick system call; probes come seconds apart.
    let disk = state.disk.iter().filter_map(|disk| disk.warning());
    let firing = (state.engine.alerts().into_iter())
        .filter(|alert| alert.status.state == AlertState::Firing)
        .map(|alert| format!("alert {} is firing", alert.name));
    Ok(Json(ProbeStatus {
        status: "ready".to_string(),
        warnings: disk.chain(firing).collect(),
    }))
}
