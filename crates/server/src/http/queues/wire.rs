//! The JSON shapes of the queue API and their translation to and from engine types.
//!
//! Times are integers, milliseconds since the Unix epoch, in every request and response: the
//! engine's own unit, exact, and free of time-zone parsing. Bodies travel as JSON (`body`) when
//! their content type is JSON, else as base64 (`body_base64`).

use crate::http::{json_body::is_json_content_type, Problem, ProblemCode};
use base64_simd::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::{collections::BTreeMap, time::Duration};
use utoipa::{IntoParams, ToSchema};
use wharf_engine::{
    broker::{
        PeekedMessage, QueueInfo, ReceiptFailure, ReceiptResult, Redriven, SendMessage, Sent,
    },
    error::MessageField,
    log_throttle::LogThrottle,
    queue::{
        Browse, MessageStatus, OptionField, QueueCounters, QueueOptions, QueueStats, ReceiptError,
        ReceiptParseError,
    },
};
use wharf_model::message::{DeadLetter, Message};

/// Content type of a message sent with a JSON `body`.
const JSON_CONTENT_TYPE: &str = "application/json";

/// A queue: its name, options and current statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueInfoBody {
    #[schema(example = "jobs")]
    pub name: String,
    /// Every option with its effective value (defaults filled in).
    #[schema(value_type = Object)]
    pub options: QueueOptions,
    pub stats: QueueStatsBody,
}

/// Gauges of the queue now, and counters since the server started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueStatsBody {
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    /// Age of the oldest ready message; null when none is ready.
    pub oldest_ready_age_ms: Option<u64>,
    /// Consumers attached now: push consumers and waiting long polls.
    pub consumers: u64,
    pub counters: QueueCountersBody,
}

/// Events since the server started (reset by a restart).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueCountersBody {
    pub sent: u64,
    pub duplicates: u64,
    pub delivered: u64,
    pub acked: u64,
    pub nacked: u64,
    pub expired: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub purged: u64,
    /// Dead letters moved back to their source queue by a redrive of this queue.
    pub redriven: u64,
    /// Messages whose stored record could not be read back (damaged storage) when delivered:
    /// they left the queue, and the server logged each.
    pub damaged: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueListBody {
    pub queues: Vec<QueueInfoBody>,
    /// More match: ask again with `after` set to this. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Queue and topic definitions the server found unreadable at start: those stay closed
    /// (the others opened) until an operator fixes or replaces them. Absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedDefinitionBody>,
}

/// A definition found unreadable at start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DamagedDefinitionBody {
    /// Its metadata key: `queue/NAME` or `topic/NAME`.
    pub key: String,
    /// What is wrong with it, for a person to read.
    pub detail: String,
}

/// `POST /v1/queues/{name}/messages` body: 1 to 1,000 messages, at most 8 MiB of bodies (the
/// defaults of `limits.batch_messages_max` and `limits.batch_bytes_max`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub messages: Vec<NewMessage>,
}

/// One message to send. Give `body` (any JSON value) or `body_base64`, not both.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Client id: a second send with this id within the queue's dedup window is not stored
    /// again. Generated (time-ordered) when absent.
    pub id: Option<String>,
    /// A JSON body, stored as its JSON text with content type application/json (or the given
    /// JSON content type).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = serde_json::Value)]
    pub body: Option<serde_json::Value>,
    /// Any other body, base64 (standard alphabet, padded).
    #[schema(value_type = Option<String>)]
    pub body_base64: Option<Base64Body>,
    /// Default application/json for `body`, application/octet-stream for `body_base64`.
    pub content_type: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// 0 (default, lowest) to 9; higher is delivered first.
    pub priority: Option<u8>,
    /// Hidden for this long after the send.
    pub delay_ms: Option<u64>,
    /// Hidden until this time (ms since the epoch); not with `delay_ms`.
    pub deliver_at: Option<u64>,
    /// Never delivered after this long; the queue's `message_ttl_ms` still applies if earlier.
    pub ttl_ms: Option<u64>,
    /// Ordering group: one message of a group in flight at a time, in send order.
    pub group: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SentListBody {
    pub messages: Vec<SentBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SentBody {
    pub id: String,
    /// True when the id was seen within the dedup window: this send stored nothing.
    pub duplicate: bool,
}

/// `POST /v1/queues/{name}/receive` body; every field is optional (an empty body is fine).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiveBody {
    /// 1 (default) to 100.
    pub max_messages: usize,
    /// Long poll: wait up to this long (default 0, at most 20,000) for a first message.
    pub wait_ms: u64,
    /// Lease for these deliveries; the queue's `lease_ms` when absent.
    pub lease_ms: Option<u64>,
}

