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
        for _ in 0..READ_ATTEMPTS {
            let (entries, earliest, latest) = {
                let state = partition.lock();
                let index = &state.index;
                check_range(
                    &stream,
                    &partition,
                    request.offset,
                    index.earliest(),
                    index.next_offset(),
                )?;
                let entries =
                    index.batches_from(request.offset, request.max_bytes, request.max_records);
                (entries, index.earliest(), index.next_offset())
            };
            let Some(batches) = read_entries(&partition, &entries).await? else {
                continue;
            };
            let (records, next_offset) = collect_records(&partition, &entries, batches, request)?;
            let next_offset = next_offset.min(latest).max(request.offset);
            return Ok(Fetched {
                records,
                next_offset,
                earliest,
                latest,
            });
        }
        Err(StorageError::OffsetTruncated {
            offset: request.offset,
            start: partition.log.start_offset().0,
        }
        .into())
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
                    index.earliest(),
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
                OffsetAt::Earliest => return Ok(index.earliest()),
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

/// The records of `batches` from `request.offset`, within its bounds, and the offset after
/// them.
fn collect_records(
    partition: &PartitionRuntime,
    entries: &[BatchEntry],
    batches: Vec<RecordBatch>,
    request: FetchRequest,
) -> Result<(Vec<Record>, u64), EngineError> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut next = request.offset;
    for (batch, entry) in batches.iter().zip(entries) {
        let decoded = (batch.records())
            .map_err(|source| super::batch_damaged(partition, entry.position, source))?;
        for record in decoded {
            if record.offset < request.offset {
                continue;
            }
            let size = record.key.as_ref().map_or(0, |k| k.len())
                + record.value.as_ref().map_or(0, |v| v.len());
            let full = records.len() >= request.max_records.max(1)
                || (!records.is_empty() && bytes + size > request.max_bytes);
            if full {
                return Ok((records, next));
            }
            bytes += size;
            next = record.offset + 1;
            records.push(record);
        }
        next = next.max(entry.next_offset());
    }
    Ok((records, next))
}
