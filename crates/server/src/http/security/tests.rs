//! Every operation of the OpenAPI document, called with no credentials, wrong credentials, a
//! principal without the grant it needs, and one with it: a new endpoint without a rule, or a
//! rule that lets the wrong caller through, fails here. Then tokens that expire or are
//! revoked, what a refusal says, and the audit log.

use super::rules::{self, Rule};
use crate::http::{router, security::SecuritySettings, ApiDoc, AppState};
use crate::readiness::Readiness;
use axum::{
    body::{to_bytes, Body},
    http::{header, Method, Request, StatusCode},
};
use prometheus_client::registry::Registry;
use std::{sync::Arc, time::Duration};
use tower::ServiceExt;
use utoipa::OpenApi;
use wharf_engine::{
    clock::ManualClock,
    security::{Action, Grant, ResourceKind, TokenRequest},
    Engine, EngineConfig,
};
use wharf_storage::MemoryStore;

const ADMIN: &str = "an-administrator-token";
const START: u64 = 1_800_000_000_000;

struct Fixture {
    state: AppState,
    engine: Engine,
    clock: Arc<ManualClock>,
}

async fn fixture() -> Fixture {
    let fixture = fixture_with(EngineConfig::default(), false).await;
    (fixture.engine)
        .put_user("nogrant", Some("no-grants-here".into()), Some(Vec::new()))
        .await
        .expect("user");
    fixture
}

/// An engine on `config` with the administrator token seeded, behind the whole router;
/// `/metrics` public or not.
async fn fixture_with(config: EngineConfig, metrics_public: bool) -> Fixture {
    let clock = ManualClock::new(START);
    let engine = Engine::open(Arc::new(MemoryStore::new()), clock.clone(), config)
        .await
        .expect("engine");
    engine.seed_admin_token(ADMIN).await.expect("admin");
    let readiness = Arc::new(Readiness::default());
    readiness.set_store_open(true);
    let state = AppState::from(crate::http::AppParts {
        readiness,
        registry: Arc::new(Registry::default()),
        engine: engine.clone(),
        disk: None,
        security: Arc::new(SecuritySettings::new(metrics_public)),
        browser: Arc::default(),
        request_body_bytes_max: crate::http::REQUEST_BODY_BYTES_MAX_DEFAULT,
        connections: crate::connections::Connections::new(),
        webhooks: Default::default(),
        realtime: crate::realtime::Hub::new(engine.clone(), Default::default()),
        mqtt: None,
        resource_series_max: crate::resource_metrics::RESOURCE_SERIES_MAX_DEFAULT,
    });
    Fixture {
        state,
        engine,
        clock,
    }
}

/// A token holding exactly `action` on `kind:name`.
async fn token_for(engine: &Engine, action: Action, kind: ResourceKind, name: &str) -> String {
    let admin = engine
        .authenticate(Some(&wharf_engine::security::Credentials::Token(
            ADMIN.into(),
        )))
        .await
        .expect("admin");
    let grant = Grant {
        actions: vec![action],
        resource: format!("{}:{name}", kind.as_str())
            .parse()
            .expect("pattern"),
    };
    let request = TokenRequest {
        name: "exact".into(),
        grants: vec![grant],
        expires_in: None,
    };
    let created = engine.create_token(&admin, request).await.expect("token");
    created.token
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!("Basic {}", base64_simd::STANDARD.encode_to_string(pair))
}

async fn call(
    state: &AppState,
    method: &Method,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder().method(method.clone()).uri(path);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(Body::from(body.to_string())).expect("request");
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    // Event streams never end: only the status matters for them.
    if response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "text/event-stream")
    {
        return (status, serde_json::Value::Null);
    }
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// A body that gets the operation past its own parsing, so a refusal is the grant's.
fn body_for(method: &Method, template: &str) -> &'static str {
    match template {
        "/v1/request" => r#"{"queue": "t1", "body": "hi", "timeout_ms": 10}"#,
        "/v1/scatter" => r#"{"topic": "t1", "body": "hi", "expect": 1, "timeout_ms": 10}"#,
        "/v1/users/{name}" if *method == Method::PUT => r#"{"password": "long enough"}"#,
        "/v1/tokens" => r#"{"name": "n", "grants": []}"#,
        "/v1/events/appends" => r#"{"appends": [{"stream": "t1", "events": [{"type": "T"}]}]}"#,
        _ if *method == Method::POST || *method == Method::PUT => "{}",
        _ => "",
    }
}

