//! Request-reply and scatter-gather: `POST /v1/request`, `/v1/scatter` and `/v1/reply`.
//!
//! The engine owns reply addresses, correlation and timeouts; a request here is one HTTP call
//! that waits for its reply. A responder receives the request like any message (it carries
//! `reply_to` and `correlation_id`) and answers with `/v1/reply`. docs/topics.md describes the
//! flow.

use crate::http::{
    json_body::JsonBody,
    queues::{
        errors::{engine_problem, MessagesAt},
        wire::{message_body, MessageBody, NewMessage},
    },
    topics::wire::{split_message, JsonObject},
    AppState, Problem, ProblemCode,
};
use axum::{extract::State, http::StatusCode, routing::post, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use std::{future::Future, time::Duration};
use utoipa::ToSchema;
use wharf_engine::{
    broker::RequestTarget,
    security::{Action, Principal, Resource, ResourceKind},
    EngineError,
};

/// A request waits this long for its reply unless it says otherwise.
const TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Longest wait: an HTTP call held open longer than 5 minutes is likely cut by a proxy anyway,
/// and every waiting request holds a connection and a reply address.
const TIMEOUT_MS_MAX: u64 = 300_000;

/// The request-reply routes, merged into the door's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/request", post(request))
        .route("/v1/scatter", post(scatter))
        .route("/v1/reply", post(reply))
}

/// `POST /v1/request` body: `queue`, or `topic` with `routing_key`, and the message fields of a
/// queue send (`body` or `body_base64`, `headers`, ...).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct RequestBody {
    pub queue: Option<String>,
    pub topic: Option<String>,
    /// With `topic`.
    pub routing_key: Option<String>,
    /// 1 to 300,000; default 30,000.
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub message: NewMessage,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyMessageBody {
    pub reply: MessageBody,
}

/// `POST /v1/scatter` body: publish once, collect up to `expect` replies.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct ScatterBody {
    pub topic: String,
    /// Default `""`.
    #[schema(required = false)]
    pub routing_key: String,
    /// 1 to 1,000 replies to wait for.
    pub expect: usize,
    /// 1 to 300,000; default 30,000.
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub message: NewMessage,
}

/// What a scatter collected: `received` may be below `expected` when the timeout passed first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScatterResultBody {
    pub replies: Vec<MessageBody>,
    pub expected: usize,
    pub received: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplySentBody {
    pub id: String,
}

/// The fields of a request besides the message's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFields {
    queue: Option<String>,
    topic: Option<String>,
    routing_key: Option<String>,
    timeout_ms: Option<u64>,
}

impl TryFrom<JsonObject> for RequestBody {
    type Error = String;

    fn try_from(object: JsonObject) -> Result<Self, Self::Error> {
        let names = ["queue", "topic", "routing_key", "timeout_ms"];
        let (fields, message) = split_message::<RequestFields>(object, &names)?;
        Ok(RequestBody {
            queue: fields.queue,
            topic: fields.topic,
            routing_key: fields.routing_key,
            timeout_ms: fields.timeout_ms,
            message,
        })
    }
}

/// The fields of a scatter besides the message's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScatterFields {
    topic: String,
    #[serde(default)]
    routing_key: String,
    expect: usize,
    timeout_ms: Option<u64>,
}

impl TryFrom<JsonObject> for ScatterBody {
    type Error = String;

    fn try_from(object: JsonObject) -> Result<Self, Self::Error> {
        let names = ["topic", "routing_key", "expect", "timeout_ms"];
        let (fields, message) = split_message::<ScatterFields>(object, &names)?;
        Ok(ScatterBody {
            topic: fields.topic,
            routing_key: fields.routing_key,
            expect: fields.expect,
            timeout_ms: fields.timeout_ms,
            message,
        })
    }
}

