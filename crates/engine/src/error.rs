//! The engine's error type: what a door must translate into its protocol's reply.
//!
//! Each door maps every variant exhaustively (no `_` arm), so a new variant breaks every door
//! until it is handled. Errors carry data in the engine's own terms (which field of which
//! message, which limit, which value) and word it in `Display` for logs; a door builds its own
//! reply from the data: the HTTP door turns a [`Field`] into a path in its request body, another
//! door into a reason code. Nothing here knows one door's body.

use crate::{
    broker::records::RecordError,
    queue::OptionField,
    security::{Action, AuthFailure},
    topic::{DestinationKind, TopicKind},
};
use std::{fmt, time::Duration};
use wharf_model::{filter::FilterError, pattern::PatternError, MessageIdError, QueueNameError};
use wharf_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A name (queue, topic, ...) breaks the naming rules.
    #[error("invalid {kind} name {name:?}: {problem}")]
    InvalidName {
        kind: ResourceKind,
        name: String,
        #[source]
        problem: NameProblem,
    },
    #[error("queue {name:?} does not exist")]
    QueueNotFound { name: String },
    #[error("topic {name:?} does not exist")]
    TopicNotFound { name: String },
    /// A binding, rule or alternate names a queue or topic that does not exist; `field` says
    /// which of them.
    #[error("{kind} {name:?} does not exist (the {field})")]
    DestinationNotFound {
        field: Field,
        kind: DestinationKind,
        name: String,
    },
    #[error("topic {topic:?} has no binding {id:?}")]
    BindingNotFound { topic: String, id: String },
    /// A reply address that no request waits on (it was answered or timed out).
    #[error("no request waits on reply address {reply_to:?}")]
    ReplyNotFound { reply_to: String },
    /// A request got no reply in time; nothing of it is left behind.
    #[error("no reply within {waited_ms} ms")]
    Timeout { waited_ms: u64 },
    /// A field of a command (an option, a message field, a request parameter) is out of range,
    /// malformed or inconsistent with another.
    #[error("invalid {field}: {problem}")]
    InvalidField {
        field: Field,
        #[source]
        problem: FieldProblem,
    },
    /// A batch passes a size limit; the message names the setting that raises it, if any.
    #[error("{limit} of {size} exceeds the limit of {max}{}", limit.setting_note())]
    TooLarge {
        limit: SizeLimit,
        size: usize,
        max: usize,
    },
    /// The queue is at `max_length` with `overflow = reject`; nothing of the batch was stored.
    #[error("queue {name:?} is full ({max_length} messages)")]
    QueueFull { name: String, max_length: u64 },
    /// A panic (a broken invariant: a bug) left this queue's state untrustworthy; it refuses
    /// every call until a restart rebuilds it from its log. Other queues are unaffected.
    #[error("queue {name:?} is closed after an internal error; a restart recovers it")]
    QueueBroken { name: String },
    /// An engine task panicked (a bug) while serving this one operation; nothing else failed.
    #[error("internal error during {operation}")]
    Internal { operation: &'static str },
    /// A configured limit on a resource many clients share is reached; `limit` names the
    /// configuration field. Retrying later may succeed.
    #[error("the limit {limit} = {max} is reached: a retry can succeed once fewer are in use or the limit is raised")]
    LimitReached { limit: &'static str, max: usize },
    /// The engine is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// A definition in the metadata store (under `key`) cannot be opened: the store was edited
    /// or written by a build that checked less. Only opening the engine meets it.
    #[error("the definition {key:?} in the metadata store is corrupt: {source}")]
    CorruptDefinition {
        key: String,
        #[source]
        source: DefinitionError,
    },
    /// The caller could not be identified: no credentials where they are required, or
    /// credentials that are not valid.
    #[error("authentication failed: {reason}")]
    Unauthenticated { reason: AuthFailure },
    /// The caller holds no grant for this action on this resource; nothing was changed.
    #[error("not allowed: {action} on {resource}")]
    Forbidden { action: Action, resource: String },
    #[error("user {name:?} does not exist")]
    UserNotFound { name: String },
    #[error("token {id:?} does not exist")]
    TokenNotFound { id: String },
    /// The administrator token this server was started with cannot be revoked over the API:
    /// it would come back at the next start.
    #[error(
        "token {id:?} is the administrator token of the server's configuration \
         (security.admin_token, WHARF_ADMIN_TOKEN or --admin-token): change or remove it there \
         and restart"
    )]
    TokenConfigured { id: String },
    /// No unsettled message of this queue has this id (never sent, or settled).
    #[error("queue {queue:?} holds no message {id:?}")]
    MessageNotFound { queue: String, id: String },
    /// The message is leased: its consumer settles it.
    #[error("message {id:?} of queue {queue:?} is leased by a consumer; ack or nack it with its receipt, or wait for the lease to end")]
    MessageLeased { queue: String, id: String },
    #[error("alert rule {name:?} does not exist")]
    AlertNotFound { name: String },
    /// An alert rule of the configuration file, which the API cannot change: it would come
    /// back at the next start.
    #[error(
        "alert rule {name:?} is defined in the server's configuration file ([alerts.rules.{name}]): \
         change or remove it there and restart"
    )]
    AlertConfigured { name: String },
    #[error("webhook endpoint {id:?} does not exist")]
    WebhookNotFound { id: String },
    /// A queue of a webhook endpoint: it goes with the endpoint, not on its own.
    #[error("queue {queue:?} holds the deliveries of webhook endpoint {endpoint:?}; delete the endpoint to delete it")]
    WebhookQueue { queue: String, endpoint: String },
    /// A new webhook endpoint whose queue or history stream exists already: its deliveries
    /// and history must start empty, as a replay re-sends the history, signed.
    #[error("webhook endpoint {endpoint:?} would take over {resource}, which exists already: delete it or choose another id")]
    WebhookResourceExists { endpoint: String, resource: String },
    /// A binding a webhook endpoint made: it changes with the endpoint, not on its own.
    #[error("binding {id:?} of topic {topic:?} routes to webhook endpoint {endpoint:?}; change or delete the endpoint instead")]
    WebhookBinding {
        topic: String,
        id: String,
        endpoint: String,
    },
    /// A topic a door relies on (AMQP's predeclared exchanges, MQTT's topic).
    #[error("topic {topic:?} is where the {door} door routes; it cannot be deleted")]
    TopicKept { topic: String, door: &'static str },
    /// A topic a webhook endpoint subscribes to.
    #[error(
        "topic {topic:?} feeds webhook endpoint {endpoint:?}; change or delete the endpoint first"
    )]
    WebhookTopic { topic: String, endpoint: String },
    /// A queue of a persistent subscription: it goes with the group, not on its own.
    #[error("queue {queue:?} holds the events of persistent subscription {group:?}: only the subscription feeds it and sets its options; change or delete the subscription instead")]
    SubscriptionQueue { queue: String, group: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Stream(crate::stream::StreamError),
    #[error(transparent)]
    EventStore(crate::eventstore::EventStoreError),
}

