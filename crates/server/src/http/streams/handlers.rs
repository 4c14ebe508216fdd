//! One handler per stream endpoint: parse the request, call the engine, shape the reply.

use super::wire::{
    CommitBody, CompactedBody, FetchQuery, GroupBody, GroupListBody, HeartbeatBody, JoinBody,
    MemberBody, OffsetBody, OffsetQuery, OffsetsBody, ProduceBody, ProducedListBody,
    RecordListBody, ResetBody, StreamBody, StreamInfoBody, StreamListBody,
};
use crate::http::{
    extract::{Path, Query},
    json_body::JsonBody,
    listing::ListQuery,
    AppState, Problem, ProblemCode,
};
use axum::{extract::State, http::StatusCode, Extension, Json};
use std::time::Duration;
use wharf_engine::{
    broker::{FetchRequest, GroupJoin, OffsetAt},
    security::{quotas::DefinitionKind, Principal, Resource, ResourceKind},
};

/// Default and most records one fetch returns.
const FETCH_RECORDS_DEFAULT: usize = 100;
const FETCH_RECORDS_MAX: usize = 10_000;
/// Default and most key and value bytes one fetch returns.
const FETCH_BYTES_DEFAULT: usize = 1 << 20;
const FETCH_BYTES_MAX: usize = 64 << 20;

const NAME: &str = "Stream name: 1-255 of A-Z a-z 0-9 . - _";

