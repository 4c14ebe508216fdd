//! `/v1/webhooks`: endpoints, their delivery log and manual retries (docs/webhooks.md).
//!
//! Everything here is for administrators: an endpoint makes the server connect where it
//! says, and its answer shows the signing secret.

use super::{extract::Path, extract::Query, json_body::JsonBody, AppState, Problem};
use crate::webhooks::attempts::Attempt;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use wharf_engine::webhooks::{
    endpoint_dead_queue, endpoint_queue, Endpoint, EndpointSpec, EndpointSubscription,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks/endpoints", get(list_endpoints))
        .route(
            "/v1/webhooks/endpoints/{name}",
            get(get_endpoint).put(put_endpoint).delete(delete_endpoint),
        )
        .route("/v1/webhooks/endpoints/{name}/attempts", get(list_attempts))
        .route("/v1/webhooks/endpoints/{name}/replay", post(replay))
        .route("/v1/webhooks/messages/{id}/retry", post(retry_message))
        .route("/v1/webhooks/messages/{id}/attempts", get(message_attempts))
}

/// Messages of a topic the endpoint receives.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscriptionBody {
    #[schema(example = "orders")]
    pub topic: String,
    /// Routing-key pattern (AMQP syntax: `*` one word, `#` any); everything when absent.
    #[serde(default = "everything")]
    #[schema(example = "order.*")]
    pub pattern: String,
    /// Filter expression over headers and body (docs/filters.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

fn everything() -> String {
    "#".to_string()
}

fn enabled_by_default() -> bool {
    true
}

/// An endpoint as a client declares it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointBody {
    /// `http` or `https` URL the messages are POSTed to.
    #[schema(example = "https://example.com/webhooks/wharf")]
    pub url: String,
    pub subscriptions: Vec<WebhookSubscriptionBody>,
    /// `whsec_` + base64 of 24 to 64 bytes; generated when absent. Giving a new one keeps the
    /// old one signing beside it for 24 hours.
    #[serde(default)]
    pub secret: Option<String>,
    /// Sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most deliveries a second; unlimited when absent.
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

/// An endpoint and where its deliveries stand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointInfoBody {
    #[schema(example = "billing")]
    pub id: String,
    pub url: String,
    pub subscriptions: Vec<WebhookSubscriptionBody>,
    /// Signs every delivery (Standard Webhooks).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    /// Until when the replaced secret still signs beside this one (Unix ms).
    pub previous_secret_expires_at_ms: Option<u64>,
    pub headers: BTreeMap<String, String>,
    pub rate_limit_per_s: Option<u32>,
    pub enabled: bool,
    /// Why the server disabled it (`410 Gone`, failing too long).
    pub disabled_reason: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Messages waiting for a (next) attempt or in flight.
    pub pending: u64,
    /// Messages whose retries ran out, kept in `wharf.webhook.{id}.dead`.
    pub dead_lettered: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointListBody {
    pub endpoints: Vec<WebhookEndpointInfoBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookAttemptListBody {
    /// Newest first.
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// Only the attempts of this message.
    pub message: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetryQuery {
    /// Only to this endpoint; to every endpoint whose dead letters hold the message when
    /// absent.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookRetriedBody {
    /// The endpoints the message was queued for again.
    pub endpoints: Vec<String>,
}

impl From<WebhookEndpointBody> for EndpointSpec {
    fn from(body: WebhookEndpointBody) -> Self {
        EndpointSpec {
            url: body.url,
            subscriptions: (body.subscriptions.into_iter())
                .map(|subscription| EndpointSubscription {
                    topic: subscription.topic,
                    pattern: subscription.pattern,
                    filter: subscription.filter,
                })
                .collect(),
            secret: body.secret,
            headers: body.headers,
            rate_limit_per_s: body.rate_limit_per_s,
            enabled: body.enabled,
        }
    }
}

fn info(state: &AppState, id: String, endpoint: Endpoint) -> WebhookEndpointInfoBody {
    let count = |queue: String| {
        (state.engine.queue_info(&queue).ok()).map_or(0, |info| {
            info.stats.ready + info.stats.delayed + info.stats.leased
        })
    };
    let now = state.engine.clock().now();
    WebhookEndpointInfoBody {
        pending: count(endpoint_queue(&id)),
        dead_lettered: count(endpoint_dead_queue(&id)),
        id,
        url: endpoint.url,
        subscriptions: (endpoint.subscriptions.into_iter())
            .map(|subscription| WebhookSubscriptionBody {
                topic: subscription.topic,
                pattern: subscription.pattern,
                filter: subscription.filter,
            })
            .collect(),
        secret: endpoint.secret,
        previous_secret_expires_at_ms: (endpoint.previous_secret)
            .map(|previous| previous.expires_at_ms)
            .filter(|expires| *expires > now),
        headers: endpoint.headers,
        rate_limit_per_s: endpoint.rate_limit_per_s,
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason,
        created_at_ms: endpoint.created_at_ms,
        updated_at_ms: endpoint.updated_at_ms,
    }
}

/// Every endpoint.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    responses((status = 200, description = "Endpoints by id", body = WebhookEndpointListBody))
)]
pub async fn list_endpoints(State(state): State<AppState>) -> Json<WebhookEndpointListBody> {
    let endpoints = (state.engine.webhook_endpoints().into_iter())
        .map(|(id, endpoint)| info(&state, id, endpoint))
        .collect();
    Json(WebhookEndpointListBody { endpoints })
}

