//! What the queue state's operations return: deliveries, settlements the caller must persist,
//! and the outcomes of enqueue and nack.

use super::message::Seq;
use super::receipt::Receipt;

/// The result of an accepted or deduplicated send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Enqueued. With `overflow = drop_oldest` on a full queue, `evicted` lists the messages
    /// removed to make room; the caller dead-letters (or drops) them as each `Settle` says.
    Accepted { evicted: Vec<Settle> },
    /// The same client id was enqueued within the dedup window as `original_seq` (which may
    /// already be settled). Nothing changed; the send counts as done.
    Duplicate { original_seq: Seq },
}

/// A send refused because the queue holds `max_length` messages (`overflow = reject`, or
/// `drop_oldest` with no ready message to drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue is full: it holds {len} messages and max_length is {max_length}")]
pub struct QueueFull {
    pub max_length: u64,
    pub len: u64,
}

/// One message handed to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub seq: Seq,
    pub receipt: Receipt,
    /// 1 for the first delivery.
    pub delivery_count: u32,
    pub first_delivered_at: u64,
    pub last_delivered_at: u64,
    /// When the lease runs out unless extended, acked or nacked first.
    pub lease_deadline: u64,
}

/// What a receive returns: the deliveries, and the settlements the timers it ran on the way
/// produced (see [`super::QueueState::tick`]), which the caller persists as after a tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    pub deliveries: Vec<Delivery>,
    pub settled: Vec<Settle>,
}

/// What a consumer asks for a message it could not process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NackAction {
    /// Return the message for another attempt: `Some(0)` at once, `Some(ms)` after that
    /// delay, `None` after the queue's retry backoff (as if the lease had run out). A message
    /// that has reached `max_deliveries` is dead-lettered instead.
    Requeue { delay_ms: Option<u64> },
    /// Send the message straight to the dead-letter queue (or drop it when there is none),
    /// with the consumer's reason.
    DeadLetter { reason: String },
}

/// What a nack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NackOutcome {
    /// Back in the queue, deliverable from `ready_at` (which may be now).
    Requeued { seq: Seq, ready_at: u64 },
    /// Settled: dead-lettered, dropped or expired. The caller persists it.
    Settled(Settle),
}

/// A message leaving the queue for good. The caller writes a settle record, and for
/// `DeadLettered` first copies the message to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    pub seq: Seq,
    pub reason: SettleReason,
    /// Deliveries the message had, for the dead-letter details.
    pub delivery_count: u32,
    /// Where its record lives (its seq unless it was relocated): to read it for the dead-letter
    /// copy, or to restore it if the settlement cannot be written.
    pub location: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleReason {
    Acked,
    Purged,
    /// Moved from a dead-letter queue back to the queue it came from.
    Redriven,
    /// To the queue's dead-letter queue.
    DeadLettered(DeadLetterReason),
    /// Discarded: the queue has no dead-letter queue.
    Dropped(DeadLetterReason),
    /// Its record cannot be read back (damaged storage): it can never be delivered, so it
    /// leaves the queue, counted apart, instead of failing every receive that meets it.
    Damaged,
}

/// Why a message was dead-lettered (or dropped for want of a dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// It failed `max_deliveries` deliveries.
    MaxDeliveries,
    /// Its TTL ran out before it was delivered.
    Expired,
    /// A consumer nacked it to the dead-letter queue.
    Rejected { reason: String },
    /// `overflow = drop_oldest` pushed it out of a full queue.
    Overflow,
}

impl DeadLetterReason {
    /// The reason as a stable snake_case code for records, headers and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetterReason::MaxDeliveries => "max_deliveries",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Rejected { .. } => "rejected",
            DeadLetterReason::Overflow => "overflow",
        }
    }
}
