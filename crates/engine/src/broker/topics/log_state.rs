//! What a topic's log says, applied: the routing table's bindings and the retained index.
//!
//! One path applies records, at open (replay) and after every write: [`LogState::catch_up`]
//! reads the log from the last applied record to its end and applies each record in order.
//! Memory therefore follows log order even when two writers' appends complete in the other
//! order, and a record whose writer went away is applied by the next writer. Applying is
//! idempotent (a binding added again replaces itself; a retained key keeps its last record), so
//! a log holding compaction copies beside their originals replays to the same state.

use super::super::topic_records::TopicRecord;
use crate::{
    error::EngineError,
    topic::{RetainedIndex, Router},
};
use std::{
    ops::Range,
    sync::{Mutex, RwLock},
};
use wharf_storage::{LogStore, Offset, Record, StorageError};

/// Records and bytes read per step of a catch-up: bounds the memory of replaying a large log.
const CATCH_UP_BATCH_RECORDS: usize = 1_024;
const CATCH_UP_BATCH_BYTES: usize = 4 << 20;

/// No compaction copies: the `copies` of a catch-up that applies writes only.
pub(super) const NO_COPIES: Range<Offset> = Offset(0)..Offset(0);

/// The log as applied so far, guarded by the topic's `state` lock.
#[derive(Debug)]
pub(super) struct LogState {
    /// One past the last applied record: memory reflects the log below this offset.
    pub applied_end: Offset,
    pub retained: RetainedIndex,
    /// The log's end when the last compaction pass finished (its start, after open): the next
    /// pass waits until enough records were appended past it.
    pub compacted_end: Offset,
}

impl LogState {
    /// The state of an empty routing table over the log from `start`; see
    /// [`LogState::catch_up`].
    pub fn new(start: Offset) -> LogState {
        LogState {
            applied_end: start,
            retained: RetainedIndex::default(),
            compacted_end: start,
        }
    }

    /// Applies the records of `records` that follow `applied_end`, in order; those below it
    /// were applied already (by another catch-up that read the same records).
    fn apply_batch(
        &mut self,
        records: &[Record],
        router: &RwLock<Router>,
        copies: &Range<Offset>,
    ) -> Result<(), EngineError> {
        for record in records {
            if record.offset == self.applied_end {
                self.apply(record, router, copies.contains(&record.offset))?;
                self.applied_end = record.offset.next();
            }
        }
        Ok(())
    }

    fn apply(
        &mut self,
        record: &Record,
        router: &RwLock<Router>,
        copy: bool,
    ) -> Result<(), EngineError> {
        match TopicRecord::decode(record.offset.0, &record.payload)? {
            TopicRecord::BindingAdded { id, spec } => {
                router.write().expect("router lock").add(id, spec)?;
            }
            TopicRecord::BindingRemoved { id } => {
                router.write().expect("router lock").remove(&id);
            }
            TopicRecord::Retained { key, .. } if copy => self.retained.copy(&key, record.offset),
            TopicRecord::Retained { key, message } => {
                self.retained
                    .publish(&key, record.offset, message.body.is_empty());
            }
        }
        Ok(())
    }
}

/// Applies every record from `state`'s `applied_end` to the log's visible end, in order.
/// Records in `copies` are compaction copies of retained messages: they move their key's
/// entry and keep its version. Reads without the state lock, then applies under it; two
/// catch-ups at once apply each record once.
pub(super) async fn catch_up(
    state: &Mutex<LogState>,
    log: &dyn LogStore,
    router: &RwLock<Router>,
    copies: &Range<Offset>,
) -> Result<(), EngineError> {
    let end = log.end_offset();
    // Ends: each step reads from the applied end and applies at least its first record (or
    // finds it applied by another catch-up), so the applied end grows towards the fixed `end`.
    loop {
        let from = state.lock().expect("topic state lock").applied_end;
        if from >= end {
            return Ok(());
        }
        let read = log.read_batch(from, CATCH_UP_BATCH_RECORDS, CATCH_UP_BATCH_BYTES);
        let records = match read.await {
            // A damaged record (storage logs and counts it) costs only itself: go on past it.
            Err(StorageError::Corrupt { offset, .. }) if offset == from => {
                let mut state = state.lock().expect("topic state lock");
                if state.applied_end == from {
                    state.applied_end = from.next();
                }
                continue;
            }
            read => read?,
        };
        if records.is_empty() {
            return Ok(());
        }
        (state.lock().expect("topic state lock")).apply_batch(&records, router, copies)?;
    }
}
