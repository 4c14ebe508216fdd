//! The queue resources of the HTTP door, under `/v1/queues`.
//!
//! `wire` holds the JSON shapes and their translation to engine types, `handlers` one function
//! per endpoint, `errors` the exhaustive engine-error mapping. Every queue rule (validation of
//! options and messages, leases, retries, dead letters) is the engine's; this module translates.
//! docs/queues.md is the user's guide to these endpoints.

pub(crate) mod batch;
pub(crate) mod delivered;
pub(crate) mod errors;
pub(crate) mod handlers;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use super::AppState;
use axum::{
    routing::{get, post},
    Router,
};

/// The queue routes, merged into the door's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/queues", get(handlers::list_queues))
        .route(
            "/v1/queues/{name}",
            get(handlers::get_queue)
                .put(handlers::put_queue)
                .patch(handlers::patch_queue)
                .delete(handlers::delete_queue),
        )
        .route(
            "/v1/queues/{name}/messages",
            post(handlers::send_messages).get(handlers::peek_messages),
        )
        .route(
            "/v1/queues/{name}/messages/{id}",
            get(handlers::get_message).delete(handlers::delete_message),
        )
        .route(
            "/v1/queues/{name}/receive",
            post(handlers::receive_messages),
        )
        .route("/v1/queues/{name}/ack", post(handlers::ack_messages))
        .route("/v1/queues/{name}/nack", post(handlers::nack_messages))
        .route("/v1/queues/{name}/lease", post(handlers::extend_leases))
        .route("/v1/queues/{name}/purge", post(handlers::purge_queue))
        .route("/v1/queues/{name}/redrive", post(handlers::redrive_queue))
}
