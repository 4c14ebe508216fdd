//! One handler per queue endpoint: parse the request, call the engine, shape the reply. No
//! queue logic lives here.

use super::{
    batch::{self, SendMessages},
    delivered,
    wire::{
        AckBody, DamagedDefinitionBody, LeaseBody, MessageBody, MessageListBody, NackBody,
        PeekQuery, PurgedBody, QueueInfoBody, QueueListBody, ReceiptResultsBody, ReceiveBody,
        RedriveBody, RedrivenBody, SentListBody,
    },
};
use crate::http::{
    extract::{Path, Query},
    json_body::{parse_json_body, JsonBody},
    listing::ListQuery,
    trace, AppState, Problem, ProblemCode,
};
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use bytes::Bytes;
use std::time::Duration;
use wharf_engine::{
    broker::{ReceiptResult, ReceiveRequest, RECEIVE_MESSAGES_MAX},
    queue::QueueOptions,
    security::{quotas::DefinitionKind, Action, Principal, Resource, ResourceKind},
    EngineError,
};
use wharf_model::frames::BATCH_CONTENT_TYPE;

/// Peek's default count: a screenful for a person looking at a queue.
const PEEK_MESSAGES_DEFAULT: usize = 10;

/// Creates a queue or updates its options.
// The body is the engine's `QueueOptions` itself (defaults, `deny_unknown_fields`), documented
// as a plain object: a mirror schema type here would drift from the engine's definition, and
// docs/queues.md lists every option with its default.
#[utoipa::path(
    put,
    path = "/v1/queues/{name}",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name: 1-255 of A-Z a-z 0-9 . - _")),
    request_body(content = Option<serde_json::Value>, description = "Queue options; every field optional (see docs/queues.md). Unknown fields are refused."),
    responses(
        (status = 201, description = "Created", body = QueueInfoBody),
        (status = 200, description = "Updated", body = QueueInfoBody),
        (status = 400, description = "Bad name or option", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`durable` differs from the existing queue's (it is fixed at creation), or the queue is a persistent subscription's (`events-sub.*`): the subscription sets its options", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_queue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(options): JsonBody<QueueOptions>,
) -> Result<(StatusCode, Json<QueueInfoBody>), Problem> {
    authorize_dead_letters(&state, &principal, &options)?;
    if state.engine.queue_info(&name).is_err() {
        state.engine.check_definition_quota(&principal)?;
    }
    let created = state.engine.put_queue(&name, options).await?;
    if created {
        let kind = DefinitionKind::Queue;
        state
            .engine
            .record_definition(&principal, kind, &name)
            .await?;
    }
    let info = state.engine.queue_info(&name)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// Changes only the options the body names (`null` resets one to its default); the others
/// keep their current values. The queue must exist.
#[utoipa::path(
    patch,
    path = "/v1/queues/{name}",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body(content = Option<serde_json::Value>, description = "The options to change; see PUT for each."),
    responses(
        (status = 200, description = "Updated", body = QueueInfoBody),
        (status = 400, description = "Bad option; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`durable` differs from the queue's (it is fixed at creation), or the queue is a persistent subscription's (`events-sub.*`): the subscription sets its options", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_queue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(changes): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<QueueInfoBody>, Problem> {
    let current = state.engine.queue_info(&name)?.options;
    let mut merged = match serde_json::to_value(current) {
        Ok(serde_json::Value::Object(options)) => options,
        _ => return Err(Problem::new(ProblemCode::Internal)),
    };
    merged.extend(changes);
    let merged = serde_json::to_vec(&merged).map_err(|_| Problem::new(ProblemCode::Internal))?;
    let options: QueueOptions = parse_json_body(&merged)?;
    authorize_dead_letters(&state, &principal, &options)?;
    state.engine.put_queue(&name, options).await?;
    Ok(Json(state.engine.queue_info(&name)?.into()))
}

/// A dead-letter queue is created if missing and written to: its queue's manager must manage
/// it too.
fn authorize_dead_letters(
    state: &AppState,
    principal: &Principal,
    options: &QueueOptions,
) -> Result<(), Problem> {
    if let Some(dead_letters) = &options.dead_letter_queue {
        let resource = Resource {
            kind: ResourceKind::Queue,
            name: dead_letters.as_str(),
        };
        state
            .engine
            .authorize(principal, Action::Manage, resource)?;
    }
    Ok(())
}

/// Lists every queue with its options and statistics.
#[utoipa::path(
    get,
    path = "/v1/queues",
    tag = "queues",
    params(ListQuery),
    responses((status = 200, description = "The queues the caller holds a grant on, by name, a page at a time", body = QueueListBody))
)]
pub async fn list_queues(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<QueueListBody>, Problem> {
    let visible = |name: &str| {
        principal.sees(Resource {
            kind: ResourceKind::Queue,
            name,
        })
    };
    let page = state.engine.list_queues_page(query.page()?, visible);
    let damaged = (state.engine.damaged_definitions().iter())
        .filter_map(|damaged| match damaged.as_ref() {
            EngineError::CorruptDefinition { key, source } => Some(DamagedDefinitionBody {
                key: key.clone(),
                // A definition that does not decode is worded by serde: in JSON's terms here.
                detail: crate::http::json_body::json_wording(&source.to_string()),
            }),
            _ => None,
        })
        .collect();
    Ok(Json(QueueListBody {
        queues: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
        damaged,
    }))
}

/// One queue's options and statistics.
#[utoipa::path(
    get,
    path = "/v1/queues/{name}",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "The queue", body = QueueInfoBody),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<QueueInfoBody>, Problem> {
    Ok(Json(state.engine.queue_info(&name)?.into()))
}

/// Deletes a queue and every message in it.
#[utoipa::path(
    delete,
    path = "/v1/queues/{name}",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A webhook endpoint's queue (`wharf.webhook.*`) or a persistent subscription's (`events-sub.*`): it goes with the endpoint or the group", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_queue(&name).await?;
    (state.engine)
        .release_definition(DefinitionKind::Queue, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a batch of messages; answers once they are stored (on disk for a durable queue).
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/messages",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = super::wire::SendBody,
    responses(
        (status = 201, description = "Stored, in request order", body = SentListBody),
        (status = 400, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The queue is full (max_length, overflow = reject), or it is a persistent subscription's (`events-sub.*`), which only its feed of events writes", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Batch or request body too large", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "Disk full", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn send_messages(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    SendMessages(mut batch): SendMessages,
) -> Result<Response, Problem> {
    state.engine.admit_send(&principal, batch.len())?;
    let traceparent = trace::traceparent(&headers);
    for message in &mut batch {
        trace::carry(traceparent.as_deref(), &mut message.headers);
    }
    let sent = state.engine.send(&name, batch).await?;
    // `SentListBody`, written straight from the ids (see `delivered`).
    let reply = written("application/json", delivered::sent_list(&sent));
    Ok((StatusCode::CREATED, reply).into_response())
}

/// Leases up to `max_messages`, long-polling up to `wait_ms` for a first one.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/receive",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = Option<ReceiveBody>,
    responses(
        (status = 200, description = "Leased messages (possibly none)", body = MessageListBody),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn receive_messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ReceiveBody>,
) -> Result<Response, Problem> {
    let request = ReceiveRequest {
        max_messages: request.max_messages,
        wait: Duration::from_millis(request.wait_ms),
        lease: request.lease_ms.map(Duration::from_millis),
    };
    // A long poll would hold graceful shutdown for up to its whole wait; it ends empty instead.
    // Leases the engine granted to a receive abandoned this way expire, so nothing is lost.
    let deliveries = tokio::select! {
        biased;
        received = state.engine.receive(&name, request) => received?,
        () = state.readiness.shutdown_begun() => Vec::new(),
    };
    // Written straight from the deliveries, as `MessageListBody` or as a batch's frames.
    Ok(match batch::wants_batch(&headers) {
        true => written(BATCH_CONTENT_TYPE, delivered::batch_frames(&deliveries)),
        false => written("application/json", delivered::json_list(&deliveries)),
    })
}

/// Settles leased messages for good.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/ack",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = AckBody,
    responses(
        (status = 200, description = "One result per receipt", body = ReceiptResultsBody),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ack_messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<AckBody>,
) -> Result<Response, Problem> {
    let results = state.engine.ack(&name, &request.receipts).await?;
    Ok(receipt_results(results))
}

/// Gives leased messages back: retried after a delay, or dead-lettered at once.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/nack",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = NackBody,
    responses(
        (status = 200, description = "One result per receipt", body = ReceiptResultsBody),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn nack_messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<NackBody>,
) -> Result<Response, Problem> {
    let (receipts, action) = request.into_parts();
    let results = state.engine.nack(&name, &receipts, action).await?;
    Ok(receipt_results(results))
}

/// Extends leases to now + `lease_ms`.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/lease",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = LeaseBody,
    responses(
        (status = 200, description = "One result per receipt", body = ReceiptResultsBody),
        (status = 400, description = "lease_ms out of range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn extend_leases(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<LeaseBody>,
) -> Result<Response, Problem> {
    let lease = Duration::from_millis(request.lease_ms);
    let results = state.engine.extend(&name, &request.receipts, lease).await?;
    Ok(receipt_results(results))
}

/// Shows up to `max` messages without leasing them: the ready ones in delivery order, or the
/// delayed or leased ones.
#[utoipa::path(
    get,
    path = "/v1/queues/{name}/messages",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name"), PeekQuery),
    responses(
        (status = 200, description = "Messages, no receipts", body = MessageListBody),
        (status = 400, description = "Bad max", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn peek_messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PeekQuery>,
) -> Result<Json<MessageListBody>, Problem> {
    let max = query.max.unwrap_or(PEEK_MESSAGES_DEFAULT);
    if max == 0 || max > RECEIVE_MESSAGES_MAX {
        return Err(Problem::new(ProblemCode::InvalidField)
            .with_detail(format!("max must be 1..={RECEIVE_MESSAGES_MAX}"))
            .with_field("max"));
    }
    let which = query.state.unwrap_or_default().into();
    let peeked = state.engine.browse(&name, which, max).await?;
    let messages = peeked.into_iter().map(MessageBody::from).collect();
    Ok(Json(MessageListBody { messages }))
}

/// One unsettled message by its id (ready, delayed or leased), without leasing it.
#[utoipa::path(
    get,
    path = "/v1/queues/{name}/messages/{id}",
    tag = "queues",
    params(
        ("name" = String, Path, description = "Queue name"),
        ("id" = String, Path, description = "Message id"),
    ),
    responses(
        (status = 200, description = "The message, no receipt", body = MessageBody),
        (status = 404, description = "No such queue, or no such message in it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_message(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<MessageBody>, Problem> {
    let found = state.engine.get_message(&name, &id).await?;
    Ok(Json(found.into()))
}

/// Removes one ready or delayed message by its id (counted as purged). A leased message is
/// its consumer's to settle: 409.
#[utoipa::path(
    delete,
    path = "/v1/queues/{name}/messages/{id}",
    tag = "queues",
    params(
        ("name" = String, Path, description = "Queue name"),
        ("id" = String, Path, description = "Message id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such queue, or no such message in it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The message is leased by a consumer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_message(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_message(&name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes every ready and delayed message (leased ones stay with their consumers).
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/purge",
    tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "How many were removed", body = PurgedBody),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn purge_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PurgedBody>, Problem> {
    let purged = state.engine.purge(&name).await?;
    Ok(Json(PurgedBody { purged }))
}

/// Moves dead letters from this (dead-letter) queue back to the queues they came from.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/redrive",
    tag = "queues",
    params(("name" = String, Path, description = "The dead-letter queue")),
    request_body(content = Option<RedriveBody>, description = "Optional"),
    responses(
        (status = 200, description = "How many were moved and how many were left in place", body = RedrivenBody),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn redrive_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<RedriveBody>,
) -> Result<Json<RedrivenBody>, Problem> {
    let redriven = state.engine.redrive(&name, request.max_messages).await?;
    Ok(Json(redriven.into()))
}

/// The reply of an ack, nack or lease call: `ReceiptResultsBody`, written straight from the
/// results (see `delivered`).
pub(crate) fn receipt_results(results: Vec<ReceiptResult>) -> Response {
    written("application/json", delivered::receipt_results(results))
}

/// A reply body written by hand (see `delivered`), of `content_type`.
fn written(content_type: &'static str, body: Vec<u8>) -> Response {
    let content_type = HeaderValue::from_static(content_type);
    ([(header::CONTENT_TYPE, content_type)], Bytes::from(body)).into_response()
}
