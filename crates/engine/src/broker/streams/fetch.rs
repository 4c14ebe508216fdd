//! Reading a partition: records from an offset, bounded by count and bytes, long-polling at
//! the end; raw batches for doors that pass them on; offsets by position or time.
//!
//! A read finds the batches holding the offset in the index and reads them in one storage
//! call (`read_many`: one trip to the disk at most). Retention or compaction may drop a
//! batch between the lookup and the read; the read then finds the log truncated and looks
//! again. With compaction, offsets may be missing inside and between batches, so a fetch
//! answers the offset to continue from (`next_offset`), past any gap it crossed.

use super::{partition::PartitionRuntime, StreamRuntime};
use crate::{
    broker::Engine,
    error::EngineError,
    stream::{index::BatchEntry, StreamError},
};
use std::time::Duration;
use wharf_model::record_batch::{Record, RecordBatch};
use wharf_storage::{Offset, StorageError};

/// Longest long-poll a fetch may ask for: 30 s, as a receive's.
pub const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// Reads that find the log truncated under them look again this many times.
const READ_ATTEMPTS: usize = 4;
/// Rounds of reading one fetch makes to fill its bounds.
const FILL_ROUNDS: usize = 8;

/// Which records a fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    pub offset: u64,
    /// At least 1.
    pub max_records: usize,
    /// Key and value bytes; the first record comes whatever its size.
    pub max_bytes: usize,
    /// How long to wait for a record when `offset` is the end; zero answers at once.
    pub wait: Duration,
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub records: Vec<Record>,
    /// Where the next fetch continues: past the last record returned and any gap after it.
    pub next_offset: u64,
    /// The partition's first stored offset and its end (the offset the next record gets).
    pub earliest: u64,
    pub latest: u64,
}

/// A position a consumer may start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetAt {
    Earliest,
    Latest,
    /// The first record whose timestamp is at or after this one (ms since the epoch); the end
    /// when there is none.
    Timestamp(i64),
}

impl Engine {
    /// Records of `partition` from `request.offset`, waiting up to `request.wait` for the
    /// first one when the offset is the end. [`StreamError::OffsetOutOfRange`] below the
    /// earliest offset or past the end.
    pub async fn fetch(
        &self,
        stream: &str,
        partition: u32,
        request: FetchRequest,
    ) -> Result<Fetched, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let partition = stream.partition(partition)?;
        self.wait_for_records(&stream, &partition, request.offset, request.wait)
            .await?;
        let mut collected = Collected {
            records: Vec::new(),
            bytes: 0,
            next: request.offset,
        };
        let (mut earliest, mut latest) = (0, 0);
        // The index picks batches by their stored size, which is more than their records' key
        // and value bytes: rounds go on reading while the bounds leave room. Ends: each round
        // reads at least one batch, moving `next`, or stops.
        let mut attempts = 0;
        for _ in 0..FILL_ROUNDS {
            let offset = collected.next;
            let entries = {
                let state = partition.lock();
                let index = &state.index;
                (earliest, latest) = (stream.earliest(index), index.next_offset());
                if collected.records.is_empty() {
                    check_range(&stream, &partition, offset, earliest, latest)?;
                }
                let bytes = request.max_bytes.saturating_sub(collected.bytes).max(1);
                let count = request.max_records - collected.records.len();
                index.batches_from(offset, bytes, count)
            };
            if entries.is_empty() {
                break;
            }
            let Some(batches) = read_entries(&partition, &entries).await? else {
                attempts += 1;
                if attempts == READ_ATTEMPTS {
                    return Err(StorageError::OffsetTruncated {
                        offset,
                        start: partition.log.start_offset().0,
                    }
                    .into());
                }
                continue;
            };
            if collected.add(&partition, &entries, batches, request)? {
                break;
            }
        }
        Ok(Fetched {
            next_offset: collected.next.min(latest).max(request.offset),
            records: collected.records,
            earliest,
            latest,
        })
    }

    /// The stored batches holding `offset` and after it, up to about `max_bytes` (the first
    /// whatever its size), as they are on disk: for doors that pass batches on unchanged and
    /// for benchmarks. No wait.
    pub async fn fetch_batches(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<RecordBatch>, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let partition = stream.partition(partition)?;
        for _ in 0..READ_ATTEMPTS {
            let entries = {
                let state = partition.lock();
                let index = &state.index;
                check_range(
                    &stream,
                    &partition,
                    offset,
                    stream.earliest(index),
                    index.next_offset(),
                )?;
                index.batches_from(offset, max_bytes, usize::MAX)
            };
            if let Some(batches) = read_entries(&partition, &entries).await? {
                return Ok(batches);
            }
        }
        Err(StorageError::OffsetTruncated {
            offset,
            start: partition.log.start_offset().0,
        }
        .into())
    }

    /// The offset of a position in `partition`: its start, its end, or a time.
    pub async fn offset_at(
        &self,
        stream: &str,
        partition: u32,
        at: OffsetAt,
    ) -> Result<u64, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let partition = stream.partition(partition)?;
        let (entry, latest) = {
            let state = partition.lock();
            let index = &state.index;
            match at {
                OffsetAt::Earliest => return Ok(stream.earliest(index)),
                OffsetAt::Latest => return Ok(index.next_offset()),
                OffsetAt::Timestamp(time) => (index.first_reaching(time), index.next_offset()),
            }
        };
        let (Some(entry), OffsetAt::Timestamp(time)) = (entry, at) else {
            return Ok(latest);
        };
        let Some(batches) = read_entries(&partition, &[entry]).await? else {
            return Ok(entry.base);
        };
        let records = (batches[0].records())
            .map_err(|source| super::batch_damaged(&partition, entry.position, source))?;
        Ok((records.iter())
            .find(|record| record.timestamp >= time)
            .map_or(entry.base, |record| record.offset))
    }

    /// Waits until `partition` holds `offset`, up to `wait`; returns at once when it does.
    async fn wait_for_records(
        &self,
        stream: &StreamRuntime,
        partition: &PartitionRuntime,
        offset: u64,
        wait: Duration,
    ) -> Result<(), EngineError> {
        let mut end = partition.end.subscribe();
        if wait.is_zero() || *end.borrow_and_update() != offset {
            return Ok(());
        }
        let _place = self.receive_waiter()?;
        let wait = wait.min(FETCH_WAIT_MAX);
        let deadline = self.now().saturating_add(wait.as_millis() as u64);
        let clock = self.inner.clock.clone();
        let sleep = clock.sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                changed = end.changed() => {
                    if changed.is_err() || stream.is_deleted() {
                        return Err(StreamError::NotFound { stream: stream.name.clone() }.into());
                    }
                    self.check_open()?;
                    if *end.borrow_and_update() > offset {
                        return Ok(());
                    }
                }
                () = &mut sleep => return Ok(()),
            }
        }
    }
}

