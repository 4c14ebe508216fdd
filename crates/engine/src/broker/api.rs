//! The engine's vocabulary for queues: what a door hands in and gets back.

use bytes::Bytes;
use std::{collections::BTreeMap, time::Duration};
use wharf_model::message::Message;

use crate::queue::{QueueOptions, QueueStats};

/// Default of [`crate::EngineConfig::batch_messages_max`], most messages in one send call
/// (as SQS and the contract allow).
pub const SEND_BATCH_MESSAGES_MAX: usize = 1_000;
/// Default of [`crate::EngineConfig::batch_bytes_max`], most body bytes in one send call:
/// bounds the memory one request can pin.
pub const SEND_BATCH_BYTES_MAX: usize = 8 << 20;
/// Most messages one receive returns.
pub const RECEIVE_MESSAGES_MAX: usize = 100;
/// Longest long-poll: past 20 s proxies and load balancers start cutting idle requests.
pub const RECEIVE_WAIT_MAX: Duration = Duration::from_secs(20);
/// Longest message id, header name or value, group, correlation id or reply-to.
pub const FIELD_BYTES_MAX: usize = 1_024;
/// Highest priority; 0 is the lowest and the default.
pub const PRIORITY_MAX: u8 = 9;
/// The header in which a message a topic routes to a queue carries the routing key it was
/// published with, so that the queue's consumers (an MQTT session, an HTTP receive) still
/// know it: a queue keeps messages, not the keys they were routed by. Set by the engine; a
/// publisher's own value is replaced. Live subscribers get the key beside the message instead.
pub const ROUTING_KEY_HEADER: &str = "wharf-routing-key";
/// Beside [`ROUTING_KEY_HEADER`]: the topic the message was published to (the first one, when
/// a topic-to-topic binding passed it on), as an AMQP delivery names its exchange. Set by the
/// engine; a publisher's own value is replaced.
pub const ORIGIN_TOPIC_HEADER: &str = "wharf-topic";
/// On a queue copy of a topic's retained message, made when a new binding copies the retained
/// messages it matches to its queue: `1`. Live publishes never carry it (a publisher's own
/// value is removed), so a consumer tells retained copies from messages published since.
pub const RETAINED_COPY_HEADER: &str = "wharf-retained";
/// The headers the engine sets on queue copies. Doors that give their meaning a place of its
/// own in their protocol (an AMQP delivery's exchange and routing key, MQTT's topic name and
/// RETAIN flag) leave them out of the message's headers.
pub const ROUTING_HEADERS: [&str; 3] = [
    ROUTING_KEY_HEADER,
    ORIGIN_TOPIC_HEADER,
    RETAINED_COPY_HEADER,
];

/// A message to send, as a door hands it over. The engine validates every field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendMessage {
    /// Client id, used for deduplication; generated (time-ordered) when absent.
    pub id: Option<String>,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub priority: Option<u8>,
    pub delay: Option<Duration>,
    /// Absolute time (ms since the epoch); at most one of `delay` and `deliver_at`.
    pub deliver_at: Option<u64>,
    pub ttl: Option<Duration>,
    pub group: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
}

/// What became of one sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    /// The id was seen within the dedup window: the message was not stored again.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRequest {
    pub max_messages: usize,
    /// Long-poll: how long to wait for a first message when none is ready.
    pub wait: Duration,
    /// Lease (visibility timeout); the queue's `lease_ms` when absent.
    pub lease: Option<Duration>,
}

/// One leased message.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message: Message,
    /// Names this lease; ack, nack and extend take it. Stale once the lease ends.
    pub receipt: String,
    pub delivery_count: u32,
    pub first_delivered_at: u64,
    pub last_delivered_at: u64,
}

/// What a consumer says of a message it will not ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NackAction {
    /// Ready again after `delay` (now when zero; the queue's backoff when absent). `error`
    /// is kept as the message's last error, shown if it is dead-lettered later.
    Requeue {
        delay: Option<Duration>,
        error: Option<String>,
    },
    /// Straight to the dead-letter queue with reason `rejected`.
    DeadLetter { error: Option<String> },
}

impl NackAction {
    /// The same action with its error text cut to the length the engine keeps.
    pub(crate) fn with_error_capped(self) -> NackAction {
        let cap = |error: Option<String>| error.map(super::queue_runtime::cap_error_text);
        match self {
            NackAction::Requeue { delay, error } => NackAction::Requeue {
                delay,
                error: cap(error),
            },
            NackAction::DeadLetter { error } => NackAction::DeadLetter { error: cap(error) },
        }
    }
}

/// The outcome of one receipt in an ack, nack or lease call: stale receipts do not fail the call.
#[derive(Debug, Clone)]
pub struct ReceiptResult {
    pub receipt: String,
    /// `None` when applied; otherwise why not.
    pub error: Option<ReceiptFailure>,
}

/// Why one receipt of an ack, nack or lease extension was not applied; the others of the call
/// still were.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReceiptFailure {
    /// Not a receipt at all.
    #[error(transparent)]
    Malformed(#[from] crate::queue::ReceiptParseError),
    /// A receipt, but of no live lease (settled, returned or expired).
    #[error(transparent)]
    Refused(#[from] crate::queue::ReceiptError),
    /// Its settlement could not be written; the lease holds, and the nack can be tried again.
    #[error("the settlement could not be stored: {0}")]
    NotStored(#[source] wharf_storage::StorageError),
}

/// A message seen without leasing it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeekedMessage {
    pub message: Message,
    pub delivery_count: u32,
    /// Ready, delayed until a time, or leased until a time.
    pub status: crate::queue::MessageStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    pub name: String,
    pub options: QueueOptions,
    pub stats: QueueStats,
}
