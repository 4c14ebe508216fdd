//! In-memory storage: the seam's second implementation, for tests and the simulation.
//!
//! [`MemoryStore`] keeps the same promises as the file store (`tests/conformance.rs` runs one
//! suite against both) and adds what a simulation needs to break them on purpose:
//! - [`MemoryStore::crash`] loses everything not yet "synced": lazy appends no commit has
//!   taken, appends still waiting for a held commit, and the tail of transient logs. What a
//!   new process would find on disk stays, and the same store then serves as that process's.
//! - [`MemoryStore::reopen`] is the clean restart: every pending append is committed first.
//! - [`MemoryStore::fail_appends`] makes the next commits fail with an I/O error, leaving
//!   nothing written and handing their offsets out again, as a failed fdatasync does.
//! - [`MemoryStore::hold_commits`] keeps appends waiting (offsets taken, records not yet
//!   readable) until [`MemoryStore::release_commits`], so a crash can land while they are in
//!   flight; [`MemoryStore::held_appends`] says how many wait.
//!
//! Deterministic: no real time, no threads, no spawned tasks. A commit happens inside the call
//! that causes it, so the same calls in the same order always give the same log.
//!
//! Each log's records live in a cell that outlives restarts (the "disk"); a handle belongs to
//! one generation of its cell and refuses appends with [`StorageError::Closed`] once the log
//! is closed, deleted, crashed or reopened. Locks: the store's before a cell's, never the
//! reverse; fault switches are atomics, so a cell never needs the store's lock.

use crate::{
    error::StorageError,
    log::LAZY_PENDING_BYTES_MAX,
    meta::MetaOp,
    record::{self, Offset, Record, RECORD_PAYLOAD_BYTES_MAX},
    seam::{Durability, LogOptions, LogStore, Storage, StorageFuture},
};
use bytes::Bytes;
use serde_json::Value;
use std::{
    collections::{BTreeMap, VecDeque},
    io,
    ops::Range,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, MutexGuard,
    },
};
use tokio::sync::{oneshot, watch};

/// Logs and metadata in memory. Clones share everything, so a test can keep one to crash the
/// store while the engine holds another as `Arc<dyn Storage>`.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

