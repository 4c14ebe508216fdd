//! One partition at run time: its log, its batch index, its producers' progress, and the
//! appender that writes produced batches in offset order.
//!
//! **Appends.** A batch carries its base offset, so batches must reach the log in the order
//! their offsets were given. Producers therefore hand their encoded batches to the partition's
//! queue; the first one to find no append running spawns an appender, which takes everything
//! queued, stamps the base offsets (in place: the batch checksum does not cover them), writes
//! it all as one atomic log append and answers each producer. Batches queued meanwhile share the
//! next append: one commit for all of them, as the storage's group commit does for logs.
//! The appender is spawned rather than run by the producer, so a producer that goes away never
//! stops an append halfway.
//!
//! Locks, in the order taken (none is held across an `.await`): `queue` → `state`.

use crate::{
    error::EngineError,
    stream::{
        index::{BatchEntry, BatchIndex},
        producers::ProducerStates,
        StreamError,
    },
};
use bytes::{Bytes, BytesMut};
use std::sync::{atomic::AtomicBool, Arc, Mutex};
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
    waiting: Vec<PendingAppend>,
    appending: bool,
}

/// One encoded batch waiting for its offsets.
#[derive(Debug)]
pub(crate) struct PendingAppend {
    /// Encoded with base offset 0; the appender stamps the real one.
    pub batch: BytesMut,
    pub header: record_batch::BatchHeader,
    pub reply: oneshot::Sender<Result<u64, EngineError>>,
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
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.waiting.push(PendingAppend {
                batch,
                header,
                reply,
            });
            !std::mem::replace(&mut queue.appending, true)
        };
        if lead {
            tokio::spawn(run_appender(self.clone()));
        }
        // The appender answers every append it takes, unless it panicked (a bug).
        answer.await.unwrap_or(Err(EngineError::Internal {
            operation: "stream append",
        }))
    }

    /// Appends copies made by compaction (already carrying their offsets) and returns their
    /// log positions. Not through the producers' queue: a copy's offsets are old ones.
    pub async fn append_copies(
        &self,
        copies: &[Bytes],
    ) -> Result<std::ops::Range<u64>, EngineError> {
        let written = self.log.append(copies, None).await?;
        Ok(written.start.0..written.end.0)
    }
}

impl PartitionState {
    fn apply_loaded(&mut self, header: &record_batch::BatchHeader, position: u64) {
        self.index.insert_replayed(entry_of(header, position));
        self.apply_producer(header);
    }

    fn apply_producer(&mut self, header: &record_batch::BatchHeader) {
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

/// Writes what is queued, one append at a time, until the queue is empty.
async fn run_appender(partition: Arc<PartitionRuntime>) {
    loop {
        let pending = {
            let mut queue = partition.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.waiting.is_empty() {
                queue.appending = false;
                return;
            }
            std::mem::take(&mut queue.waiting)
        };
        write_pending(&partition, pending).await;
    }
}

async fn write_pending(partition: &PartitionRuntime, mut pending: Vec<PendingAppend>) {
    // Only the appender moves the end, and one runs at a time: the end read here is the end
    // when the append lands.
    let mut next = partition.lock().index.next_offset();
    let mut payloads = Vec::with_capacity(pending.len());
    for append in &mut pending {
        record_batch::set_base_offset(&mut append.batch, next);
        append.header.base_offset = next;
        next = append.header.next_offset();
        payloads.push(std::mem::take(&mut append.batch).freeze());
    }
    match partition.log.append(&payloads, None).await {
        Ok(written) => {
            {
                let mut state = partition.lock();
                for (i, append) in pending.iter().enumerate() {
                    let position = written.start.0 + i as u64;
                    state.index.push(entry_of(&append.header, position));
                    state.apply_producer(&append.header);
                    state.appended_since_compaction += u64::from(append.header.record_count);
                }
            }
            partition.end.send_replace(next);
            for append in pending {
                let _ = append.reply.send(Ok(append.header.base_offset));
            }
        }
        Err(error) => {
            for append in pending {
                let _ = append.reply.send(Err(error.clone().into()));
            }
        }
    }
}
