//! The event store as plain state: the layout of its log records ([`record`]) and the index
//! from stream id to positions with the expected-version rule ([`index`]). No I/O here;
//! `broker::eventstore` runs them over the one global log, `$all`.
//!
//! An event stream (an aggregate's id, `order-123`) is the events appended to it, numbered by
//! version from 0 with no gaps. Every event also has a position: its offset in the global log,
//! so `$all` is the log read in order. A stream's version is its event count less one; the
//! expected-version check is a lookup in the index, never a scan.

pub mod index;
pub mod record;

pub use index::{ExpectedVersion, Index, ReadDirection, StreamMetadata, StreamStatus};
pub use record::{EventHeader, EventId, StoredRecord};

/// Longest stream id and event type, in bytes.
pub const NAME_BYTES_MAX: usize = wharf_model::QUEUE_NAME_BYTES_MAX;
/// Prefix of the streams the server keeps itself: `$ce-{category}`, `$et-{type}`.
pub const SYSTEM_PREFIX: &str = "$";
/// The by-category projection: `$ce-order` holds the events of every stream `order-...`.
pub const CATEGORY_PREFIX: &str = "$ce-";
/// The by-event-type projection: `$et-OrderPaid` holds every event of type `OrderPaid`.
pub const EVENT_TYPE_PREFIX: &str = "$et-";
/// Most events in one append.
pub const APPEND_EVENTS_MAX: usize = 1_000;
/// Most appends in one batch (`Engine::append_events_batch`).
pub const APPEND_BATCH_MAX: usize = 1_000;
/// Most events one read answers with.
pub const READ_LIMIT_MAX: usize = 1_000;

/// What went wrong with an event-store call, in the engine's terms; doors word it.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("event stream {stream:?} does not exist")]
    StreamNotFound { stream: String },
    #[error("event stream {stream:?} was deleted for good (hard delete); it cannot be written or read again")]
    StreamDeleted { stream: String },
    #[error("event stream {stream:?} is at {current}, not at the expected version {expected}", current = describe_version(*current))]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        /// The last event ever written's version (soft-deleted ones count); `None` when the
        /// stream never had one.
        current: Option<u64>,
    },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("an append needs at least one event")]
    NoEvents,
    #[error("an append holds at most {APPEND_EVENTS_MAX} events; this one has {count}")]
    TooManyEvents { count: usize },
    #[error("event stream {stream:?} has no snapshot")]
    SnapshotNotFound { stream: String },
    #[error("snapshot version {version} is past the last event of {stream:?} ({current})", current = describe_version(*current))]
    SnapshotAhead {
        stream: String,
        version: u64,
        current: Option<u64>,
    },
    #[error("projection {name:?} does not exist")]
    ProjectionNotFound { name: String },
    #[error("checkpoint {position} is at or past the end of $all ({end}): a checkpoint is the position of an event stored")]
    CheckpointAhead { position: u64, end: u64 },
    #[error("persistent subscription {group:?} does not exist")]
    SubscriptionNotFound { group: String },
    #[error("persistent subscription {group:?} exists with other settings; delete it first")]
    SubscriptionConflict { group: String },
    /// A stored record failed its checks when read back: damage on disk.
    #[error("the event-store record at position {position} is damaged: {problem}")]
    Damaged { position: u64, problem: String },
}

fn describe_version(version: Option<u64>) -> String {
    match version {
        Some(version) => format!("version {version}"),
        None => "no stream".to_string(),
    }
}

impl EventStoreError {
    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        EventStoreError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Checks a stream id: a resource name, like a queue's (`wharf_model::check_resource_name`:
/// 1..=255 of ASCII letters, digits, `.`, `-`, `_`, `@`; not `.` or `..`), so that it is one
/// path segment as it is. `$` starts the server's own streams, which are read-only.
pub fn check_stream_id(field: &str, stream: &str) -> Result<(), EventStoreError> {
    if stream.starts_with(SYSTEM_PREFIX) {
        let problem =
            "ids starting with `$` are the server's own streams ($ce-..., $et-...), read-only";
        return Err(EventStoreError::invalid(field, problem));
    }
    check_name(field, stream)
}

/// Checks a name (stream id, event type) by the same rule as [`check_stream_id`].
pub fn check_name(field: &str, name: &str) -> Result<(), EventStoreError> {
    wharf_model::check_resource_name(name)
        .map_err(|error| EventStoreError::invalid(field, error.to_string()))
}

/// Checks a prefix of names: 1..=255 of the characters names take.
pub fn check_prefix(field: &str, prefix: &str) -> Result<(), EventStoreError> {
    match wharf_model::check_resource_name(prefix) {
        Ok(()) | Err(wharf_model::QueueNameError::Reserved { .. }) => Ok(()),
        Err(error) => Err(EventStoreError::invalid(field, error.to_string())),
    }
}

/// Checks the name of a stream to read: a stream id, or a system projection (`$ce-NAME`,
/// `$et-NAME`).
pub fn check_readable(field: &str, stream: &str) -> Result<(), EventStoreError> {
    if stream.len() > NAME_BYTES_MAX {
        let problem = format!("is {} bytes long; at most {NAME_BYTES_MAX}", stream.len());
        return Err(EventStoreError::invalid(field, problem));
    }
    match stream
        .strip_prefix(CATEGORY_PREFIX)
        .or_else(|| stream.strip_prefix(EVENT_TYPE_PREFIX))
    {
        Some(name) => check_prefix(field, name),
        None => check_stream_id(field, stream),
    }
}

/// The category of a stream: what precedes its first `-` (`order-123` → `order`); a stream
/// with no `-` is a category of its own.
pub fn category(stream: &str) -> &str {
    stream
        .split_once('-')
        .map_or(stream, |(category, _)| category)
}

impl From<EventStoreError> for crate::error::EngineError {
    fn from(error: EventStoreError) -> Self {
        crate::error::EngineError::EventStore(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_is_before_the_first_dash() {
        assert_eq!(category("order-123"), "order");
        assert_eq!(category("order-123-x"), "order");
        assert_eq!(category("order"), "order");
        assert_eq!(category("-x"), "");
    }

    #[test]
    fn stream_ids_are_checked() {
        assert!(check_stream_id("stream", "order-1").is_ok());
        assert!(check_stream_id("stream", "").is_err());
        assert!(check_stream_id("stream", "$ce-order").is_err());
        assert!(check_stream_id("stream", "a\nb").is_err());
        assert!(check_stream_id("stream", "a,b").is_err());
        assert!(check_stream_id("stream", "..").is_err());
        assert!(check_stream_id("stream", &"x".repeat(NAME_BYTES_MAX + 1)).is_err());
        assert!(check_stream_id("stream", &"x".repeat(NAME_BYTES_MAX)).is_ok());
        assert!(check_readable("stream", "$ce-order").is_ok());
        assert!(check_readable("stream", "$et-..").is_ok());
        assert!(check_readable("stream", "$xx-order").is_err());
        assert!(check_prefix("type_prefix", ".").is_ok());
        assert!(check_prefix("type_prefix", "").is_err());
    }
}
