//! The real-time doors: `GET /v1/ws` (a WebSocket), `GET /v1/sse` (an event stream of
//! several topics) and `POST /v1/realtime/tokens` (browser tokens). The hub behind them is
//! `crate::realtime`; docs/realtime.md teaches the protocol.

use crate::{
    http::{extract::Query, json_body::JsonBody, AppState, Problem, ProblemCode},
    realtime::{
        self,
        session::{Session, SubscribeRequest},
        sse::Early,
        token::{self, Claims},
        CatchUp, SlowPolicy,
    },
};
use axum::{
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade},
        State,
    },
    http::HeaderMap,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Extension, Json, Router,
};
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};
use wharf_engine::security::{Action, Principal, Resource, ResourceKind};
use wharf_model::pattern::Syntax;

/// Longest WebSocket frame a client may send: a publish carries a message, which the HTTP door
/// takes up to `limits.request_body_bytes_max`; a frame is bounded the same way.
const FRAME_BYTES_MAX_DEFAULT: usize = 12 << 20;
/// A WebSocket's read buffer: most frames are small, and a larger one grows it while it is
/// read. The library's default (128 KiB, allocated per connection) would make 10,000 idle
/// connections cost 1.3 GB.
const READ_BUFFER_BYTES: usize = 4 << 10;
/// Longest browser token lifetime.
const TOKEN_TTL_S_MAX: u64 = 86_400;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/ws", get(websocket))
        .route("/v1/sse", get(events))
        .route("/v1/realtime/tokens", post(create_token))
}

/// `GET /v1/ws` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConnectQuery {
    /// A browser token (see `POST /v1/realtime/tokens`), for clients that cannot send an
    /// Authorization header.
    #[expect(
        dead_code,
        reason = "the guard reads it from the query; declared for the API document"
    )]
    pub access_token: Option<String>,
    /// When the connection's buffer fills: `disconnect` (default: `realtime.slow_client`) or
    /// `drop` (count and skip what does not fit).
    #[param(inline)]
    pub slow: Option<SlowPolicy>,
}

/// The answer to a request on a WebSocket path that is not an upgrade.
pub(super) fn upgrade_refused(rejection: WebSocketUpgradeRejection) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(format!(
            "this path takes a WebSocket upgrade (GET with `Connection: Upgrade` and \
             `Upgrade: websocket`): {rejection}"
        ))
        .with_field("Upgrade")
}

/// Opens a WebSocket speaking the real-time protocol (docs/realtime.md).
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "realtime",
    params(ConnectQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: JSON text frames with an `op` (subscribe, unsubscribe, publish, join, leave, members, ping, request, reply)"),
        (status = 400, description = "Not a WebSocket upgrade request, or a bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credentials or browser token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn websocket(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ConnectQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let upgrade = upgrade.map_err(upgrade_refused)?;
    let hub = state.realtime.clone();
    let slow = query.slow.unwrap_or(hub.settings.slow);
    let readiness = state.readiness.clone();
    let frame_max = (state.request_body_bytes_max).clamp(1 << 16, FRAME_BYTES_MAX_DEFAULT);
    let response = upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        // Every frame is flushed as it is sent: nothing waits in a write buffer.
        .write_buffer_size(0)
        .max_message_size(frame_max)
        .max_frame_size(frame_max)
        .on_upgrade(move |socket| async move {
            let _open = readiness.socket_opened();
            let (session, outgoing) = Session::open(hub, principal, slow);
            realtime::ws::serve(socket, session, outgoing, readiness.clone()).await;
        });
    Ok(response.into_response())
}

/// `GET /v1/sse` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Topics to follow, comma-separated.
    pub topics: String,
    /// Which routing keys, in `syntax`; default `#` (all).
    pub pattern: Option<String>,
    /// `amqp` (default), `mqtt` or `nats`.
    #[param(value_type = Option<String>)]
    pub syntax: Option<Syntax>,
    /// Only messages passing this filter (docs/filters.md).
    pub filter: Option<String>,
    /// Resume after this message id (the `Last-Event-ID` header wins when both are given).
    pub last_event_id: Option<String>,
    /// A browser token, for `EventSource`, which cannot send an Authorization header.
    #[expect(
        dead_code,
        reason = "the guard reads it from the query; declared for the API document"
    )]
    pub access_token: Option<String>,
    /// `disconnect` (default: `realtime.slow_client`) or `drop`.
    #[param(inline)]
    pub slow: Option<SlowPolicy>,
}

