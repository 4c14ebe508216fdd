//! One partition at run time: its log, its batch index, its producers' progress, and the
//! queue of its appender (`appender`), the one writer of its log.
//!
//! **Appends.** A batch carries its base offset, so batches must reach the log in the order
//! their offsets were given. Producers (and compaction, with its copies) therefore hand their
//! batches to the partition's queue; the first one to find no appender running spawns one.
//!
//! Locks, in the order taken (none is held across an `.await`): `queue` → `state`.

use super::appender::{self, Job};
use crate::{
    error::EngineError,
    stream::{
        index::{BatchEntry, BatchIndex},
        producers::ProducerStates,
        StreamError,
    },
};
use bytes::{Bytes, BytesMut};
use std::{
    ops::Range,
    sync::{atomic::AtomicBool, Arc, Mutex},
};
use tokio::sync::{oneshot, watch};
use wharf_model::record_batch::{self, RecordBatch};
use wharf_storage::{LogStore, StorageError};

/// Records read from the log per call while a partition is opened.
const LOAD_BATCH_RECORDS: usize = 1_024;
const LOAD_BATCH_BYTES: usize = 16 << 20;

#[derive(Debug)]
pub(crate) struct PartitionRuntime {
    pub stream: String,
    pub number: u32,
    pub log: Arc<dyn LogStore>,
    pub state: Mutex<PartitionState>,
    queue: Mutex<AppendQueue>,
    /// Woken when a job is queued, so that the appender hands it over while an append syncs.
    pub(super) queued: tokio::sync::Notify,
    /// The partition's next offset, for long-polling fetches and tails.
    pub end: watch::Sender<u64>,
    /// Set while a compaction pass runs.
    pub compacting: AtomicBool,
}

#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    pub index: BatchIndex,
    pub producers: ProducerStates,
    /// Records appended since the last compaction pass (or the open).
    pub appended_since_compaction: u64,
    /// Records the last compaction pass kept.
    pub kept_by_compaction: u64,
}

#[derive(Debug, Default)]
struct AppendQueue {
    waiting: std::collections::VecDeque<Job>,
    appending: bool,
}

impl PartitionRuntime {
    /// Opens the partition over `log`: reads every batch header from `superseded_below` (the
    /// compaction mark: every batch below it was superseded or dropped) to rebuild the index
    /// and the producers' progress.
    pub async fn load(
        stream: &str,
        number: u32,
        log: Arc<dyn LogStore>,
        superseded_below: u64,
    ) -> Result<PartitionRuntime, EngineError> {
        let mut state = PartitionState::default();
        let mut position = log.start_offset().0.max(superseded_below);
        let end = log.end_offset().0;
        while position < end {
            let read = log
                .read_batch(
                    wharf_storage::Offset(position),
                    LOAD_BATCH_RECORDS,
                    LOAD_BATCH_BYTES,
                )
                .await;
            let records = match read {
                Ok(records) => records,
                Err(StorageError::Corrupt { .. }) => {
                    // Reported by the storage already; the batch is lost, its neighbours not.
                    position += 1;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if records.is_empty() {
                break;
            }
            for record in records {
                position = record.offset.0 + 1;
                match RecordBatch::parse(record.payload.clone()) {
                    Ok(batch) => state.apply_loaded(batch.header(), record.offset.0),
                    Err(source) => {
                        let damaged = StreamError::Damaged {
                            stream: stream.to_string(),
                            partition: number,
                            position: record.offset.0,
                            source,
                        };
                        tracing::error!(error = %damaged, "skipping a damaged batch");
                    }
                }
            }
        }
        let next = state.index.next_offset();
        Ok(PartitionRuntime {
            stream: stream.to_string(),
            number,
            log,
            state: Mutex::new(state),
            queue: Mutex::default(),
            queued: tokio::sync::Notify::new(),
            end: watch::Sender::new(next),
            compacting: AtomicBool::new(false),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `batch` (encoded with base offset 0) and waits until it is durable; returns
    /// its base offset. The batch is checked before it is written, as every read checks it.
    pub async fn append(self: &Arc<Self>, batch: Bytes) -> Result<u64, EngineError> {
        let header = *RecordBatch::parse(batch.clone())
            .map_err(|source| StreamError::Encode { source })?
            .header();
        // Unique again once the parsed view is gone, so this takes the buffer without a copy.
        let batch = batch
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Produce {
            batch,
            header,
            reply,
        });
        // The appender answers every job it takes, unless it panicked (a bug).
        answer.await.unwrap_or(Err(EngineError::Internal {
            operation: "stream append",
        }))
    }

    /// Appends copies made by compaction (already carrying their offsets) and returns their
    /// log positions. Through the appender's queue, so that the appender stays the log's one
    /// writer.
    pub async fn append_copies(
        self: &Arc<Self>,
        copies: &[Bytes],
    ) -> Result<Range<u64>, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Copies {
            payloads: copies.to_vec(),
            reply,
        });
        answer.await.unwrap_or(Err(EngineError::Internal {
            operation: "stream compaction append",
        }))
    }

    /// Queues `job`, starting the appender if none runs.
    fn enqueue(self: &Arc<Self>, job: Job) {
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.waiting.push_back(job);
            !std::mem::replace(&mut queue.appending, true)
        };
        self.queued.notify_one();
        if lead {
            tokio::spawn(appender::run(self.clone()));
        }
    }

    /// Everything queued, or `None` when nothing is; with `may_stop`, an empty queue also ends
    /// the appender's turn (the next job starts a new one).
    pub(super) fn take_jobs(&self, may_stop: bool) -> Option<Vec<Job>> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.waiting.is_empty() {
            if may_stop {
                queue.appending = false;
            }
            return None;
        }
        Some(queue.waiting.drain(..).collect())
    }

    /// Puts `jobs` back at the front of the queue, in their order.
    pub(super) fn requeue(&self, jobs: Vec<Job>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for job in jobs.into_iter().rev() {
            queue.waiting.push_front(job);
        }
    }

    /// After an appender panicked: drops what waits (its producers get an internal error) and
    /// lets the next job start a new appender.
    pub(super) fn release_queue(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.waiting.clear();
        queue.appending = false;
    }
}

impl PartitionState {
    fn apply_loaded(&mut self, header: &record_batch::BatchHeader, position: u64) {
        self.index.insert_replayed(entry_of(header, position));
        self.apply_producer(header);
    }

    pub(super) fn apply_producer(&mut self, header: &record_batch::BatchHeader) {
        let producer = header.producer;
        if producer.id >= 0 && producer.base_sequence >= 0 {
            let records = (header.last_offset_delta + 1).max(header.record_count);
            (self.producers).apply(
                producer.id,
                producer.base_sequence,
                header.base_offset,
                records,
            );
        }
    }
}

/// The index entry of a batch stored at `position`.
pub(crate) fn entry_of(header: &record_batch::BatchHeader, position: u64) -> BatchEntry {
    BatchEntry {
        base: header.base_offset,
        last: header.last_offset(),
        position,
        max_timestamp: header.max_timestamp,
        bytes: header.batch_length,
        records: header.record_count,
    }
}
