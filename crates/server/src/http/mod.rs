//! The HTTP door: operational endpoints now, the `/v1` resource API as it is built.
//!
//! This module owns routing, the shared handler state and the OpenAPI document; each concern's
//! handlers live in their own file and join [`ApiDoc`] through `#[utoipa::path]`. Listening,
//! shutdown and the store's lifecycle belong to `serve`.

mod health;
mod metrics;
mod openapi;
pub mod problem;

pub use openapi::ApiDoc;
pub use problem::Problem;

use crate::readiness::Readiness;
use axum::{
    http::{StatusCode, Uri},
    routing::get,
    Router,
};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// What every handler may read. Cloned per request, so only `Arc`s.
#[derive(Debug, Clone)]
pub struct AppState {
    pub readiness: Arc<Readiness>,
    /// Every metric the server exports; built once at start-up, read by `/metrics`.
    pub registry: Arc<Registry>,
}

/// The door's routes; unknown paths and methods answer with problem+json.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: Uri) -> Problem {
    Problem::new(StatusCode::NOT_FOUND).with_detail(format!("no resource at {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail(format!("{} does not accept this method", uri.path()))
}

#[cfg(test)]
mod tests;