/// What kind of resource a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Queue,
    Topic,
    Alert,
    Stream,
    /// A stream's consumer group.
    Group,
    /// A member of a consumer group (its id).
    Member,
    WebhookEndpoint,
}

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// It breaks the naming rules (topics follow the queue rules).
    #[error("{source}")]
    Rules {
        #[source]
        source: QueueNameError,
    },
    /// It starts with the prefix of the engine's reply addresses, which only the engine makes.
    #[error("names starting with {prefix} are reply addresses", prefix = crate::broker::REPLY_ADDRESS_PREFIX)]
    ReplyAddress,
}

/// A field of a command, named in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The messages of a send or publish, as a whole.
    Batch,
    /// A field of the message at `index` in its batch (0 for a command of one message).
    Message {
        index: usize,
        field: MessageField,
    },
    /// A queue option.
    QueueOption(OptionField),
    /// How many messages a receive may return.
    MaxMessages,
    /// How long a receive waits for a first message.
    Wait,
    /// The lease a receive, a push consumer or an extend asks for.
    Lease,
    /// How many unsettled deliveries a push consumer may hold.
    Credit,
    /// How many replies a scatter waits for.
    Expect,
    /// The reply address a reply is sent to.
    ReplyTo,
    /// A topic's kind.
    TopicKind,
    /// The filter of the topic's rule at `index`.
    RuleFilter {
        index: usize,
    },
    /// The pattern of a binding or a subscription.
    Pattern,
    /// The filter of a binding or a subscription.
    Filter,
    /// The headers match of a binding.
    Headers,
    /// The destination of a binding, of this kind.
    Destination {
        kind: DestinationKind,
    },
    /// A topic's alternate destination, of this kind.
    Alternate {
        kind: DestinationKind,
    },
    /// The destination of the topic's rule at `index`, of this kind.
    RuleDestination {
        index: usize,
        kind: DestinationKind,
    },
    /// A binding's request to create its destination queue.
    CreateQueue,
    /// A user's name.
    UserName,
    Password,
    /// One grant of a user or token.
    Grant {
        index: usize,
    },
    /// A token's name.
    TokenName,
    /// A token's lifetime.
    ExpiresIn,
    /// A field of an alert rule.
    Alert(AlertField),
    /// A field of a webhook endpoint.
    Webhook(WebhookField),
}

