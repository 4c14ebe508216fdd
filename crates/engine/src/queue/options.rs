//! Queue options: the per-queue policy for leases, retries, dead letters, TTL, length and
//! deduplication, with defaults that work when a queue is declared with none.

use serde::{Deserialize, Serialize};
use std::fmt;
use wharf_model::QueueName;

/// Longest lease a receive or extend may ask for: 12 hours, as SQS's visibility timeout.
/// A consumer that needs longer is better served by extending the lease as it works, so a
/// crashed consumer does not hide a message for days.
pub const LEASE_MS_MAX: u64 = 12 * 60 * 60 * 1000;

/// Longest retry backoff: one day. Longer waits are scheduling, which `deliver_at` covers.
pub const RETRY_BACKOFF_MS_MAX: u64 = 24 * 60 * 60 * 1000;

/// Longest dedup window: one day. The window holds an entry per deduplicated message in
/// memory (about 40 bytes), so its length times the send rate is the memory it costs.
pub const DEDUP_WINDOW_MS_MAX: u64 = 24 * 60 * 60 * 1000;

/// What a send does when the queue already holds `max_length` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Refuse the send; the queue keeps what it has.
    #[default]
    Reject,
    /// Accept the send and dead-letter the oldest ready message (reason `overflow`). A send
    /// is still refused when no message is ready to make room (all leased or delayed).
    DropOldest,
}

/// The policy of one queue. Every field is optional in JSON/TOML; the doc of each field gives
/// its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueOptions {
    /// Default `true`: sends are acknowledged after fsync. `false` declares the queue
    /// transient (the engine's concern; the queue state behaves the same).
    pub durable: bool,
    /// Default 30,000 (30 s, as SQS): how long a delivery stays hidden from other consumers
    /// when the receive does not ask for its own lease. 1..=[`LEASE_MS_MAX`].
    pub lease_ms: u64,
    /// Default `None` (retry forever): after this many deliveries, a nack or an expired lease
    /// dead-letters the message (reason `max_deliveries`) instead of retrying it. At least 1.
    pub max_deliveries: Option<u32>,
    /// Default `None`: where dead-lettered messages go. Without one they are dropped (and
    /// counted as dropped).
    pub dead_letter_queue: Option<QueueName>,
    /// Default 1,000 (1 s): the retry delay after the first failed delivery; it doubles per
    /// further delivery up to `retry_backoff_max_ms`, with jitter down to half. 0 retries at
    /// once. At most [`RETRY_BACKOFF_MS_MAX`].
    pub retry_backoff_ms: u64,
    /// Default 60,000 (1 min): the cap of the retry delay. At least `retry_backoff_ms`.
    pub retry_backoff_max_ms: u64,
    /// Default `None`: every message expires this long after it was sent (a message's own,
    /// earlier expiry still wins). Expired messages are never delivered. At least 1.
    pub message_ttl_ms: Option<u64>,
    /// Default `None` (unbounded): the most unsettled messages (ready, delayed and leased) the
    /// queue holds; see `overflow`. At least 1.
    pub max_length: Option<u64>,
    /// Default `reject`: what a send to a full queue does.
    pub overflow: Overflow,
    /// Default 300,000 (5 min, as SQS FIFO queues): a second send with the same client message
    /// id within this time of the first is not enqueued again. 0 turns dedup off.
    /// At most [`DEDUP_WINDOW_MS_MAX`].
    pub dedup_window_ms: u64,
    /// Default `false`: push consumers share the queue round-robin. `true`: only the consumer
    /// attached first receives; the next takes over when it goes away (RabbitMQ's single active
    /// consumer), which keeps one consumer's view of the queue in order.
    pub single_active_consumer: bool,
    /// Default `None` (never): the queue is deleted, with its messages, once it has been unused
    /// this long: no consumer attached and no receive, and not declared again (RabbitMQ's
    /// `x-expires`). Sends do not count as use. At least 1.
    pub expires_ms: Option<u64>,
}

/// One field of [`QueueOptions`], for errors that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionField {
    Durable,
    LeaseMs,
    MaxDeliveries,
    DeadLetterQueue,
    RetryBackoffMs,
    RetryBackoffMaxMs,
    MessageTtlMs,
    MaxLength,
    Overflow,
    DedupWindowMs,
    SingleActiveConsumer,
    ExpiresMs,
}

impl fmt::Display for OptionField {
    /// The field's name in [`QueueOptions`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionField::Durable => "durable",
            OptionField::LeaseMs => "lease_ms",
            OptionField::MaxDeliveries => "max_deliveries",
            OptionField::DeadLetterQueue => "dead_letter_queue",
            OptionField::RetryBackoffMs => "retry_backoff_ms",
            OptionField::RetryBackoffMaxMs => "retry_backoff_max_ms",
            OptionField::MessageTtlMs => "message_ttl_ms",
            OptionField::MaxLength => "max_length",
            OptionField::Overflow => "overflow",
            OptionField::DedupWindowMs => "dedup_window_ms",
            OptionField::SingleActiveConsumer => "single_active_consumer",
            OptionField::ExpiresMs => "expires_ms",
        })
    }
}

