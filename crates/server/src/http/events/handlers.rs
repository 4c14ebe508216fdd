//! One handler per event-store endpoint: parse the request, call the engine, shape the reply.

use super::wire::{
    limit, AllEventsBody, AllQuery, AppendBatchBody, AppendBatchResultsBody, AppendBody,
    AppendResultBody, AppendedBody, CheckpointBody, DeleteQuery, DeliveredEventsBody, LimitQuery,
    MetadataBody, MetadataInfoBody, ProjectionBody, ProjectionInfoBody, ProjectionListBody,
    ReadQuery, ReceiveQuery, SnapshotBody, SnapshotInfoBody, StreamEventsBody, SubscriptionBody,
    SubscriptionInfoBody, SubscriptionListBody,
};
use crate::http::{
    extract::{Path, Query},
    json_body::JsonBody,
    listing::ListQuery,
    queues::{
        handlers::receipt_results,
        wire::{AckBody, NackBody, ReceiptResultsBody},
    },
    AppState, Problem,
};
use axum::{extract::State, http::StatusCode, Extension, Json};
use bytes::Bytes;
use std::time::Duration;
use wharf_engine::{
    broker::eventstore::{EventFilter, ProjectionFilter},
    eventstore::check_prefix,
    security::{Action, Principal, Resource, ResourceKind},
};

const STREAM: &str = "Event stream id (an aggregate's id, e.g. order-123): 1-256 bytes, no control characters; `$ce-{category}` and `$et-{type}` are the server's projections (read-only)";
const PROJECTION: &str = "Projection name: 1-128 of A-Z a-z 0-9 - _ .";
const GROUP: &str = "Persistent subscription name: 1-128 of A-Z a-z 0-9 - _ .";
/// Most events one subscription receive leases (a queue receive's limit).
const RECEIVE_MAX: usize = 100;
/// Longest wait of a subscription receive.
const RECEIVE_WAIT_MAX_MS: u64 = 20_000;

/// Appends events to a stream atomically, if it is at the expected version.
#[utoipa::path(
    post,
    path = "/v1/events/streams/{name}",
    tag = "events",
    params(("name" = String, Path, description = STREAM)),
    request_body = AppendBody,
    responses(
        (status = 201, description = "Appended; the append created the stream", body = AppendedBody),
        (status = 200, description = "Appended (or an idempotent retry of an append stored before)", body = AppendedBody),
        (status = 400, description = "Bad stream id, event or expected version; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`wrong_expected_version`: nothing was written; `current_version` is the stream's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`stream_deleted`: the stream was hard deleted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn append(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<AppendBody>,
) -> Result<(StatusCode, Json<AppendedBody>), Problem> {
    let (expected, events) = body.into_parts()?;
    let appended = state.engine.append_events(&name, expected, events).await?;
    let status = match appended.created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(AppendedBody::new(name, appended))))
}