fn operations() -> Vec<(Method, String)> {
    let document = ApiDoc::openapi();
    let mut operations = Vec::new();
    for (path, item) in document.paths.paths {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::DELETE, item.delete.is_some()),
        ];
        for (method, present) in methods {
            if present {
                operations.push((method, path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn every_operation_refuses_the_wrong_callers_and_admits_the_right_one() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let no_grant = basic("nogrant", "no-grants-here");
    let wrong = [
        basic("nogrant", "not-the-password"),
        "Bearer wharf_00_00".to_string(),
    ];
    let operations = operations();
    assert!(operations.len() >= 30, "{} operations", operations.len());
    for (method, template) in operations {
        let rule = rules::rule(&method, &template)
            .unwrap_or_else(|| panic!("{method} {template} has no permission rule"));
        let path = template.replace("{name}", "t1").replace("{id}", "x");
        let body = body_for(&method, &template);
        let what = format!("{method} {template}");
        if rule == Rule::Open {
            let (status, _) = call(state, &method, &path, None, body).await;
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{what}: open");
            continue;
        }
        let (status, problem) = call(state, &method, &path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: no credentials");
        assert_eq!(problem["code"], "unauthenticated", "{what}");
        for wrong in &wrong {
            let (status, _) = call(state, &method, &path, Some(wrong), body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what}: wrong credentials"
            );
        }
        let (status, _) = call(state, &method, &path, Some(&no_grant), body).await;
        let refused_without_grant = match rule {
            Rule::Grant { .. } | Rule::GrantOn { .. } | Rule::EachInBody { .. } | Rule::Admin => {
                true
            }
            // Checked by their handlers against the body or the path.
            Rule::Authenticated => matches!(
                template.as_str(),
                "/v1/request" | "/v1/scatter" | "/v1/users/{name}"
            ),
            Rule::Metrics | Rule::Open | Rule::Realtime => false,
        };
        match refused_without_grant {
            true => assert_eq!(status, StatusCode::FORBIDDEN, "{what}: no grant"),
            false => assert!(
                status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                "{what}: authenticated, got {status}"
            ),
        }
        let right = match rule {
            Rule::Grant { action, kind } | Rule::EachInBody { action, kind } => {
                format!(
                    "Bearer {}",
                    token_for(&fixture.engine, action, kind, "t1").await
                )
            }
            Rule::GrantOn { action, kind, name } => {
                format!(
                    "Bearer {}",
                    token_for(&fixture.engine, action, kind, name).await
                )
            }
            _ => format!("Bearer {ADMIN}"),
        };
        let (status, _) = call(state, &method, &path, Some(&right), body).await;
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
            "{what}: with its grant, got {status}"
        );
    }
}

#[tokio::test]
async fn a_refusal_names_the_action_and_resource_and_changes_nothing() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let admin = format!("Bearer {ADMIN}");
    let (status, _) = call(state, &Method::PUT, "/v1/queues/jobs", Some(&admin), "{}").await;
    assert_eq!(status, StatusCode::CREATED);
    let send = r#"{"messages": [{"body": "a"}]}"#;
    call(
        state,
        &Method::POST,
        "/v1/queues/jobs/messages",
        Some(&admin),
        send,
    )
    .await;
    let reader = format!(
        "Bearer {}",
        token_for(&fixture.engine, Action::Read, ResourceKind::Queue, "jobs").await
    );
    let (status, problem) = call(
        state,
        &Method::POST,
        "/v1/queues/jobs/purge",
        Some(&reader),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["code"], "forbidden");
    assert_eq!(problem["detail"], "not allowed: manage on queue:jobs");
    let info = fixture.engine.queue_info("jobs").expect("queue");
    assert_eq!(info.stats.ready, 1, "nothing purged");
    // Lists show only what the caller holds grants on.
    call(state, &Method::PUT, "/v1/queues/other", Some(&admin), "{}").await;
    let (_, list) = call(state, &Method::GET, "/v1/queues", Some(&reader), "").await;
    let names: Vec<&str> = (list["queues"].as_array().expect("queues").iter())
        .map(|q| q["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["jobs"]);
    // A batch of appends naming one stream the caller may not write is refused whole.
    let writer = format!(
        "Bearer {}",
        token_for(
            &fixture.engine,
            Action::Write,
            ResourceKind::Events,
            "order-1"
        )
        .await
    );
    let batch = r#"{"appends": [{"stream": "order-1", "events": [{"type": "A"}]},
        {"stream": "order-2", "events": [{"type": "A"}]}]}"#;
    let path = "/v1/events/appends";
    let (status, problem) = call(state, &Method::POST, path, Some(&writer), batch).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["detail"], "not allowed: write on events:order-2");
    assert_eq!(
        fixture.engine.event_store_counts(),
        (0, 0),
        "nothing appended"
    );
}