/// Creates a stream or changes its options (partitions only grow).
#[utoipa::path(
    put,
    path = "/v1/streams/{name}",
    tag = "streams",
    params(("name" = String, Path, description = NAME)),
    request_body = Option<StreamBody>,
    responses(
        (status = 201, description = "Created", body = StreamInfoBody),
        (status = 200, description = "Updated", body = StreamInfoBody),
        (status = 400, description = "Bad name or option; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Fewer partitions than the stream has", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The node would pass `limits.stream_partitions_max`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<StreamBody>,
) -> Result<(StatusCode, Json<StreamInfoBody>), Problem> {
    let current = state
        .engine
        .stream_info(&name)
        .ok()
        .map(|info| info.options);
    if current.is_none() {
        state.engine.check_definition_quota(&principal)?;
    }
    let created = state
        .engine
        .put_stream(&name, body.into_options(current))
        .await?;
    if created {
        (state.engine)
            .record_definition(&principal, DefinitionKind::Stream, &name)
            .await?;
    }
    let info = state.engine.stream_info(&name)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// Every stream the caller holds a grant on, by name, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/streams",
    tag = "streams",
    params(ListQuery),
    responses((status = 200, description = "The streams", body = StreamListBody))
)]
pub async fn list_streams(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<StreamListBody>, Problem> {
    let visible = |name: &str| {
        principal.sees(Resource {
            kind: ResourceKind::Stream,
            name,
        })
    };
    let page = state.engine.list_streams_page(query.page()?, visible);
    Ok(Json(StreamListBody {
        streams: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// One stream's options and each partition's offsets.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}",
    tag = "streams",
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "The stream", body = StreamInfoBody),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StreamInfoBody>, Problem> {
    Ok(Json(state.engine.stream_info(&name)?.into()))
}

/// Deletes a stream with its records and its groups' offsets.
#[utoipa::path(
    delete,
    path = "/v1/streams/{name}",
    tag = "streams",
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A webhook endpoint's history (`wharf.webhook.*.history`): it goes with the endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_stream(&name).await?;
    (state.engine)
        .release_definition(DefinitionKind::Stream, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Produces records; answers each one's partition and offset once all are durable.
#[utoipa::path(
    post,
    path = "/v1/streams/{name}/records",
    tag = "streams",
    params(("name" = String, Path, description = NAME)),
    request_body = ProduceBody,
    responses(
        (status = 200, description = "Stored", body = ProducedListBody),
        (status = 400, description = "A bad record or producer field; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream, or a record names a partition it does not have", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An idempotent producer's sequence skips ahead, is too old, or was reused for other records; or the stream is a webhook endpoint's history, which only the endpoint writes", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too many records or bytes in one request", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn produce(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ProduceBody>,
) -> Result<Json<ProducedListBody>, Problem> {
    let request = body.into_request()?;
    let produced = state.engine.produce(&name, request).await?;
    Ok(Json(ProducedListBody {
        records: produced.into_iter().map(Into::into).collect(),
    }))
}

/// Reads records of one partition from an offset, long-polling at the end.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/partitions/{partition}/records",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("partition" = u32, Path, description = "Partition number, from 0"), FetchQuery),
    responses(
        (status = 200, description = "Records (possibly none)", body = RecordListBody),
        (status = 400, description = "A bad query parameter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream or partition", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`offset_out_of_range`: the offset is below what retention kept, or past the end", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many long polls at once (`limits.receive_waiters_max`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fetch(
    State(state): State<AppState>,
    Path((name, partition)): Path<(String, u32)>,
    Query(query): Query<FetchQuery>,
) -> Result<Json<RecordListBody>, Problem> {
    let max_records = query.max_records.unwrap_or(FETCH_RECORDS_DEFAULT);
    if !(1..=FETCH_RECORDS_MAX).contains(&max_records) {
        return Err(out_of_range(
            "max_records",
            max_records as u64,
            1,
            FETCH_RECORDS_MAX as u64,
        ));
    }
    let max_bytes = query.max_bytes.unwrap_or(FETCH_BYTES_DEFAULT);
    if !(1..=FETCH_BYTES_MAX).contains(&max_bytes) {
        return Err(out_of_range(
            "max_bytes",
            max_bytes as u64,
            1,
            FETCH_BYTES_MAX as u64,
        ));
    }
    let wait_max = wharf_engine::broker::FETCH_WAIT_MAX.as_millis() as u64;
    let wait_ms = query.wait_ms.unwrap_or(0);
    if wait_ms > wait_max {
        return Err(out_of_range("wait_ms", wait_ms, 0, wait_max));
    }
    let offset = match query.offset {
        Some(offset) => offset,
        None => {
            state
                .engine
                .offset_at(&name, partition, OffsetAt::Earliest)
                .await?
        }
    };
    let request = FetchRequest {
        offset,
        max_records,
        max_bytes,
        wait: Duration::from_millis(wait_ms),
    };
    // A long poll would hold graceful shutdown for up to its whole wait; it answers what is
    // there now instead.
    let fetched = tokio::select! {
        biased;
        fetched = state.engine.fetch(&name, partition, request) => fetched?,
        () = state.readiness.shutdown_begun() => {
            let now = FetchRequest { wait: Duration::ZERO, ..request };
            state.engine.fetch(&name, partition, now).await?
        }
    };
    Ok(Json(fetched.into()))
}

/// The offset of a partition's start, its end, or the first record at or after a time.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/partitions/{partition}/offsets",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("partition" = u32, Path, description = "Partition number, from 0"), OffsetQuery),
    responses(
        (status = 200, description = "The offset", body = OffsetBody),
        (status = 400, description = "`at` is not earliest, latest or a time in ms", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream or partition", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn offsets(
    State(state): State<AppState>,
    Path((name, partition)): Path<(String, u32)>,
    Query(query): Query<OffsetQuery>,
) -> Result<Json<OffsetBody>, Problem> {
    let at = match query.at.as_deref() {
        None | Some("latest") => OffsetAt::Latest,
        Some("earliest") => OffsetAt::Earliest,
        Some(time) => OffsetAt::Timestamp(time.parse().map_err(|_| {
            Problem::new(ProblemCode::InvalidField)
                .with_detail(format!(
                    "invalid at: {time:?} is not earliest, latest or a time in ms since the epoch"
                ))
                .with_field("at")
        })?),
    };
    let offset = state.engine.offset_at(&name, partition, at).await?;
    Ok(Json(OffsetBody { partition, offset }))
}

/// Runs a compaction pass over every partition now (cleanup `compact` runs them by itself).
#[utoipa::path(
    post,
    path = "/v1/streams/{name}/compact",
    tag = "streams",
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "Compacted", body = CompactedBody),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stream's cleanup is `delete`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn compact(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CompactedBody>, Problem> {
    let kept = state.engine.compact_stream(&name).await?;
    Ok(Json(CompactedBody { kept }))
}

/// Joins a consumer group (creating it): answers the member's partitions and where to read.
#[utoipa::path(
    post,
    path = "/v1/streams/{name}/groups/{group}/members",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name")),
    request_body = Option<JoinBody>,
    responses(
        (status = 200, description = "Joined", body = MemberBody),
        (status = 400, description = "A bad field; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The group has the most members allowed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn join_group(
    State(state): State<AppState>,
    Path((name, group)): Path<(String, String)>,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<Json<MemberBody>, Problem> {
    let join = GroupJoin {
        member_id: body.member_id,
        session_timeout_ms: body.session_timeout_ms,
        strategy: body.strategy,
        auto_offset_reset: ResetBody::reset(body.auto_offset_reset),
    };
    Ok(Json(state.engine.join_group(&name, &group, join)?.into()))
}

/// Keeps a member in its group; answers its current generation and partitions.
#[utoipa::path(
    post,
    path = "/v1/streams/{name}/groups/{group}/members/{member}/heartbeat",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name"), ("member" = String, Path, description = "Member id")),
    request_body = HeartbeatBody,
    responses(
        (status = 200, description = "The member's generation and assignment (new after a rebalance)", body = MemberBody),
        (status = 404, description = "No such stream, group or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member is not in the group (left or expired): join again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path((name, group, member)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> Result<Json<MemberBody>, Problem> {
    let reset = ResetBody::reset(body.auto_offset_reset);
    let member = (state.engine).heartbeat_group(&name, &group, &member, body.generation, reset)?;
    Ok(Json(member.into()))
}

/// Leaves a group; the member's partitions go to the others at once.
#[utoipa::path(
    delete,
    path = "/v1/streams/{name}/groups/{group}/members/{member}",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name"), ("member" = String, Path, description = "Member id")),
    responses(
        (status = 204, description = "Left"),
        (status = 404, description = "No such stream, group or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member is not in the group", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn leave_group(
    State(state): State<AppState>,
    Path((name, group, member)): Path<(String, String, String)>,
) -> Result<StatusCode, Problem> {
    state.engine.leave_group(&name, &group, &member)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Commits the group's positions (the next offset to read per partition), durably.
#[utoipa::path(
    post,
    path = "/v1/streams/{name}/groups/{group}/commit",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name")),
    request_body = CommitBody,
    responses(
        (status = 204, description = "Committed"),
        (status = 400, description = "A bad field; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream, group or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A stale generation, a partition not assigned to the member, a member not in the group, or an offset past the partition's end", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn commit(
    State(state): State<AppState>,
    Path((name, group)): Path<(String, String)>,
    JsonBody(body): JsonBody<CommitBody>,
) -> Result<StatusCode, Problem> {
    let member = match (&body.member_id, body.generation) {
        (Some(member), Some(generation)) => Some((member.as_str(), generation)),
        (None, None) => None,
        (Some(_), None) => return Err(missing("generation", "member_id needs generation")),
        (None, Some(_)) => return Err(missing("member_id", "generation needs member_id")),
    };
    let offsets: Vec<(u32, u64)> = body
        .offsets
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    state
        .engine
        .commit_offsets(&name, &group, member, &offsets)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A group's members, committed offsets and lag.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/groups/{group}",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The group", body = GroupBody),
        (status = 404, description = "No such stream or group", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_group(
    State(state): State<AppState>,
    Path((name, group)): Path<(String, String)>,
) -> Result<Json<GroupBody>, Problem> {
    Ok(Json(state.engine.group_info(&name, &group)?.into()))
}

/// A group's committed offsets and lag per partition.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/groups/{group}/offsets",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "Committed offsets and lag", body = OffsetsBody),
        (status = 404, description = "No such stream or group", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn group_offsets(
    State(state): State<AppState>,
    Path((name, group)): Path<(String, String)>,
) -> Result<Json<OffsetsBody>, Problem> {
    let info = state.engine.group_info(&name, &group)?;
    Ok(Json(OffsetsBody {
        partitions: info.partitions.into_iter().map(Into::into).collect(),
        lag: info.lag,
    }))
}

/// Deletes a group's committed offsets; refused while it has members.
#[utoipa::path(
    delete,
    path = "/v1/streams/{name}/groups/{group}",
    tag = "streams",
    params(("name" = String, Path, description = NAME), ("group" = String, Path, description = "Group name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such stream or group", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The group has members", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_group(
    State(state): State<AppState>,
    Path((name, group)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_group(&name, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every group of the stream with members or committed offsets.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}/groups",
    tag = "streams",
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "The groups", body = GroupListBody),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_groups(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<GroupListBody>, Problem> {
    let groups = state.engine.list_groups(&name)?;
    Ok(Json(GroupListBody {
        groups: groups.into_iter().map(Into::into).collect(),
    }))
}

fn out_of_range(field: &str, value: u64, min: u64, max: u64) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(format!("invalid {field}: {value} is outside {min}..={max}"))
        .with_field(field)
}

fn missing(field: &str, detail: &str) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(format!("invalid {field}: {detail}"))
        .with_field(field)
}