/// Appends to several streams in one request: each append as `POST /v1/events/streams/{name}`
/// makes it, all sharing the disk's syncs.
#[utoipa::path(
    post,
    path = "/v1/events/appends",
    tag = "events",
    request_body = AppendBatchBody,
    responses(
        (status = 200, description = "One result per append, in order: each appended, or refused on its own (`wrong_expected_version`, `stream_deleted`) with nothing of it written", body = AppendBatchResultsBody),
        (status = 400, description = "A bad append (stream id, event, expected version) or too many; `field` names it (`appends[2].events[0].type`); nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not write one of the streams; nothing was written", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn append_batch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<AppendBatchBody>,
) -> Result<Json<AppendBatchResultsBody>, Problem> {
    let appends = body.into_appends()?;
    let mut checked = std::collections::HashSet::with_capacity(appends.len());
    for append in &appends {
        if checked.insert(append.stream.as_str()) {
            let resource = Resource {
                kind: ResourceKind::Events,
                name: &append.stream,
            };
            state
                .engine
                .authorize(&principal, Action::Write, resource)?;
        }
    }
    let outcomes = state.engine.append_events_batch(&appends).await?;
    let results = (appends.into_iter().zip(outcomes))
        .map(|(append, outcome)| {
            AppendResultBody::new(append.stream, outcome.map_err(Problem::from))
        })
        .collect();
    Ok(Json(AppendBatchResultsBody { results }))
}

/// Reads a stream (or a system projection, `$ce-...`, `$et-...`) forwards or backwards.
#[utoipa::path(
    get,
    path = "/v1/events/streams/{name}",
    tag = "events",
    params(("name" = String, Path, description = STREAM), ReadQuery),
    responses(
        (status = 200, description = "A page of the stream", body = StreamEventsBody),
        (status = 404, description = "`event_stream_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read_stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Json<StreamEventsBody>, Problem> {
    let limit = limit(query.limit)?;
    let page = (state.engine)
        .read_event_stream(&name, query.from, query.direction(), limit)
        .await?;
    Ok(Json(StreamEventsBody::new(name, page)))
}

/// Deletes a stream: soft by default (it can be written again, versions continuing), or hard
/// (a tombstone).
#[utoipa::path(
    delete,
    path = "/v1/events/streams/{name}",
    tag = "events",
    params(("name" = String, Path, description = STREAM), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`event_stream_not_found`, or `stream_deleted`: hard deleted already", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, Problem> {
    let hard = query.hard.unwrap_or(false);
    state.engine.delete_event_stream(&name, hard).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A stream's metadata (max age, max count) and version.
#[utoipa::path(
    get,
    path = "/v1/events/streams/{name}/metadata",
    tag = "events",
    params(("name" = String, Path, description = STREAM)),
    responses(
        (status = 200, description = "The metadata", body = MetadataInfoBody),
        (status = 404, description = "`event_stream_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<MetadataInfoBody>, Problem> {
    let (metadata, version) = state.engine.event_stream_metadata(&name)?;
    Ok(Json(MetadataInfoBody::new(name, metadata, version)))
}

/// Sets a stream's metadata; events past its bounds are no longer read from the stream.
#[utoipa::path(
    put,
    path = "/v1/events/streams/{name}/metadata",
    tag = "events",
    params(("name" = String, Path, description = STREAM)),
    request_body = Option<MetadataBody>,
    responses(
        (status = 200, description = "Set", body = MetadataInfoBody),
        (status = 400, description = "Bad stream id or bound", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`stream_deleted`: the stream was hard deleted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Option<MetadataBody>>,
) -> Result<Json<MetadataInfoBody>, Problem> {
    let body = body.unwrap_or_default();
    state
        .engine
        .set_event_stream_metadata(&name, body.into())
        .await?;
    let (metadata, version) = state.engine.event_stream_metadata(&name)?;
    Ok(Json(MetadataInfoBody::new(name, metadata, version)))
}

/// The newest snapshot of a stream.
#[utoipa::path(
    get,
    path = "/v1/events/streams/{name}/snapshot",
    tag = "events",
    params(("name" = String, Path, description = STREAM)),
    responses(
        (status = 200, description = "The snapshot", body = SnapshotInfoBody),
        (status = 404, description = "`event_stream_not_found` or `snapshot_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SnapshotInfoBody>, Problem> {
    let snapshot = state.engine.load_snapshot(&name).await?;
    Ok(Json(SnapshotInfoBody::new(snapshot, true)))
}

/// Saves a snapshot of a stream at a version it holds.
#[utoipa::path(
    put,
    path = "/v1/events/streams/{name}/snapshot",
    tag = "events",
    params(("name" = String, Path, description = STREAM)),
    request_body = SnapshotBody,
    responses(
        (status = 200, description = "Saved", body = SnapshotInfoBody),
        (status = 409, description = "A version the stream does not hold yet", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`event_stream_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SnapshotBody>,
) -> Result<Json<SnapshotInfoBody>, Problem> {
    let snapshot = Bytes::from(body.state.get().to_string());
    let saved = state
        .engine
        .save_snapshot(&name, body.version, snapshot)
        .await?;
    Ok(Json(SnapshotInfoBody::new(saved, false)))
}

/// Reads `$all`, every event in order of position, optionally filtered.
#[utoipa::path(
    get,
    path = "/v1/events/all",
    tag = "events",
    params(AllQuery),
    responses(
        (status = 200, description = "A page of `$all`", body = AllEventsBody),
        (status = 400, description = "Bad limit or prefix", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read_all(
    State(state): State<AppState>,
    Query(query): Query<AllQuery>,
) -> Result<Json<AllEventsBody>, Problem> {
    let limit = limit(query.limit)?;
    for (field, prefix) in [
        ("type_prefix", &query.type_prefix),
        ("stream_prefix", &query.stream_prefix),
    ] {
        if let Some(prefix) = prefix {
            check_prefix(field, prefix).map_err(wharf_engine::error::EngineError::from)?;
        }
    }
    let filter = EventFilter {
        type_prefix: query.type_prefix,
        stream_prefix: query.stream_prefix,
        stream: None,
    };
    let page = (state.engine)
        .read_all_events(query.from.unwrap_or(0), limit, &filter)
        .await?;
    Ok(Json(page.into()))
}

/// Creates a checkpointed projection, or changes its filter (keeping its checkpoint).
#[utoipa::path(
    put,
    path = "/v1/events/projections/{name}",
    tag = "events",
    params(("name" = String, Path, description = PROJECTION)),
    request_body = Option<ProjectionBody>,
    responses(
        (status = 201, description = "Created", body = ProjectionInfoBody),
        (status = 200, description = "Updated", body = ProjectionInfoBody),
        (status = 400, description = "Bad name or prefix", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Option<ProjectionBody>>,
) -> Result<(StatusCode, Json<ProjectionInfoBody>), Problem> {
    let body = body.unwrap_or_default();
    let filter = ProjectionFilter {
        type_prefix: body.type_prefix,
        stream_prefix: body.stream_prefix,
    };
    let created = state.engine.put_projection(&name, filter).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    let projection = state.engine.measured_projection(&name).await?;
    Ok((status, Json(projection.into())))
}

/// A projection, its checkpoint and how far behind `$all` it is.
#[utoipa::path(
    get,
    path = "/v1/events/projections/{name}",
    tag = "events",
    params(("name" = String, Path, description = PROJECTION)),
    responses(
        (status = 200, description = "The projection", body = ProjectionInfoBody),
        (status = 404, description = "`projection_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProjectionInfoBody>, Problem> {
    Ok(Json(state.engine.measured_projection(&name).await?.into()))
}

/// The projections by name, a page at a time, each with its time lag measured now.
#[utoipa::path(
    get,
    path = "/v1/events/projections",
    tag = "events",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the projections", body = ProjectionListBody),
        (status = 400, description = "A `limit` out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_projections(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ProjectionListBody>, Problem> {
    let page = state.engine.projections_page(query.page()?).await;
    Ok(Json(ProjectionListBody {
        projections: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Deletes a projection and its checkpoint.
#[utoipa::path(
    delete,
    path = "/v1/events/projections/{name}",
    tag = "events",
    params(("name" = String, Path, description = PROJECTION)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`projection_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_projection(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The events after the projection's checkpoint that pass its filter (the checkpoint does not
/// move: post it once the read model applied them).
#[utoipa::path(
    get,
    path = "/v1/events/projections/{name}/events",
    tag = "events",
    params(("name" = String, Path, description = PROJECTION), LimitQuery),
    responses(
        (status = 200, description = "The next events", body = AllEventsBody),
        (status = 404, description = "`projection_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn projection_events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<LimitQuery>,
) -> Result<Json<AllEventsBody>, Problem> {
    let limit = limit(query.limit)?;
    let page = state.engine.projection_events(&name, limit).await?;
    Ok(Json(page.into()))
}

/// Stores the projection's checkpoint: the position of the last event its read model applied.
#[utoipa::path(
    post,
    path = "/v1/events/projections/{name}/checkpoint",
    tag = "events",
    params(("name" = String, Path, description = PROJECTION)),
    request_body = CheckpointBody,
    responses(
        (status = 200, description = "Stored", body = ProjectionInfoBody),
        (status = 409, description = "A position at or past the end of `$all`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`projection_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn checkpoint_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CheckpointBody>,
) -> Result<Json<ProjectionInfoBody>, Problem> {
    state
        .engine
        .checkpoint_projection(&name, body.position)
        .await?;
    Ok(Json(state.engine.measured_projection(&name).await?.into()))
}

/// Creates a persistent subscription: a group of competing consumers with acks, retries and
/// parking.
#[utoipa::path(
    put,
    path = "/v1/events/subscriptions/{name}",
    tag = "events",
    params(("name" = String, Path, description = GROUP)),
    request_body = Option<SubscriptionBody>,
    responses(
        (status = 201, description = "Created", body = SubscriptionInfoBody),
        (status = 200, description = "Exists with these settings", body = SubscriptionInfoBody),
        (status = 400, description = "Bad name or setting", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Exists with other settings", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A new group would pass `limits.event_subscriptions_max`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_subscription(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Option<SubscriptionBody>>,
) -> Result<(StatusCode, Json<SubscriptionInfoBody>), Problem> {
    let settings = body.unwrap_or_default().into_settings()?;
    let created = state.engine.put_event_subscription(&name, settings).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    let info = state.engine.event_subscription(&name)?;
    Ok((status, Json(info.into())))
}

/// A persistent subscription and its progress.
#[utoipa::path(
    get,
    path = "/v1/events/subscriptions/{name}",
    tag = "events",
    params(("name" = String, Path, description = GROUP)),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionInfoBody),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_subscription(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SubscriptionInfoBody>, Problem> {
    Ok(Json(state.engine.event_subscription(&name)?.into()))
}

/// The persistent subscriptions by group name, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/events/subscriptions",
    tag = "events",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the subscriptions", body = SubscriptionListBody),
        (status = 400, description = "A `limit` out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<SubscriptionListBody>, Problem> {
    let page = state.engine.event_subscriptions_page(query.page()?);
    Ok(Json(SubscriptionListBody {
        subscriptions: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Deletes a persistent subscription and its queues.
#[utoipa::path(
    delete,
    path = "/v1/events/subscriptions/{name}",
    tag = "events",
    params(("name" = String, Path, description = GROUP)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_subscription(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_event_subscription(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leases events of the group to this consumer, long-polling for a first one.
#[utoipa::path(
    post,
    path = "/v1/events/subscriptions/{name}/receive",
    tag = "events",
    params(("name" = String, Path, description = GROUP), ReceiveQuery),
    responses(
        (status = 200, description = "Leased events (maybe none)", body = DeliveredEventsBody),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ReceiveQuery>,
    body: Bytes,
) -> Result<Json<DeliveredEventsBody>, Problem> {
    // A queue's receive takes its parameters as a JSON body; this one takes them in the query.
    // A body is refused rather than ignored (and its client's connection closed unread).
    if !body.trim_ascii().is_empty() {
        return Err(
            Problem::new(crate::http::ProblemCode::InvalidBody).with_detail(
                "a persistent subscription's receive takes no body: give max and wait_ms in the \
             query (`?max=100&wait_ms=1000`)",
            ),
        );
    }
    let max = match query.max.unwrap_or(10) {
        max @ 1..=RECEIVE_MAX => max,
        _ => {
            return Err(Problem::new(crate::http::ProblemCode::InvalidField)
                .with_field("max")
                .with_detail(format!("must be 1 to {RECEIVE_MAX}")))
        }
    };
    let wait = match query.wait_ms.unwrap_or(0) {
        wait @ 0..=RECEIVE_WAIT_MAX_MS => Duration::from_millis(wait),
        wait => {
            return Err(Problem::new(crate::http::ProblemCode::InvalidField)
                .with_field("wait_ms")
                .with_detail(format!(
                    "{wait} ms is above the maximum {RECEIVE_WAIT_MAX_MS} ms"
                )))
        }
    };
    let received = tokio::select! {
        biased;
        () = state.readiness.shutdown_begun() => Vec::new(),
        received = state.engine.receive_subscription_events(&name, max, wait) => received?,
    };
    Ok(Json(received.into()))
}

/// Acknowledges events: the group is done with them.
#[utoipa::path(
    post,
    path = "/v1/events/subscriptions/{name}/ack",
    tag = "events",
    params(("name" = String, Path, description = GROUP)),
    request_body = AckBody,
    responses(
        (status = 200, description = "One result per receipt", body = ReceiptResultsBody),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<axum::response::Response, Problem> {
    let results = (state.engine)
        .ack_subscription_events(&name, &body.receipts)
        .await?;
    Ok(receipt_results(results))
}

/// Gives events back: retried after a delay, or parked at once (`dead_letter`).
#[utoipa::path(
    post,
    path = "/v1/events/subscriptions/{name}/nack",
    tag = "events",
    params(("name" = String, Path, description = GROUP)),
    request_body = NackBody,
    responses(
        (status = 200, description = "One result per receipt", body = ReceiptResultsBody),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn nack(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<NackBody>,
) -> Result<axum::response::Response, Problem> {
    let (receipts, action) = body.into_parts();
    let results = (state.engine)
        .nack_subscription_events(&name, &receipts, action)
        .await?;
    Ok(receipt_results(results))
}
