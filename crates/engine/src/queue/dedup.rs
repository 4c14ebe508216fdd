//! The dedup window: which client message ids were enqueued recently, bounded in time.
//!
//! Ids are kept as 64-bit hashes, not strings, so the window costs the same per entry
//! whatever the id length. Two different ids colliding is a 1 in 2^64 event per pair; with a
//! million ids in the window the chance of any false duplicate is about 1 in 10^7.

use super::message::Seq;
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use wharf_model::MessageId;

/// The hash of a client-given message id, as the dedup window keys it.
///
/// Computed with the standard library's SipHash, which is stable within a build but not
/// promised across Rust releases: recompute it from the id (at replay too), never persist it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DedupKey(u64);

impl DedupKey {
    pub fn of(id: &MessageId) -> DedupKey {
        DedupKey::of_text(id.as_str())
    }

    /// The same hash of any id text (server-generated ids included).
    pub fn of_text(id: &str) -> DedupKey {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        DedupKey(hasher.finish())
    }
}

/// Recent ids with the message each one enqueued and when.
#[derive(Debug, Default)]
pub(crate) struct DedupWindow {
    by_key: HashMap<DedupKey, Seen>,
    /// Entries in the order they were recorded, for pruning from the front.
    order: VecDeque<(DedupKey, Seen)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    seq: Seq,
    at: u64,
}

impl DedupWindow {
    /// The message an id enqueued within the last `window_ms`, if any.
    pub(crate) fn find(&self, key: DedupKey, now: u64, window_ms: u64) -> Option<Seq> {
        let seen = self.by_key.get(&key)?;
        (seen.at.saturating_add(window_ms) > now).then_some(seen.seq)
    }

    pub(crate) fn record(&mut self, key: DedupKey, seq: Seq, at: u64, window_ms: u64) {
        if window_ms == 0 {
            return;
        }
        let seen = Seen { seq, at };
        self.by_key.insert(key, seen);
        // Keep `order` sorted by seq, so its front is the oldest record that reclaim must keep.
        // Concurrent sends may apply a little out of seq order; their times differ by
        // milliseconds, so pruning by time from the front stays exact enough.
        let position = self
            .order
            .iter()
            .rposition(|(_, earlier)| earlier.seq <= seq)
            .map_or(0, |i| i + 1);
        self.order.insert(position, (key, seen));
    }

    /// Forgets entries older than the window. An id sent again after its window replaced the
    /// map entry, so an old queue entry only removes the map entry that is still its own.
    pub(crate) fn prune(&mut self, now: u64, window_ms: u64) {
        while let Some(&(key, seen)) = self.order.front() {
            if seen.at.saturating_add(window_ms) > now {
                break;
            }
            self.order.pop_front();
            if self.by_key.get(&key) == Some(&seen) {
                self.by_key.remove(&key);
            }
        }
    }

    /// The lowest seq of an entry not yet pruned (conservative: it may be past its window until
    /// the next prune).
    pub(crate) fn oldest_seq(&self) -> Option<Seq> {
        self.order.front().map(|(_, seen)| seen.seq)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}