/// Messages returned by receive or peek.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageListBody {
    pub messages: Vec<MessageBody>,
}

/// A message as delivered (receive) or seen (peek).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageBody {
    pub id: String,
    /// The body when its content type is JSON and it parses as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = serde_json::Value)]
    pub body: Option<Box<RawValue>>,
    /// The body otherwise, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub body_base64: Option<Box<RawValue>>,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    pub priority: u8,
    pub group: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// When the queue accepted it (ms since the epoch).
    pub sent_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Deliveries so far, this one included.
    pub delivery_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_delivered_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<u64>,
    /// Names this lease for ack, nack and lease; absent in peek results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// Present on messages in a dead-letter queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterBody>,
    /// In peek results: `ready`, `delayed` or `leased`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// In peek results, for a delayed message: when it becomes ready; for a leased one: when
    /// its lease runs out (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_until: Option<u64>,
}

/// Why and whence a message was dead-lettered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterBody {
    /// `max_deliveries`, `expired`, `rejected` or `overflow`.
    #[schema(example = "rejected")]
    pub reason: String,
    pub source_queue: String,
    /// When it was dead-lettered (ms since the epoch).
    pub at: u64,
    pub delivery_count: u32,
    pub last_error: Option<String>,
}

/// `POST /v1/queues/{name}/ack` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub receipts: Vec<String>,
}

/// `POST /v1/queues/{name}/nack` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackBody {
    pub receipts: Vec<String>,
    /// Ready again after this long; the queue's retry backoff when absent.
    pub delay_ms: Option<u64>,
    /// True: straight to the dead-letter queue (reason `rejected`), no retry.
    #[serde(default)]
    pub dead_letter: bool,
    /// Kept as the message's last error, shown if it is dead-lettered.
    pub error: Option<String>,
}

impl NackBody {
    /// The receipts and what to do with their messages.
    pub fn into_parts(self) -> (Vec<String>, wharf_engine::broker::NackAction) {
        let action = match self.dead_letter {
            true => wharf_engine::broker::NackAction::DeadLetter { error: self.error },
            false => wharf_engine::broker::NackAction::Requeue {
                delay: self.delay_ms.map(std::time::Duration::from_millis),
                error: self.error,
            },
        };
        (self.receipts, action)
    }
}

/// `POST /v1/queues/{name}/lease` body: extend leases to now + `lease_ms`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    pub receipts: Vec<String>,
    pub lease_ms: u64,
}

/// Per-receipt outcome of ack, nack or lease. A stale receipt fails alone, not the call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptResultsBody {
    pub results: Vec<ReceiptResultBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptResultBody {
    pub receipt: String,
    pub ok: bool,
    /// Why not, when `ok` is false, for a person to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why not, when `ok` is false, for a program: `invalid_receipt` (not a receipt this
    /// queue issued: malformed, made up or edited), `wrong_queue` (a receipt of another
    /// queue), `stale_receipt` (the message was settled, returned or leased again since),
    /// `lease_expired`, or `storage_error` (its settlement could not be written; the lease
    /// holds, try again).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "lease_expired")]
    pub code: Option<&'static str>,
}

/// `GET /v1/queues/{name}/messages` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeekQuery {
    /// How many messages: default 10, at most 100.
    #[param(minimum = 1, maximum = 100)]
    pub max: Option<usize>,
    /// Which messages: `ready` (default; in delivery order), `delayed` or `leased` (in send
    /// order).
    #[param(value_type = Option<String>)]
    pub state: Option<BrowseState>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PurgedBody {
    pub purged: u64,
}

/// `POST /v1/queues/{name}/redrive` body (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedriveBody {
    /// Most dead letters to move; all when absent.
    pub max_messages: Option<u64>,
}

/// The `state` a peek shows.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrowseState {
    #[default]
    Ready,
    Delayed,
    Leased,
}

impl From<BrowseState> for Browse {
    fn from(state: BrowseState) -> Self {
        match state {
            BrowseState::Ready => Browse::Ready,
            BrowseState::Delayed => Browse::Delayed,
            BrowseState::Leased => Browse::Leased,
        }
    }
}