/// A field of a webhook endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookField {
    Url,
    Secret,
    Headers,
    RateLimit,
    Subscriptions,
    /// A member of the subscription at `index`.
    Subscription {
        index: usize,
        member: crate::webhooks::SubscriptionMember,
    },
}

/// A field of an alert rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertField {
    Metric,
    Threshold,
    For,
}

/// A field of a message to send or publish (`SendMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageField {
    Id,
    ContentType,
    /// The name of one of its headers.
    HeaderName,
    /// The value of the header `name`.
    HeaderValue {
        name: String,
    },
    Priority,
    Delay,
    DeliverAt,
    Ttl,
    Group,
    CorrelationId,
    ReplyTo,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldProblem {
    /// A number outside `min..=max`.
    #[error("{}", describe_range(*value, *min, *max, ""))]
    OutOfRange { value: u64, min: u64, max: u64 },
    /// A duration outside `min..=max`.
    #[error("{}", describe_range(millis(*value), millis(*min), millis(*max), " ms"))]
    DurationOutOfRange {
        value: Duration,
        min: Duration,
        max: Duration,
    },
    /// A number below the value of another field it must not be below.
    #[error("{value} is below {other} ({other_value})")]
    BelowOption {
        value: u64,
        other: OptionField,
        other_value: u64,
    },
    /// A text longer than the engine keeps.
    #[error("{len} bytes is longer than {max}")]
    TooLong { len: usize, max: usize },
    /// Empty where at least one element or character is needed.
    #[error("must not be empty")]
    Empty,
    /// Missing, and nothing given instead; `unless` names a field that may stand in for it.
    #[error("is required{}", unless.as_ref().map(|f| format!(" (or {f})")).unwrap_or_default())]
    Required { unless: Option<Field> },
    /// Given together with another field of the same message that excludes it.
    #[error("conflicts with {with}; give one of the two")]
    Conflicts { with: MessageField },
    /// A client message id the model's rules refuse.
    #[error("{source}")]
    InvalidId {
        #[source]
        source: MessageIdError,
    },
    /// A pattern its syntax refuses.
    #[error("{source}")]
    InvalidPattern {
        #[source]
        source: PatternError,
    },
    /// A filter that does not parse; its error says where.
    #[error("{source}")]
    InvalidFilter {
        #[source]
        source: FilterError,
    },
    /// A queue named as its own dead-letter queue.
    #[error("a queue cannot be its own dead-letter queue")]
    OwnDeadLetterQueue,
    /// A queue's durability, which is fixed when it is created.
    #[error("durability is fixed when the queue is created; delete and recreate it")]
    FixedAtCreation,
    /// A topic's kind, which cannot change while bindings made for the old kind exist.
    #[error("a topic's kind cannot change from {from} to {to} while it has bindings")]
    FixedWhileBound { from: TopicKind, to: TopicKind },
    /// Only a queue destination can be created with its binding.
    #[error("only a queue destination can be created")]
    NotAQueue,
    /// Not one of the engine's reply addresses.
    #[error("reply addresses start with {prefix}", prefix = crate::broker::REPLY_ADDRESS_PREFIX)]
    NotAReplyAddress,
    /// A reply whose correlation id differs from the one of the request waiting for it.
    #[error("the request at this reply address has another correlation id")]
    CorrelationMismatch,
    /// A name (of a destination, a dead-letter queue) that breaks the naming rules or is
    /// reserved.
    #[error("{problem}")]
    InvalidName { problem: NameProblem },
    /// An alert metric watched on the wrong kind of resource.
    #[error("{metric} is a {scope} metric: {}", match scope {
        crate::alerts::MetricScope::Queue => "name one queue (and no topic)",
        crate::alerts::MetricScope::Topic => "name one topic (and no queue)",
        crate::alerts::MetricScope::Node => "name no queue or topic",
    })]
    MetricScope {
        metric: &'static str,
        scope: crate::alerts::MetricScope,
    },
    /// A number that is not finite (NaN or infinite).
    #[error("must be a finite number")]
    NotFinite,
    /// A user or token name with a character outside the allowed set.
    #[error("may hold only letters, digits and . _ @ -")]
    AccountNameChars,
    /// Not in the form the field takes; `reason` says how.
    #[error("{reason}")]
    Malformed { reason: String },
}

