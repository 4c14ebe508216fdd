//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes.
//!
//! A new endpoint joins the document by being listed in [`ApiDoc`]'s `paths`; its request and
//! response types join `components` through their `ToSchema` derives. The dashboard's static
//! files under `/ui` (`http/ui`) are a page, not part of the API, and stay out of it.

use super::{
    alerts, connections,
    events::{handlers as events, subscribe as event_subscribe, wire as event_wire},
    health, metrics, mqtt,
    queues::{handlers as queue, wire},
    realtime, requests, security,
    streams::{handlers as stream, tail, wire as stream_wire},
    topics::{handlers as topic, subscribe, wire as topic_wire},
    webhooks, Problem, ProblemCode,
};
use axum::{
    body::Bytes,
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};
use std::sync::LazyLock;
use utoipa::OpenApi;

mod refine;
mod responses;

use responses::LayerResponses;

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
        queue::patch_queue,
        queue::list_queues,
        queue::get_queue,
        queue::delete_queue,
        queue::send_messages,
        queue::receive_messages,
        queue::ack_messages,
        queue::nack_messages,
        queue::extend_leases,
        queue::peek_messages,
        queue::get_message,
        queue::delete_message,
        queue::purge_queue,
        queue::redrive_queue,
        topic::put_topic,
        topic::list_topics,
        topic::get_topic,
        topic::delete_topic,
        topic::add_binding,
        topic::list_bindings,
        topic::delete_binding,
        topic::publish_messages,
        subscribe::subscribe,
        stream::put_stream,
        stream::list_streams,
        stream::get_stream,
        stream::delete_stream,
        stream::produce,
        stream::fetch,
        stream::offsets,
        stream::compact,
        tail::tail,
        stream::list_groups,
        stream::get_group,
        stream::delete_group,
        stream::join_group,
        stream::heartbeat,
        stream::leave_group,
        stream::commit,
        stream::group_offsets,
        events::append,
        events::append_batch,
        events::read_stream,
        events::delete_stream,
        events::get_metadata,
        events::put_metadata,
        events::get_snapshot,
        events::put_snapshot,
        events::read_all,
        event_subscribe::subscribe,
        events::put_projection,
        events::get_projection,
        events::list_projections,
        events::delete_projection,
        events::projection_events,
        events::checkpoint_projection,
        events::put_subscription,
        events::get_subscription,
        events::list_subscriptions,
        events::delete_subscription,
        events::receive,
        events::ack,
        events::nack,
        requests::request,
        requests::scatter,
        requests::reply,
        security::handlers::whoami,
        security::handlers::create_token,
        security::handlers::list_tokens,
        security::handlers::revoke_token,
        security::handlers::put_user,
        security::handlers::list_users,
        security::handlers::delete_user,
        security::handlers::read_audit,
        alerts::list_alerts,
        alerts::get_alert,
        alerts::put_alert,
        alerts::delete_alert,
        webhooks::list_endpoints,
        webhooks::get_endpoint,
        webhooks::put_endpoint,
        webhooks::delete_endpoint,
        webhooks::list_attempts,
        webhooks::retry_message,
        webhooks::message_attempts,
        webhooks::replay,
        realtime::websocket,
        realtime::events,
        realtime::create_token,
        mqtt::mqtt,
        connections::list_connections,
        connections::get_connection,
        connections::close_connection,
    ),
    components(schemas(
        Problem,
        alerts::AlertRuleBody,
        alerts::AlertBody,
        alerts::AlertListBody,
        webhooks::WebhookSubscriptionBody,
        webhooks::WebhookEndpointBody,
        webhooks::WebhookEndpointInfoBody,
        webhooks::WebhookEndpointListBody,
        webhooks::WebhookAttemptListBody,
        webhooks::WebhookRetriedBody,
        webhooks::WebhookReplayBody,
        webhooks::WebhookReplayedBody,
        crate::webhooks::attempts::Attempt,
        crate::webhooks::attempts::Outcome,
        realtime::RealtimeTokenRequest,
        realtime::RealtimeTokenBody,
        connections::DoorBody,
        connections::ClientBody,
        connections::ConnectionBody,
        connections::ConsumerBody,
        connections::ChannelBody,
        connections::ConnectionDetailBody,
        connections::ConnectionListBody,
        security::wire::GrantBody,
        security::wire::ActionBody,
        security::wire::UserBody,
        security::wire::UserInfoBody,
        security::wire::UserListBody,
        security::wire::TokenBody,
        security::wire::TokenInfoBody,
        security::wire::TokenListBody,
        security::wire::WhoamiBody,
        security::wire::AuditEntryBody,
        security::wire::AuditListBody,
        health::ProbeStatus,
        wire::QueueInfoBody,
        wire::QueueListBody,
        wire::DamagedDefinitionBody,
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
        event_wire::AppendBody,
        event_wire::NewEventBody,
        event_wire::AppendedBody,
        event_wire::AppendBatchBody,
        event_wire::StreamAppendBody,
        event_wire::AppendBatchResultsBody,
        event_wire::AppendResultBody,
        event_wire::DirectionParam,
        event_wire::EventBody,
        event_wire::StreamEventsBody,
        event_wire::AllEventsBody,
        event_wire::MetadataBody,
        event_wire::MetadataInfoBody,
        event_wire::SnapshotBody,
        event_wire::SnapshotInfoBody,
        event_wire::ProjectionBody,
        event_wire::ProjectionInfoBody,
        event_wire::ProjectionListBody,
        event_wire::CheckpointBody,
        event_wire::SubscriptionStart,
        event_wire::SubscriptionBody,
        event_wire::SubscriptionInfoBody,
        event_wire::SubscriptionListBody,
        event_wire::DeliveredEventBody,
        event_wire::DeliveredEventsBody,
        stream_wire::StreamBody,
        stream_wire::StreamInfoBody,
        stream_wire::StreamStatsBody,
        stream_wire::PartitionBody,
        stream_wire::StreamListBody,
        stream_wire::ProduceBody,
        stream_wire::NewRecord,
        stream_wire::ProducedListBody,
        stream_wire::ProducedBody,
        stream_wire::RecordListBody,
        stream_wire::RecordBody,
        stream_wire::OffsetBody,
        stream_wire::JoinBody,
        stream_wire::ResetBody,
        stream_wire::HeartbeatBody,
        stream_wire::MemberBody,
        stream_wire::CommitBody,
        stream_wire::CommitOffset,
        stream_wire::GroupBody,
        stream_wire::GroupMemberBody,
        stream_wire::PartitionLagBody,
        stream_wire::GroupListBody,
        stream_wire::OffsetsBody,
        stream_wire::CompactedBody,
        topic_wire::TopicBody,
        topic_wire::TopicInfoBody,
        topic_wire::TopicStatsBody,
        topic_wire::TopicListBody,
        topic_wire::DestinationBody,
        topic_wire::RuleBody,
        topic_wire::HeadersBody,
        topic_wire::BindingBody,
        topic_wire::BindingInfoBody,
        topic_wire::BindingListBody,
        topic_wire::PublishBody,
        topic_wire::PublishMessageBody,
        topic_wire::PublishedListBody,
        topic_wire::PublishedBody,
        requests::RequestBody,
        requests::ReplyMessageBody,
        requests::ScatterBody,
        requests::ScatterResultBody,
        requests::ReplySentBody,
    )),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "queues", description = "Work queues: send, receive with a lease, ack, nack, dead letters. Times are ms since the Unix epoch."),
        (name = "topics", description = "Topics: bindings route published messages to queues and topics; live subscriptions over Server-Sent Events."),
        (name = "events", description = "Event store: streams of events appended with expected versions, `$all`, catch-up and persistent subscriptions, snapshots and projections."),
        (name = "streams", description = "Streams: partitioned logs of records read at offsets, with consumer groups, retention and compaction."),
        (name = "requests", description = "Request-reply and scatter-gather through temporary reply addresses."),
        (name = "security", description = "Users, tokens, the caller's identity and the audit log (docs/security.md)."),
        (name = "alerts", description = "Alert rules on queue, topic and node metrics; they fire and resolve as events on a topic (docs/operations.md)."),
        (name = "realtime", description = "Real-time fan-out: a WebSocket protocol (subscribe, publish, rooms with presence, request-reply) and Server-Sent Events, with resume from a short history; browser tokens (docs/realtime.md)."),
        (name = "webhooks", description = "Webhook endpoints: messages of topics POSTed to URLs, signed (Standard Webhooks), retried, dead-lettered; the delivery log (docs/webhooks.md)."),
        (name = "connections", description = "Client connections of the AMQP door, their channels and consumers; an administrator closes one (docs/doors/amqp.md)."),
    ),
    modifiers(&SecuritySchemes, &LayerResponses),
    security(("bearer" = []), ("basic" = []))
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate, so generated clients send credentials: a token as
/// `Authorization: Bearer`, a user by HTTP Basic. Every operation but the probes and this
/// document needs one once the server has users or tokens (docs/security.md).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token from POST /v1/tokens, or the administrator token",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value))
)]
pub async fn openapi_json() -> Response {
    // The same for the life of the process: built and encoded at the first request only.
    static DOCUMENT: LazyLock<Result<Bytes, String>> = LazyLock::new(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).map_err(|e| e.to_string())?;
        refine::refine(&mut document);
        (serde_json::to_vec(&document).map(Bytes::from)).map_err(|e| e.to_string())
    });
    match &*DOCUMENT {
        Ok(document) => ([(CONTENT_TYPE, "application/json")], document.clone()).into_response(),
        Err(error) => Problem::new(ProblemCode::Internal)
            .with_detail(format!("building the OpenAPI document failed: {error}"))
            .into_response(),
    }
}
