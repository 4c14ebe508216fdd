//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes.
//!
//! A new endpoint joins the document by being listed in [`ApiDoc`]'s `paths`; its request and
//! response types join `components` through their `ToSchema` derives.

use super::{health, metrics, Problem};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use utoipa::OpenApi;

/// The HTTP API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wharf",
        description = "Wharf message broker HTTP API. Errors are application/problem+json (RFC 9457)."
    ),
    paths(health::healthz, health::readyz, metrics::metrics, openapi_json),
    components(schemas(Problem, health::ProbeStatus)),
    tags((name = "operations", description = "Health, readiness, metrics and this document"))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value))
)]
pub async fn openapi_json() -> Response {
    match serde_json::to_value(ApiDoc::openapi()) {
        Ok(document) => Json(document).into_response(),
        Err(error) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail(format!("building the OpenAPI document failed: {error}"))
            .into_response(),
    }
}