/// What a redrive did: it examines each message that was ready when it began once, so it ends.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedrivenBody {
    /// Dead letters moved back to their source queue.
    pub redriven: u64,
    /// Messages left in place: not dead letters (sent to this queue directly).
    pub skipped_not_dead_letter: u64,
    /// Dead letters left in place: their source queue no longer exists.
    pub skipped_source_missing: u64,
}

impl From<Redriven> for RedrivenBody {
    fn from(redriven: Redriven) -> Self {
        let Redriven {
            moved,
            skipped_not_dead_letter,
            skipped_source_missing,
        } = redriven;
        RedrivenBody {
            redriven: moved,
            skipped_not_dead_letter,
            skipped_source_missing,
        }
    }
}

impl Default for ReceiveBody {
    fn default() -> Self {
        ReceiveBody {
            max_messages: 1,
            wait_ms: 0,
            lease_ms: None,
        }
    }
}

/// The member of a [`NewMessage`] that carries the engine's message field `field`.
pub(crate) fn message_member(field: &MessageField) -> String {
    let member = match field {
        MessageField::Id => "id",
        MessageField::ContentType => "content_type",
        MessageField::HeaderName => "headers",
        MessageField::HeaderValue { name } => return format!("headers.{name}"),
        MessageField::Priority => "priority",
        MessageField::Delay => "delay_ms",
        MessageField::DeliverAt => "deliver_at",
        MessageField::Ttl => "ttl_ms",
        MessageField::Group => "group",
        MessageField::CorrelationId => "correlation_id",
        MessageField::ReplyTo => "reply_to",
    };
    member.to_string()
}

/// The member of the queue options body (`PUT /v1/queues/{name}`) that carries `option`.
pub(crate) fn option_member(option: OptionField) -> &'static str {
    match option {
        OptionField::Durable => "durable",
        OptionField::LeaseMs => "lease_ms",
        OptionField::MaxDeliveries => "max_deliveries",
        OptionField::DeadLetterQueue => "dead_letter_queue",
        OptionField::RetryBackoffMs => "retry_backoff_ms",
        OptionField::RetryBackoffMaxMs => "retry_backoff_max_ms",
        OptionField::MessageTtlMs => "message_ttl_ms",
        OptionField::ExpiresMs => "expires_ms",
        OptionField::MaxLength => "max_length",
        OptionField::Overflow => "overflow",
        OptionField::DedupWindowMs => "dedup_window_ms",
        OptionField::SingleActiveConsumer => "single_active_consumer",
    }
}

impl NewMessage {
    /// The engine's form of the message at `index` of a batch. Only the body's encoding is
    /// checked here; the engine validates every other field.
    pub fn into_send(self, index: usize) -> Result<SendMessage, Problem> {
        // Formatted only for a refusal: this runs for every message of a batch.
        self.into_send_with(|| format!("messages[{index}]."))
    }

    /// Like [`NewMessage::into_send`] for a message that is not in a batch: a problem's field
    /// is `prefix` followed by the field's name (`""` for a message at the top of the body).
    pub(crate) fn into_send_prefixed(self, prefix: &str) -> Result<SendMessage, Problem> {
        self.into_send_with(|| prefix.to_string())
    }

    fn into_send_with(mut self, prefix: impl Fn() -> String) -> Result<SendMessage, Problem> {
        let field = |name: &str| format!("{}{name}", prefix());
        let invalid = |name: &str, detail: String| {
            Problem::new(ProblemCode::InvalidField)
                .with_detail(detail)
                .with_field(field(name))
        };
        let (body, content_type) = match (self.body.take(), self.body_base64.take()) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "body_base64",
                    "give body or body_base64, not both".to_string(),
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "body",
                    "one of body or body_base64 is required".to_string(),
                ))
            }
            (Some(json), None) => {
                let content_type = match self.content_type.take() {
                    Some(given) if !is_json_content_type(&given) => {
                        return Err(invalid(
                            "content_type",
                            format!(
                                "{given:?} is not a JSON type; send other bodies as body_base64"
                            ),
                        ))
                    }
                    Some(given) => given,
                    None => JSON_CONTENT_TYPE.to_string(),
                };
                let bytes = serde_json::to_vec(&json).expect("a JSON value serializes");
                (Bytes::from(bytes), Some(content_type))
            }
            (None, Some(Base64Body::Decoded(bytes))) => (bytes, self.content_type.take()),
            (None, Some(Base64Body::Invalid)) => {
                return Err(invalid(
                    "body_base64",
                    "not base64 (standard alphabet, padded)".to_string(),
                ))
            }
        };
        Ok(self.with_body(body, content_type))
    }

    /// The engine's form of the message, with `body` as its body: a binary batch's frame
    /// carries the body beside these fields.
    pub(crate) fn with_body(self, body: Bytes, content_type: Option<String>) -> SendMessage {
        SendMessage {
            id: self.id,
            body,
            content_type,
            headers: self.headers,
            priority: self.priority,
            delay: self.delay_ms.map(Duration::from_millis),
            deliver_at: self.deliver_at,
            ttl: self.ttl_ms.map(Duration::from_millis),
            group: self.group,
            correlation_id: self.correlation_id,
            reply_to: self.reply_to,
        }
    }
}

