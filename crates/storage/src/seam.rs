//! The storage seam: the narrow, async interface the engine holds instead of files.
//!
//! [`LogStore`] is one log (append, read, wait, truncate, close); [`Storage`] opens and deletes
//! logs by name and keeps the metadata store. The file [`Store`](crate::Store) and
//! [`Log`](crate::Log) are the real implementation; [`MemoryStore`](crate::MemoryStore) serves
//! tests and the simulation. `tests/conformance.rs` runs one suite against both, so the promises
//! below are checked, not hoped for. The engine names its logs and says what it needs of them
//! ([`LogOptions`]); segment sizes, files, fsync and recovery stay behind the seam, which is
//! what lets another backend (the PostgreSQL path of DESIGN.md) take the place of the files.
//!
//! **Object-safe, with boxed futures.** The engine holds thousands of logs in maps and tasks,
//! and the backend is chosen at start (files, memory, later a database). A generic parameter
//! (`Engine<S: Storage>` with `async fn` in traits) would thread through every engine type,
//! rule out choosing the backend at run time, and still need spelled-out `Send` bounds on every
//! future. `Arc<dyn LogStore>` costs one small allocation per call, next to an append that
//! already encodes its records and allocates a channel. It is the trade the `async-trait` crate
//! makes, without the dependency: [`StorageFuture`] is the box.
//!
//! **No blocking on runtime threads.** An implementation runs every call that may block (read,
//! write, fsync, unlink, rename, directory removal) on the blocking pool or its own threads; a
//! method that returns a plain value (`append_lazy`, `start_offset`, `end_offset`,
//! `meta_get`, `meta_list`) never blocks.

use crate::{
    error::StorageError,
    meta::{MetaDamage, MetaOp},
    record::{Offset, Record},
};
use bytes::Bytes;
use serde_json::Value;
use std::{fmt, future::Future, ops::Range, path::Path, pin::Pin, sync::Arc};

/// What every async seam call returns: boxed so that the traits stay object-safe, `Send` so
/// that any task may await it.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// One log: records with sequential offsets from 0, appended atomically, read back by offset.
///
/// Promises, checked by `tests/conformance.rs` against every implementation:
/// - Offsets are sequential with no gaps. An append's records get consecutive offsets and are
///   all kept or all lost, whatever happens.
/// - An append that fails leaves nothing readable, now or after a restart, and its offsets are
///   handed out again.
/// - A record is readable once its append has completed, and stays readable until
///   [`truncate_before`](LogStore::truncate_before) passes it.
/// - A completed append of a durable log survives a crash (for files, unless the operator
///   relaxed the fsync policy); lazy appends and the appends of transient logs may be lost,
///   but only from the end, never leaving a gap.
/// - Damage (stored bytes changed under the log: a bad disk block, a file edited by hand) costs
///   only the damaged records: a read of a damaged offset fails with
///   [`StorageError::Corrupt`], for that offset only, and the records before and after it stay
///   readable at their offsets. A batch read stops before a damaged offset and returns what
///   precedes it; the next read from the damaged offset fails. The memory store has no bytes
///   to damage, so it never returns `Corrupt`.
pub trait LogStore: Send + Sync + fmt::Debug {
    /// Appends `records` as one atomic unit and returns their offsets once they are durable
    /// (readable and surviving a crash, for a durable log). With a `condition`, appends only if
    /// the log ends there: the offset the first record would take, counting appends still
    /// being committed; otherwise fails with [`StorageError::ConditionFailed`] and writes
    /// nothing. The check and the offset assignment are one atomic step, so of two appends
    /// expecting the same end at most one succeeds. This is the event store's expected version.
    ///
    /// Cancelling the returned future does not cancel an append already handed to storage:
    /// it may still complete.
    fn append<'a>(
        &'a self,
        records: &'a [Bytes],
        condition: Option<Offset>,
    ) -> StorageFuture<'a, Range<Offset>>;

    /// Appends `records` as one atomic unit without waiting: they ride the next commit another
    /// append causes (or one the implementation starts to bound memory, or close). For records
    /// whose loss in a crash is harmless, such as delivery counts. Not readable until that
    /// commit; a failure of that commit loses them silently.
    fn append_lazy(&self, records: &[Bytes]) -> Result<Range<Offset>, StorageError>;

    /// The record at `offset`, or `None` if it is not readable yet.
    /// [`StorageError::OffsetTruncated`] below [`start_offset`](LogStore::start_offset).
    fn read(&self, offset: Offset) -> StorageFuture<'_, Option<Record>>;

    /// The records at `offsets` (scattered, in any order), each `None` if not readable yet:
    /// one call for a batch of deliveries, so that storage serves them with one trip to the
    /// disk at most. [`StorageError::OffsetTruncated`] if any lies below the start;
    /// [`StorageError::Corrupt`] if any is damaged (read them one by one to tell which).
    fn read_many(&self, offsets: &[Offset]) -> StorageFuture<'_, Vec<Option<Record>>>;

    /// Up to `max_records` consecutive readable records from `from`, stopping before the
    /// payloads pass `max_bytes` in total; the first record is returned even if larger alone.
    /// Empty at or past the end. [`StorageError::OffsetTruncated`] below the start. Stops
    /// before a damaged offset, returning the records before it; fails with
    /// [`StorageError::Corrupt`] only when `from` itself is damaged.
    fn read_batch(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> StorageFuture<'_, Vec<Record>>;

    /// Completes once the record at `offset` is readable, without polling; fails with
    /// [`StorageError::Closed`] if the log closes first. For tailing readers.
    fn wait_for(&self, offset: Offset) -> StorageFuture<'_, ()>;

    /// The first offset still stored.
    fn start_offset(&self) -> Offset;

    /// One past the last readable record.
    fn end_offset(&self) -> Offset;

    /// Lets storage drop records below `offset` and returns the new start offset. Storage may
    /// keep some of them (the file store deletes whole segments only), so the start may stay
    /// below `offset`; it never passes `offset` or the end. Reads below the start fail with
    /// [`StorageError::OffsetTruncated`].
    fn truncate_before(&self, offset: Offset) -> StorageFuture<'_, Offset>;

    /// Finishes appends in flight (lazy ones too), makes everything durable and refuses
    /// appends from then on ([`StorageError::Closed`]). Readers waiting in
    /// [`wait_for`](LogStore::wait_for) wake. The records stay: opening the log again through
    /// [`Storage::open_log`] gives a new handle over them.
    fn close(&self) -> StorageFuture<'_, ()>;
}

