//! The stream resources of the HTTP door, under `/v1/streams`.
//!
//! `wire` holds the JSON shapes and their translation to engine types, `handlers` one function
//! per endpoint, `tail` the Server-Sent Events of a partition's live records, `errors` the
//! problems of stream errors. Partitions, offsets, groups and retention are the engine's; this
//! module translates. docs/streams.md is the user's guide to these endpoints.

pub(crate) mod errors;
pub(crate) mod handlers;
pub(crate) mod tail;
pub(crate) mod wire;

use super::AppState;
use axum::{
    routing::{get, post},
    Router,
};

/// The stream routes, merged into the door's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/streams", get(handlers::list_streams))
        .route(
            "/v1/streams/{name}",
            get(handlers::get_stream)
                .put(handlers::put_stream)
                .delete(handlers::delete_stream),
        )
        .route("/v1/streams/{name}/records", post(handlers::produce))
        .route("/v1/streams/{name}/compact", post(handlers::compact))
        .route(
            "/v1/streams/{name}/partitions/{partition}/records",
            get(handlers::fetch),
        )
        .route(
            "/v1/streams/{name}/partitions/{partition}/offsets",
            get(handlers::offsets),
        )
        .route(
            "/v1/streams/{name}/partitions/{partition}/tail",
            get(tail::tail),
        )
        .route("/v1/streams/{name}/groups", get(handlers::list_groups))
        .route(
            "/v1/streams/{name}/groups/{group}",
            get(handlers::get_group).delete(handlers::delete_group),
        )
        .route(
            "/v1/streams/{name}/groups/{group}/members",
            post(handlers::join_group),
        )
        .route(
            "/v1/streams/{name}/groups/{group}/members/{member}",
            axum::routing::delete(handlers::leave_group),
        )
        .route(
            "/v1/streams/{name}/groups/{group}/members/{member}/heartbeat",
            post(handlers::heartbeat),
        )
        .route(
            "/v1/streams/{name}/groups/{group}/commit",
            post(handlers::commit),
        )
        .route(
            "/v1/streams/{name}/groups/{group}/offsets",
            get(handlers::group_offsets),
        )
}
