//! The browser rules alone, then through the real router over a real engine.

use super::*;
use crate::{
    http::{problem::PROBLEM_CONTENT_TYPE, router, AppState},
    readiness::Readiness,
};
use axum::body::{to_bytes, Body};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use tower::ServiceExt;
use wharf_engine::{clock::SystemClock, Engine, EngineConfig};
use wharf_storage::{Store, StoreConfig};

const EVIL: &str = "http://evil.example";
const APP: &str = "https://app.example";

fn settings(hosts: &[&str], origins: &[&str]) -> HttpSettings {
    HttpSettings {
        allowed_hosts: hosts.iter().map(|host| host.to_string()).collect(),
        cors_origins: origins.iter().map(|origin| origin.to_string()).collect(),
    }
}

fn policy(hosts: &[&str], origins: &[&str], listen: &str) -> BrowserPolicy {
    let listen: SocketAddr = listen.parse().expect("address");
    BrowserPolicy::new(&settings(hosts, origins), listen.ip()).expect("valid settings")
}

#[test]
fn default_hosts_are_loopback_names_and_the_listen_ip() {
    let local = BrowserPolicy::default();
    for host in [
        "localhost",
        "localhost:7700",
        "LOCALHOST",
        "127.0.0.1:7700",
        "[::1]:7700",
    ] {
        assert!(local.host_allowed(host), "{host}");
    }
    for host in [
        "evil.example",
        "evil.example:7700",
        "10.0.0.5",
        "[::1",
        "a b",
        "",
    ] {
        assert!(!local.host_allowed(host), "{host}");
    }
    let lan = policy(&[], &[], "10.0.0.5:7700");
    assert!(lan.host_allowed("10.0.0.5:7700"));
    assert!(!lan.host_allowed("10.0.0.6:7700"));
    let v6 = policy(&[], &[], "[fd00::1]:7700");
    assert!(v6.host_allowed("[fd00::1]:7700"));
    assert!(v6.host_allowed("[FD00:0:0::1]"));
}

#[test]
fn an_unspecified_listen_address_accepts_ip_literals_but_not_names() {
    let any = policy(&[], &[], "0.0.0.0:7700");
    assert!(any.host_allowed("192.168.1.20:7700"));
    assert!(any.host_allowed("[fd00::7]"));
    assert!(!any.host_allowed("evil.example:7700"));
}

#[test]
fn listed_hosts_add_to_the_defaults_and_star_accepts_any() {
    let listed = policy(&["Wharf.Example"], &[], "127.0.0.1:7700");
    assert!(listed.host_allowed("wharf.example:443"));
    assert!(listed.host_allowed("localhost"));
    assert!(!listed.host_allowed("other.example"));
    assert!(policy(&["*"], &[], "127.0.0.1:7700").host_allowed("anything.example"));
}

#[test]
fn bad_entries_name_their_setting() {
    let cases = [
        (settings(&["wharf.example:80"], &[]), ALLOWED_HOSTS_KEY),
        (settings(&["*", "localhost"], &[]), ALLOWED_HOSTS_KEY),
        (settings(&["::1"], &[]), ALLOWED_HOSTS_KEY),
        (settings(&[], &["ftp://app.example"]), CORS_ORIGINS_KEY),
        (
            settings(&[], &["https://app.example/path"]),
            CORS_ORIGINS_KEY,
        ),
        (
            settings(&[], &["https://user@app.example"]),
            CORS_ORIGINS_KEY,
        ),
        (settings(&[], &["*", APP]), CORS_ORIGINS_KEY),
    ];
    for (settings, key) in cases {
        let error = BrowserPolicy::validate(&settings).unwrap_err();
        assert_eq!(error.key(), key, "{settings:?}");
        assert!(error.to_string().contains(key), "{error}");
    }
    BrowserPolicy::validate(&settings(
        &["[fd00::1]", "10.0.0.1"],
        &[APP, "http://x:8080"],
    ))
    .expect("valid");
}

