//! Limits a misbehaving client cannot pass: a send rate per caller (a token bucket per user or
//! token), and the number of receives long-polling at once.
//!
//! The send rate is charged per message, by every door, for sends, publishes and requests; a
//! caller over it is refused with [`EngineError::LimitReached`] naming the setting, and nothing
//! of the refused batch is stored. Buckets live in memory, one per caller that sent recently;
//! idle ones are dropped when the map grows, so memory follows the active callers.

use super::Principal;
use crate::{Engine, EngineError};
use std::{collections::HashMap, sync::Mutex};

/// Buckets kept before idle ones (full again) are dropped.
const BUCKETS_MAX: usize = 10_000;

/// A caller's allowance: `rate` messages a second, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRate {
    pub rate: u64,
    pub burst: u64,
}

/// One bucket per caller.
#[derive(Debug, Default)]
pub(crate) struct SendBuckets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Messages that may still be sent, in thousandths (so slow rates refill smoothly).
    milli_tokens: u64,
    at: u64,
}

impl SendBuckets {
    /// Takes `messages` from `caller`'s bucket at time `now` (ms), or refuses whole.
    fn take(&self, caller: &str, messages: u64, limit: SendRate, now: u64) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let capacity = limit.burst.saturating_mul(1_000);
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(caller) {
            buckets.retain(|_, bucket| refilled(*bucket, limit, now) < capacity);
        }
        let bucket = buckets.entry(caller.to_string()).or_insert(Bucket {
            milli_tokens: capacity,
            at: now,
        });
        let available = refilled(*bucket, limit, now);
        let wanted = messages.saturating_mul(1_000);
        *bucket = Bucket {
            milli_tokens: available,
            at: now.max(bucket.at),
        };
        if wanted > available {
            return false;
        }
        bucket.milli_tokens = available - wanted;
        true
    }
}

/// The bucket's content at `now`: `rate` tokens a second (a thousandth per millisecond per
/// message a second), capped at the burst.
fn refilled(bucket: Bucket, limit: SendRate, now: u64) -> u64 {
    let elapsed = now.saturating_sub(bucket.at);
    let added = elapsed.saturating_mul(limit.rate);
    (bucket.milli_tokens.saturating_add(added)).min(limit.burst.saturating_mul(1_000))
}

impl Engine {
    /// Charges `messages` to `principal`'s send rate, if one is configured; refuses the whole
    /// batch when the bucket holds fewer.
    pub fn admit_send(&self, principal: &Principal, messages: usize) -> Result<(), EngineError> {
        let Some(limit) = self.inner.config.send_rate else {
            return Ok(());
        };
        let caller = principal.identity.to_string();
        match (self.inner.send_buckets).take(&caller, messages as u64, limit, self.now()) {
            true => Ok(()),
            false => Err(EngineError::LimitReached {
                limit: "send_rate_per_caller",
                max: limit.rate as usize,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let buckets = SendBuckets::default();
        let limit = SendRate {
            rate: 100,
            burst: 200,
        };
        assert!(buckets.take("a", 200, limit, 0), "the burst at once");
        assert!(!buckets.take("a", 1, limit, 0), "then nothing");
        assert!(!buckets.take("a", 11, limit, 100), "10 after 100 ms");
        assert!(buckets.take("a", 10, limit, 100));
        assert!(
            buckets.take("b", 200, limit, 100),
            "each caller has its own"
        );
        assert!(
            buckets.take("a", 200, limit, 60_000),
            "full again, never more"
        );
        assert!(!buckets.take("a", 1, limit, 60_000));
        assert!(
            !buckets.take("c", 201, limit, 0),
            "a batch over the burst never passes"
        );
    }
}
