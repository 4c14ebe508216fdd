//! Liveness and readiness probes: `/healthz` says the process answers, `/readyz` says it should
//! get traffic (store open, not shutting down), with warnings that need an operator but do
//! not stop traffic (the disk nearly full; see `disk_space`).

use super::{AppState, Problem, ProblemCode};
use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;

/// Body of a successful probe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok` for liveness, `ready` for readiness.
    #[schema(example = "ok")]
    pub status: String,
    /// Conditions that do not stop traffic but need an operator: the disk nearly full.
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

/// Readiness: the store is open and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready for traffic; `warnings` lists conditions to act on", body = ProbeStatus),
        (status = 503, description = "Not ready: starting, or shutting down",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeStatus>, Problem> {
    match state.readiness.blocker() {
        None => Ok(Json(ProbeStatus {
            status: "ready".to_string(),
            // statvfs is one quick system call; probes come seconds apart.
            warnings: state
                .disk
                .iter()
                .filter_map(|disk| disk.warning())
                .collect(),
        })),
        Some(reason) => Err(Problem::new(ProblemCode::Unavailable).with_detail(reason.describe())),
    }
}