#[test]
fn same_origin_matches_host_and_port_with_scheme_defaults() {
    let local = BrowserPolicy::default();
    let same = |origin, host| local.check_origin(origin, Some(host));
    assert_eq!(
        same("http://localhost:7700", "localhost:7700"),
        Ok(OriginVerdict::SameOrigin)
    );
    assert_eq!(
        same("http://localhost", "localhost"),
        Ok(OriginVerdict::SameOrigin)
    );
    assert_eq!(
        same("https://localhost", "localhost:443"),
        Ok(OriginVerdict::SameOrigin)
    );
    for (origin, host) in [
        ("http://localhost:7701", "localhost:7700"),
        (EVIL, "localhost:7700"),
        ("null", "localhost:7700"),
    ] {
        let problem = same(origin, host).unwrap_err();
        assert_eq!(problem.code, ProblemCode::ForbiddenOrigin);
        assert!(problem.detail.unwrap().contains(CORS_ORIGINS_KEY));
    }
}

#[test]
fn listed_origins_get_their_own_origin_back_and_star_gets_star() {
    let listed = policy(&[], &[APP], "127.0.0.1:7700");
    assert_eq!(
        listed.check_origin(APP, Some("localhost")),
        Ok(OriginVerdict::Cors(HeaderValue::from_static(APP)))
    );
    assert_eq!(
        listed.check_origin("https://app.example:443", Some("localhost")),
        Ok(OriginVerdict::Cors(HeaderValue::from_static(
            "https://app.example:443"
        )))
    );
    assert!(listed.check_origin("http://app.example", None).is_err());
    let any = policy(&[], &["*"], "127.0.0.1:7700");
    assert_eq!(
        any.check_origin(EVIL, Some("localhost")),
        Ok(OriginVerdict::Cors(HeaderValue::from_static("*")))
    );
}

#[test]
fn form_and_text_types_are_refused_only_on_state_changing_methods() {
    let with_type = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    };
    for value in [
        "application/x-www-form-urlencoded",
        "Multipart/Form-Data; boundary=x",
        "text/plain;charset=UTF-8",
    ] {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let problem = check_content_type(&method, &with_type(value)).unwrap_err();
            assert_eq!(problem.status, 415, "{method} {value}");
        }
        check_content_type(&Method::GET, &with_type(value)).expect("a read");
    }
    check_content_type(&Method::POST, &with_type("application/json")).expect("JSON");
    check_content_type(&Method::POST, &HeaderMap::new()).expect("no content type");
}

/// A router over a fresh engine with `policy`; the directory lives as long as the fixture.
struct Fixture {
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn fixture(policy: BrowserPolicy) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).expect("store"));
    let engine = Engine::open(store, Arc::new(SystemClock), EngineConfig::default())
        .await
        .expect("engine");
    let readiness = Arc::new(Readiness::default());
    readiness.set_store_open(true);
    let state = AppState::from(crate::http::AppParts {
        readiness,
        registry: Arc::new(Registry::default()),
        engine: engine.clone(),
        disk: None,
        security: Arc::new(crate::http::security::SecuritySettings::new(true)),
        browser: Arc::new(policy),
        request_body_bytes_max: crate::http::REQUEST_BODY_BYTES_MAX_DEFAULT,
        connections: crate::connections::Connections::new(),
        webhooks: Default::default(),
        realtime: crate::realtime::Hub::new(engine, Default::default()),
        mqtt: None,
        resource_series_max: crate::resource_metrics::RESOURCE_SERIES_MAX_DEFAULT,
    });
    Fixture { state, _dir: dir }
}

impl Fixture {
    /// Sends `method path` with `headers` and `body` through the real router.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body.to_string())).expect("request");
        router(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible")
    }

    /// Creates queue `q1` holding two messages, as a local JSON client would.
    async fn queue_with_two_messages(&self) {
        let json = [
            ("host", "localhost:7700"),
            ("content-type", "application/json"),
        ];
        let created = self.send(Method::PUT, "/v1/queues/q1", &json, "{}").await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let body = r#"{"messages": [{"body": 1}, {"body": 2}]}"#;
        let sent = self
            .send(Method::POST, "/v1/queues/q1/messages", &json, body)
            .await;
        assert_eq!(sent.status(), StatusCode::CREATED);
    }

