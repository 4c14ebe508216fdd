//! `wharf_http_requests_total{method,route,status}` and
//! `wharf_http_request_duration_seconds{method,route}`: what the HTTP door answered and how long
//! it took, by route template (`/v1/queues/{name}`), never by raw path, so the series stay as
//! few as the routes. Requests matching no route count under `route="unmatched"`; those the
//! browser rules refuse before routing are not counted here (`wharf_http_refusals` would be the
//! place, as the Host they name is not ours).
//!
//! Durations run until the response head is ready: a long poll counts its wait, an event
//! stream only its start.
//!
//! When spans are exported (`log.otlp_endpoint`, see `telemetry`), each request also runs in
//! a server span named `METHOD ROUTE`, child of the caller's `traceparent` when it sends one.

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use std::{sync::LazyLock, time::Instant};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

/// The route of a request that matched none.
const UNMATCHED: &str = "unmatched";

static REQUESTS: LazyLock<Family<Answered, Counter>> = LazyLock::new(Family::default);

static DURATIONS: LazyLock<Family<Route, Histogram>> = LazyLock::new(|| {
    // 250 µs to ~8 s: a fast send lands in the low buckets, a long poll in the top ones.
    Family::new_with_constructor(|| {
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.000_25, 2.0, 16,
        ))
    })
});

/// Adds both families to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "wharf_http_requests",
        "HTTP requests answered, by method, route and status",
        REQUESTS.clone(),
    );
    registry.register_with_unit(
        "wharf_http_request_duration",
        "Time to answer an HTTP request (to the response head), by method and route",
        Unit::Seconds,
        DURATIONS.clone(),
    );
}

/// The middleware: times the request and counts its answer.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = (request.extensions().get::<MatchedPath>())
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    // Methods are few in practice, but any token is a method: keep only the ones routed.
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    }
    .to_string();
    let response = match crate::telemetry::spans_exported() {
        false => next.run(request).await,
        true => {
            let span = tracing::info_span!(
                "http.request",
                otel.name = %format!("{method} {route}"),
                otel.kind = "server",
                http.request.method = %method,
                http.route = %route,
                http.response.status_code = tracing::field::Empty,
            );
            if let Some(parent) = (super::trace::traceparent(request.headers()))
                .and_then(|traceparent| super::trace::remote_parent(&traceparent))
            {
                // Fails only when the span is disabled, which leaves nothing to parent.
                let _ = span.set_parent(parent);
            }
            let response = next.run(request).instrument(span.clone()).await;
            span.record("http.response.status_code", response.status().as_u16());
            response
        }
    };
    let status = response.status().as_u16();
    let labels = Route { method, route };
    DURATIONS
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    REQUESTS
        .get_or_create(&Answered {
            method: labels.method,
            route: labels.route,
            status,
        })
        .inc();
    response
}