impl From<QueueInfo> for QueueInfoBody {
    fn from(info: QueueInfo) -> Self {
        QueueInfoBody {
            name: info.name,
            options: info.options,
            stats: info.stats.into(),
        }
    }
}

impl From<QueueStats> for QueueStatsBody {
    fn from(stats: QueueStats) -> Self {
        // Destructured, not `..`-ed: a new engine statistic breaks this until the API shows it.
        let QueueStats {
            ready,
            delayed,
            leased,
            oldest_ready_age_ms,
            consumers,
            counters,
        } = stats;
        let QueueCounters {
            sent,
            duplicates,
            delivered,
            acked,
            nacked,
            expired,
            dead_lettered,
            dropped,
            purged,
            redriven,
            damaged,
        } = counters;
        QueueStatsBody {
            ready,
            delayed,
            leased,
            oldest_ready_age_ms,
            consumers,
            counters: QueueCountersBody {
                sent,
                duplicates,
                delivered,
                acked,
                nacked,
                expired,
                dead_lettered,
                dropped,
                purged,
                redriven,
                damaged,
            },
        }
    }
}

impl From<Sent> for SentBody {
    fn from(sent: Sent) -> Self {
        SentBody {
            id: sent.id,
            duplicate: sent.duplicate,
        }
    }
}

/// The stable code of a receipt that failed; every failure named, no `_` arm.
fn receipt_failure_code(failure: &ReceiptFailure) -> &'static str {
    match failure {
        ReceiptFailure::Malformed(ReceiptParseError::Malformed { .. }) => "invalid_receipt",
        ReceiptFailure::Refused(ReceiptError::Stale { .. }) => "stale_receipt",
        ReceiptFailure::Refused(ReceiptError::LeaseExpired { .. }) => "lease_expired",
        ReceiptFailure::Refused(ReceiptError::OtherQueue { .. }) => "wrong_queue",
        // Made up or edited: as much not a receipt as a malformed one.
        ReceiptFailure::Refused(ReceiptError::NotIssued { .. }) => "invalid_receipt",
        ReceiptFailure::NotStored(_) => "storage_error",
    }
}

/// What a client reads about a receipt that failed. A storage error names files: the log
/// gets it, the client a summary (as for every other storage error of this door).
fn receipt_failure_text(failure: &ReceiptFailure) -> String {
    match failure {
        ReceiptFailure::NotStored(error) => {
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(suppressed) = THROTTLE.allow() {
                tracing::error!(%error, suppressed, "a settlement could not be stored");
            }
            "the settlement could not be stored; the server log has the details".to_string()
        }
        ReceiptFailure::Malformed(_) | ReceiptFailure::Refused(_) => failure.to_string(),
    }
}

impl From<ReceiptResult> for ReceiptResultBody {
    fn from(result: ReceiptResult) -> Self {
        ReceiptResultBody {
            receipt: result.receipt,
            ok: result.error.is_none(),
            error: result.error.as_ref().map(receipt_failure_text),
            code: result.error.as_ref().map(receipt_failure_code),
        }
    }
}

/// A delivery as its schema describes it. A receive's reply is written without it (see
/// `delivered`), whose tests hold that writer to this.
#[cfg(test)]
impl From<wharf_engine::broker::Delivery> for MessageBody {
    fn from(delivery: wharf_engine::broker::Delivery) -> Self {
        let rendered = render_body(&delivery.message.content_type, &delivery.message.body);
        MessageBody {
            delivery_count: delivery.delivery_count,
            first_delivered_at: Some(delivery.first_delivered_at),
            last_delivered_at: Some(delivery.last_delivered_at),
            receipt: Some(delivery.receipt),
            ..message_fields(delivery.message, rendered)
        }
    }
}

