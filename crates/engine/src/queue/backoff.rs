//! Retry backoff: how long a message waits after a failed delivery before it is ready again.
//!
//! The delay doubles with each delivery up to a cap, and is jittered so that messages that
//! failed together (a consumer crash) do not all come back in the same millisecond. The jitter
//! is a hash of (seed, seq, delivery count) rather than a stateful generator, so it does not
//! depend on the order in which timers fire, and tests can predict it.

use super::message::Seq;
use super::options::QueueOptions;

/// The delay before the retry of `seq` after its `delivery_count`-th delivery failed:
/// `retry_backoff_ms * 2^(delivery_count - 1)`, capped at `retry_backoff_max_ms`, then
/// jittered uniformly into `[delay / 2, delay]`.
pub fn retry_delay_ms(options: &QueueOptions, seed: u64, seq: Seq, delivery_count: u32) -> u64 {
    let doublings = delivery_count.saturating_sub(1);
    let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    let delay = options
        .retry_backoff_ms
        .saturating_mul(factor)
        .min(options.retry_backoff_max_ms);
    let floor = delay / 2;
    let span = delay - floor + 1;
    let jitter = mix(seed ^ mix(seq.0 ^ u64::from(delivery_count).rotate_left(32))) % span;
    floor + jitter
}

/// SplitMix64's finalizer: a cheap bijective mix whose output bits all depend on all input
/// bits, enough for jitter (not for anything an attacker may probe).
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
