//! The dashboard's files through the whole router of a secured server: served without
//! credentials, with their types and the security headers, and only the files the page uses.

use super::{ASSETS, CONTENT_SECURITY_POLICY};
use crate::disk_space::DiskSpace;
use crate::http::{router, security::SecuritySettings, ApiDoc, AppState};
use crate::readiness::Readiness;
use crate::resource_metrics::{
    resident_memory_bytes, ResourceMetrics, SeriesChoice, RESOURCE_SERIES_MAX_DEFAULT,
};
use axum::{
    body::{to_bytes, Body},
    http::{header, Method, Request, StatusCode},
    response::Response,
};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tower::ServiceExt;
use utoipa::OpenApi;
use wharf_engine::{
    clock::SystemClock, queue::QueueOptions, topic::TopicOptions, Engine, EngineConfig,
};
use wharf_storage::{MemoryStore, Storage};

/// A server with an administrator token: every `/v1` call needs credentials.
async fn secured_state() -> AppState {
    let engine = Engine::open(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    )
    .await
    .expect("engine");
    engine
        .seed_admin_token("a-dashboard-test-token")
        .await
        .expect("admin");
    let readiness = Arc::new(Readiness::default());
    readiness.set_store_open(true);
    AppState::from(crate::http::AppParts {
        readiness,
        registry: Arc::new(Registry::default()),
        engine: engine.clone(),
        disk: None,
        security: Arc::new(SecuritySettings::new(false)),
        browser: Arc::default(),
        request_body_bytes_max: crate::http::REQUEST_BODY_BYTES_MAX_DEFAULT,
        connections: crate::connections::Connections::new(),
        webhooks: Default::default(),
        realtime: crate::realtime::Hub::new(engine, Default::default()),
        mqtt: None,
        resource_series_max: crate::resource_metrics::RESOURCE_SERIES_MAX_DEFAULT,
    })
}

async fn get(state: &AppState, path: &str) -> Response {
    get_from_host(state, path, "localhost").await
}

async fn get_from_host(state: &AppState, path: &str, host: &str) -> Response {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, host)
        .body(Body::empty())
        .expect("request");
    router(state.clone()).oneshot(request).await.expect("call")
}

fn header_of(response: &Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_without_credentials_with_a_strict_policy() {
    let state = secured_state().await;
    let api = get(&state, "/v1/queues").await;
    assert_eq!(
        api.status(),
        StatusCode::UNAUTHORIZED,
        "the API stays guarded"
    );
    let expected = [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/api.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ];
    for (path, content_type) in expected {
        let response = get(&state, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header_of(&response, header::CONTENT_TYPE), content_type);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&response, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        assert!(!body.is_empty(), "{path}");
    }
}

/// Outside the security guard is not outside the browser rules: a rebound DNS name gets no
/// page to run in the API's origin.
#[tokio::test]
async fn the_page_keeps_the_host_allow_list() {
    let state = secured_state().await;
    let response = get_from_host(&state, "/ui", "evil.example").await;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn an_unknown_dashboard_file_is_a_problem() {
    let state = secured_state().await;
    for path in ["/ui/nope.js", "/ui/..%2Fmod.rs", "/ui/a/b"] {
        let response = get(&state, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "application/problem+json"
        );
    }
}

#[test]
fn the_dashboard_is_not_part_of_the_api_document() {
    let document = ApiDoc::openapi();
    assert!(document
        .paths
        .paths
        .keys()
        .all(|path| !path.starts_with("/ui")));
}

/// The policy forbids inline code; this keeps the page from needing any, so a browser never
/// reports a violation. Every script and import the page names is one of the served files.
#[test]
fn the_page_has_no_inline_script_or_style_and_loads_only_served_files() {
    let names: Vec<&str> = ASSETS.iter().map(|asset| asset.name).collect();
    let index = ASSETS[0].body;
    assert!(!index.contains("<script>"), "inline script");
    assert!(!index.contains("<style"), "inline style");
    assert!(!index.contains("style="), "style attribute");
    assert!(
        !has_event_handler_attribute(index),
        "event handler attribute"
    );
    for asset in &ASSETS {
        for referenced in references(asset.body) {
            assert!(
                names.contains(&referenced.as_str()),
                "{} names {referenced}, which is not served",
                asset.name
            );
        }
    }
}

/// The overview reads `/metrics` by name; a name the server does not write would show as `–`
/// (or as no card at all) with no error anywhere. Every name the pages read must be in a
/// server's scrape (one with a queue and a topic, so per-resource series exist).
#[tokio::test]
async fn every_metric_the_pages_read_is_one_the_server_writes() {
    let state = secured_state().await;
    state
        .engine
        .put_queue("orders", QueueOptions::default())
        .await
        .expect("queue");
    state
        .engine
        .put_topic("events", TopicOptions::default())
        .await
        .expect("topic");
    let mut registry = Registry::default();
    let choice = SeriesChoice {
        max: RESOURCE_SERIES_MAX_DEFAULT,
        ..SeriesChoice::default()
    };
    registry.register_collector(Box::new(ResourceMetrics::new(state.engine.clone(), choice)));
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let disk = DiskSpace::new(dir.path().to_path_buf(), 0, store, &mut registry);
    disk.free_bytes().expect("statvfs");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    let pages = ASSETS
        .iter()
        .find(|asset| asset.name == "pages.js")
        .expect("pages.js");
    let names = metric_names(pages.body);
    assert!(names.contains(&"wharf_messages".to_string()), "{names:?}");
    for name in names {
        if name == "wharf_process_resident_memory_bytes" && resident_memory_bytes().is_none() {
            continue; // Not on this platform; the page leaves the card out.
        }
        let written = text.lines().any(|line| {
            line.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        });
        assert!(
            written,
            "pages.js reads {name}, which /metrics lacks:\n{text}"
        );
    }
}

/// The metric names in a script: what it passes to `sample(metrics, 'NAME'`, and any other
/// quoted `'wharf_…'`.
fn metric_names(script: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for marker in ["sample(metrics, '", "'wharf_"] {
        for (start, _) in script.match_indices(marker) {
            let rest = &script[start + marker.rfind('\'').expect("quote") + 1..];
            let name = &rest[..rest.find('\'').unwrap_or(rest.len())];
            if !found.iter().any(|known| known == name) {
                found.push(name.to_string());
            }
        }
    }
    found
}

/// The files a page or module names: `/ui/NAME` in the page, `./NAME` in an import.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["\"/ui/", "'./"] {
        for (start, _) in text.match_indices(marker) {
            let rest = &text[start + marker.len()..];
            let end = rest.find(['"', '\'']).unwrap_or(rest.len());
            found.push(rest[..end].to_string());
        }
    }
    found
}

/// Whether `html` has an attribute like ` onclick=`.
fn has_event_handler_attribute(html: &str) -> bool {
    html.match_indices(" on").any(|(start, _)| {
        let rest = &html[start + 3..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_lowercase())
            .unwrap_or(rest.len());
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}
