//! The event-store resources of the HTTP door, under `/v1/events`.
//!
//! `wire` holds the JSON shapes and their translation to engine types, `handlers` one function
//! per endpoint, `subscribe` the Server-Sent Events of catch-up subscriptions, `errors` the
//! problems of event-store errors. Expected versions, projections and persistent
//! subscriptions are the engine's; this module translates. docs/eventstore.md is the user's
//! guide to these endpoints.

pub(crate) mod errors;
pub(crate) mod handlers;
pub(crate) mod subscribe;
pub(crate) mod wire;

use super::AppState;
use axum::{
    routing::{get, post},
    Router,
};

/// The event-store routes, merged into the door's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/events/streams/{name}",
            get(handlers::read_stream)
                .post(handlers::append)
                .delete(handlers::delete_stream),
        )
        .route(
            "/v1/events/streams/{name}/metadata",
            get(handlers::get_metadata).put(handlers::put_metadata),
        )
        .route(
            "/v1/events/streams/{name}/snapshot",
            get(handlers::get_snapshot).put(handlers::put_snapshot),
        )
        .route("/v1/events/appends", post(handlers::append_batch))
        .route("/v1/events/all", get(handlers::read_all))
        .route("/v1/events/subscribe", get(subscribe::subscribe))
        .route("/v1/events/projections", get(handlers::list_projections))
        .route(
            "/v1/events/projections/{name}",
            get(handlers::get_projection)
                .put(handlers::put_projection)
                .delete(handlers::delete_projection),
        )
        .route(
            "/v1/events/projections/{name}/events",
            get(handlers::projection_events),
        )
        .route(
            "/v1/events/projections/{name}/checkpoint",
            post(handlers::checkpoint_projection),
        )
        .route(
            "/v1/events/subscriptions",
            get(handlers::list_subscriptions),
        )
        .route(
            "/v1/events/subscriptions/{name}",
            get(handlers::get_subscription)
                .put(handlers::put_subscription)
                .delete(handlers::delete_subscription),
        )
        .route(
            "/v1/events/subscriptions/{name}/receive",
            post(handlers::receive),
        )
        .route("/v1/events/subscriptions/{name}/ack", post(handlers::ack))
        .route("/v1/events/subscriptions/{name}/nack", post(handlers::nack))
}
