//! Queues: the in-memory delivery state of one work queue, as a pure state machine.
//!
//! [`QueueState`] owns, per unsettled message, a few dozen bytes keyed by [`Seq`] (the log
//! offset of the message's enqueue record): its status (ready, delayed or leased), priority,
//! group, expiry and delivery count, plus the indexes that make receive cheap (a ready index
//! ordered by priority then sequence, a timer index, group heads, the dedup window).
//!
//! It leaves to its caller, the queue engine: message bodies (they stay in the log), writing
//! records, reading the clock and choosing the seed. Every method takes `now` in milliseconds
//! since the Unix epoch and returns the transitions the caller must persist ([`Settle`]), so
//! the same calls give the same state live and when replaying the log after a restart.

mod backoff;
mod dedup;
mod groups;
mod message;
mod options;
mod outcome;
mod receipt;
mod state;
mod stats;

#[cfg(test)]
mod tests;

pub use backoff::retry_delay_ms;
pub use dedup::DedupKey;
pub use message::{Browse, EnqueueMeta, MessageStatus, MessageView, Seq};
pub use options::{
    OptionField, OptionsError, Overflow, QueueOptions, DEDUP_WINDOW_MS_MAX, LEASE_MS_MAX,
    RETRY_BACKOFF_MS_MAX,
};
pub use outcome::{
    DeadLetterReason, Delivery, EnqueueOutcome, NackAction, NackOutcome, QueueFull, Received,
    Settle, SettleReason,
};
pub use receipt::{Receipt, ReceiptError, ReceiptKey, ReceiptParseError, SignedReceipt};
pub use state::QueueState;
pub use stats::{QueueCounters, QueueStats};
