//! What the queue state knows about one message: its sequence number, the fields given at
//! enqueue, and the view of its current delivery state.

use super::dedup::DedupKey;
use std::fmt;
use wharf_model::Priority;

/// A message's position: the log offset of its enqueue record. Unique within a queue and
/// increasing in send order, so it also orders messages of equal priority and of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The fields of an enqueue record that the queue state needs; the body stays in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueueMeta<'a> {
    pub seq: Seq,
    /// `Some` for client-given ids, which are deduplicated within the queue's
    /// `dedup_window_ms`; `None` for server-generated ids, which are unique by construction
    /// and would only fill the window.
    pub dedup_key: Option<DedupKey>,
    pub priority: Priority,
    /// Not deliverable before this time (ms since the epoch); `None` or a past time means
    /// ready at once.
    pub deliver_at: Option<u64>,
    /// The message's own expiry (ms since the epoch), from its TTL or expiry field. The queue
    /// state folds in the queue's `message_ttl_ms` itself (the earlier of the two wins), both
    /// live and at replay, so the caller passes only the message's own value.
    pub expires_at: Option<u64>,
    /// The ordering group: at most one message of a group is leased at a time, in send order.
    pub group: Option<&'a str>,
}

/// Where an unsettled message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting to be delivered (possibly behind an earlier message of its group).
    Ready,
    /// Hidden until `due`: a delay, a retry backoff or a nack delay.
    Delayed { due: u64 },
    /// Delivered and held by a consumer until `deadline`.
    Leased { deadline: u64 },
    /// Leaving the queue: its settlement is being written.
    Settling,
}

/// Which unsettled messages a browse shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Browse {
    /// Those a receive would deliver now, in delivery order (peek).
    #[default]
    Ready,
    /// Those hidden until a time (a delay, a retry backoff, a nack delay), in send order.
    Delayed,
    /// Those a consumer holds, in send order.
    Leased,
}

/// A read-only snapshot of one unsettled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView {
    pub seq: Seq,
    pub priority: Priority,
    pub status: MessageStatus,
    pub delivery_count: u32,
    pub enqueued_at: u64,
    /// The effective expiry (message and queue TTL folded), if any.
    pub expires_at: Option<u64>,
    pub first_delivered_at: Option<u64>,
    pub last_delivered_at: Option<u64>,
}