#[tokio::test]
async fn tokens_over_http_expire_and_are_revoked_at_once() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let admin = format!("Bearer {ADMIN}");
    let body = r#"{"name": "short", "grants": [{"actions": ["read"], "resource": "queue:*"}], "expires_in_s": 60}"#;
    let (status, created) = call(state, &Method::POST, "/v1/tokens", Some(&admin), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = format!("Bearer {}", created["token"].as_str().expect("secret"));
    assert_eq!(created["expires_at"], START + 60_000);
    let (status, me) = call(state, &Method::GET, "/v1/whoami", Some(&token), "").await;
    assert_eq!(
        (status, me["kind"].as_str()),
        (StatusCode::OK, Some("token"))
    );
    let (_, listed) = call(state, &Method::GET, "/v1/tokens", Some(&admin), "").await;
    let listed = listed.to_string();
    assert!(
        !listed.contains(created["token"].as_str().unwrap()),
        "secrets never listed"
    );
    fixture.clock.advance(Duration::from_secs(61));
    let (status, problem) = call(state, &Method::GET, "/v1/whoami", Some(&token), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );

    let body = r#"{"name": "long", "grants": [{"actions": ["read"], "resource": "queue:*"}]}"#;
    let (_, created) = call(state, &Method::POST, "/v1/tokens", Some(&admin), body).await;
    let token = format!("Bearer {}", created["token"].as_str().expect("secret"));
    let id = created["id"].as_str().expect("id");
    let (status, _) = call(state, &Method::GET, "/v1/whoami", Some(&token), "").await;
    assert_eq!(status, StatusCode::OK);
    let revoke = format!("/v1/tokens/{id}");
    let (status, _) = call(state, &Method::DELETE, &revoke, Some(&admin), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(state, &Method::GET, "/v1/whoami", Some(&token), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_configured_admin_token_is_not_revoked_and_a_store_once_secured_stays_closed() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let admin = format!("Bearer {ADMIN}");
    let (status, problem) =
        call(state, &Method::DELETE, "/v1/tokens/admin", Some(&admin), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "token_configured");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("security.admin_token"),
        "{problem}"
    );
    let (status, _) = call(state, &Method::GET, "/v1/whoami", Some(&admin), "").await;
    assert_eq!(status, StatusCode::OK, "the token still works");

    // A store whose last user is deleted does not fall back to running open.
    let clock = ManualClock::new(START);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::open(store.clone(), clock.clone(), EngineConfig::default())
        .await
        .expect("engine");
    assert!(engine.security_open(), "a new store runs open");
    engine
        .put_user(
            "only",
            Some("only-password".into()),
            Some(vec![Grant::admin()]),
        )
        .await
        .expect("user");
    assert!(!engine.security_open());
    engine.delete_user("only").await.expect("delete");
    assert!(
        !engine.security_open(),
        "no credential left, yet still closed"
    );
    assert!(engine.authenticate(None).await.is_err());
    engine.close();
    let reopened = Engine::open(store, clock, EngineConfig::default())
        .await
        .expect("engine reopened");
    assert!(!reopened.security_open(), "still closed after a restart");
}

#[tokio::test]
async fn management_and_refusals_are_audited() {
    let fixture = fixture().await;
    let state = &fixture.state;
    let admin = format!("Bearer {ADMIN}");
    call(state, &Method::PUT, "/v1/queues/jobs", Some(&admin), "{}").await;
    call(state, &Method::POST, "/v1/queues/jobs/purge", None, "").await;
    let wrong = basic("nogrant", "wrong-password");
    call(state, &Method::DELETE, "/v1/queues/jobs", Some(&wrong), "").await;
    let (status, audit) = call(state, &Method::GET, "/v1/audit", Some(&admin), "").await;
    assert_eq!(status, StatusCode::OK);
    let entries = audit["entries"].as_array().expect("entries");
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("who"), text("operation"), text("outcome"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "token:admin".into(),
                "PUT /v1/queues/{name}".into(),
                "ok".into()
            ),
            (
                "unauthenticated".into(),
                "POST /v1/queues/{name}/purge".into(),
                "unauthenticated".into()
            ),
            (
                "unauthenticated".into(),
                "DELETE /v1/queues/{name}".into(),
                "unauthenticated".into()
            ),
        ]
    );
    assert_eq!(entries[0]["resource"], "queue:jobs");
    let no_grant = basic("nogrant", "no-grants-here");
    let (status, _) = call(state, &Method::GET, "/v1/audit", Some(&no_grant), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");
}

/// A fixture whose engine limits each caller to 10 messages a second (20 at once) and one
/// long-polling receive at a time.
async fn limited_fixture() -> Fixture {
    let config = EngineConfig {
        send_rate: Some(wharf_engine::security::limits::SendRate {
            rate: 10,
            burst: 20,
        }),
        receive_waiters_max: 1,
        definitions_per_caller: 2,
        ..EngineConfig::default()
    };
    fixture_with(config, true).await
}