fn check_range(
    stream: &StreamRuntime,
    partition: &PartitionRuntime,
    offset: u64,
    earliest: u64,
    latest: u64,
) -> Result<(), EngineError> {
    if offset < earliest || offset > latest {
        return Err(StreamError::OffsetOutOfRange {
            stream: stream.name.clone(),
            partition: partition.number,
            offset,
            earliest,
            latest,
        }
        .into());
    }
    Ok(())
}

/// Reads the batches of `entries` in one storage call; `None` when the log was truncated
/// under the lookup (look again).
async fn read_entries(
    partition: &PartitionRuntime,
    entries: &[BatchEntry],
) -> Result<Option<Vec<RecordBatch>>, EngineError> {
    if entries.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let positions: Vec<Offset> = entries.iter().map(|e| Offset(e.position)).collect();
    let read = match partition.log.read_many(&positions).await {
        Ok(read) => read,
        Err(StorageError::OffsetTruncated { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let mut batches = Vec::with_capacity(read.len());
    for (record, entry) in read.into_iter().zip(entries) {
        let Some(record) = record else {
            return Ok(None);
        };
        let batch = RecordBatch::parse(record.payload)
            .map_err(|source| super::batch_damaged(partition, entry.position, source))?;
        if batch.header().base_offset != entry.base {
            // The position now holds another batch: the index moved under the read.
            return Ok(None);
        }
        batches.push(batch);
    }
    Ok(Some(batches))
}

/// The records a fetch gathered so far, their key and value bytes, and where it goes on.
struct Collected {
    records: Vec<Record>,
    bytes: usize,
    next: u64,
}

impl Collected {
    /// Adds the records of `batches` from `next`, within the request's bounds (the first
    /// record of the fetch whatever its size); returns whether the bounds are reached.
    fn add(
        &mut self,
        partition: &PartitionRuntime,
        entries: &[BatchEntry],
        batches: Vec<RecordBatch>,
        request: FetchRequest,
    ) -> Result<bool, EngineError> {
        let max_records = request.max_records.max(1);
        for (batch, entry) in batches.iter().zip(entries) {
            let decoded = (batch.records())
                .map_err(|source| super::batch_damaged(partition, entry.position, source))?;
            for record in decoded {
                if record.offset < self.next {
                    continue;
                }
                let size = record.key.as_ref().map_or(0, |k| k.len())
                    + record.value.as_ref().map_or(0, |v| v.len());
                let full = self.records.len() >= max_records
                    || (!self.records.is_empty() && self.bytes + size > request.max_bytes);
                if full {
                    return Ok(true);
                }
                self.bytes += size;
                self.next = record.offset + 1;
                self.records.push(record);
            }
            self.next = self.next.max(entry.next_offset());
        }
        Ok(self.records.len() >= max_records || self.bytes >= request.max_bytes)
    }
}
