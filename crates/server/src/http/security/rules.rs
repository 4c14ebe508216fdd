//! Which grant each HTTP operation needs: the one table of them.
//!
//! Every route is listed here by method and path template. A route missing from the table is
//! refused with 500 for everyone (and fails the test that walks the OpenAPI document), so an
//! endpoint can never ship without a permission check. Operations whose resources are in the
//! body (request-reply targets, binding destinations, dead-letter queues) are checked again
//! by their handlers, with the same engine function.
//!
//! The dashboard's static files (`/ui`, `http/ui`) are no operation: the router serves them
//! outside the guard, so they need no entry here; the page sends credentials with its calls.

use axum::http::Method;
use wharf_engine::security::{Action, ResourceKind};

/// The resource name of the event store's `$all` in grants (`events:$all`).
pub const ALL_EVENTS: &str = "$all";

/// What an operation needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone: probes and the API description.
    Open,
    /// `/metrics`: open, or any valid credentials, as configured.
    Metrics,
    /// Any valid credentials; the handler filters or checks further.
    Authenticated,
    /// Any valid credentials, or a browser token in the query (`access_token`: a WebSocket or
    /// an `EventSource` cannot send headers); each op is checked by the real-time session.
    Realtime,
    /// `action` on the resource of `kind` named by the path parameter `name`.
    Grant { action: Action, kind: ResourceKind },
    /// Any valid credentials; the handler checks `action` on every resource of `kind` the
    /// body names (a batch of appends to several event streams) and refuses the whole request
    /// when one is not granted.
    EachInBody { action: Action, kind: ResourceKind },
    /// `action` on the resource of `kind` named `name`, whatever the path (the event store's
    /// `$all`, which its reads, subscriptions and projections consume).
    GrantOn {
        action: Action,
        kind: ResourceKind,
        name: &'static str,
    },
    /// An administrator.
    Admin,
}

impl Rule {
    /// Whether the audit log records this operation whatever its outcome (management), rather
    /// than only when it is refused (reading and writing messages).
    pub fn audited(self, method: &Method) -> bool {
        match self {
            Rule::Grant { action, .. }
            | Rule::GrantOn { action, .. }
            | Rule::EachInBody { action, .. } => {
                matches!(action, Action::Manage | Action::Admin)
            }
            Rule::Admin | Rule::Authenticated => *method != Method::GET,
            Rule::Realtime => false,
            Rule::Open | Rule::Metrics => false,
        }
    }
}

