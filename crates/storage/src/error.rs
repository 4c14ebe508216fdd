//! The storage error type: every failure names the file and what went wrong.

use crate::record::Offset;
use std::{io, path::PathBuf, sync::Arc};

/// A storage failure. Cloneable because one failed group commit answers many appenders.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed (disk full, permission, hardware). Data already written stays
    /// consistent; the operation can be retried once the cause is gone.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The record at `offset` is damaged (recovery found it so, or it failed its checksum or
    /// framing check when read). Only that offset fails: a reader may go on from the next one.
    #[error("corrupt record {offset} in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: Offset,
        position: u64,
        reason: &'static str,
    },
    /// The disk filled up and its last space is kept for the writes that free space (acks,
    /// nacks, purges, deletes): writes that add data are refused until space is freed. See
    /// `reserve.rs`.
    #[error(
        "disk full: the remaining space is reserved for acks, purges and deletes; sends and \
         creates resume once space is freed"
    )]
    SpaceReserved,
    /// A record payload larger than the framing allows.
    #[error("record payload of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    /// The offset was removed by retention or settlement.
    #[error("offset {offset} is below the log start {start}")]
    OffsetTruncated { offset: u64, start: u64 },
    /// The metadata file could not be parsed.
    #[error("metadata file {} is invalid: {reason}", path.display())]
    MetaInvalid { path: PathBuf, reason: String },
    /// The metadata snapshot is gone while the journal or the logs show there was state: a
    /// start would silently forget every definition and orphan the logs. The operator
    /// restores the file (or moves the data directory aside to start empty).
    #[error(
        "metadata snapshot {} is missing but {evidence}; restore it from a backup, or move the \
         data directory aside to start empty",
        path.display()
    )]
    MetaMissing {
        path: PathBuf,
        evidence: &'static str,
    },
    /// A conditional append expected the log to end at `expected` (the offset its first record
    /// would take), but it ends at `actual`, counting appends still being committed. Nothing was
    /// written. The event store's expected-version check is this condition.
    #[error("append expected the log to end at offset {expected}, but it ends at {actual}")]
    ConditionFailed { expected: Offset, actual: Offset },
    /// The log was closed; no more appends are accepted.
    #[error("log {} is closed", path.display())]
    Closed { path: PathBuf },
    /// Another open store, in this process or another, holds the data directory's lock. `pid`
    /// is what the owner wrote into the lock file, if it has yet.
    #[error(
        "data directory {} is in use by another Wharf process{}",
        dir.display(),
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, pid: Option<u32> },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// True when the failure is a full disk (ENOSPC or EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::SpaceReserved => true,
            StorageError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ),
            _ => false,
        }
    }
}