/// A set of named logs and the metadata store: what the engine opens at start.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens the log `name` (one path-safe component, chosen by the engine), creating it
    /// empty if new. While it is open, every call returns a handle to the same log; after it
    /// is closed, a new handle over the same records.
    fn open_log<'a>(
        &'a self,
        name: &'a str,
        options: LogOptions,
    ) -> StorageFuture<'a, Arc<dyn LogStore>>;

    /// Closes the log `name` if open and deletes its records; a later open starts it empty at
    /// offset 0. Deleting a log that does not exist succeeds.
    fn delete_log<'a>(&'a self, name: &'a str) -> StorageFuture<'a, ()>;

    /// The metadata entry `key`. Answered from memory: definitions are few and small, and the
    /// node that applies a change is the one that reads it.
    fn meta_get(&self, key: &str) -> Option<Value>;

    /// Metadata entries whose key starts with `prefix`, in key order.
    fn meta_list(&self, prefix: &str) -> Vec<(String, Value)> {
        self.meta_range(prefix, None, usize::MAX)
    }

    /// A page of [`Storage::meta_list`]: up to `limit` entries whose key starts with `prefix`
    /// and sorts after `after` (exclusive; none: from the first), in key order. Costs the
    /// entries it returns, not the entries under the prefix.
    fn meta_range(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(String, Value)>;

    /// Metadata found damaged at open (entries or changes lost; the rest opened). Empty for a
    /// store whose metadata cannot be damaged.
    fn meta_damage(&self) -> Vec<MetaDamage> {
        Vec::new()
    }

    /// Applies every op or none, durably, before completing.
    fn meta_apply(&self, ops: Vec<MetaOp>) -> StorageFuture<'_, ()>;

    /// True while the disk's last space is kept for writes that free space: the engine then
    /// refuses writes that add data (sends, publishes, creates) with
    /// [`StorageError::SpaceReserved`]. Never blocks. A store without a disk is never short.
    fn space_short(&self) -> bool {
        false
    }

    /// Frees the space kept in reserve, for a write that frees space and failed for want of
    /// it; the store is short from then on. Returns whether any space was freed (false when
    /// the reserve is already spent or there is none): only then is a retry worth it.
    fn release_reserve(&self) -> StorageFuture<'_, bool> {
        Box::pin(async { Ok(false) })
    }

    /// While short: takes the reserve back if the disk has room again, and returns whether
    /// the store is no longer short. Called periodically by the engine.
    fn restore_reserve(&self) -> StorageFuture<'_, bool> {
        Box::pin(async { Ok(true) })
    }

    /// Closes every open log (see [`LogStore::close`]). The storage is then done: drop it.
    fn close(&self) -> StorageFuture<'_, ()>;
}

/// What the engine asks of a log: intent, never layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    pub durability: Durability,
    pub size: LogSize,
}

/// Whether a completed append must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A completed append survives a crash (under the operator's fsync policy, for files).
    #[default]
    Durable,
    /// Appends complete without waiting for the disk; a crash may lose the end of the log.
    /// For transient queues, whose messages are not promised to outlive the process.
    Transient,
}

/// How much a log is expected to hold; a hint for sizing files, never a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogSize {
    /// Kilobytes to a few megabytes (a topic's bindings): small segments, the first not set
    /// aside on disk before it is written, so that thousands of idle logs cost little disk.
    Small,
    /// Anything up to the disk: the queues' shared WALs.
    #[default]
    Large,
    /// From empty to anything up to the disk, and possibly thousands of them (stream
    /// partitions): nothing is set aside on disk before it is written and nothing is kept in
    /// memory for reads, so an idle log costs its open files and little else.
    Growing,
}

/// Runs blocking file work on the blocking pool and waits for it. A panic there is a bug and
/// resumes in the caller (as it would have inline); a runtime shutting down before the work
/// started reports the log or store at `path` as closed.
pub(crate) async fn off_runtime<T, F>(path: &Path, work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(StorageError::Closed {
            path: path.to_path_buf(),
        }),
    }
}