/// Sends a request to a queue or topic and waits for one reply.
#[utoipa::path(
    post,
    path = "/v1/request",
    tag = "requests",
    request_body = RequestBody,
    responses(
        (status = 200, description = "The reply", body = ReplyMessageBody),
        (status = 400, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue or topic", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "No reply within timeout_ms", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn request(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<RequestBody>,
) -> Result<Json<ReplyMessageBody>, Problem> {
    let timeout = timeout(request.timeout_ms)?;
    let target = request_target(request.queue, request.topic, request.routing_key)?;
    state
        .engine
        .authorize(&principal, Action::Write, target_resource(&target))?;
    let message = request.message.into_send_prefixed("")?;
    let reply = until_shutdown(&state, state.engine.request(target, message, timeout)).await?;
    Ok(Json(ReplyMessageBody {
        reply: message_body(reply),
    }))
}

/// Publishes one request to a topic and collects replies until `expect` arrive or the timeout.
#[utoipa::path(
    post,
    path = "/v1/scatter",
    tag = "requests",
    request_body = ScatterBody,
    responses(
        (status = 200, description = "The replies that arrived in time", body = ScatterResultBody),
        (status = 400, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn scatter(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<ScatterBody>,
) -> Result<Json<ScatterResultBody>, Problem> {
    let resource = Resource {
        kind: ResourceKind::Topic,
        name: &request.topic,
    };
    state
        .engine
        .authorize(&principal, Action::Write, resource)?;
    let timeout = timeout(request.timeout_ms)?;
    let message = request.message.into_send_prefixed("")?;
    let gathered = state.engine.scatter(
        &request.topic,
        &request.routing_key,
        message,
        request.expect,
        timeout,
    );
    let result = until_shutdown(&state, gathered).await?;
    Ok(Json(ScatterResultBody {
        replies: result.replies.into_iter().map(message_body).collect(),
        expected: result.expected,
        received: result.received,
    }))
}

/// Answers a request: `reply_to` and `correlation_id` as the request carried them.
#[utoipa::path(
    post,
    path = "/v1/reply",
    tag = "requests",
    request_body = NewMessage,
    responses(
        (status = 201, description = "Handed to the waiting requester", body = ReplySentBody),
        (status = 400, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No request waits at reply_to (answered, timed out or unknown)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reply(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<NewMessage>,
) -> Result<(StatusCode, Json<ReplySentBody>), Problem> {
    let Some(reply_to) = request.reply_to.clone() else {
        return Err(bad_field("reply_to", "the request's reply_to is required"));
    };
    let Some(correlation_id) = request.correlation_id.clone() else {
        return Err(bad_field(
            "correlation_id",
            "the request's correlation_id is required",
        ));
    };
    let mut message = request.into_send_prefixed("")?;
    // The reply goes to the address; it is not itself a request.
    message.reply_to = None;
    let sent = state
        .engine
        .reply(&reply_to, &correlation_id, message)
        .await
        .map_err(|error| engine_problem(error, MessagesAt::Top))?;
    Ok((StatusCode::CREATED, Json(ReplySentBody { id: sent.id })))
}

/// Where a request goes: `queue`, or `topic` with an optional `routing_key`.
pub(crate) fn request_target(
    queue: Option<String>,
    topic: Option<String>,
    routing_key: Option<String>,
) -> Result<RequestTarget, Problem> {
    match (queue, topic, routing_key) {
        (Some(queue), None, None) => Ok(RequestTarget::Queue(queue)),
        (None, Some(name), routing_key) => Ok(RequestTarget::Topic {
            name,
            routing_key: routing_key.unwrap_or_default(),
        }),
        (Some(_), Some(_), _) => Err(bad_field("topic", "give queue or topic, not both")),
        (Some(_), None, Some(_)) => Err(bad_field("routing_key", "routing_key goes with topic")),
        (None, None, _) => Err(bad_field("queue", "one of queue or topic is required")),
    }
}

/// The resource a request writes to, for the permission check.
pub(crate) fn target_resource(target: &RequestTarget) -> Resource<'_> {
    match target {
        RequestTarget::Queue(queue) => Resource {
            kind: ResourceKind::Queue,
            name: queue,
        },
        RequestTarget::Topic { name, .. } => Resource {
            kind: ResourceKind::Topic,
            name,
        },
    }
}

/// A request's wait: `timeout_ms`, or the default.
pub(crate) fn timeout(timeout_ms: Option<u64>) -> Result<Duration, Problem> {
    let timeout_ms = timeout_ms.unwrap_or(TIMEOUT_MS_DEFAULT);
    if timeout_ms == 0 || timeout_ms > TIMEOUT_MS_MAX {
        return Err(bad_field(
            "timeout_ms",
            &format!("must be 1..={TIMEOUT_MS_MAX}"),
        ));
    }
    Ok(Duration::from_millis(timeout_ms))
}

/// A waiting request would hold graceful shutdown for up to its whole timeout; it ends with
/// 503 instead (the reply address goes with it). The request's message is the body itself.
async fn until_shutdown<T>(
    state: &AppState,
    waiting: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, Problem> {
    let result = tokio::select! {
        biased;
        result = waiting => result,
        () = state.readiness.shutdown_begun() => Err(EngineError::ShuttingDown),
    };
    result.map_err(|error| engine_problem(error, MessagesAt::Top))
}

fn bad_field(field: &str, detail: &str) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(detail.to_string())
        .with_field(field.to_string())
}
