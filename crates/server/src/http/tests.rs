//! Router tests without sockets: requests go straight into the axum service.

use super::*;
use crate::http::{metrics::METRICS_CONTENT_TYPE, problem::PROBLEM_CONTENT_TYPE};
use axum::{
    body::{to_bytes, Body},
    http::{header, Method, Request},
    response::Response,
};
use tower::ServiceExt;
use wharf_storage::StorageMetrics;

/// Big enough for any reply these endpoints give; a runaway body fails the test instead.
const TEST_BODY_BYTES_MAX: usize = 1 << 20;

fn state() -> AppState {
    let readiness = Arc::new(Readiness::default());
    readiness.set_store_open(true);
    let metrics = StorageMetrics::default();
    metrics.fsyncs.inc();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    AppState {
        readiness,
        registry: Arc::new(registry),
    }
}

async fn send(state: &AppState, method: Method, path: &str) -> Response {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("request");
    router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible")
}

async fn body_json(response: Response) -> serde_json::Value {
    let bytes = to_bytes(response.into_body(), TEST_BODY_BYTES_MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json body")
}

fn content_type(response: &Response) -> &str {
    response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
}

#[tokio::test]
async fn healthz_answers_ok() {
    let response = send(&state(), Method::GET, "/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(response).await,
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readyz_is_ready_while_store_open() {
    let response = send(&state(), Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(response).await,
        serde_json::json!({"status": "ready"})
    );
}

#[tokio::test]
async fn readyz_turns_unavailable_once_shutdown_begins() {
    let state = state();
    state.readiness.begin_shutdown();
    let response = send(&state, Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
    let problem = body_json(response).await;
    assert_eq!(problem["status"], 503);
    assert_eq!(problem["detail"], "the server is shutting down");
}

#[tokio::test]
async fn readyz_is_unavailable_before_store_opens() {
    let state = state();
    state.readiness.set_store_open(false);
    let response = send(&state, Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_exports_storage_counters() {
    let response = send(&state(), Method::GET, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), METRICS_CONTENT_TYPE);
    let bytes = to_bytes(response.into_body(), TEST_BODY_BYTES_MAX)
        .await
        .expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    assert!(text.contains("wharf_storage_fsyncs_total 1"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let response = send(&state(), Method::GET, "/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document = body_json(response).await;
    assert!(document["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn unknown_path_is_a_problem() {
    let response = send(&state(), Method::GET, "/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
    let problem = body_json(response).await;
    assert_eq!(problem["title"], "Not Found");
    assert_eq!(problem["detail"], "no resource at /nope");
}

#[tokio::test]
async fn wrong_method_is_a_problem() {
    let response = send(&state(), Method::POST, "/healthz").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
}
