//! The retained messages of one topic as an index: per routing key, where its message lies in
//! the topic's log. Bodies, headers and the other fields stay on disk; a delivery, or a filter
//! that must read them, reads the record back.
//!
//! Each entry carries two offsets. `stored_at` is where the record is now: compaction copies a
//! record forward and moves it. `written_at` is where it was published: its version, which a
//! copy keeps, so a subscription can tell a message published after it began (it arrives
//! live) from one that was only moved (it arrives with the retained ones).

use std::{collections::BTreeMap, ops::Bound};
use wharf_storage::Offset;

/// Where one retained message lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetainedEntry {
    /// The record that holds the message now.
    pub stored_at: Offset,
    /// The record that published it; compaction copies keep it.
    pub written_at: Offset,
}

/// The last message per routing key, as offsets. 100,000 keys of 20 bytes take at most 11 MiB
/// (`heap_bytes`), whatever the size of their bodies.
#[derive(Debug, Default)]
pub(crate) struct RetainedIndex {
    /// `Box<str>`, not `String`: 8 bytes less per key, and keys never grow.
    entries: BTreeMap<Box<str>, RetainedEntry>,
    /// Sum of the key lengths, for [`RetainedIndex::heap_bytes`].
    key_bytes: usize,
}

impl RetainedIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, key: &str) -> Option<RetainedEntry> {
        self.entries.get(key).copied()
    }

    /// Applies a message published to `key` at `offset`: it becomes the key's message, or
    /// clears the key when `cleared` (an empty body).
    pub fn publish(&mut self, key: &str, offset: Offset, cleared: bool) {
        if cleared {
            if self.entries.remove(key).is_some() {
                self.key_bytes -= key.len();
            }
            return;
        }
        let entry = RetainedEntry {
            stored_at: offset,
            written_at: offset,
        };
        if self.entries.insert(key.into(), entry).is_none() {
            self.key_bytes += key.len();
        }
    }

    /// Applies a compaction copy of the key's message, now at `offset`. The copy restates the
    /// current message, so the entry keeps its version; a key missing here (not expected while
    /// copies are written under the topic's write lock) is taken as published at `offset`.
    pub fn copy(&mut self, key: &str, offset: Offset) {
        match self.entries.get_mut(key) {
            Some(entry) => entry.stored_at = offset,
            None => self.publish(key, offset, false),
        }
    }

    /// The greatest key.
    pub fn last_key(&self) -> Option<String> {
        self.entries.keys().next_back().map(|key| key.to_string())
    }

    /// Up to `max` entries with keys after `after` (from the first key when `None`), in key
    /// order. Callers walk the index batch by batch, so no caller holds a copy of all of it.
    pub fn batch_after(&self, after: Option<&str>, max: usize) -> Vec<(String, RetainedEntry)> {
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        self.entries
            .range::<str, _>((start, Bound::Unbounded))
            .take(max)
            .map(|(key, entry)| (key.to_string(), *entry))
            .collect()
    }

    /// An upper estimate of the heap the index takes. Each entry is a key pointer and two
    /// offsets in a B-tree node; nodes other than the root are at least half full, so an entry
    /// costs at most twice its slot, plus a share of the node headers and child pointers (16
    /// bytes is generous: a node of at least 5 entries has a 16-byte header and, when internal,
    /// 12 child pointers). Key bytes are counted rounded up to the allocator's 16-byte classes.
    /// Tests hold the index to it.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        const SLOT: usize = std::mem::size_of::<(Box<str>, RetainedEntry)>();
        let keys = self.key_bytes + 15 * self.entries.len();
        self.entries.len() * (2 * SLOT + 16) + keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(index: &RetainedIndex) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let batch = index.batch_after(after.as_deref(), 2);
            let Some((last, _)) = batch.last() else {
                return out;
            };
            after = Some(last.clone());
            out.extend(batch.into_iter().map(|(key, _)| key));
        }
    }

    #[test]
    fn the_last_publish_per_key_wins_and_an_empty_body_clears() {
        let mut index = RetainedIndex::default();
        index.publish("b", Offset(1), false);
        index.publish("a", Offset(2), false);
        index.publish("c", Offset(3), false);
        index.publish("b", Offset(4), false);
        index.publish("c", Offset(5), true);
        index.publish("z", Offset(6), true);
        assert_eq!(keys(&index), ["a", "b"]);
        assert_eq!(index.get("b").map(|e| e.stored_at), Some(Offset(4)));
        assert_eq!(index.key_bytes, 2);
    }

    #[test]
    fn copies_move_an_entry_and_keep_its_version() {
        let mut index = RetainedIndex::default();
        index.publish("a", Offset(1), false);
        index.copy("a", Offset(9));
        let moved = RetainedEntry {
            stored_at: Offset(9),
            written_at: Offset(1),
        };
        assert_eq!(index.get("a"), Some(moved));
        index.copy("b", Offset(10));
        assert_eq!(index.get("b").map(|e| e.written_at), Some(Offset(10)));
    }

    /// The index holds no message: 100,000 keys cost the same with 1 KiB bodies or 1 MiB ones.
    #[test]
    fn entries_hold_offsets_only() {
        assert_eq!(std::mem::size_of::<RetainedEntry>(), 16);
        let mut index = RetainedIndex::default();
        for n in 0..100_000u64 {
            index.publish(&format!("sensors/{n:012}"), Offset(n), false);
        }
        assert!(index.heap_bytes() < 12 << 20, "{}", index.heap_bytes());
    }
}