/// A size limit of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// Messages in one send or publish (`EngineConfig::batch_messages_max`).
    BatchMessages,
    /// Body bytes of one send or publish (`EngineConfig::batch_bytes_max`).
    BatchBytes,
    /// Grants of one user or token (`GRANTS_MAX`).
    Grants,
}

/// Why a stored definition cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// Its JSON does not decode into the definition's type.
    #[error("{0}")]
    Decode(#[source] serde_json::Error),
    /// It decodes, but the checks a new definition passes refuse it.
    #[error("{0}")]
    Refused(#[source] Box<EngineError>),
    /// Its entry was damaged on disk and skipped: the options are unknown. The queue's
    /// messages stay in the WAL (nothing is reclaimed) until the metadata is restored.
    #[error(
        "its metadata entry was damaged on disk and could not be read; restore meta/ from a backup"
    )]
    Lost,
    /// The queue's definition is there but the entry naming its records in the WAL was lost:
    /// opening it would show it empty. Its messages stay in the WAL until the metadata is
    /// restored.
    #[error(
        "the entry naming its records in the WAL was damaged on disk; restore meta/ from a backup"
    )]
    ResourceLost,
}

impl EngineError {
    /// An [`EngineError::InvalidField`].
    pub(crate) fn invalid_field(field: Field, problem: FieldProblem) -> EngineError {
        EngineError::InvalidField { field, problem }
    }

    /// An [`EngineError::InvalidField`] of the message at `index` of a batch.
    pub(crate) fn invalid_message_field(
        index: usize,
        field: MessageField,
        problem: FieldProblem,
    ) -> EngineError {
        EngineError::invalid_field(Field::Message { index, field }, problem)
    }

    /// An [`EngineError::CorruptDefinition`] for the definition under `key`.
    pub(crate) fn corrupt_definition(key: &str, source: DefinitionError) -> EngineError {
        EngineError::CorruptDefinition {
            key: key.to_string(),
            source,
        }
    }
}

impl From<crate::queue::OptionsError> for EngineError {
    fn from(error: crate::queue::OptionsError) -> Self {
        use crate::queue::OptionsError;
        match error {
            OptionsError::OutOfRange {
                field,
                value,
                min,
                max,
            } => EngineError::invalid_field(
                Field::QueueOption(field),
                FieldProblem::OutOfRange { value, min, max },
            ),
            OptionsError::BackoffMaxBelowBase {
                retry_backoff_ms,
                retry_backoff_max_ms,
            } => EngineError::invalid_field(
                Field::QueueOption(OptionField::RetryBackoffMaxMs),
                FieldProblem::BelowOption {
                    value: retry_backoff_max_ms,
                    other: OptionField::RetryBackoffMs,
                    other_value: retry_backoff_ms,
                },
            ),
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Queue => "queue",
            ResourceKind::Topic => "topic",
            ResourceKind::Alert => "alert rule",
            ResourceKind::Stream => "stream",
            ResourceKind::Group => "consumer group",
            ResourceKind::Member => "group member",
            ResourceKind::WebhookEndpoint => "webhook endpoint",
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Batch => f.write_str("batch"),
            Field::Message { index, field } => write!(f, "{field} of message {index}"),
            Field::QueueOption(option) => write!(f, "queue option {option}"),
            Field::MaxMessages => f.write_str("max_messages"),
            Field::Wait => f.write_str("wait"),
            Field::Lease => f.write_str("lease"),
            Field::Credit => f.write_str("credit"),
            Field::Expect => f.write_str("expect"),
            Field::ReplyTo => f.write_str("reply address"),
            Field::TopicKind => f.write_str("topic kind"),
            Field::RuleFilter { index } => write!(f, "filter of rule {index}"),
            Field::Pattern => f.write_str("pattern"),
            Field::Filter => f.write_str("filter"),
            Field::Headers => f.write_str("headers"),
            Field::Destination { kind } => write!(f, "{kind} destination"),
            Field::Alternate { kind } => write!(f, "{kind} alternate"),
            Field::RuleDestination { index, kind } => {
                write!(f, "{kind} destination of rule {index}")
            }
            Field::CreateQueue => f.write_str("create_queue"),
            Field::UserName => f.write_str("user name"),
            Field::Password => f.write_str("password"),
            Field::Grant { index } => write!(f, "grant {index}"),
            Field::TokenName => f.write_str("token name"),
            Field::ExpiresIn => f.write_str("token lifetime"),
            Field::Alert(AlertField::Metric) => f.write_str("alert metric"),
            Field::Alert(AlertField::Threshold) => f.write_str("alert threshold"),
            Field::Alert(AlertField::For) => f.write_str("alert for_ms"),
            Field::Webhook(field) => write!(f, "{}", webhook_member(*field)),
        }
    }
}