impl From<PeekedMessage> for MessageBody {
    fn from(peeked: PeekedMessage) -> Self {
        let (state, until) = match peeked.status {
            MessageStatus::Ready | MessageStatus::Settling => ("ready", None),
            MessageStatus::Delayed { due } => ("delayed", Some(due)),
            MessageStatus::Leased { deadline } => ("leased", Some(deadline)),
        };
        MessageBody {
            delivery_count: peeked.delivery_count,
            state: Some(state.to_string()),
            state_until: until,
            ..message_body(peeked.message)
        }
    }
}

/// The message's own fields; delivery fields are left empty for the caller to fill.
pub(crate) fn message_body(message: Message) -> MessageBody {
    let rendered = render_body(&message.content_type, &message.body);
    message_fields(message, rendered)
}

/// A body as JSON members: `body` (JSON text) or `body_base64` (a JSON string).
pub type RenderedBody = (Option<Box<RawValue>>, Option<Box<RawValue>>);

/// [`message_body`] with the body rendered already (or left out: a binary batch's frame
/// carries it apart, so rendering it would be work thrown away per message).
fn message_fields(message: Message, (body, body_base64): RenderedBody) -> MessageBody {
    MessageBody {
        id: message.id,
        body,
        body_base64,
        content_type: message.content_type,
        headers: message.headers,
        priority: message.priority,
        group: message.group,
        correlation_id: message.correlation_id,
        reply_to: message.reply_to,
        sent_at: message.sent_at,
        deliver_at: message.deliver_at,
        expires_at: message.expires_at,
        delivery_count: 0,
        first_delivered_at: None,
        last_delivered_at: None,
        receipt: None,
        dead_letter: message.dead_letter.map(DeadLetterBody::from),
        state: None,
        state_until: None,
    }
}

impl From<DeadLetter> for DeadLetterBody {
    fn from(dead_letter: DeadLetter) -> Self {
        DeadLetterBody {
            reason: dead_letter.reason.as_str().to_string(),
            source_queue: dead_letter.source_queue,
            at: dead_letter.at,
            delivery_count: dead_letter.delivery_count,
            last_error: dead_letter.last_error,
        }
    }
}

/// A body as JSON when its content type says JSON and it parses; otherwise as base64, so a
/// mislabelled body still arrives byte for byte. Both come ready to write: a JSON body as its
/// own text (on one line, so that an SSE `data:` line can carry it), base64 as a JSON string
/// (its alphabet needs no escaping), neither rebuilt nor escaped on the way out.
pub fn render_body(content_type: &str, body: &[u8]) -> RenderedBody {
    if let Some(json) = json_body(content_type, body) {
        return (Some(json), None);
    }
    let mut quoted = String::with_capacity(body.len().div_ceil(3) * 4 + 2);
    quoted.push('"');
    quoted.push_str(&BASE64.encode_to_string(body));
    quoted.push('"');
    (None, RawValue::from_string(quoted).ok())
}

/// The body as JSON text on one line, when its content type says JSON and it parses.
pub fn json_body(content_type: &str, body: &[u8]) -> Option<Box<RawValue>> {
    if !is_json_content_type(content_type) {
        return None;
    }
    match body.iter().any(|&byte| byte == b'\n' || byte == b'\r') {
        false => serde_json::from_slice::<Box<RawValue>>(body).ok(),
        true => (serde_json::from_slice::<serde_json::Value>(body).ok())
            .and_then(|value| serde_json::value::to_raw_value(&value).ok()),
    }
}

/// A `body_base64` as sent: decoded as it is parsed, straight from the request's bytes (no
/// copy of the text in between), or found not to be base64, which
/// [`NewMessage::into_send`] refuses naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base64Body {
    Decoded(Bytes),
    Invalid,
}

impl<'de> Deserialize<'de> for Base64Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Base64Body;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Base64Body, E> {
                self.visit_bytes(text.as_bytes())
            }

            fn visit_bytes<E: serde::de::Error>(self, text: &[u8]) -> Result<Base64Body, E> {
                Ok(match BASE64.decode_to_vec(text) {
                    Ok(bytes) => Base64Body::Decoded(Bytes::from(bytes)),
                    Err(_) => Base64Body::Invalid,
                })
            }
        }
        // As bytes: serde_json then hands over the string's text without checking it is
        // UTF-8 (the decoder checks every byte is base64 anyway); other formats give a str.
        deserializer.deserialize_bytes(Visitor)
    }
}

/// Deserializes a field that is present, `null` included, as `Some`: `"body": null` is a JSON
/// body, not a missing one.
fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}
