//! A message: body bytes plus the fields every pattern shares.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, fmt, str::FromStr};

/// One message as the engine stores and delivers it. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Client-given (used for deduplication) or generated, time-ordered.
    pub id: String,
    /// Stored apart from the other fields (after them in a record), hence skipped by serde.
    #[serde(skip)]
    pub body: Bytes,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    /// 0-9, higher first.
    pub priority: u8,
    /// Ordering group: at most one message of a group is in flight, in send order.
    pub group: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub sent_at: u64,
    /// Not delivered before this time.
    pub deliver_at: Option<u64>,
    /// Never delivered from this time on.
    pub expires_at: Option<u64>,
    /// Set when the message was dead-lettered.
    pub dead_letter: Option<DeadLetter>,
}

/// Why and whence a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: DeadLetterReason,
    pub source_queue: String,
    pub at: u64,
    pub delivery_count: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// Delivered `max_deliveries` times without an ack.
    MaxDeliveries,
    /// Its time to live ran out before it was delivered.
    Expired,
    /// A consumer nacked it straight to the dead-letter queue.
    Rejected,
    /// Pushed out of a full queue (`overflow = drop_oldest`).
    Overflow,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::MaxDeliveries => "max_deliveries",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Overflow => "overflow",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeadLetterReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max_deliveries" => Ok(DeadLetterReason::MaxDeliveries),
            "expired" => Ok(DeadLetterReason::Expired),
            "rejected" => Ok(DeadLetterReason::Rejected),
            "overflow" => Ok(DeadLetterReason::Overflow),
            other => Err(format!("unknown dead-letter reason {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_reasons_round_trip_as_words() {
        for reason in [
            DeadLetterReason::MaxDeliveries,
            DeadLetterReason::Expired,
            DeadLetterReason::Rejected,
            DeadLetterReason::Overflow,
        ] {
            assert_eq!(reason.as_str().parse::<DeadLetterReason>(), Ok(reason));
        }
        assert!("lost".parse::<DeadLetterReason>().is_err());
    }
}
