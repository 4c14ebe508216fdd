//! Compaction of a partition with cleanup `compact`: each key keeps its latest record.
//!
//! A pass, in the background, while producers and readers go on:
//! 1. takes the partition's batches as they are (the index) and reads them to find each
//!    key's latest offset;
//! 2. writes each batch again at the end of the log with only the records that are their
//!    key's latest (a tombstone goes too once `tombstone_retention_ms` has passed since its
//!    timestamp), keeping the batch's base offset and range, so **offsets never change**; a
//!    batch left empty is dropped, unless it is the partition's newest (it holds the end
//!    across a restart) or a producer's newest (it holds the producer's progress);
//! 3. points the index at the copies, then deletes the log's segments below them.
//!
//! Batches appended during the pass are not touched: the next pass sees them. A pass is due
//! once the records appended since the last one number at least what it kept (and at least
//! [`COMPACTION_RECORDS_MIN`]), so a pass, which copies every kept record, costs at most one
//! copy per appended record, amortised.
//!
//! Interrupted anywhere (a crash, a full disk), nothing is lost: a copy supersedes its
//! original only once written (replay indexes the later of two batches with one base offset),
//! and no segment is deleted before every copy is durable.

use super::{partition::PartitionRuntime, StreamRuntime};
use crate::{broker::Engine, error::EngineError, stream::index::BatchEntry};
use bytes::Bytes;
use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
};
use wharf_model::record_batch::RecordBatch;
use wharf_storage::Offset;

/// Appended records before a pass is worth it.
pub const COMPACTION_RECORDS_MIN: u64 = 1_024;
/// Batch bytes read or written per storage call during a pass.
const PASS_CHUNK_BYTES: usize = 8 << 20;

/// Starts a pass in the background when one is due and none runs.
pub(super) fn maybe_compact(
    engine: &Engine,
    stream: &Arc<StreamRuntime>,
    partition: &Arc<PartitionRuntime>,
) {
    let due = {
        let state = partition.lock();
        state.appended_since_compaction >= COMPACTION_RECORDS_MIN.max(state.kept_by_compaction)
    };
    if !due || partition.compacting.swap(true, Ordering::AcqRel) {
        return;
    }
    let (engine, stream, partition) = (engine.clone(), stream.clone(), partition.clone());
    tokio::spawn(async move {
        let result = compact_partition(&engine, &stream, &partition).await;
        partition.compacting.store(false, Ordering::Release);
        if let Err(error) = result {
            if !stream.is_deleted() {
                let (stream, partition) = (&stream.name, partition.number);
                tracing::warn!(stream, partition, %error, "stream compaction stopped");
            }
        }
    });
}

impl Engine {
    /// Runs a compaction pass over every partition of a stream now, whatever is due (for
    /// operators and tests). Returns the records kept.
    pub async fn compact_stream(&self, stream: &str) -> Result<u64, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        if stream.options().cleanup != crate::stream::Cleanup::Compact {
            let stream = stream.name.clone();
            return Err(crate::stream::StreamError::NotCompacted { stream }.into());
        }
        let mut kept = 0;
        for partition in stream.partitions() {
            while partition.compacting.swap(true, Ordering::AcqRel) {
                tokio::task::yield_now().await;
            }
            let result = compact_partition(self, &stream, &partition).await;
            partition.compacting.store(false, Ordering::Release);
            kept += result?;
        }
        Ok(kept)
    }
}