/// A handle to one in-memory log, valid for one generation of it.
#[derive(Debug)]
pub struct MemoryLog {
    cell: Arc<LogCell>,
    generation: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<StoreState>,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct StoreState {
    logs: BTreeMap<String, Arc<LogCell>>,
    meta: BTreeMap<String, Value>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Faults {
    /// Commits still to fail.
    append_failures: AtomicU32,
    commits_held: AtomicBool,
}

/// One log's records: what survives restarts.
#[derive(Debug)]
struct LogCell {
    name: String,
    state: Mutex<LogState>,
    /// End offset readers may see; waiting readers subscribe to it.
    visible: watch::Sender<u64>,
    faults: Arc<Faults>,
}

/// ```text
/// start          synced         visible              next
///   | durable      | readable, lost | pending: offsets |
///   | records      | in a crash     | taken, unreadable|
/// ```
/// `synced` may lag below `start` after a truncation of a transient log; a crash then leaves
/// the log empty at `start`.
#[derive(Debug)]
struct LogState {
    /// Records from `start` to `next`.
    records: VecDeque<Bytes>,
    start: u64,
    synced: u64,
    visible: u64,
    /// Frame bytes of the pending records, as the file log counts them for its lazy limit.
    pending_bytes: usize,
    /// Appends waiting for a held commit; the next commit answers them all.
    waiting: Vec<oneshot::Sender<Result<(), StorageError>>>,
    durability: Durability,
    generation: u64,
    open: bool,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A crash and a restart: every log loses what is not synced (see the module header),
    /// appends waiting for a held commit fail with [`StorageError::Closed`], every handle is
    /// closed, and the store opens logs again for the "new process". Metadata changes are
    /// synced when applied and stay. Fault switches ([`MemoryStore::fail_appends`],
    /// [`MemoryStore::hold_commits`]) stay as they were: the simulation decides when the disk
    /// recovers.
    pub fn crash(&self) {
        let mut state = self.shared.lock();
        state.closed = false;
        for cell in state.logs.values() {
            let mut log = cell.lock();
            let end = log.synced.max(log.start);
            let kept = (end - log.start) as usize;
            log.records.truncate(kept);
            (log.synced, log.visible, log.pending_bytes) = (end, end, 0);
            log.answer_waiting(|| Err(cell.closed_error()));
            log.open = false;
            log.check();
            cell.visible.send_replace(end);
        }
    }

    /// A clean restart: pending appends are committed and synced (unless a commit fails), every
    /// handle is closed, and the store opens logs again. What [`Storage::close`] followed by a
    /// new process does, in one call.
    pub fn reopen(&self) {
        let mut state = self.shared.lock();
        state.closed = false;
        for cell in state.logs.values() {
            cell.close_generation();
        }
    }

    /// Fails the next `count` commits with an I/O error (EIO), each losing every record it
    /// would have made durable; 0 ends the failures. A commit is what a durable append
    /// causes (taking lazy appends waiting before it along) or what the lazy limit starts.
    pub fn fail_appends(&self, count: u32) {
        self.shared
            .faults
            .append_failures
            .store(count, Ordering::SeqCst);
    }

    /// Makes durable appends wait, offsets taken but records unreadable, until
    /// [`MemoryStore::release_commits`]; a [`MemoryStore::crash`] meanwhile loses them.
    pub fn hold_commits(&self) {
        self.shared
            .faults
            .commits_held
            .store(true, Ordering::SeqCst);
    }

    /// Appends waiting for a held commit, over every log: how a simulation that drove an
    /// operation until nothing could run tells that it waits on storage, not on a lost wake-up.
    pub fn held_appends(&self) -> usize {
        let state = self.shared.lock();
        (state.logs.values())
            .map(|cell| cell.lock().waiting.len())
            .sum()
    }

    /// Commits every pending append, log by log in name order, and commits at once again.
    pub fn release_commits(&self) {
        self.shared
            .faults
            .commits_held
            .store(false, Ordering::SeqCst);
        let state = self.shared.lock();
        for cell in state.logs.values() {
            let _ = cell.lock().commit(cell);
        }
    }
}

impl Storage for MemoryStore {
    fn open_log<'a>(
        &'a self,
        name: &'a str,
        options: LogOptions,
    ) -> StorageFuture<'a, Arc<dyn LogStore>> {
        Box::pin(async move {
            let log = self.open(name, options)?;
            Ok(Arc::new(log) as Arc<dyn LogStore>)
        })
    }

    fn delete_log<'a>(&'a self, name: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let cell = self.shared.lock().logs.remove(name);
            if let Some(cell) = cell {
                cell.close_generation();
            }
            Ok(())
        })
    }

    fn meta_get(&self, key: &str) -> Option<Value> {
        self.shared.lock().meta.get(key).cloned()
    }

    fn meta_range(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(String, Value)> {
        crate::meta::entries_range(&self.shared.lock().meta, prefix, after, limit)
    }

    fn meta_apply(&self, ops: Vec<MetaOp>) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let mut state = self.shared.lock();
            for op in ops {
                match op {
                    MetaOp::Put(key, value) => state.meta.insert(key, value),
                    MetaOp::Delete(key) => state.meta.remove(&key),
                };
            }
            Ok(())
        })
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let mut state = self.shared.lock();
            state.closed = true;
            for cell in state.logs.values() {
                cell.close_generation();
            }
            Ok(())
        })
    }
}

impl MemoryStore {
    fn open(&self, name: &str, options: LogOptions) -> Result<MemoryLog, StorageError> {
        // The file store's precondition, kept here so that tests catch a bad name too.
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
            "log names are single path components"
        );
        let mut state = self.shared.lock();
        if state.closed {
            return Err(StorageError::Closed {
                path: memory_path(name),
            });
        }
        let faults = self.shared.faults.clone();
        let cell = state
            .logs
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(LogCell::new(name, faults)))
            .clone();
        let mut log = cell.lock();
        if !log.open {
            log.open = true;
            log.generation += 1;
            log.durability = options.durability;
        }
        let generation = log.generation;
        drop(log);
        Ok(MemoryLog { cell, generation })
    }
}

