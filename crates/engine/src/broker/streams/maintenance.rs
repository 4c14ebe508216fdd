//! The streams' housekeeping: one task per engine that, every second of the engine's clock,
//! removes consumer-group members whose session ran out, applies retention to partitions with
//! cleanup `delete`, and starts compaction passes that are due on partitions with `compact`.
//! Time is the engine's clock, so tests move it by hand.

use super::{partition::PartitionRuntime, StreamRuntime};
use crate::{
    broker::{Engine, Inner},
    stream::{Cleanup, StreamOptions},
};
use std::sync::{atomic::Ordering, Arc, Weak};
use wharf_storage::Offset;

/// How often the task looks: retention and member expiry act at most this late.
pub const MAINTENANCE_INTERVAL_MS: u64 = 1_000;

/// Starts the task; it ends when the engine closes or is dropped.
pub(crate) fn spawn(engine: &Engine) {
    tokio::spawn(run(Arc::downgrade(&engine.inner)));
}

async fn run(inner: Weak<Inner>) {
    loop {
        let Some(engine) = inner.upgrade().map(|inner| Engine { inner }) else {
            return;
        };
        if engine.inner.closing.load(Ordering::Acquire) {
            return;
        }
        let now = engine.now();
        engine.maintain_streams(now).await;
        let clock = engine.inner.clock.clone();
        drop(engine);
        clock
            .sleep_until(now.saturating_add(MAINTENANCE_INTERVAL_MS))
            .await;
    }
}

impl Engine {
    /// One round of housekeeping over every stream; see the module doc.
    pub(crate) async fn maintain_streams(&self, now: u64) {
        let streams: Vec<Arc<StreamRuntime>> = self.streams().values().cloned().collect();
        for stream in streams {
            expire_members(&stream, now);
            let options = stream.options();
            for partition in stream.partitions() {
                match options.cleanup {
                    Cleanup::Delete => {
                        if let Err(error) = apply_retention(&partition, &options, now).await {
                            let (stream, partition) = (&stream.name, partition.number);
                            tracing::warn!(stream, partition, %error, "stream retention failed");
                        }
                    }
                    Cleanup::Compact => super::compaction::maybe_compact(self, &stream, &partition),
                }
            }
        }
    }
}

fn expire_members(stream: &StreamRuntime, now: u64) {
    let mut groups = stream.lock_groups();
    groups.retain(|name, group| {
        for member in group.expire(now) {
            tracing::info!(stream = %stream.name, group = %name, %member, "consumer group member removed: its session expired");
        }
        !group.is_empty()
    });
}

/// Deletes the segments retention lets go, and forgets their batches. Storage deletes whole
/// segments only, so the partition may keep records past the limits until the segment
/// holding them is wholly past them.
pub(crate) async fn apply_retention(
    partition: &PartitionRuntime,
    options: &StreamOptions,
    now: u64,
) -> Result<(), crate::error::EngineError> {
    if options.retention_ms.is_none() && options.retention_bytes.is_none() {
        return Ok(());
    }
    let position = {
        let state = partition.lock();
        let cut = state
            .index
            .retention_cut(now, options.retention_ms, options.retention_bytes);
        if cut <= state.index.earliest() {
            return Ok(());
        }
        state.index.lowest_position_from(cut)
    };
    let Some(position) = position else {
        return Ok(());
    };
    if position <= partition.log.start_offset().0 {
        return Ok(());
    }
    let start = partition.log.truncate_before(Offset(position)).await?;
    partition.lock().index.drop_below_position(start.0);
    Ok(())
}
