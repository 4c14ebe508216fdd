//! Router tests without sockets: requests go straight into the axum service.

use super::*;
use crate::http::{metrics::METRICS_CONTENT_TYPE, problem::PROBLEM_CONTENT_TYPE};
use axum::http::StatusCode;
use axum::{
    body::{to_bytes, Body},
    http::{header, Method, Request},
    response::Response,
};
use tower::ServiceExt;
use wharf_engine::{clock::SystemClock, EngineConfig};
use wharf_storage::{StorageMetrics, Store, StoreConfig};

/// Big enough for any reply these endpoints give; a runaway body fails the test instead.
const TEST_BODY_BYTES_MAX: usize = 1 << 20;

/// Router state over an engine on a fresh store; the directory lives as long as the fixture.
struct Fixture {
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).expect("store"));
    let engine = Engine::open(store, Arc::new(SystemClock), EngineConfig::default())
        .await
        .expect("engine");
    Fixture {
        state: state(engine),
        _dir: dir,
    }
}

fn state(engine: Engine) -> AppState {
    let readiness = Arc::new(Readiness::default());
    readiness.set_store_open(true);
    let metrics = StorageMetrics::default();
    metrics.fsyncs.inc();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    AppState::from(crate::http::AppParts {
        readiness,
        registry: Arc::new(registry),
        engine: engine.clone(),
        disk: None,
        security: Arc::new(crate::http::security::SecuritySettings::new(true)),
        browser: Arc::default(),
        request_body_bytes_max: crate::http::REQUEST_BODY_BYTES_MAX_DEFAULT,
        connections: crate::connections::Connections::new(),
        webhooks: Default::default(),
        realtime: crate::realtime::Hub::new(engine, Default::default()),
        mqtt: None,
        resource_series_max: crate::resource_metrics::RESOURCE_SERIES_MAX_DEFAULT,
    })
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
    let response = send(&fixture().await.state, Method::GET, "/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(response).await,
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readyz_is_ready_while_store_open() {
    let response = send(&fixture().await.state, Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(response).await,
        serde_json::json!({"status": "ready"})
    );
}

#[tokio::test]
async fn readyz_turns_unavailable_once_shutdown_begins() {
    let fixture = fixture().await;
    let state = &fixture.state;
    state.readiness.begin_shutdown();
    let response = send(state, Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
    let problem = body_json(response).await;
    assert_eq!(problem["status"], 503);
    assert_eq!(problem["detail"], "the server is shutting down");
}

#[tokio::test]
async fn readyz_is_unavailable_before_store_opens() {
    let fixture = fixture().await;
    let state = &fixture.state;
    state.readiness.set_store_open(false);
    let response = send(state, Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_exports_storage_counters() {
    let response = send(&fixture().await.state, Method::GET, "/metrics").await;
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
    let response = send(&fixture().await.state, Method::GET, "/openapi.json").await;
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
    for (path, method) in [
        ("/v1/queues", "get"),
        ("/v1/queues/{name}", "put"),
        ("/v1/queues/{name}", "delete"),
        ("/v1/queues/{name}/messages", "post"),
        ("/v1/queues/{name}/messages", "get"),
        ("/v1/queues/{name}/receive", "post"),
        ("/v1/queues/{name}/ack", "post"),
        ("/v1/queues/{name}/nack", "post"),
        ("/v1/queues/{name}/lease", "post"),
        ("/v1/queues/{name}/purge", "post"),
        ("/v1/queues/{name}/redrive", "post"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(document["components"]["schemas"]["MessageBody"].is_object());
}

#[tokio::test]
async fn unknown_path_is_a_problem() {
    let response = send(&fixture().await.state, Method::GET, "/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
    let problem = body_json(response).await;
    assert_eq!(problem["title"], "Not Found");
    assert_eq!(problem["detail"], "no resource at /nope");
}

#[tokio::test]
async fn wrong_method_is_a_problem() {
    let response = send(&fixture().await.state, Method::POST, "/healthz").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
}

async fn send_json(state: &AppState, method: Method, path: &str, body: &str) -> Response {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible")
}

#[tokio::test]
async fn queue_routes_translate_to_the_engine() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let created = send_json(state, Method::PUT, "/v1/queues/jobs", "{}").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let sent = send_json(
        state,
        Method::POST,
        "/v1/queues/jobs/messages",
        r#"{"messages": [{"id": "m1", "body": {"n": 1}}]}"#,
    )
    .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    assert_eq!(
        body_json(sent).await,
        serde_json::json!({"messages": [{"id": "m1", "duplicate": false}]})
    );
    let received = send_json(state, Method::POST, "/v1/queues/jobs/receive", "").await;
    assert_eq!(received.status(), StatusCode::OK);
    let messages = body_json(received).await["messages"].clone();
    assert_eq!(messages[0]["body"], serde_json::json!({"n": 1}));
    let missing = send_json(state, Method::POST, "/v1/queues/nope/receive", "").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(content_type(&missing), PROBLEM_CONTENT_TYPE);
}

#[tokio::test]
async fn a_long_poll_ends_empty_when_shutdown_begins() {
    let fixture = fixture().await;
    let state = fixture.state.clone();
    let created = send_json(&state, Method::PUT, "/v1/queues/idle", "{}").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let poll_state = state.clone();
    let poll = tokio::spawn(async move {
        let body = r#"{"wait_ms": 20000}"#;
        send_json(&poll_state, Method::POST, "/v1/queues/idle/receive", body).await
    });
    // Whether the poll starts before or after this, it must not wait out its 20 s.
    state.readiness.begin_shutdown();
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), poll)
        .await
        .expect("the long poll ended with shutdown")
        .expect("no panic");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(response).await,
        serde_json::json!({"messages": []})
    );
}

/// A request with a JSON body and extra headers, through the whole router.
async fn send_with(
    state: &AppState,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body.to_string())).expect("request");
    router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible")
}

#[tokio::test]
async fn a_traceparent_travels_with_the_messages_of_its_request() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    send_with(state, Method::PUT, "/v1/queues/traced", &[], "{}").await;
    let body = format!(
        r#"{{"messages": [{{"body": 1}}, {{"body": 2, "headers": {{"traceparent": "{own}"}}}}]}}"#
    );
    let sent = send_with(
        state,
        Method::POST,
        "/v1/queues/traced/messages",
        &[("traceparent", trace)],
        &body,
    )
    .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let untraced = r#"{"messages": [{"body": 3}]}"#;
    let bad = [("traceparent", "00-not-a-trace-01")];
    send_with(
        state,
        Method::POST,
        "/v1/queues/traced/messages",
        &bad,
        untraced,
    )
    .await;
    let received = send_with(
        state,
        Method::POST,
        "/v1/queues/traced/receive",
        &[],
        r#"{"max_messages": 10}"#,
    )
    .await;
    let received = body_json(received).await;
    let traces: Vec<Option<&str>> = (received["messages"].as_array().expect("messages").iter())
        .map(|message| message["headers"]["traceparent"].as_str())
        .collect();
    assert_eq!(traces, [Some(trace), Some(own), None], "{received}");
}

#[tokio::test]
async fn connections_are_listed_shown_and_closed_by_id() {
    use crate::connections::{ClientProperties, ConsumerInfo, Door, NewConnection};
    use wharf_engine::security::Identity;
    let fixture = fixture().await;
    let state = &fixture.state;
    let empty = body_json(send(state, Method::GET, "/v1/connections").await).await;
    assert_eq!(empty, serde_json::json!({"connections": []}));
    let registration = state.connections.register(NewConnection {
        door: Door::Amqp,
        peer: "127.0.0.1:50000".parse().expect("address"),
        identity: Identity::User {
            name: "alice".into(),
        },
        virtual_host: Some("/".into()),
        client: ClientProperties::default(),
    });
    registration.channel_opened(1);
    let consumer = ConsumerInfo {
        tag: "worker".into(),
        queue: "orders".into(),
        prefetch: 0,
        no_ack: true,
    };
    registration.consumer_added(1, consumer);
    let id = registration.id();
    let listed = body_json(send(state, Method::GET, "/v1/connections?door=amqp").await).await;
    assert_eq!(listed["connections"][0]["id"], id.0, "{listed}");
    assert_eq!(listed["connections"][0]["user"], "alice");
    assert_eq!(listed["connections"][0]["client"], serde_json::json!({}));
    assert_eq!(listed["connections"][0]["consumer_count"], 1);
    let one = body_json(send(state, Method::GET, &format!("/v1/connections/{id}")).await).await;
    assert_eq!(one["channels"][0]["consumers"][0]["tag"], "worker", "{one}");
    assert_eq!(one["channels"][0]["consumers"][0]["no_ack"], true);

    for bad in ["/v1/connections?door=kafka", "/v1/connections?limit=0"] {
        let response = send(state, Method::GET, bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(content_type(&response), PROBLEM_CONTENT_TYPE);
    }
    for unknown in ["999", "-1", "x", "18446744073709551616"] {
        let path = format!("/v1/connections/{unknown}");
        for method in [Method::GET, Method::DELETE] {
            let response = send(state, method, &path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            let problem = body_json(response).await;
            assert_eq!(problem["code"], "connection_not_found", "{problem}");
        }
    }

    let closed = send(state, Method::DELETE, &format!("/v1/connections/{id}")).await;
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    let asked = registration.close_requested();
    tokio::time::timeout(std::time::Duration::from_secs(5), asked)
        .await
        .expect("the door is asked to close");
    drop(registration);
    let gone = send(state, Method::GET, &format!("/v1/connections/{id}")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}