/// One pass over `partition`; see the module doc. Returns the records kept.
async fn compact_partition(
    engine: &Engine,
    stream: &StreamRuntime,
    partition: &Arc<PartitionRuntime>,
) -> Result<u64, EngineError> {
    // Every batch in the index lies below the log's end (it is indexed once its append is
    // readable), and every batch appended from now on lies at or after it.
    let (entries, before) = {
        let mut state = partition.lock();
        state.appended_since_compaction = 0;
        (state.index.entries().to_vec(), partition.log.end_offset().0)
    };
    let Some(newest) = entries.last().map(|e| e.base) else {
        return Ok(0);
    };
    debug_assert!(entries.iter().all(|e| e.position < before));
    let (latest, producers_newest) = latest_offsets(partition, &entries).await?;
    let horizon = engine
        .now()
        .saturating_sub(stream.options().tombstone_retention_ms) as i64;
    let mut kept = 0u64;
    for chunk in chunks(&entries) {
        let batches = read(partition, chunk).await?;
        let mut copies: Vec<(u64, Option<Bytes>)> = Vec::with_capacity(batches.len());
        for (entry, batch) in &batches {
            let base = batch.header().base_offset;
            let mut count = 0u32;
            let copy = (batch.with_records(|record| {
                let newest_of_key = match &record.key {
                    Some(key) => latest.get(key) == Some(&record.offset),
                    None => true,
                };
                let expired_tombstone = record.value.is_none() && record.timestamp < horizon;
                let keep = newest_of_key && !expired_tombstone;
                count += u32::from(keep);
                keep
            }))
            .map_err(|source| super::batch_damaged(partition, entry.position, source))?;
            kept += u64::from(count);
            let needed =
                count > 0 || base == newest || is_producers_newest(batch, &producers_newest);
            copies.push((base, needed.then_some(copy)));
        }
        write_copies(partition, copies).await?;
    }
    // Every batch below `before` is now superseded by a copy or dropped. Storage deletes whole
    // segments only, so some may stay in the log: the mark keeps replay from indexing them
    // again. Written once the copies are durable; a crash before it leaves the originals
    // beside their copies, which replay resolves (the later copy wins).
    let mark = wharf_storage::MetaOp::Put(
        super::compacted_key(stream.resource, partition.number),
        before.into(),
    );
    engine.inner.store.meta_apply(vec![mark]).await?;
    let lowest = partition.lock().index.lowest_position_from(0);
    if let Some(lowest) = lowest {
        let start = partition.log.truncate_before(Offset(lowest)).await?;
        partition.lock().index.drop_below_position(start.0);
    }
    partition.lock().kept_by_compaction = kept;
    Ok(kept)
}

/// Whether `batch` is its producer's newest in the partition: the batch that keeps its
/// progress (see `stream::producers`).
fn is_producers_newest(batch: &RecordBatch, newest: &HashMap<i64, u64>) -> bool {
    let header = batch.header();
    header.producer.id >= 0 && newest.get(&header.producer.id) == Some(&header.base_offset)
}

/// Each key's newest offset among `entries`, and each producer's newest batch (its base).
async fn latest_offsets(
    partition: &PartitionRuntime,
    entries: &[BatchEntry],
) -> Result<(HashMap<Bytes, u64>, HashMap<i64, u64>), EngineError> {
    let (mut latest, mut producers) = (HashMap::new(), HashMap::new());
    for chunk in chunks(entries) {
        for (entry, batch) in read(partition, chunk).await? {
            let header = batch.header();
            if header.producer.id >= 0 {
                producers.insert(header.producer.id, header.base_offset);
            }
            let records = batch
                .records()
                .map_err(|source| super::batch_damaged(partition, entry.position, source))?;
            for record in records {
                if let Some(key) = record.key {
                    latest.insert(key, record.offset);
                }
            }
        }
    }
    Ok((latest, producers))
}

fn chunks(entries: &[BatchEntry]) -> Vec<&[BatchEntry]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, entry) in entries.iter().enumerate() {
        if i > start && bytes + entry.bytes as usize > PASS_CHUNK_BYTES {
            chunks.push(&entries[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += entry.bytes as usize;
    }
    if start < entries.len() {
        chunks.push(&entries[start..]);
    }
    chunks
}

/// The batches of `entries` with their entries; a batch no longer readable is left out.
async fn read(
    partition: &PartitionRuntime,
    entries: &[BatchEntry],
) -> Result<Vec<(BatchEntry, RecordBatch)>, EngineError> {
    let positions: Vec<Offset> = entries.iter().map(|e| Offset(e.position)).collect();
    let records = partition.log.read_many(&positions).await?;
    let mut batches = Vec::with_capacity(records.len());
    for (record, entry) in records.into_iter().zip(entries) {
        let Some(record) = record else {
            continue;
        };
        let batch = RecordBatch::parse(record.payload)
            .map_err(|source| super::batch_damaged(partition, entry.position, source))?;
        batches.push((*entry, batch));
    }
    Ok(batches)
}

/// Writes the copies and points the index at them; batches without a copy leave the index.
async fn write_copies(
    partition: &Arc<PartitionRuntime>,
    copies: Vec<(u64, Option<Bytes>)>,
) -> Result<(), EngineError> {
    let payloads: Vec<Bytes> = copies.iter().filter_map(|(_, copy)| copy.clone()).collect();
    let positions = if payloads.is_empty() {
        0..0
    } else {
        partition.append_copies(&payloads).await?
    };
    let mut position = positions.start;
    let mut state = partition.lock();
    for (base, copy) in copies {
        match copy {
            Some(copy) => {
                let batch = RecordBatch::parse(copy)
                    .map_err(|source| super::batch_damaged(partition, position, source))?;
                let entry = super::partition::entry_of(batch.header(), position);
                state.index.replace(base, Some(entry));
                position += 1;
            }
            None => state.index.replace(base, None),
        }
    }
    Ok(())
}
