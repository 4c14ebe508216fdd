//! `/v1/alerts`: alert rules and their states (see the engine's `alerts` and
//! docs/operations.md, "Alerts").
//!
//! Anyone with credentials lists the alerts on node metrics and on the queues and topics they
//! see; creating, changing and deleting rules is for administrators.

use super::{extract::Path, json_body::JsonBody, AppState, Problem};
use axum::{extract::State, http::StatusCode, routing::get, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wharf_engine::{
    alerts::{AlertInfo, AlertMetric, AlertOp, AlertRule, AlertState, RuleSource},
    security::{Principal, Resource, ResourceKind},
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/alerts", get(list_alerts)).route(
        "/v1/alerts/{name}",
        get(get_alert).put(put_alert).delete(delete_alert),
    )
}

/// An alert rule: a condition on one metric of a queue, a topic or the node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleBody {
    /// The queue watched; give it with a queue metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "orders")]
    pub queue: Option<String>,
    /// The topic watched; give it with a topic metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Queue: ready, delayed, leased, oldest_ready_age_ms, consumers, sent, delivered, acked,
    /// nacked, expired, dead_lettered, dropped, redriven, purged. Topic: published, routed,
    /// unroutable, subscribers, bindings. Node (no queue or topic): disk_free_bytes,
    /// resident_memory_bytes, queues, topics.
    #[schema(value_type = String, example = "ready")]
    pub metric: AlertMetric,
    /// Compare the change per second instead of the value.
    #[serde(default)]
    pub rate: bool,
    /// `>`, `>=`, `<` or `<=`.
    #[schema(value_type = String, example = ">")]
    pub op: AlertOp,
    #[schema(example = 10000)]
    pub threshold: f64,
    /// How long the condition must hold before the alert fires (0: at once).
    #[serde(default)]
    #[schema(example = 300000)]
    pub for_ms: u64,
    /// While firing, `/readyz` answers 503.
    #[serde(default)]
    pub readiness: bool,
}

/// A rule and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertBody {
    #[schema(example = "orders-backlog")]
    pub name: String,
    #[serde(flatten)]
    pub rule: AlertRuleBody,
    /// `config` (the configuration file; fixed) or `api`.
    #[schema(value_type = String, example = "api")]
    pub source: RuleSource,
    /// `ok`, `pending` (the condition holds, not yet for `for_ms`) or `firing`.
    #[schema(value_type = String, example = "ok")]
    pub state: AlertState,
    /// The compared value at the last evaluation; null before one, for a missing resource,
    /// or for a rate's first sample.
    pub value: Option<f64>,
    /// When the current pending or firing state began (Unix ms); null while ok.
    pub since_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertListBody {
    pub alerts: Vec<AlertBody>,
}

impl From<AlertRuleBody> for AlertRule {
    fn from(body: AlertRuleBody) -> Self {
        let AlertRuleBody {
            queue,
            topic,
            metric,
            rate,
            op,
            threshold,
            for_ms,
            readiness,
        } = body;
        AlertRule {
            queue,
            topic,
            metric,
            rate,
            op,
            threshold,
            for_ms,
            readiness,
        }
    }
}

impl From<AlertRule> for AlertRuleBody {
    fn from(rule: AlertRule) -> Self {
        let AlertRule {
            queue,
            topic,
            metric,
            rate,
            op,
            threshold,
            for_ms,
            readiness,
        } = rule;
        AlertRuleBody {
            queue,
            topic,
            metric,
            rate,
            op,
            threshold,
            for_ms,
            readiness,
        }
    }
}

impl From<AlertInfo> for AlertBody {
    fn from(info: AlertInfo) -> Self {
        AlertBody {
            name: info.name,
            rule: info.rule.into(),
            source: info.source,
            state: info.status.state,
            value: info.status.value,
            since_ms: info.status.since_ms,
        }
    }
}

/// Whether `principal` may see the alert: node alerts to everyone, the others to those who see
/// the queue or topic.
fn visible(principal: &Principal, rule: &AlertRule) -> bool {
    let resource = match (&rule.queue, &rule.topic) {
        (Some(name), _) => (ResourceKind::Queue, name),
        (None, Some(name)) => (ResourceKind::Topic, name),
        (None, None) => return true,
    };
    principal.sees(Resource {
        kind: resource.0,
        name: resource.1,
    })
}

/// Every alert rule the caller may see, with its state.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    responses((status = 200, description = "Alert rules by name", body = AlertListBody))
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<AlertListBody> {
    let alerts = (state.engine.alerts().into_iter())
        .filter(|info| visible(&principal, &info.rule))
        .map(Into::into)
        .collect();
    Json(AlertListBody { alerts })
}

/// One alert rule and its state.
#[utoipa::path(
    get,
    path = "/v1/alerts/{name}",
    tag = "alerts",
    params(("name" = String, Path, description = "Alert rule name")),
    responses(
        (status = 200, description = "The rule and its state", body = AlertBody),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_alert(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<AlertBody>, Problem> {
    let info = state.engine.alert(&name)?;
    if !visible(&principal, &info.rule) {
        // As if it did not exist: its name tells nothing the caller may know.
        return Err(wharf_engine::EngineError::AlertNotFound { name }.into());
    }
    Ok(Json(info.into()))
}

/// Creates or replaces an alert rule (administrators). A replaced rule starts again from `ok`.
#[utoipa::path(
    put,
    path = "/v1/alerts/{name}",
    tag = "alerts",
    params(("name" = String, Path, description = "Alert rule name")),
    request_body = AlertRuleBody,
    responses(
        (status = 201, description = "Created", body = AlertBody),
        (status = 200, description = "Replaced", body = AlertBody),
        (status = 404, description = "The queue or topic does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The rule is defined in the configuration file", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_alert(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<AlertRuleBody>,
) -> Result<(StatusCode, Json<AlertBody>), Problem> {
    let created = state.engine.put_alert_rule(&name, body.into()).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(state.engine.alert(&name)?.into())))
}

/// Deletes an alert rule made over the API (administrators).
#[utoipa::path(
    delete,
    path = "/v1/alerts/{name}",
    tag = "alerts",
    params(("name" = String, Path, description = "Alert rule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The rule is defined in the configuration file", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_alert(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_alert_rule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
