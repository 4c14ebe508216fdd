//! The topic resources of the HTTP door, under `/v1/topics`.
//!
//! `wire` holds the JSON shapes and their translation to engine types, `handlers` one function
//! per endpoint, `subscribe` the Server-Sent Events stream of a live subscription. Routing,
//! bindings, retained messages and subscriptions are the engine's; this module translates.
//! Engine errors map to problems in `queues::errors`, the door's one mapping. docs/topics.md is
//! the user's guide to these endpoints.

pub(crate) mod handlers;
pub(crate) mod subscribe;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use super::AppState;
use axum::{
    routing::{delete, get, post},
    Router,
};

/// The topic routes, merged into the door's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/topics", get(handlers::list_topics))
        .route(
            "/v1/topics/{name}",
            get(handlers::get_topic)
                .put(handlers::put_topic)
                .delete(handlers::delete_topic),
        )
        .route(
            "/v1/topics/{name}/bindings",
            post(handlers::add_binding).get(handlers::list_bindings),
        )
        .route(
            "/v1/topics/{name}/bindings/{id}",
            delete(handlers::delete_binding),
        )
        .route(
            "/v1/topics/{name}/publish",
            post(handlers::publish_messages),
        )
        .route("/v1/topics/{name}/subscribe", get(subscribe::subscribe))
}