/// An option outside what the queue can honour; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("{field} is {value}; allowed are {min}..={max}")]
    OutOfRange {
        field: OptionField,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("retry_backoff_max_ms ({retry_backoff_max_ms}) is below retry_backoff_ms ({retry_backoff_ms})")]
    BackoffMaxBelowBase {
        retry_backoff_ms: u64,
        retry_backoff_max_ms: u64,
    },
}

impl OptionsError {
    /// The offending field.
    pub fn field(&self) -> OptionField {
        match self {
            OptionsError::OutOfRange { field, .. } => *field,
            OptionsError::BackoffMaxBelowBase { .. } => OptionField::RetryBackoffMaxMs,
        }
    }
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            durable: true,
            lease_ms: 30_000,
            max_deliveries: None,
            dead_letter_queue: None,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 60_000,
            message_ttl_ms: None,
            max_length: None,
            overflow: Overflow::Reject,
            dedup_window_ms: 300_000,
            single_active_consumer: false,
            expires_ms: None,
        }
    }
}

impl QueueOptions {
    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), OptionsError> {
        check_range(OptionField::LeaseMs, self.lease_ms, 1, LEASE_MS_MAX)?;
        if let Some(max_deliveries) = self.max_deliveries {
            check_range(
                OptionField::MaxDeliveries,
                max_deliveries.into(),
                1,
                u32::MAX.into(),
            )?;
        }
        check_range(
            OptionField::RetryBackoffMs,
            self.retry_backoff_ms,
            0,
            RETRY_BACKOFF_MS_MAX,
        )?;
        check_range(
            OptionField::RetryBackoffMaxMs,
            self.retry_backoff_max_ms,
            0,
            RETRY_BACKOFF_MS_MAX,
        )?;
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            return Err(OptionsError::BackoffMaxBelowBase {
                retry_backoff_ms: self.retry_backoff_ms,
                retry_backoff_max_ms: self.retry_backoff_max_ms,
            });
        }
        if let Some(message_ttl_ms) = self.message_ttl_ms {
            check_range(OptionField::MessageTtlMs, message_ttl_ms, 1, u64::MAX)?;
        }
        if let Some(max_length) = self.max_length {
            check_range(OptionField::MaxLength, max_length, 1, u64::MAX)?;
        }
        if let Some(expires_ms) = self.expires_ms {
            check_range(OptionField::ExpiresMs, expires_ms, 1, u64::MAX)?;
        }
        check_range(
            OptionField::DedupWindowMs,
            self.dedup_window_ms,
            0,
            DEDUP_WINDOW_MS_MAX,
        )
    }
}

fn check_range(field: OptionField, value: u64, min: u64, max: u64) -> Result<(), OptionsError> {
    if value < min || value > max {
        return Err(OptionsError::OutOfRange {
            field,
            value,
            min,
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_json_object_gives_the_documented_defaults() {
        let options: QueueOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(options, QueueOptions::default());
        assert!(options.durable);
        assert_eq!(options.lease_ms, 30_000);
        assert_eq!(options.overflow, Overflow::Reject);
        assert_eq!(options.dedup_window_ms, 300_000);
        options.validate().unwrap();
    }

    #[test]
    fn json_fields_use_snake_case_names_and_values() {
        let options: QueueOptions = serde_json::from_str(
            r#"{"max_length": 10, "overflow": "drop_oldest", "dead_letter_queue": "jobs.dead"}"#,
        )
        .unwrap();
        assert_eq!(options.max_length, Some(10));
        assert_eq!(options.overflow, Overflow::DropOldest);
        assert_eq!(options.dead_letter_queue.unwrap().as_str(), "jobs.dead");
    }

    #[test]
    fn unknown_fields_and_bad_queue_names_are_refused() {
        assert!(serde_json::from_str::<QueueOptions>(r#"{"lease": 5}"#).is_err());
        assert!(serde_json::from_str::<QueueOptions>(r#"{"dead_letter_queue": "a/b"}"#).is_err());
    }

    #[test]
    fn validate_names_the_bad_field() {
        let zero_lease = QueueOptions {
            lease_ms: 0,
            ..QueueOptions::default()
        };
        assert_eq!(
            zero_lease.validate().unwrap_err().field(),
            OptionField::LeaseMs
        );
        let zero_deliveries = QueueOptions {
            max_deliveries: Some(0),
            ..QueueOptions::default()
        };
        assert_eq!(
            zero_deliveries.validate().unwrap_err().field(),
            OptionField::MaxDeliveries
        );
        let zero_length = QueueOptions {
            max_length: Some(0),
            ..QueueOptions::default()
        };
        assert_eq!(
            zero_length.validate().unwrap_err().field(),
            OptionField::MaxLength
        );
        let long_window = QueueOptions {
            dedup_window_ms: DEDUP_WINDOW_MS_MAX + 1,
            ..QueueOptions::default()
        };
        assert_eq!(
            long_window.validate().unwrap_err().field(),
            OptionField::DedupWindowMs
        );
    }

    #[test]
    fn validate_refuses_a_backoff_cap_below_the_base() {
        let options = QueueOptions {
            retry_backoff_ms: 5_000,
            retry_backoff_max_ms: 1_000,
            ..QueueOptions::default()
        };
        let error = options.validate().unwrap_err();
        assert_eq!(error.field(), OptionField::RetryBackoffMaxMs);
        assert!(
            error.to_string().contains("below retry_backoff_ms"),
            "{error}"
        );
    }
}