impl LogStore for MemoryLog {
    fn append<'a>(
        &'a self,
        records: &'a [Bytes],
        condition: Option<Offset>,
    ) -> StorageFuture<'a, Range<Offset>> {
        Box::pin(async move {
            let (range, waiting) = {
                let mut log = self.lock_open()?;
                let range = log.reserve(records, condition)?;
                if range.is_empty() {
                    return Ok(range);
                }
                if self.cell.faults.commits_held.load(Ordering::SeqCst) {
                    let (done, answer) = oneshot::channel();
                    log.waiting.push(done);
                    (range, Some(answer))
                } else {
                    log.commit(&self.cell)?;
                    (range, None)
                }
            };
            match waiting {
                None => Ok(range),
                Some(answer) => match answer.await {
                    Ok(result) => result.map(|()| range),
                    Err(_) => Err(self.cell.closed_error()),
                },
            }
        })
    }

    fn append_lazy(&self, records: &[Bytes]) -> Result<Range<Offset>, StorageError> {
        let mut log = self.lock_open()?;
        let range = log.reserve(records, None)?;
        let held = self.cell.faults.commits_held.load(Ordering::SeqCst);
        if log.pending_bytes >= LAZY_PENDING_BYTES_MAX && !held {
            // As in the file log, the lazy appender is not told: its records are simply lost.
            let _ = log.commit(&self.cell);
        }
        Ok(range)
    }

    fn read(&self, offset: Offset) -> StorageFuture<'_, Option<Record>> {
        Box::pin(async move { Ok(self.cell.read_batch(offset, 1, usize::MAX)?.pop()) })
    }

    fn read_many(&self, offsets: &[Offset]) -> StorageFuture<'_, Vec<Option<Record>>> {
        let offsets = offsets.to_vec();
        Box::pin(async move {
            (offsets.into_iter())
                .map(|offset| Ok(self.cell.read_batch(offset, 1, usize::MAX)?.pop()))
                .collect()
        })
    }

    fn read_batch(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> StorageFuture<'_, Vec<Record>> {
        Box::pin(async move { self.cell.read_batch(from, max_records, max_bytes) })
    }

    fn wait_for(&self, offset: Offset) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            // Subscribed before looking, so a commit in between is not missed.
            let mut visible = self.cell.visible.subscribe();
            loop {
                {
                    let log = self.cell.lock();
                    if log.visible > offset.0 {
                        return Ok(());
                    }
                    if !log.is_open(self.generation) {
                        return Err(self.cell.closed_error());
                    }
                }
                if visible.changed().await.is_err() {
                    return Err(self.cell.closed_error());
                }
            }
        })
    }

    fn start_offset(&self) -> Offset {
        Offset(self.cell.lock().start)
    }

    fn end_offset(&self) -> Offset {
        Offset(self.cell.lock().visible)
    }

    fn truncate_before(&self, offset: Offset) -> StorageFuture<'_, Offset> {
        Box::pin(async move {
            let mut log = self.lock_open()?;
            let start = offset.0.min(log.visible).max(log.start);
            let dropped = (start - log.start) as usize;
            log.records.drain(..dropped);
            log.start = start;
            log.check();
            Ok(Offset(start))
        })
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            if self.cell.lock().is_open(self.generation) {
                self.cell.close_generation();
            }
            Ok(())
        })
    }
}