/// One endpoint, its secret and its queues' counts.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{name}",
    tag = "webhooks",
    params(("name" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpointInfoBody),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointInfoBody>, Problem> {
    let endpoint = state.engine.webhook_endpoint(&id)?;
    Ok(Json(info(&state, id, endpoint)))
}

/// Creates or replaces an endpoint. Its topics must exist; matching messages published from
/// now on are delivered to it.
#[utoipa::path(
    put,
    path = "/v1/webhooks/endpoints/{name}",
    tag = "webhooks",
    params(("name" = String, Path, description = "Endpoint id")),
    request_body = WebhookEndpointBody,
    responses(
        (status = 201, description = "Created", body = WebhookEndpointInfoBody),
        (status = 200, description = "Replaced", body = WebhookEndpointInfoBody),
        (status = 400, description = "A bad URL, secret, header, subscription or rate; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A subscription's topic does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A new endpoint's queue (`wharf.webhook.{id}`, `.dead`) or history stream (`.history`) exists already: its deliveries and history start empty", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`limit_reached`: as many endpoints as the server keeps", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WebhookEndpointBody>,
) -> Result<(StatusCode, Json<WebhookEndpointInfoBody>), Problem> {
    let (endpoint, created) = state.engine.put_webhook_endpoint(&id, body.into()).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(info(&state, id, endpoint))))
}

/// Deletes an endpoint with its pending and dead-lettered messages.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/endpoints/{name}",
    tag = "webhooks",
    params(("name" = String, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_webhook_endpoint(&id).await?;
    state.webhooks.attempts.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's delivery attempts since the server started, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{name}/attempts",
    tag = "webhooks",
    params(("name" = String, Path, description = "Endpoint id"), AttemptsQuery),
    responses(
        (status = 200, description = "Attempts, newest first", body = WebhookAttemptListBody),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<AttemptsQuery>,
) -> Result<Json<WebhookAttemptListBody>, Problem> {
    state.engine.webhook_endpoint(&id)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let attempts = (state.webhooks.attempts).list(&id, query.message.as_deref(), limit);
    Ok(Json(WebhookAttemptListBody { attempts }))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageAttemptsQuery {
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// A message's delivery attempts to every endpoint since the server started, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/messages/{id}/attempts",
    tag = "webhooks",
    params(("id" = String, Path, description = "Message id (the deliveries' `webhook-id`)"), MessageAttemptsQuery),
    responses((status = 200, description = "Attempts, newest first (none for an unknown id)", body = WebhookAttemptListBody))
)]
pub async fn message_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<MessageAttemptsQuery>,
) -> Json<WebhookAttemptListBody> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let attempts = state.webhooks.attempts.of_message(&id, limit);
    Json(WebhookAttemptListBody { attempts })
}

/// Queues a dead-lettered message again for its endpoint(s): a new run of the retry schedule
/// begins with an immediate attempt, under the same `webhook-id`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/messages/{id}/retry",
    tag = "webhooks",
    params(("id" = String, Path, description = "Message id (the deliveries' `webhook-id`)"), RetryQuery),
    responses(
        (status = 200, description = "Queued again for these endpoints", body = WebhookRetriedBody),
        (status = 404, description = "No such endpoint, or no endpoint's dead letters hold the message", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RetryQuery>,
) -> Result<Json<WebhookRetriedBody>, Problem> {
    let engine = &state.engine;
    let endpoints = (engine.retry_webhook_message(&id, query.endpoint.as_deref())).await?;
    if endpoints.is_empty() {
        let queue = match &query.endpoint {
            Some(endpoint) => endpoint_dead_queue(endpoint),
            None => "any wharf.webhook.*.dead queue".to_string(),
        };
        return Err(wharf_engine::EngineError::MessageNotFound { queue, id }.into());
    }
    Ok(Json(WebhookRetriedBody { endpoints }))
}

/// `POST /v1/webhooks/endpoints/{id}/replay` body: a time range of what the endpoint was sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookReplayBody {
    /// Start of the range: ms since the epoch, when the messages were published.
    pub since: u64,
    /// End of the range (included); default now.
    pub until: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookReplayedBody {
    /// Messages queued again for the endpoint.
    pub replayed: usize,
    /// Present when the most messages one replay sends (100,000) were reached first: call
    /// again with this as `since` for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_since: Option<u64>,
}

/// Sends the endpoint again what was routed to it in a time range, from its history (kept for
/// `webhooks.history_ms`), each message under its own `webhook-id`, through its queue and
/// retry schedule like any delivery.
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{name}/replay",
    tag = "webhooks",
    params(("name" = String, Path, description = "Endpoint id")),
    request_body = WebhookReplayBody,
    responses(
        (status = 200, description = "Queued again", body = WebhookReplayedBody),
        (status = 400, description = "The body is not a range (`since` missing, not a number)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<WebhookReplayBody>,
) -> Result<Json<WebhookReplayedBody>, Problem> {
    let until = request.until.unwrap_or_else(|| state.engine.now());
    // A range that ends before it starts holds nothing, as one after every message does.
    let replayed = (state.engine)
        .replay_webhook(&name, request.since, until)
        .await?;
    Ok(Json(WebhookReplayedBody {
        replayed: replayed.messages,
        next_since: replayed.next_since,
    }))
}