    async fn ready_count(&self) -> u64 {
        let info = self
            .send(Method::GET, "/v1/queues/q1", &[("host", "localhost")], "")
            .await;
        assert_eq!(info.status(), StatusCode::OK);
        body_json(info).await["stats"]["ready"]
            .as_u64()
            .expect("a count")
    }
}

async fn body_json(response: Response) -> serde_json::Value {
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    serde_json::from_slice(&bytes).expect("json body")
}

fn header_of(response: &Response, name: header::HeaderName) -> Option<&str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("ascii"))
}

async fn assert_problem(response: Response, status: StatusCode, code: &str, mentions: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        header_of(&response, header::CONTENT_TYPE),
        Some(PROBLEM_CONTENT_TYPE)
    );
    let problem = body_json(response).await;
    assert_eq!(problem["code"], code);
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains(mentions), "{detail}");
}

#[tokio::test]
async fn the_cross_site_form_purge_is_refused_and_purges_nothing() {
    let fixture = fixture(BrowserPolicy::default()).await;
    fixture.queue_with_two_messages().await;
    let form = ("content-type", "application/x-www-form-urlencoded");
    let host = ("host", "localhost:7700");
    let evil = fixture
        .send(
            Method::POST,
            "/v1/queues/q1/purge",
            &[host, ("origin", EVIL), form, ("content-length", "0")],
            "",
        )
        .await;
    assert_problem(evil, StatusCode::FORBIDDEN, "forbidden_origin", EVIL).await;
    // An old browser that sends no Origin on a form post still meets the content-type rule.
    let no_origin = fixture
        .send(Method::POST, "/v1/queues/q1/purge", &[host, form], "")
        .await;
    assert_problem(
        no_origin,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/x-www-form-urlencoded",
    )
    .await;
    let text = ("content-type", "text/plain");
    let text = fixture
        .send(Method::POST, "/v1/queues/q1/purge", &[host, text], "")
        .await;
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A bodiless no-cors fetch has no content type at all; its Origin refuses it.
    let bodiless = fixture
        .send(
            Method::POST,
            "/v1/queues/q1/purge",
            &[host, ("origin", EVIL)],
            "",
        )
        .await;
    assert_eq!(bodiless.status(), StatusCode::FORBIDDEN);
    assert_eq!(fixture.ready_count().await, 2);
}

