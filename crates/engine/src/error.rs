//! The engine's error type: what a door must translate into its protocol's reply.
//!
//! Each door maps every variant exhaustively (no `_` arm), so a new variant breaks every door
//! until it is handled.

use crate::broker::records::RecordError;
use wharf_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A name (queue, topic, ...) breaks the naming rules.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("queue {name:?} does not exist")]
    QueueNotFound { name: String },
    #[error("topic {name:?} does not exist")]
    TopicNotFound { name: String },
    #[error("topic {topic:?} has no binding {id:?}")]
    BindingNotFound { topic: String, id: String },
    /// A reply address that no request waits on (it was answered or timed out).
    #[error("no request waits on reply address {reply_to:?}")]
    ReplyNotFound { reply_to: String },
    /// A request got no reply in time; nothing of it is left behind.
    #[error("no reply within {waited_ms} ms")]
    Timeout { waited_ms: u64 },
    /// An option or request field is out of range or inconsistent; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// A batch passes a size limit.
    #[error("{what} of {size} exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
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
    #[error("the limit {limit} = {max} is reached; try again later")]
    LimitReached { limit: &'static str, max: usize },
    /// The engine is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Record(#[from] RecordError),
}
