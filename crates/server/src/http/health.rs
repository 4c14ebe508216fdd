//! Liveness and readiness probes: `/healthz` says the process answers, `/readyz` says it should
//! get traffic (store open, not shutting down).

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
}

/// Liveness: the process is running and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = ProbeStatus))
)]
pub async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus {
        status: "ok".to_string(),
    })
}

/// Readiness: the store is open and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = ProbeStatus),
        (status = 503, description = "Not ready: starting, or shutting down",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeStatus>, Problem> {
    match state.readiness.blocker() {
        None => Ok(Json(ProbeStatus {
            status: "ready".to_string(),
        })),
        Some(reason) => Err(Problem::new(ProblemCode::Unavailable).with_detail(reason.describe())),
    }
}