/// Streams the messages of several topics as Server-Sent Events; resumes after
/// `Last-Event-ID`.
#[utoipa::path(
    get,
    path = "/v1/sse",
    tag = "realtime",
    params(EventsQuery),
    responses(
        (status = 200, description = "text/event-stream: `message` events (`id:` the message id, `data:` the message frame of the WebSocket protocol); `gap` when a resume is older than the history; `dropped`; `error` before the stream ends for a slow reader; comments keep it alive", content_type = "text/event-stream"),
        (status = 400, description = "Bad topics, pattern, syntax or filter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credentials or browser token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not read one of the topics", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let hub = state.realtime.clone();
    let topics = topic_list(&query.topics, hub.settings.subscriptions_max)?;
    let last_id = (headers.get("last-event-id"))
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or(query.last_event_id.clone());
    let seen = (last_id.as_deref()).and_then(|id| hub.seen_at(&topics, id));
    let slow = query.slow.unwrap_or(hub.settings.slow);
    let interval = hub.settings.ping_interval;
    let (mut session, outgoing) = Session::open(hub, principal, slow);
    let mut early = Vec::new();
    for topic in &topics {
        let (resume_id, since_ms) = match (&last_id, &seen) {
            (None, _) => (None, None),
            (Some(_), Some((at_topic, at))) if at_topic != topic => (None, Some(*at)),
            (Some(id), _) => (Some(id.as_str()), None),
        };
        let catch_up = session.subscribe(SubscribeRequest {
            topic,
            sub: topic,
            pattern: query.pattern.as_deref().unwrap_or("#"),
            syntax: query.syntax.unwrap_or_default(),
            filter: query.filter.as_deref(),
            last_id: resume_id,
            since_ms,
        })?;
        match catch_up {
            CatchUp::None => {}
            CatchUp::After(entries) => early.extend(entries.into_iter().map(Early::Message)),
            CatchUp::Gap => {
                let gap = Early::Gap {
                    topic: topic.clone(),
                    last_id: last_id.clone().unwrap_or_default(),
                };
                early.push(gap);
                continue;
            }
        }
    }
    let events = realtime::sse::events(session, outgoing, order(early), state.readiness.clone());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(interval)))
}

/// Catch-up messages in order of arrival (gaps first), each once.
fn order(early: Vec<Early>) -> Vec<Early> {
    let (mut gaps, mut messages): (Vec<_>, Vec<_>) = early
        .into_iter()
        .partition(|item| matches!(item, Early::Gap { .. }));
    messages.sort_by_key(|item| match item {
        Early::Message(entry) => entry.at_ms,
        Early::Gap { .. } => 0,
    });
    gaps.append(&mut messages);
    gaps
}

fn topic_list(topics: &str, max: usize) -> Result<Vec<String>, Problem> {
    let mut list: Vec<String> = (topics.split(','))
        .map(str::trim)
        .filter(|topic| !topic.is_empty())
        .map(str::to_string)
        .collect();
    list.sort();
    list.dedup();
    if list.is_empty() || list.len() > max {
        return Err(Problem::new(ProblemCode::InvalidField)
            .with_detail(format!(
                "name 1 to {max} topics, comma-separated (realtime.subscriptions_max)"
            ))
            .with_field("topics"));
    }
    Ok(list)
}

/// `POST /v1/realtime/tokens` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RealtimeTokenRequest {
    /// Topic names or patterns (`chat.*`) the page may subscribe to; the caller must be
    /// allowed to read each. `#` is for administrators only.
    pub channels: Vec<String>,
    /// Whether the page may also publish and send requests to them (the caller must be allowed
    /// to write each).
    #[serde(default)]
    pub publish: bool,
    /// The page's name in rooms; default: the caller's name.
    pub member: Option<String>,
    /// Lifetime in seconds, 1 to 86,400; default 3,600.
    pub ttl_s: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RealtimeTokenBody {
    /// For `?access_token=` on `/v1/ws` and `/v1/sse`.
    pub token: String,
    pub member: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Signs a browser token naming channels the caller itself may use.
#[utoipa::path(
    post,
    path = "/v1/realtime/tokens",
    tag = "realtime",
    request_body = RealtimeTokenRequest,
    responses(
        (status = 201, description = "The token", body = RealtimeTokenBody),
        (status = 400, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not use one of the channels", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Browser tokens are not enabled (`realtime.token_secret`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<RealtimeTokenRequest>,
) -> Result<(axum::http::StatusCode, Json<RealtimeTokenBody>), Problem> {
    let hub = &state.realtime;
    let Some(secret) = hub.settings.token_secret.as_deref() else {
        return Err(Problem::new(ProblemCode::Conflict)
            .with_detail(token::TokenError::Disabled.to_string()));
    };
    let ttl_s = request.ttl_s.unwrap_or(3_600);
    if ttl_s == 0 || ttl_s > TOKEN_TTL_S_MAX {
        return Err(invalid("ttl_s", format!("1 to {TOKEN_TTL_S_MAX} seconds")));
    }
    for (index, channel) in request.channels.iter().enumerate() {
        let wide = channel.split('.').any(|word| word == "#");
        if wide && !principal.is_admin() {
            let detail = "`#` may reach topics the caller cannot read; name them or use `*`";
            return Err(invalid(&format!("channels[{index}]"), detail.to_string()));
        }
        let resource = Resource {
            kind: ResourceKind::Topic,
            name: channel,
        };
        (state.engine).authorize(&principal, Action::Read, resource)?;
        if request.publish {
            (state.engine).authorize(&principal, Action::Write, resource)?;
        }
    }
    let member = request
        .member
        .unwrap_or_else(|| principal.identity.to_string());
    let claims = Claims {
        sub: member.clone(),
        exp: state.engine.now() / 1_000 + ttl_s,
        channels: request.channels,
        publish: request.publish,
    };
    token::grants(&claims).map_err(|error| invalid("channels", error.to_string()))?;
    let body = RealtimeTokenBody {
        token: token::sign(secret, &claims),
        member,
        expires_at: claims.exp,
    };
    Ok((axum::http::StatusCode::CREATED, Json(body)))
}

fn invalid(field: &str, detail: String) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(detail)
        .with_field(field)
}
