//! Disk space policy: a full disk never locks users out of the operations that free it.
//!
//! Storage keeps a reserve of space (for files: `DATA_DIR/reserve`, see the storage crate).
//! The engine sorts writes into two kinds:
//! - Writes that free space: settle records (acks, nacks, purges, drops, expiries) and the
//!   metadata changes that delete queues and topics. One that fails for want of space
//!   releases the reserve and is tried once more ([`append_freeing`], [`meta_apply_freeing`]).
//! - Writes that add data: sends, publishes, creating queues and topics, redrives. While the
//!   reserve is spent they are refused at once with [`StorageError::SpaceReserved`] (507 over
//!   HTTP), so the released space serves the writes that free more ([`Engine::check_space`]).
//!
//! Once consumers and purges have freed space (reclaim deletes whole WAL segments), the
//! reserve is taken back and writes that add data resume: tried at most once a second, from
//! reclaim and from a refused write (which first reclaims). Copying stragglers forward in the WAL adds data too, so
//! it waits while the reserve is spent.

use super::Engine;
use crate::error::EngineError;
use bytes::Bytes;
use std::{ops::Range, sync::atomic::Ordering};
use wharf_storage::{LogStore, MetaOp, Offset, Storage, StorageError};

/// At most one attempt a second to take the reserve back: each costs a statvfs, and one that
/// succeeds an allocation and an fsync.
const RESTORE_INTERVAL_MS: u64 = 1_000;

/// Appends records that free space (settle records): on a full disk, releases the reserve and
/// tries once more.
pub(crate) async fn append_freeing(
    store: &dyn Storage,
    log: &dyn LogStore,
    records: &[Bytes],
) -> Result<Range<Offset>, StorageError> {
    match log.append(records, None).await {
        Err(error) if error.is_disk_full() && released(store).await => {
            log.append(records, None).await
        }
        written => written,
    }
}

/// Applies a metadata change that frees space (a delete): on a full disk, releases the reserve
/// and tries once more.
pub(crate) async fn meta_apply_freeing(
    store: &dyn Storage,
    ops: Vec<MetaOp>,
) -> Result<(), StorageError> {
    match store.meta_apply(ops.clone()).await {
        Err(error) if error.is_disk_full() && released(store).await => store.meta_apply(ops).await,
        applied => applied,
    }
}

/// Releases the reserve; true if that freed space worth a retry.
async fn released(store: &dyn Storage) -> bool {
    match store.release_reserve().await {
        Ok(freed) => freed,
        Err(error) => {
            tracing::warn!(%error, "could not release the disk reserve");
            false
        }
    }
}

impl Engine {
    /// Refuses a write that adds data while the reserve is spent, after trying (at most once
    /// a second) to free what settled and to take the reserve back: so a client retrying a
    /// refused send is what brings sends back, without a timer of its own.
    pub(crate) async fn check_space(&self) -> Result<(), EngineError> {
        if !self.inner.store.space_short() {
            return Ok(());
        }
        self.reclaim().await;
        self.restore_space().await;
        match self.inner.store.space_short() {
            true => Err(EngineError::Storage(StorageError::SpaceReserved)),
            false => Ok(()),
        }
    }

    /// Takes the reserve back if it is spent and the disk has room again; at most once a
    /// second.
    pub(crate) async fn restore_space(&self) {
        let store = &self.inner.store;
        if !store.space_short() {
            return;
        }
        let now = self.now();
        let last = self.inner.last_restore_at.load(Ordering::Acquire);
        if now < last.saturating_add(RESTORE_INTERVAL_MS)
            || (self.inner.last_restore_at)
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        if let Err(error) = store.restore_reserve().await {
            tracing::debug!(%error, "the disk reserve cannot be taken back yet");
        }
    }
}