fn batch(count: usize) -> String {
    let messages: Vec<serde_json::Value> = (0..count)
        .map(|n| serde_json::json!({"body": n.to_string()}))
        .collect();
    serde_json::json!({ "messages": messages }).to_string()
}

#[tokio::test]
async fn a_caller_over_its_send_rate_is_told_which_limit_and_others_go_on() {
    let fixture = limited_fixture().await;
    let state = &fixture.state;
    let admin = format!("Bearer {ADMIN}");
    call(state, &Method::PUT, "/v1/queues/jobs", Some(&admin), "{}").await;
    let writer = format!(
        "Bearer {}",
        token_for(&fixture.engine, Action::Write, ResourceKind::Queue, "jobs").await
    );
    let send = |who: String, count| async move {
        let path = "/v1/queues/jobs/messages";
        call(state, &Method::POST, path, Some(&who), &batch(count)).await
    };
    assert_eq!(
        send(writer.clone(), 20).await.0,
        StatusCode::CREATED,
        "the burst"
    );
    let (status, problem) = send(writer.clone(), 1).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["code"], "limit_reached");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("send_rate_per_caller"),
        "{problem}"
    );
    assert_eq!(
        send(admin.clone(), 5).await.0,
        StatusCode::CREATED,
        "another caller"
    );
    fixture.clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(writer.clone(), 10).await.0,
        StatusCode::CREATED,
        "10 more a second"
    );
    assert_eq!(send(writer, 1).await.0, StatusCode::TOO_MANY_REQUESTS);
    let info = fixture.engine.queue_info("jobs").expect("queue");
    assert_eq!(info.stats.ready, 35, "refused batches stored nothing");
}

#[tokio::test]
async fn long_polls_past_the_limit_are_refused_until_one_ends() {
    let fixture = limited_fixture().await;
    let state = fixture.state.clone();
    let admin = format!("Bearer {ADMIN}");
    call(&state, &Method::PUT, "/v1/queues/jobs", Some(&admin), "{}").await;
    let poll = r#"{"wait_ms": 20000}"#;
    let first = {
        let (state, admin) = (state.clone(), admin.clone());
        tokio::spawn(async move {
            call(
                &state,
                &Method::POST,
                "/v1/queues/jobs/receive",
                Some(&admin),
                poll,
            )
            .await
        })
    };
    // Let the first poll reach its wait; until it does, a second could take the place first.
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    let second = call(
        &state,
        &Method::POST,
        "/v1/queues/jobs/receive",
        Some(&admin),
        poll,
    );
    let (status, problem) = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("refused at once, not waiting");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("receive_waiters_max"),
        "{problem}"
    );
    let now = call(
        &state,
        &Method::POST,
        "/v1/queues/jobs/receive",
        Some(&admin),
        "{}",
    )
    .await;
    assert_eq!(
        now.0,
        StatusCode::OK,
        "a receive that does not wait needs no place"
    );
    fixture.clock.advance(Duration::from_secs(21));
    assert_eq!(first.await.expect("no panic").0, StatusCode::OK);
}

#[tokio::test]
async fn a_caller_creates_only_its_quota_of_definitions_and_deleting_gives_places_back() {
    let fixture = limited_fixture().await;
    let state = &fixture.state;
    let admin = format!("Bearer {ADMIN}");
    let maker = format!(
        "Bearer {}",
        token_for(&fixture.engine, Action::Manage, ResourceKind::Queue, "*").await
    );
    let put = |who: String, path: &'static str| async move {
        call(state, &Method::PUT, path, Some(&who), "{}").await
    };
    assert_eq!(
        put(maker.clone(), "/v1/queues/q1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        put(maker.clone(), "/v1/queues/q2").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        put(maker.clone(), "/v1/queues/q2").await.0,
        StatusCode::OK,
        "updates are free"
    );
    let (status, problem) = put(maker.clone(), "/v1/queues/q3").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("definitions_per_caller"),
        "{problem}"
    );
    assert!(fixture.engine.queue_info("q3").is_err(), "nothing created");
    assert_eq!(
        put(admin.clone(), "/v1/queues/a1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        put(admin.clone(), "/v1/queues/a2").await.0,
        StatusCode::CREATED,
        "admins uncounted"
    );
    let (status, _) = call(state, &Method::DELETE, "/v1/queues/q1", Some(&admin), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        put(maker, "/v1/queues/q3").await.0,
        StatusCode::CREATED,
        "a place came back"
    );
}
