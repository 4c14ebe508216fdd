//! The HTTP door: operational endpoints, the `/v1` resource API (queues, topics, request-reply)
//! and the web dashboard's static files under `/ui`.
//!
//! This module owns routing, the shared handler state and the OpenAPI document; each concern's
//! handlers live in their own file and join [`ApiDoc`] through `#[utoipa::path]`. Listening,
//! shutdown and the store's lifecycle belong to `serve`.

mod alerts;
pub mod browser;
mod connections;
mod events;
mod extract;
mod health;
pub(crate) mod json_body;
mod listing;
mod metrics;
mod mqtt;
mod openapi;
pub mod problem;
pub(crate) mod queues;
mod realtime;
pub mod refusals;
pub mod request_metrics;
pub(crate) mod requests;
pub mod security;
mod streams;
pub(crate) mod topics;
mod trace;
mod ui;
mod webhooks;

pub use openapi::ApiDoc;
pub use problem::{Problem, ProblemCode};

use crate::{connections::Connections, disk_space::DiskSpace, readiness::Readiness};
use axum::{extract::DefaultBodyLimit, http::Uri, middleware, routing::get, Extension, Router};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use wharf_engine::Engine;

/// Default of `limits.request_body_bytes_max`, the largest request body. A send batch may carry
/// 8 MiB of message bodies (the default `limits.batch_bytes_max`); as base64 inside JSON that
/// is about 10.7 MiB, so 12 MiB lets a full batch through with room for its other fields, and
/// refuses anything bigger with 413 before it is buffered.
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: usize = 12 << 20;

/// The configured largest request body, for the 413 answer that names it; a request extension
/// the router adds.
#[derive(Debug, Clone, Copy)]
pub struct RequestBodyLimit(pub usize);

/// What every handler may read, behind one `Arc`: axum clones the state for every request,
/// layer and extractor, and one reference count costs less than one per part (cloning and
/// dropping the parts one by one was about a tenth of the server's CPU under small requests).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct AppParts {
    pub readiness: Arc<Readiness>,
    /// Every metric the server exports; built once at start-up, read by `/metrics`.
    pub registry: Arc<Registry>,
    /// The broker every `/v1` handler translates into.
    pub engine: Engine,
    /// The data directory's free space, for `/readyz` and `/metrics`; `None` in tests
    /// without a directory.
    pub disk: Option<Arc<DiskSpace>>,
    /// The guard's settings (see `security`).
    pub security: Arc<security::SecuritySettings>,
    /// Host, Origin and content-type rules against browsers turned on the API.
    pub browser: Arc<browser::BrowserPolicy>,
    /// `limits.request_body_bytes_max`: a longer body is refused with 413 unread.
    pub request_body_bytes_max: usize,
    /// The client connections of the doors that keep connections (AMQP).
    pub connections: Arc<Connections>,
    /// The webhook dispatcher's settings and delivery log.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The real-time hub behind `/v1/ws` and `/v1/sse`.
    pub realtime: Arc<crate::realtime::Hub>,
    /// The MQTT door, for MQTT over WebSocket at `/mqtt`; `None` in tests without one.
    pub mqtt: Option<Arc<crate::mqtt::Door>>,
    /// `metrics.resource_series_max`: `/metrics` measures the time lag of this many
    /// projections (those it shows), not of every one.
    pub resource_series_max: usize,
}

/// The door's routes; unknown paths and methods answer with problem+json. The browser rules
/// wrap everything, fallbacks included.
///
/// Layers that need no matched route run once around the routing instead of inside every
/// route: axum clones a route's whole stack of layers for each request, and each
/// `from_fn` layer clones the stack beneath it again, so every layer inside the routes costs
/// allocations per request. Only the two that read the matched path (the guard and the
/// request metrics) stay inside.
pub fn router(state: AppState) -> Router {
    let browser = state.browser.clone();
    let body_limit = state.request_body_bytes_max;
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(queues::routes())
        .merge(topics::routes())
        .merge(streams::routes())
        .merge(events::routes())
        .merge(requests::routes())
        .merge(security::routes())
        .merge(alerts::routes())
        .merge(connections::routes())
        .merge(webhooks::routes())
        .merge(realtime::routes())
        .merge(mqtt::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::middleware::guard,
        ))
        // The dashboard's static files: public, so outside the guard above (its page asks
        // for credentials and sends them with every API call), and not part of the API, so
        // not in the OpenAPI document either.
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_metrics::record))
        .with_state(state);
    let around = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(browser, browser::guard))
        .layer(Extension(RequestBodyLimit(body_limit)))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes);
    Router::new().fallback_service(around)
}

async fn not_found(uri: Uri) -> Problem {
    Problem::new(ProblemCode::NotFound).with_detail(format!("no resource at {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Problem {
    Problem::new(ProblemCode::MethodNotAllowed)
        .with_detail(format!("{} does not accept this method", uri.path()))
}

#[cfg(test)]
mod tests;
