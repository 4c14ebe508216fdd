//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes.
//!
//! A new endpoint joins the document by being listed in [`ApiDoc`]'s `paths`; its request and
//! response types join `components` through their `ToSchema` derives.

use super::{
    health, metrics,
    queues::{handlers as queue, wire},
    Problem,
};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use utoipa::OpenApi;

/// The HTTP API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wharf",
        description = "Wharf message broker HTTP API. Errors are application/problem+json (RFC 9457)."
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        openapi_json,
        queue::put_queue,
        queue::list_queues,
        queue::get_queue,
        queue::delete_queue,
        queue::send_messages,
        queue::receive_messages,
        queue::ack_messages,
        queue::nack_messages,
        queue::extend_leases,
        queue::peek_messages,
        queue::purge_queue,
        queue::redrive_queue,
    ),
    components(schemas(
        Problem,
        health::ProbeStatus,
        wire::QueueInfoBody,
        wire::QueueListBody,
        wire::QueueStatsBody,
        wire::QueueCountersBody,
        wire::SendBody,
        wire::NewMessage,
        wire::SentListBody,
        wire::SentBody,
        wire::ReceiveBody,
        wire::MessageListBody,
        wire::MessageBody,
        wire::DeadLetterBody,
        wire::AckBody,
        wire::NackBody,
        wire::LeaseBody,
        wire::ReceiptResultsBody,
        wire::ReceiptResultBody,
        wire::PurgedBody,
        wire::RedriveBody,
        wire::RedrivenBody,
    )),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "queues", description = "Work queues: send, receive with a lease, ack, nack, dead letters. Times are ms since the Unix epoch."),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value))
)]
pub async fn openapi_json() -> Response {
    match serde_json::to_value(ApiDoc::openapi()) {
        Ok(document) => Json(document).into_response(),
        Err(error) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail(format!("building the OpenAPI document failed: {error}"))
            .into_response(),
    }
}