/// The member of an endpoint's JSON that holds `field`: `subscriptions[2].pattern`.
pub fn webhook_member(field: WebhookField) -> String {
    use crate::webhooks::SubscriptionMember;
    match field {
        WebhookField::Url => "url".into(),
        WebhookField::Secret => "secret".into(),
        WebhookField::Headers => "headers".into(),
        WebhookField::RateLimit => "rate_limit_per_s".into(),
        WebhookField::Subscriptions => "subscriptions".into(),
        WebhookField::Subscription { index, member } => {
            let member = match member {
                SubscriptionMember::Topic => "topic",
                SubscriptionMember::Pattern => "pattern",
                SubscriptionMember::Filter => "filter",
            };
            format!("subscriptions[{index}].{member}")
        }
    }
}

impl fmt::Display for MessageField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageField::Id => f.write_str("id"),
            MessageField::ContentType => f.write_str("content_type"),
            MessageField::HeaderName => f.write_str("a header name"),
            MessageField::HeaderValue { name } => write!(f, "header {name:?}"),
            MessageField::Priority => f.write_str("priority"),
            MessageField::Delay => f.write_str("delay"),
            MessageField::DeliverAt => f.write_str("deliver_at"),
            MessageField::Ttl => f.write_str("ttl"),
            MessageField::Group => f.write_str("group"),
            MessageField::CorrelationId => f.write_str("correlation_id"),
            MessageField::ReplyTo => f.write_str("reply_to"),
        }
    }
}

impl SizeLimit {
    /// The configuration field that sets this limit; `None` for a fixed one.
    pub fn setting(self) -> Option<&'static str> {
        match self {
            SizeLimit::BatchMessages => Some("batch_messages_max"),
            SizeLimit::BatchBytes => Some("batch_bytes_max"),
            SizeLimit::Grants => None,
        }
    }

    fn setting_note(self) -> String {
        self.setting()
            .map_or_else(String::new, |setting| format!(" ({setting})"))
    }
}

impl fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeLimit::BatchMessages => "a batch's message count",
            SizeLimit::BatchBytes => "a batch's body bytes",
            SizeLimit::Grants => "the number of grants",
        })
    }
}

/// Durations are compared and shown in whole milliseconds, the unit every door speaks.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The wording of a range error: "no limit" ends (0, `u64::MAX`) are left unsaid.
fn describe_range(value: u64, min: u64, max: u64, unit: &str) -> String {
    match (value < min, max) {
        (true, u64::MAX) => format!("{value}{unit} is below the minimum {min}{unit}"),
        (false, _) if value > max => format!("{value}{unit} is above the maximum {max}{unit}"),
        _ => format!("{value}{unit} is outside {min}{unit}..={max}{unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_words_the_data_in_engine_terms() {
        let priority = EngineError::invalid_message_field(
            3,
            MessageField::Priority,
            FieldProblem::OutOfRange {
                value: 12,
                min: 0,
                max: 9,
            },
        );
        assert_eq!(
            priority.to_string(),
            "invalid priority of message 3: 12 is above the maximum 9"
        );
        let ttl = EngineError::invalid_message_field(
            0,
            MessageField::Ttl,
            FieldProblem::DurationOutOfRange {
                value: Duration::ZERO,
                min: Duration::from_millis(1),
                max: Duration::MAX,
            },
        );
        assert_eq!(
            ttl.to_string(),
            "invalid ttl of message 0: 0 ms is below the minimum 1 ms"
        );
        let too_large = EngineError::TooLarge {
            limit: SizeLimit::BatchMessages,
            size: 1_001,
            max: 1_000,
        };
        assert_eq!(
            too_large.to_string(),
            "a batch's message count of 1001 exceeds the limit of 1000 (batch_messages_max)"
        );
    }

    #[test]
    fn sub_errors_travel_as_sources() {
        let name = EngineError::InvalidName {
            kind: ResourceKind::Topic,
            name: String::new(),
            problem: NameProblem::Rules {
                source: QueueNameError::Empty,
            },
        };
        let problem = std::error::Error::source(&name).expect("the name problem");
        let rules = problem.source().expect("the model's error");
        assert_eq!(rules.to_string(), QueueNameError::Empty.to_string());
    }
}
