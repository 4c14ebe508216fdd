//! Idempotent producers: which requests each producer already stored in a partition.
//!
//! A producer names itself with an id and numbers its produce requests: the first any number,
//! each next one the previous plus one. Every batch a request stores carries the producer id
//! and the request's sequence (Kafka's `producerId` and `baseSequence` fields). A retried
//! request finds its sequence among the producer's recent batches in each partition it
//! touched, and gets the offsets stored the first time instead of a second copy.
//!
//! The state is rebuilt from the batches themselves when a partition is opened, so a retry
//! is recognised across a restart too. It keeps the last [`RECENT_BATCHES`] batches of each
//! producer (Kafka keeps five in-flight requests' worth), and at most
//! [`PRODUCERS_PER_PARTITION_MAX`] producers per partition: past that, the producer whose last
//! batch is oldest is forgotten, and a retry of its requests would be stored again.

use std::collections::{HashMap, VecDeque};

/// Batches per producer remembered per partition: retries of older requests are refused.
pub const RECENT_BATCHES: usize = 5;
/// Producers remembered per partition; about 200 bytes each.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// What a partition already holds of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not stored here yet.
    New,
    /// Stored: its records took `base_offset..base_offset + records`.
    Duplicate { base_offset: u64, records: u32 },
    /// Older than the batches remembered: whether it was stored cannot be told.
    TooOld { last: i32 },
}

#[derive(Debug, Clone, Copy)]
struct StoredBatch {
    sequence: i32,
    base_offset: u64,
    records: u32,
}

#[derive(Debug, Clone, Default)]
struct ProducerState {
    recent: VecDeque<StoredBatch>,
}

impl ProducerState {
    fn last(&self) -> Option<&StoredBatch> {
        self.recent.back()
    }
}

/// The producers of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerState>,
}

impl ProducerStates {
    /// Records that a batch of `producer`'s request `sequence` took `base_offset..+records`.
    pub fn apply(&mut self, producer: i64, sequence: i32, base_offset: u64, records: u32) {
        let state = self.producers.entry(producer).or_default();
        if state.recent.iter().any(|b| b.sequence == sequence) {
            return;
        }
        state.recent.push_back(StoredBatch {
            sequence,
            base_offset,
            records,
        });
        while state.recent.len() > RECENT_BATCHES {
            state.recent.pop_front();
        }
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            self.forget_oldest();
        }
    }

    /// Whether this partition holds `producer`'s request `sequence`.
    pub fn check(&self, producer: i64, sequence: i32) -> SequenceCheck {
        let Some(state) = self.producers.get(&producer) else {
            return SequenceCheck::New;
        };
        if let Some(stored) = state.recent.iter().find(|b| b.sequence == sequence) {
            return SequenceCheck::Duplicate {
                base_offset: stored.base_offset,
                records: stored.records,
            };
        }
        match state.last() {
            Some(last) if sequence < last.sequence => SequenceCheck::TooOld {
                last: last.sequence,
            },
            _ => SequenceCheck::New,
        }
    }

    /// The newest sequence `producer` stored here.
    pub fn last_sequence(&self, producer: i64) -> Option<i32> {
        self.producers
            .get(&producer)
            .and_then(|state| state.last().map(|b| b.sequence))
    }

    /// Every producer's newest sequence here.
    pub fn last_sequences(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        (self.producers.iter()).filter_map(|(id, state)| state.last().map(|b| (*id, b.sequence)))
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    fn forget_oldest(&mut self) {
        let oldest = (self.producers.iter())
            .min_by_key(|(_, state)| state.last().map_or(0, |b| b.base_offset))
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_sequence_is_a_duplicate_with_its_offsets() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(7, 0), SequenceCheck::New);
        states.apply(7, 0, 100, 3);
        assert_eq!(
            states.check(7, 0),
            SequenceCheck::Duplicate {
                base_offset: 100,
                records: 3
            }
        );
        assert_eq!(states.check(7, 1), SequenceCheck::New);
        assert_eq!(
            states.check(8, 0),
            SequenceCheck::New,
            "producers are apart"
        );
        assert_eq!(states.last_sequence(7), Some(0));
    }

    #[test]
    fn sequences_older_than_the_recent_batches_are_too_old() {
        let mut states = ProducerStates::default();
        for sequence in 0..(RECENT_BATCHES as i32 + 2) {
            states.apply(1, sequence, sequence as u64 * 10, 10);
        }
        assert_eq!(states.check(1, 0), SequenceCheck::TooOld { last: 6 });
        assert!(matches!(
            states.check(1, 2),
            SequenceCheck::Duplicate {
                base_offset: 20,
                ..
            }
        ));
    }

    #[test]
    fn past_the_producer_limit_the_stalest_producer_is_forgotten() {
        let mut states = ProducerStates::default();
        for producer in 0..=(PRODUCERS_PER_PARTITION_MAX as i64) {
            states.apply(producer, 0, producer as u64, 1);
        }
        assert_eq!(states.len(), PRODUCERS_PER_PARTITION_MAX);
        assert_eq!(states.last_sequence(0), None);
        assert_eq!(states.last_sequence(1), Some(0));
    }
}