#[tokio::test]
async fn a_rebound_host_is_misdirected_but_health_probes_answer() {
    let fixture = fixture(BrowserPolicy::default()).await;
    fixture.queue_with_two_messages().await;
    let rebound = [
        ("host", "evil.example:7700"),
        ("origin", "http://evil.example:7700"),
    ];
    let purge = fixture
        .send(Method::POST, "/v1/queues/q1/purge", &rebound, "")
        .await;
    assert_problem(
        purge,
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected_host",
        ALLOWED_HOSTS_KEY,
    )
    .await;
    let read = fixture
        .send(
            Method::GET,
            "/v1/queues/q1",
            &[("host", "evil.example")],
            "",
        )
        .await;
    assert_problem(
        read,
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected_host",
        "evil.example",
    )
    .await;
    // Routes, fallbacks and wrong methods alike.
    for (method, path) in [
        (Method::GET, "/metrics"),
        (Method::GET, "/no/such/path"),
        (Method::PATCH, "/v1/queues/q1/purge"),
    ] {
        let refused = fixture
            .send(method, path, &[("host", "evil.example")], "")
            .await;
        assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    for probe in ["/healthz", "/readyz"] {
        let probed = fixture
            .send(Method::GET, probe, &[("host", "10.1.2.3:8080")], "")
            .await;
        assert_eq!(probed.status(), StatusCode::OK, "{probe}");
    }
    assert_eq!(fixture.ready_count().await, 2);
}

#[tokio::test]
async fn json_requests_and_bodiless_posts_still_work() {
    let fixture = fixture(BrowserPolicy::default()).await;
    fixture.queue_with_two_messages().await;
    // curl -X POST with no body and no content type; no Host at all (HTTP/1.0 tools).
    let received = fixture
        .send(Method::POST, "/v1/queues/q1/receive", &[], "")
        .await;
    assert_eq!(received.status(), StatusCode::OK);
    assert_eq!(body_json(received).await["messages"][0]["body"], 1);
    // A page served by the server itself (same origin) posting JSON.
    let same_origin = [
        ("host", "127.0.0.1:7700"),
        ("origin", "http://127.0.0.1:7700"),
        ("content-type", "application/json"),
    ];
    let purged = fixture
        .send(Method::POST, "/v1/queues/q1/purge", &same_origin, "")
        .await;
    assert_eq!(purged.status(), StatusCode::OK);
    assert_eq!(
        header_of(&purged, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        None
    );
    assert_eq!(header_of(&purged, header::VARY), None);
    assert_eq!(body_json(purged).await, serde_json::json!({"purged": 1}));
}

#[tokio::test]
async fn an_allowed_origin_gets_preflight_and_cors_headers_and_others_are_refused() {
    let fixture = fixture(policy(&[], &[APP], "127.0.0.1:7700")).await;
    fixture.queue_with_two_messages().await;
    let preflight = [
        ("host", "localhost:7700"),
        ("origin", APP),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type",
        ),
    ];
    let answer = fixture
        .send(Method::OPTIONS, "/v1/queues/q1/purge", &preflight, "")
        .await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let allowed = |name| header_of(&answer, name).expect("header").to_string();
    assert_eq!(allowed(header::ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    assert!(allowed(header::ACCESS_CONTROL_ALLOW_METHODS).contains("POST"));
    let allow_headers = allowed(header::ACCESS_CONTROL_ALLOW_HEADERS);
    assert!(allow_headers.contains("authorization") && allow_headers.contains("content-type"));
    assert_eq!(
        allowed(header::ACCESS_CONTROL_MAX_AGE),
        CORS_MAX_AGE_SECONDS
    );
    assert_eq!(allowed(header::VARY), "origin");
    assert_eq!(
        header_of(&answer, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        None
    );

    let actual = [
        ("host", "localhost:7700"),
        ("origin", APP),
        ("content-type", "application/json"),
    ];
    let purged = fixture
        .send(Method::POST, "/v1/queues/q1/purge", &actual, "{}")
        .await;
    assert_eq!(purged.status(), StatusCode::OK);
    assert_eq!(
        header_of(&purged, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(APP)
    );
    assert_eq!(header_of(&purged, header::VARY), Some("origin"));

    let mut refused_preflight = preflight;
    refused_preflight[1] = ("origin", EVIL);
    let refused = fixture
        .send(
            Method::OPTIONS,
            "/v1/queues/q1/purge",
            &refused_preflight,
            "",
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden_origin", EVIL).await;
    let mut refused_actual = actual;
    refused_actual[1] = ("origin", EVIL);
    let refused = fixture
        .send(Method::POST, "/v1/queues/q1/purge", &refused_actual, "{}")
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_event_stream_carries_cors_headers_for_an_allowed_origin() {
    let fixture = fixture(policy(&[], &[APP], "127.0.0.1:7700")).await;
    let json = [("host", "localhost"), ("content-type", "application/json")];
    let created = fixture
        .send(Method::PUT, "/v1/topics/t1", &json, "{}")
        .await;
    assert!(created.status().is_success(), "{}", created.status());
    let subscribe = "/v1/topics/t1/subscribe?pattern=%23";
    let stream = fixture
        .send(
            Method::GET,
            subscribe,
            &[("host", "localhost"), ("origin", APP)],
            "",
        )
        .await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        header_of(&stream, header::CONTENT_TYPE),
        Some("text/event-stream")
    );
    assert_eq!(
        header_of(&stream, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(APP)
    );
    let refused = fixture
        .send(
            Method::GET,
            subscribe,
            &[("host", "localhost"), ("origin", EVIL)],
            "",
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}