/// The rule of the route `template` (as axum matched it) for `method`; `None` for a route
/// the table lacks.
pub fn rule(method: &Method, template: &str) -> Option<Rule> {
    use Action::{Manage, Read, Write};
    use ResourceKind::{Queue, Stream, Topic};
    let grant = |action, kind| Some(Rule::Grant { action, kind });
    let get = *method == Method::GET;
    if template.starts_with("/v1/events/") {
        return event_rule(method, template);
    }
    match template {
        "/healthz" | "/readyz" | "/openapi.json" => Some(Rule::Open),
        // MQTT over WebSocket: the MQTT CONNECT authenticates.
        "/mqtt" => Some(Rule::Open),
        "/metrics" => Some(Rule::Metrics),
        "/v1/queues" | "/v1/topics" | "/v1/streams" if get => Some(Rule::Authenticated),
        "/v1/queues/{name}" if get => grant(Read, Queue),
        "/v1/queues/{name}" => grant(Manage, Queue),
        "/v1/queues/{name}/messages" if get => grant(Read, Queue),
        "/v1/queues/{name}/messages" => grant(Write, Queue),
        "/v1/queues/{name}/messages/{id}" if get => grant(Read, Queue),
        "/v1/queues/{name}/messages/{id}" => grant(Manage, Queue),
        "/v1/queues/{name}/receive"
        | "/v1/queues/{name}/ack"
        | "/v1/queues/{name}/nack"
        | "/v1/queues/{name}/lease" => grant(Read, Queue),
        "/v1/queues/{name}/purge" | "/v1/queues/{name}/redrive" => grant(Manage, Queue),
        "/v1/topics/{name}" | "/v1/topics/{name}/bindings" if get => grant(Read, Topic),
        "/v1/topics/{name}" | "/v1/topics/{name}/bindings" => grant(Manage, Topic),
        "/v1/topics/{name}/bindings/{id}" => grant(Manage, Topic),
        "/v1/topics/{name}/publish" => grant(Write, Topic),
        "/v1/topics/{name}/subscribe" => grant(Read, Topic),
        "/v1/streams/{name}" if get => grant(Read, Stream),
        "/v1/streams/{name}" | "/v1/streams/{name}/compact" => grant(Manage, Stream),
        "/v1/streams/{name}/records" => grant(Write, Stream),
        // Consumers: reading, joining a group, heartbeats, commits.
        "/v1/streams/{name}/partitions/{partition}/records"
        | "/v1/streams/{name}/partitions/{partition}/offsets"
        | "/v1/streams/{name}/partitions/{partition}/tail"
        | "/v1/streams/{name}/groups"
        | "/v1/streams/{name}/groups/{group}/members"
        | "/v1/streams/{name}/groups/{group}/members/{member}"
        | "/v1/streams/{name}/groups/{group}/members/{member}/heartbeat"
        | "/v1/streams/{name}/groups/{group}/commit"
        | "/v1/streams/{name}/groups/{group}/offsets" => grant(Read, Stream),
        "/v1/streams/{name}/groups/{group}" if get => grant(Read, Stream),
        "/v1/streams/{name}/groups/{group}" => grant(Manage, Stream),
        "/v1/request" | "/v1/scatter" | "/v1/reply" => Some(Rule::Authenticated),
        "/v1/ws" | "/v1/sse" => Some(Rule::Realtime),
        "/v1/realtime/tokens" => Some(Rule::Authenticated),
        "/v1/whoami" | "/v1/tokens" | "/v1/tokens/{id}" => Some(Rule::Authenticated),
        // An administrator, or a user setting its own password: the handler decides.
        "/v1/users/{name}" if *method == Method::PUT => Some(Rule::Authenticated),
        "/v1/users" | "/v1/users/{name}" | "/v1/audit" => Some(Rule::Admin),
        // Listed filtered by what the caller sees; rules are the node's configuration.
        "/v1/alerts" | "/v1/alerts/{name}" if get => Some(Rule::Authenticated),
        "/v1/alerts/{name}" => Some(Rule::Admin),
        // Listed filtered to the caller's own unless an administrator; closing is admin.
        "/v1/connections" | "/v1/connections/{id}" if get => Some(Rule::Authenticated),
        "/v1/connections/{id}" => Some(Rule::Admin),
        // An endpoint makes the server connect where it says, and shows its secret.
        "/v1/webhooks/endpoints"
        | "/v1/webhooks/endpoints/{name}"
        | "/v1/webhooks/endpoints/{name}/attempts"
        | "/v1/webhooks/endpoints/{name}/replay"
        | "/v1/webhooks/messages/{id}/retry"
        | "/v1/webhooks/messages/{id}/attempts" => Some(Rule::Admin),
        _ => None,
    }
}

/// The rules of the event store's routes: streams by id (`events:ID`); `$all`, subscriptions
/// and projections as `events:$all`.
fn event_rule(method: &Method, template: &str) -> Option<Rule> {
    use Action::{Manage, Read, Write};
    use ResourceKind::Events;
    let grant = |action| {
        Some(Rule::Grant {
            action,
            kind: Events,
        })
    };
    let all = |action| {
        Some(Rule::GrantOn {
            action,
            kind: Events,
            name: ALL_EVENTS,
        })
    };
    let get = *method == Method::GET;
    match template {
        "/v1/events/streams/{name}" if get => grant(Read),
        "/v1/events/streams/{name}" if *method == Method::POST => grant(Write),
        "/v1/events/streams/{name}" => grant(Manage),
        "/v1/events/streams/{name}/metadata" if get => grant(Read),
        "/v1/events/streams/{name}/metadata" => grant(Manage),
        "/v1/events/streams/{name}/snapshot" if get => grant(Read),
        "/v1/events/streams/{name}/snapshot" => grant(Write),
        "/v1/events/appends" => Some(Rule::EachInBody {
            action: Write,
            kind: Events,
        }),
        "/v1/events/all" | "/v1/events/subscribe" => all(Read),
        "/v1/events/projections" | "/v1/events/subscriptions" => all(Read),
        "/v1/events/projections/{name}" | "/v1/events/subscriptions/{name}" if get => all(Read),
        "/v1/events/projections/{name}" | "/v1/events/subscriptions/{name}" => all(Manage),
        // Read models and consumers: reading, checkpoints, receive, ack, nack.
        "/v1/events/projections/{name}/events"
        | "/v1/events/projections/{name}/checkpoint"
        | "/v1/events/subscriptions/{name}/receive"
        | "/v1/events/subscriptions/{name}/ack"
        | "/v1/events/subscriptions/{name}/nack" => all(Read),
        _ => None,
    }
}