impl MemoryLog {
    /// The log's state, or [`StorageError::Closed`] if this handle's generation has ended.
    fn lock_open(&self) -> Result<MutexGuard<'_, LogState>, StorageError> {
        let log = self.cell.lock();
        if log.is_open(self.generation) {
            Ok(log)
        } else {
            Err(self.cell.closed_error())
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, StoreState> {
        // Nothing panics while holding it, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Faults {
    /// Takes one injected failure, if any is left.
    fn take_append_failure(&self) -> bool {
        self.append_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl LogCell {
    fn new(name: &str, faults: Arc<Faults>) -> LogCell {
        LogCell {
            name: name.to_string(),
            state: Mutex::new(LogState {
                records: VecDeque::new(),
                start: 0,
                synced: 0,
                visible: 0,
                pending_bytes: 0,
                waiting: Vec::new(),
                durability: Durability::Durable,
                generation: 0,
                open: false,
            }),
            visible: watch::Sender::new(0),
            faults,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // Nothing panics while holding it, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the current generation as a clean close does: pending appends are committed and
    /// everything is synced. Waiting readers wake and find the handle closed.
    fn close_generation(&self) {
        let mut log = self.lock();
        // A failed commit has already failed its appends; a close still completes, as the
        // file log's does.
        let _ = log.commit(self);
        log.synced = log.visible;
        log.open = false;
        self.visible.send_modify(|_| ());
    }

    fn read_batch(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StorageError> {
        let log = self.lock();
        if from.0 < log.start {
            return Err(StorageError::OffsetTruncated {
                offset: from.0,
                start: log.start,
            });
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for offset in from.0..log.visible {
            let payload = &log.records[(offset - log.start) as usize];
            let fits = bytes.saturating_add(payload.len()) <= max_bytes;
            if out.len() == max_records || (!out.is_empty() && !fits) {
                break;
            }
            bytes = bytes.saturating_add(payload.len());
            out.push(Record {
                offset: Offset(offset),
                payload: payload.clone(),
            });
        }
        Ok(out)
    }

    fn closed_error(&self) -> StorageError {
        StorageError::Closed {
            path: memory_path(&self.name),
        }
    }
}

impl LogState {
    fn next(&self) -> u64 {
        self.start + self.records.len() as u64
    }

    fn is_open(&self, generation: u64) -> bool {
        self.open && self.generation == generation
    }

    /// Checks an append and takes its offsets; the records wait for a commit.
    fn reserve(
        &mut self,
        records: &[Bytes],
        condition: Option<Offset>,
    ) -> Result<Range<Offset>, StorageError> {
        if let Some(large) = records.iter().find(|r| r.len() > RECORD_PAYLOAD_BYTES_MAX) {
            return Err(StorageError::RecordTooLarge {
                size: large.len(),
                max: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        let first = Offset(self.next());
        if let Some(expected) = condition.filter(|expected| *expected != first) {
            return Err(StorageError::ConditionFailed {
                expected,
                actual: first,
            });
        }
        for payload in records {
            self.pending_bytes += record::frame_len(payload.len());
            self.records.push_back(payload.clone());
        }
        self.check();
        Ok(first..Offset(self.next()))
    }

    /// Makes every pending record readable (and synced, for a durable log) and answers the
    /// appends waiting for it; or, with an injected failure, drops them all, so their offsets
    /// are handed out again, and fails those appends.
    fn commit(&mut self, cell: &LogCell) -> Result<(), StorageError> {
        if self.visible == self.next() {
            return Ok(());
        }
        self.pending_bytes = 0;
        if cell.faults.take_append_failure() {
            let error = StorageError::Io {
                path: memory_path(&cell.name),
                source: Arc::new(io::Error::from_raw_os_error(libc::EIO)),
            };
            self.records.truncate((self.visible - self.start) as usize);
            self.answer_waiting(|| Err(error.clone()));
            self.check();
            return Err(error);
        }
        self.visible = self.next();
        if self.durability == Durability::Durable {
            self.synced = self.visible;
        }
        self.answer_waiting(|| Ok(()));
        self.check();
        cell.visible.send_replace(self.visible);
        Ok(())
    }

    /// The marks keep the order of the diagram on [`LogState`]; a broken order is a bug here.
    fn check(&self) {
        assert!(
            self.start <= self.visible && self.visible <= self.next(),
            "memory log {}..{}..{} out of order",
            self.start,
            self.visible,
            self.next()
        );
        assert!(self.synced <= self.visible, "synced past the readable end");
        assert!(
            self.waiting.is_empty() || self.visible < self.next(),
            "appends wait with nothing pending"
        );
    }

    fn answer_waiting(&mut self, answer: impl Fn() -> Result<(), StorageError>) {
        for done in self.waiting.drain(..) {
            let _ = done.send(answer());
        }
    }
}

/// Where errors say a memory log lives: a path, since storage errors name one.
fn memory_path(name: &str) -> PathBuf {
    PathBuf::from("memory/logs").join(name)
}
