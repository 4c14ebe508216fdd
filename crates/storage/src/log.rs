//! A log: append-only, segmented, group-committed records with sequential offsets.
//!
//! Appenders encode their records into one shared pending buffer under a short lock and wait.
//! One flusher at a time, on the blocking pool, takes the whole buffer, writes it with one
//! `pwrite` per segment touched and one `fdatasync`, then answers every appender in it: appends
//! that arrive while a sync runs share the next one (group commit). The flusher is spawned, not
//! run inside an appender's future, so a cancelled appender never stops a commit halfway.
//!
//! An append call is atomic: its records land in one segment and carry a "continues" flag on all
//! but the last, so recovery keeps all of them or none.
//!
//! Readers use positional reads on the segment files and see records only once they are durable
//! (or written, for the `interval` and `never` policies); [`Log::wait_for`] wakes tailing readers
//! without polling.

use crate::{
    batch::{Batch, PendingAppend},
    error::StorageError,
    faults::{Faults, FileOps},
    metrics::StorageMetrics,
    record::{Offset, Record, RECORD_PAYLOAD_BYTES_MAX},
    seam::{self, LogStore, StorageFuture},
    segment::{self, Damage, Quarantined, Scan, Segment},
    segment_writer::{self, SegmentWriter},
};
use bytes::Bytes;
use std::{
    fs::{self, File, OpenOptions},
    ops::Range,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, RwLock, Weak,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::sync::{oneshot, watch};

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After `fdatasync`: an acknowledged append survives power loss. The default.
    Always,
    /// After the write; the log is synced at least this often.
    Interval(Duration),
    /// After the write; synced only on rotation and close (transient data).
    Never,
}

/// How one log is laid out and committed.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment is sealed and a new one started when the next append would pass this size.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    /// Zero-fill segment files ahead of use, so a commit overwrites allocated blocks instead of
    /// growing the file (no size metadata to sync: 40% more small syncs per second here). Only
    /// done while the log's commits are small; see [`LARGE_COMMIT_BYTES`].
    pub preallocate: bool,
    /// Whether [`preallocate`](LogConfig::preallocate) also zero-fills the first segment of a
    /// new log. Off for logs that may stay empty or small (thousands of stream partitions):
    /// their first segment grows as it is written, and the next one is prepared once it is
    /// half full, as usual.
    pub preallocate_first: bool,
    /// Write with `O_DIRECT` where the filesystem allows it (see `segment_writer`).
    pub direct_io: bool,
    /// Test-only failures for the file calls; `None` in production.
    pub faults: Option<Arc<Faults>>,
    /// Bytes of the newest records appended through the seam kept in memory, so that a reader
    /// close behind the writer (a queue delivering what was just sent) is answered without a
    /// file read or a trip to the blocking pool. 0 keeps none.
    pub tail_cache_bytes: usize,
    /// With [`FsyncPolicy::Always`], under load: how long after the start of one commit the
    /// next may wait for more appends while what is pending is under [`GATHER_BYTES`], so that
    /// small appends arriving all the time (pipelining AMQP publishers) share one sync instead
    /// of a few each. The first commit after the log was idle never waits. It trades latency
    /// for CPU: appenders that each wait for their commit before the next (HTTP producers, a
    /// confirm-per-message publisher) only lose by it. Zero (the default): never waits.
    pub commit_gather: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::Always,
            preallocate: true,
            preallocate_first: true,
            direct_io: true,
            faults: None,
            tail_cache_bytes: 0,
            commit_gather: Duration::ZERO,
        }
    }
}

/// A handle to one log; clones share it.
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

/// Zero-filling writes use this chunk size: large enough to run at disk bandwidth, small enough
/// to keep a stack of zeroes cheap.
const ZERO_CHUNK_BYTES: usize = 1 << 20;
const SPARE_FILE_NAME: &str = "spare.tmp";

/// Lazy appends waiting past this many bytes start a commit themselves, so a log that only
/// gets lazy appends still writes them out and memory stays bounded.
pub const LAZY_PENDING_BYTES_MAX: usize = 64 << 10;

/// Average commit size from which the next segment is not zero-filled. Zero-filling writes every
/// byte twice: worth it when each sync carries a few kilobytes (the sync, not the bandwidth,
/// limits those), a loss when commits are large and bandwidth is the limit.
pub const LARGE_COMMIT_BYTES: u64 = 64 << 10;

/// A pending batch this large is committed without gathering more (see
/// [`LogConfig::commit_gather`]).
pub const GATHER_BYTES: usize = 256 << 10;

/// How many unwanted records a scattered read may read and drop between two wanted ones,
/// rather than make another positional read (see [`Log::read_scattered`]).
const RUN_GAP_RECORDS: u64 = 8;

/// Most bytes of records one positional read of a scattered read gathers (one record larger
/// than this is still read whole).
const RUN_READ_BYTES: usize = 1 << 20;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: LogConfig,
    ops: FileOps,
    metrics: Arc<StorageMetrics>,
    state: Mutex<State>,
    /// Signalled when a gathering flusher's pending batch is large enough, or the log closes.
    gathered: Condvar,
    writer: Mutex<Writer>,
    segments: RwLock<Vec<Arc<Segment>>>,
    /// End offset readers may see (durable, or written for relaxed policies).
    visible: watch::Sender<u64>,
    start: AtomicU64,
    /// Set once [`Log::close`] has drained, synced and stopped every thread of the log. Read by
    /// waiting readers without the state lock, so a close wakes them.
    close_finished: AtomicBool,
    /// The newest committed records appended through the seam; see
    /// [`LogConfig::tail_cache_bytes`].
    tail: Mutex<TailCache>,
}

/// Consecutive committed records from `base`, newest last, within a byte budget.
#[derive(Debug, Default)]
struct TailCache {
    base: u64,
    records: std::collections::VecDeque<Bytes>,
    bytes: usize,
    bytes_max: usize,
}

impl TailCache {
    /// Adds the committed records from offset `first`. Records that do not follow the cached
    /// ones (an append made outside the seam came between) start the cache afresh.
    fn push(&mut self, first: Offset, records: Vec<Bytes>) {
        if self.bytes_max == 0 {
            return;
        }
        if first.0 != self.base + self.records.len() as u64 {
            self.records.clear();
            self.bytes = 0;
            self.base = first.0;
        }
        for record in records {
            self.bytes += record.len();
            self.records.push_back(record);
        }
        while self.bytes > self.bytes_max {
            let Some(oldest) = self.records.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            self.base += 1;
        }
    }

    fn get(&self, offset: Offset) -> Option<Record> {
        let index = offset.0.checked_sub(self.base)?;
        let payload = self.records.get(usize::try_from(index).ok()?)?.clone();
        Some(Record { offset, payload })
    }
}

#[derive(Debug)]
struct State {
    next: Offset,
    pending: Batch,
    flushing: bool,
    /// The flusher waits on [`Inner::gathered`] for more appends.
    gathering: bool,
    closed: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    position: u64,
    segment_writer: SegmentWriter,
    /// Moving average of bytes per commit, steering preallocation.
    commit_bytes_average: u64,
    spare: Option<JoinHandle<Result<File, StorageError>>>,
    /// Written since the last sync.
    dirty: bool,
    last_sync: Instant,
}

/// What one flush achieved: the first `durable` appends of the batch are done; the rest failed.
struct FlushOutcome {
    durable: usize,
    error: Option<StorageError>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from whatever a crash left behind.
    ///
    /// Blocking: scans every segment to rebuild the index and verify checksums. A torn tail
    /// (invalid bytes after the last valid record of the last segment) is cut off. Damage (an
    /// invalid record with valid records after it, or a sealed segment ending early, in any
    /// segment) is never cut: it is logged once, counted in `corrupt_records`, listed by
    /// [`Log::damage`], and only reads of the damaged offsets fail.
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        metrics: Arc<StorageMetrics>,
    ) -> Result<Log, StorageError> {
        assert!(config.segment_bytes > 0);
        assert!(config.segment_bytes <= u64::from(u32::MAX) / 2);
        let dir = dir.as_ref().to_path_buf();
        let ops = FileOps::new(config.faults.clone());
        fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let spare = dir.join(SPARE_FILE_NAME);
        if spare.exists() {
            fs::remove_file(&spare).map_err(|e| StorageError::io(&spare, e))?;
        }
        let segments = open_segments(&dir, &config, &ops, &metrics)?;
        let active = segments.last().expect("a log has a segment").clone();
        let next = active.end_offset();
        let start = segments[0].base;
        metrics.segments.inc_by(segments.len() as i64);
        let inner = Arc::new(Inner {
            ops,
            metrics,
            state: Mutex::new(State {
                next,
                pending: Batch::starting_at(active.write_end()),
                flushing: false,
                gathering: false,
                closed: false,
                close_waiters: Vec::new(),
            }),
            gathered: Condvar::new(),
            writer: Mutex::new(Writer {
                position: active.write_end(),
                segment_writer: SegmentWriter::open(&active, active.write_end(), config.direct_io)?,
                commit_bytes_average: 0,
                active,
                spare: None,
                dirty: false,
                last_sync: Instant::now(),
            }),
            segments: RwLock::new(segments),
            visible: watch::Sender::new(next.0),
            start: AtomicU64::new(start.0),
            close_finished: AtomicBool::new(false),
            tail: Mutex::new(TailCache {
                base: next.0,
                bytes_max: config.tail_cache_bytes,
                ..TailCache::default()
            }),
            dir,
            config,
        });
        if let FsyncPolicy::Interval(period) = inner.config.fsync {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(sync_periodically(Arc::downgrade(&inner), period));
            }
        }
        Ok(Log { inner })
    }

    /// Appends `payloads` as one atomic unit and returns their offsets once the append is done
    /// under the log's fsync policy. Fails whole: on error none of the records will be read back.
    pub async fn append<I>(&self, payloads: I) -> Result<Range<Offset>, StorageError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.append_conditional(payloads, None).await
    }

    /// [`Log::append`], but only if the log ends at `condition` (when given): the offset the
    /// first record would take, counting appends still being committed. Otherwise fails with
    /// [`StorageError::ConditionFailed`] and writes nothing. The check and the offset assignment
    /// happen under one lock, so two appends expecting the same end cannot both succeed.
    pub async fn append_conditional<I>(
        &self,
        payloads: I,
        condition: Option<Offset>,
    ) -> Result<Range<Offset>, StorageError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.append_waiting(payloads, condition, Vec::new()).await
    }

    /// An append that waits for its commit; `cached` (the payloads again, or empty) goes to the
    /// tail cache once committed.
    async fn append_waiting<I>(
        &self,
        payloads: I,
        condition: Option<Offset>,
        cached: Vec<Bytes>,
    ) -> Result<Range<Offset>, StorageError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let (range, done) = self.enqueue(payloads, condition, true, cached)?;
        if range.is_empty() {
            return Ok(range);
        }
        match done.await {
            Ok(result) => result.map(|()| range),
            Err(_) => Err(StorageError::Closed {
                path: self.inner.dir.clone(),
            }),
        }
    }

    /// Appends `payloads` as one atomic unit without waiting, and without a commit of its own:
    /// they ride the next commit (one a running flusher makes next, or one another append
    /// starts), or go once [`LAZY_PENDING_BYTES_MAX`] are waiting, or at close. For records
    /// whose loss in a crash is harmless, such as delivery counts: they stop costing an fsync
    /// each.
    pub fn append_lazy<I>(&self, payloads: I) -> Result<Range<Offset>, StorageError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.enqueue(payloads, None, false, Vec::new())
            .map(|(range, _)| range)
    }

    /// Appends one record; see [`Log::append`].
    pub async fn append_one(&self, payload: impl AsRef<[u8]>) -> Result<Offset, StorageError> {
        self.append([payload]).await.map(|range| range.start)
    }

    /// Reads the record at `offset`, or `None` if it has not been appended (or made visible) yet.
    pub fn read(&self, offset: Offset) -> Result<Option<Record>, StorageError> {
        Ok(self.read_batch(offset, 1, usize::MAX)?.pop())
    }

    /// Reads up to `max_records` consecutive records from `from`, stopping early once
    /// `max_bytes` of frames are gathered (one record is returned even if larger). Blocking
    /// positional reads: fast from the page cache.
    pub fn read_batch(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StorageError> {
        let start = self.start_offset();
        if from < start {
            return Err(StorageError::OffsetTruncated {
                offset: from.0,
                start: start.0,
            });
        }
        let limit = Offset(*self.inner.visible.borrow());
        let mut out = Vec::new();
        let mut at = from;
        let mut bytes_read = 0;
        while at < limit && out.len() < max_records {
            let Some(segment) = self.inner.segment_for(at) else {
                break;
            };
            let before = out.len();
            let read = segment.read(
                at,
                limit,
                max_records - out.len(),
                max_bytes - bytes_read,
                &mut out,
            );
            match read {
                // The records before damage are returned; the next read from it fails.
                Err(StorageError::Corrupt { .. }) if !out.is_empty() => break,
                read => read?,
            }
            if out.len() == before {
                break;
            }
            bytes_read += out[before..].iter().map(|r| r.payload.len()).sum::<usize>();
            at = out.last().expect("read a record").offset.next();
            if at < segment.end_offset() || bytes_read >= max_bytes {
                // Stopped by a limit inside this segment.
                break;
            }
        }
        Ok(out)
    }

    /// Reads the records at scattered `wanted` offsets (each with the caller's index), one
    /// positional read per run of nearby offsets instead of one per record: a run spans at
    /// most [`RUN_GAP_RECORDS`] unwanted records between two wanted ones, which are read and
    /// dropped, and is read [`RUN_READ_BYTES`] at a time. What a run's reads do not give
    /// (damage, the end of the log) is read alone, so each answer is what [`Log::read`] gives.
    fn read_scattered(
        &self,
        mut wanted: Vec<(usize, Offset)>,
    ) -> Result<Vec<(usize, Option<Record>)>, StorageError> {
        wanted.sort_unstable_by_key(|(_, offset)| *offset);
        let mut out = Vec::with_capacity(wanted.len());
        let mut rest = &wanted[..];
        while !rest.is_empty() {
            let near =
                |pair: &[(usize, Offset)]| pair[1].1 .0 - pair[0].1 .0 <= RUN_GAP_RECORDS + 1;
            let (run, after) = rest.split_at(1 + rest.windows(2).take_while(|p| near(p)).count());
            rest = after;
            let records = match run.len() {
                1 => Vec::new(),
                _ => self.read_run(run),
            };
            for &(index, offset) in run {
                match records.binary_search_by_key(&offset, |record| record.offset) {
                    Ok(at) => out.push((index, Some(records[at].clone()))),
                    Err(_) => out.push((index, self.read(offset)?)),
                }
            }
        }
        Ok(out)
    }

    /// The records of `run` (sorted offsets) and those between them, in offset order, as far
    /// as batch reads get; errors end the reading and are left for single reads to report.
    fn read_run(&self, run: &[(usize, Offset)]) -> Vec<Record> {
        let last = run[run.len() - 1].1;
        let mut records: Vec<Record> = Vec::new();
        let mut wanted = run.iter().map(|(_, offset)| *offset);
        let mut next = wanted.next();
        while let Some(from) = next {
            let Ok(span) = usize::try_from(last.0 - from.0 + 1) else {
                break;
            };
            match self.read_batch(from, span, RUN_READ_BYTES) {
                Ok(batch) if !batch.is_empty() => {
                    let end = batch[batch.len() - 1].offset;
                    records.extend(batch);
                    next = wanted.find(|offset| *offset > end);
                }
                _ => break,
            }
        }
        records
    }

    /// Waits until a record at `offset` is readable (or the log closes).
    pub async fn wait_for(&self, offset: Offset) {
        let mut visible = self.inner.visible.subscribe();
        let closed = &self.inner.close_finished;
        let _ = visible
            .wait_for(|end| *end > offset.0 || closed.load(Ordering::Acquire))
            .await;
    }

    /// The first offset still stored.
    pub fn start_offset(&self) -> Offset {
        Offset(self.inner.start.load(Ordering::Acquire))
    }

    /// The offset the next readable record will have: one past the last visible record.
    pub fn end_offset(&self) -> Offset {
        Offset(*self.inner.visible.borrow())
    }

    /// The damage recovery found at open, in offset order: each damaged offset range with its
    /// file, byte position and reason. Reads of those offsets fail with
    /// [`StorageError::Corrupt`]; every other record stays readable.
    pub fn damage(&self) -> Vec<Damage> {
        let segments = self.inner.segments.read().expect("segments lock");
        segments.iter().flat_map(|s| s.damage.clone()).collect()
    }

    /// The ranges `wharf check --repair` moved aside, in offset order: each offset range with
    /// its file, byte position and length. Reads of those offsets fail with
    /// [`StorageError::Corrupt`] (reason [`crate::QUARANTINED_REASON`]); they are not damage.
    pub fn quarantined(&self) -> Vec<Quarantined> {
        let segments = self.inner.segments.read().expect("segments lock");
        segments
            .iter()
            .flat_map(|s| s.quarantined.clone())
            .collect()
    }

    /// The first offset of each segment, oldest first: where `truncate_before` can cut.
    pub fn segment_bases(&self) -> Vec<Offset> {
        let segments = self.inner.segments.read().expect("segments lock");
        segments.iter().map(|s| s.base).collect()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.inner.segments.read().expect("segments lock").len()
    }

    /// Deletes whole segments whose records all lie below `offset`; returns how many. The active
    /// segment is never deleted. Readers holding a deleted segment finish their read (the file
    /// stays readable until closed).
    pub fn truncate_before(&self, offset: Offset) -> Result<usize, StorageError> {
        if self.inner.state.lock().expect("state lock").closed {
            // A closed log's directory may already belong to a reopened log or be deleted.
            return Err(StorageError::Closed {
                path: self.inner.dir.clone(),
            });
        }
        self.inner.roll_if_drained(offset)?;
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.inner.segments.write().expect("segments lock");
            let count = segments
                .windows(2)
                .take_while(|pair| pair[1].base <= offset)
                .count();
            let removed = segments.drain(..count).collect();
            self.inner
                .start
                .store(segments[0].base.0, Ordering::Release);
            removed
        };
        for segment in &removed {
            fs::remove_file(&segment.path).map_err(|e| StorageError::io(&segment.path, e))?;
            self.inner.metrics.segments.dec();
        }
        if !removed.is_empty() {
            self.inner.sync_dir()?;
        }
        Ok(removed.len())
    }

    /// Makes everything appended so far durable, whatever the policy.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        seam::off_runtime(&self.inner.dir, move || inner.sync_now()).await
    }

    /// True once [`Log::close`] has finished: nothing of this handle touches the directory any
    /// more, so the log may be opened again or deleted.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.close_finished.load(Ordering::Acquire)
    }

    /// Stops accepting appends, finishes those in flight and syncs. Appends after this fail with
    /// [`StorageError::Closed`]; readers waiting in [`Log::wait_for`] wake.
    pub async fn close(&self) -> Result<(), StorageError> {
        let drained = {
            let mut state = self.inner.state.lock().expect("state lock");
            state.closed = true;
            self.inner.gathered.notify_all();
            if !state.flushing && !state.pending.appends.is_empty() {
                // Lazy appends still waiting for a commit.
                state.flushing = true;
                start_flusher(self.inner.clone(), None);
            }
            state.flushing.then(|| {
                let (tx, rx) = oneshot::channel();
                state.close_waiters.push(tx);
                rx
            })
        };
        if let Some(drained) = drained {
            let _ = drained.await;
        }
        let inner = self.inner.clone();
        let result = seam::off_runtime(&self.inner.dir, move || inner.close_files()).await;
        self.inner.close_finished.store(true, Ordering::Release);
        self.inner.visible.send_modify(|_| ());
        result
    }

    /// What of `records` the tail cache keeps once they are committed.
    fn to_cache(&self, records: &[Bytes]) -> Vec<Bytes> {
        match self.inner.config.tail_cache_bytes {
            0 => Vec::new(),
            _ => records.to_vec(),
        }
    }

    /// Encodes the records into the pending batch; with `commit`, makes sure a flusher runs.
    /// With a `condition`, first checks that the log ends there (see [`Log::append_conditional`]).
    #[allow(clippy::type_complexity)]
    fn enqueue<I>(
        &self,
        payloads: I,
        condition: Option<Offset>,
        commit: bool,
        cached: Vec<Bytes>,
    ) -> Result<(Range<Offset>, oneshot::Receiver<Result<(), StorageError>>), StorageError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let payloads: Vec<I::Item> = payloads.into_iter().collect();
        if let Some(large) = payloads
            .iter()
            .find(|p| p.as_ref().len() > RECORD_PAYLOAD_BYTES_MAX)
        {
            return Err(StorageError::RecordTooLarge {
                size: large.as_ref().len(),
                max: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        let (tx, rx) = oneshot::channel();
        let mut state = self.inner.state.lock().expect("state lock");
        if state.closed {
            return Err(StorageError::Closed {
                path: self.inner.dir.clone(),
            });
        }
        let first = state.next;
        if let Some(expected) = condition.filter(|expected| *expected != first) {
            return Err(StorageError::ConditionFailed {
                expected,
                actual: first,
            });
        }
        let count = payloads.len() as u64;
        if count == 0 {
            return Ok((first..first, rx));
        }
        let batch = &mut state.pending;
        let bytes = batch.encode(first, &payloads);
        batch.appends.push(PendingAppend {
            first,
            records: count as u32,
            bytes,
            done: tx,
            cached,
        });
        state.next = Offset(first.0 + count);
        let pending_bytes = state.pending.frames().len();
        if state.gathering && pending_bytes >= GATHER_BYTES {
            self.inner.gathered.notify_one();
        }
        let commit = commit || pending_bytes >= LAZY_PENDING_BYTES_MAX;
        if commit && !state.flushing {
            state.flushing = true;
            start_flusher(self.inner.clone(), None);
        }
        Ok((first..state.next, rx))
    }
}

/// The seam over the inherent API: the same group commit and atomicity, with every call that
/// touches a file (reads, unlinks, the final sync) moved off the runtime's threads.
impl LogStore for Log {
    fn append<'a>(
        &'a self,
        records: &'a [Bytes],
        condition: Option<Offset>,
    ) -> StorageFuture<'a, Range<Offset>> {
        Box::pin(self.append_waiting(records, condition, self.to_cache(records)))
    }

    fn append_lazy(&self, records: &[Bytes]) -> Result<Range<Offset>, StorageError> {
        self.enqueue(records, None, false, self.to_cache(records))
            .map(|(range, _)| range)
    }

    fn read(&self, offset: Offset) -> StorageFuture<'_, Option<Record>> {
        let read = self.read_many(&[offset]);
        Box::pin(async move { Ok(read.await?.pop().flatten()) })
    }

    /// Records in the tail cache are answered at once; the others are read with one job on
    /// the blocking pool, a positional read per run of nearby records.
    fn read_many(&self, offsets: &[Offset]) -> StorageFuture<'_, Vec<Option<Record>>> {
        let start = self.start_offset();
        if let Some(low) = offsets.iter().find(|offset| **offset < start) {
            let truncated = StorageError::OffsetTruncated {
                offset: low.0,
                start: start.0,
            };
            return Box::pin(std::future::ready(Err(truncated)));
        }
        let mut found = Vec::with_capacity(offsets.len());
        let mut missing = Vec::new();
        {
            let tail = self.inner.tail.lock().expect("tail lock");
            for (index, offset) in offsets.iter().enumerate() {
                let cached = tail.get(*offset);
                if cached.is_none() {
                    missing.push((index, *offset));
                }
                found.push(cached);
            }
        }
        if missing.is_empty() {
            return Box::pin(std::future::ready(Ok(found)));
        }
        let log = self.clone();
        Box::pin(async move {
            let read =
                seam::off_runtime(&self.inner.dir, move || log.read_scattered(missing)).await?;
            for (index, record) in read {
                found[index] = record;
            }
            Ok(found)
        })
    }

    fn read_batch(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> StorageFuture<'_, Vec<Record>> {
        let log = self.clone();
        Box::pin(seam::off_runtime(&self.inner.dir, move || {
            Log::read_batch(&log, from, max_records, max_bytes)
        }))
    }

    fn wait_for(&self, offset: Offset) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            Log::wait_for(self, offset).await;
            if self.end_offset() > offset {
                Ok(())
            } else {
                Err(StorageError::Closed {
                    path: self.inner.dir.clone(),
                })
            }
        })
    }

    fn start_offset(&self) -> Offset {
        Log::start_offset(self)
    }

    fn end_offset(&self) -> Offset {
        Log::end_offset(self)
    }

    fn truncate_before(&self, offset: Offset) -> StorageFuture<'_, Offset> {
        let log = self.clone();
        Box::pin(async move {
            seam::off_runtime(&self.inner.dir, move || Log::truncate_before(&log, offset)).await?;
            Ok(Log::start_offset(self))
        })
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        Box::pin(Log::close(self))
    }
}

/// Commits one flusher makes before it gives its blocking thread back (and queues again behind
/// whatever else waits for one): the pool is bounded, and without this a few logs that never
/// go idle could hold every thread while other logs' commits and file reads wait.
const FLUSHER_COMMITS_PER_TURN: usize = 64;

/// Starts the flusher on the blocking pool; `previous` is when the commit before started, if
/// the log is busy (see [`Inner::gather`]).
fn start_flusher(inner: Arc<Inner>, previous: Option<Instant>) {
    tokio::task::spawn_blocking(move || flush(inner, previous));
}

/// The flusher: commits pending batches until none is left, answering each batch's appenders
/// as soon as it is durable. It stays on its blocking thread while appends keep coming (up to
/// [`FLUSHER_COMMITS_PER_TURN`] commits), so a busy log hands nothing between threads from one
/// commit to the next; an idle log holds no thread.
fn flush(inner: Arc<Inner>, mut previous: Option<Instant>) {
    let mut recycled = Batch::default();
    for _ in 0..FLUSHER_COMMITS_PER_TURN {
        // Only this thread writes: the position holds until its next write.
        let position = inner.writer.lock().expect("writer lock").position;
        let mut batch = {
            let mut state = inner.gather(previous);
            if state.pending.appends.is_empty() {
                state.pending.release();
                state.flushing = false;
                for waiter in state.close_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                return;
            }
            // The next batch is written where this one ends.
            let taken = state.pending.frames().len();
            let expected = state.pending.expected();
            let expected = taken.max(expected - expected / 16);
            recycled.clear(position + taken as u64, expected);
            std::mem::replace(&mut state.pending, recycled)
        };
        previous = Some(Instant::now());
        let outcome = inner.write_batch(&mut batch);
        inner.answer(&mut batch, outcome);
        recycled = batch;
    }
    // Still flushing: the next turn carries on where this one stopped.
    start_flusher(inner, previous);
}

/// Syncs a relaxed-policy log at least every `period` while it is open.
async fn sync_periodically(inner: Weak<Inner>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || inner.sync_now()).await;
        if let Ok(Err(error)) = result {
            tracing::warn!(%error, "periodic log sync failed");
        }
    }
}

impl Inner {
    /// The state, once the pending batch is ready to be taken. After a commit that started at
    /// `previous`, a small pending batch waits for more appends (up to
    /// [`GATHER_BYTES`]) until [`LogConfig::commit_gather`] after that start: under load a
    /// commit then carries many appends and one sync, instead of a few each. An empty batch
    /// does not wait (the flusher stops), nor does one after the log was idle (`None`), nor a
    /// closing log's.
    fn gather(&self, previous: Option<Instant>) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().expect("state lock");
        let gathering =
            self.config.fsync == FsyncPolicy::Always && !self.config.commit_gather.is_zero();
        let Some(previous) = previous.filter(|_| gathering) else {
            return state;
        };
        let small = |state: &mut State| {
            !state.closed
                && !state.pending.appends.is_empty()
                && state.pending.frames().len() < GATHER_BYTES
        };
        let wait = (previous + self.config.commit_gather).saturating_duration_since(Instant::now());
        if wait.is_zero() || !small(&mut state) {
            return state;
        }
        state.gathering = true;
        self.metrics.commit_gathers.inc();
        let (mut state, _) = (self.gathered)
            .wait_timeout_while(state, wait, small)
            .expect("state lock");
        state.gathering = false;
        state
    }

    fn segment_for(&self, offset: Offset) -> Option<Arc<Segment>> {
        let segments = self.segments.read().expect("segments lock");
        let index = segments.partition_point(|s| s.base <= offset);
        index.checked_sub(1).map(|i| segments[i].clone())
    }

    /// Completes the batch's appenders; on failure also fails everything queued behind it, whose
    /// offsets were assigned after the failed ones, and hands those offsets out again.
    fn answer(&self, batch: &mut Batch, outcome: FlushOutcome) {
        let mut appended_records = 0;
        let mut appended_bytes = 0;
        for (i, append) in batch.appends.drain(..).enumerate() {
            if i < outcome.durable {
                appended_records += u64::from(append.records);
                appended_bytes += append.bytes;
                if !append.cached.is_empty() {
                    let mut tail = self.tail.lock().expect("tail lock");
                    tail.push(append.first, append.cached);
                }
                let _ = append.done.send(Ok(()));
                continue;
            }
            let error = outcome
                .error
                .clone()
                .expect("a failed flush carries its error");
            if i == outcome.durable {
                let mut state = self.state.lock().expect("state lock");
                state.next = append.first;
                let queued = std::mem::take(&mut state.pending);
                drop(state);
                for behind in queued.appends {
                    self.metrics.append_errors.inc();
                    let _ = behind.done.send(Err(error.clone()));
                }
            }
            self.metrics.append_errors.inc();
            let _ = append.done.send(Err(error));
        }
        self.metrics.appends.inc_by(appended_records);
        self.metrics.append_bytes.inc_by(appended_bytes);
    }

    /// Writes a batch, rotating segments as needed. Blocking.
    fn write_batch(&self, batch: &mut Batch) -> FlushOutcome {
        let mut writer = self.writer.lock().expect("writer lock");
        let mut done = 0;
        let mut byte_at = 0usize;
        let mut frame_at = 0usize;
        while done < batch.appends.len() {
            let next_bytes = batch.appends[done].bytes;
            if writer.position > 0 && writer.position + next_bytes > self.config.segment_bytes {
                if let Err(error) = self.rotate(&mut writer) {
                    return FlushOutcome {
                        durable: done,
                        error: Some(error),
                    };
                }
            }
            let (mut end, mut bytes, mut frames) = (done, 0u64, 0usize);
            while end < batch.appends.len()
                && (end == done
                    || writer.position + bytes + batch.appends[end].bytes
                        <= self.config.segment_bytes)
            {
                bytes += batch.appends[end].bytes;
                frames += batch.appends[end].records as usize;
                end += 1;
            }
            if let Err(error) =
                self.write_chunk(&mut writer, batch, byte_at..byte_at + bytes as usize)
            {
                return FlushOutcome {
                    durable: done,
                    error: Some(error),
                };
            }
            writer
                .active
                .extend_index(&batch.frame_lens[frame_at..frame_at + frames]);
            writer.position += bytes;
            self.visible.send_replace(writer.active.end_offset().0);
            self.start_spare_if_half_full(&mut writer);
            done = end;
            byte_at += bytes as usize;
            frame_at += frames;
        }
        FlushOutcome {
            durable: done,
            error: None,
        }
    }

    /// Writes the bytes `chunk` of the batch's frames at the write position and syncs them as
    /// the policy says; a whole batch foreseen to start where it does is written from where it
    /// is. On failure the region is zeroed again (best effort) so no part of a failed append
    /// can be recovered.
    fn write_chunk(
        &self,
        writer: &mut Writer,
        batch: &mut Batch,
        chunk: Range<usize>,
    ) -> Result<(), StorageError> {
        let segment = writer.active.clone();
        let chunk_len = chunk.len() as u64;
        writer.commit_bytes_average = (writer.commit_bytes_average * 7 + chunk_len) / 8;
        let (ops, position) = (&self.ops, writer.position);
        let tail_len = writer.segment_writer.tail_len();
        let whole = chunk.len() == batch.frames().len();
        let in_place = whole.then(|| batch.window(tail_len)).flatten();
        let written = match in_place {
            Some((window, filled)) => {
                (writer.segment_writer).write_in_place(ops, &segment, position, window, filled)
            }
            None => (writer.segment_writer).write(ops, &segment, position, &batch.frames()[chunk]),
        };
        let result = written
            .map_err(|e| StorageError::io(&segment.path, e))
            .and_then(|()| {
                writer.dirty = true;
                match self.config.fsync {
                    FsyncPolicy::Always => self.sync_writer(writer),
                    FsyncPolicy::Interval(period) if writer.last_sync.elapsed() >= period => {
                        self.sync_writer(writer)
                    }
                    _ => Ok(()),
                }
            });
        match result {
            Ok(()) => writer.segment_writer.keep(),
            Err(_) => self.write_chunk_undo(writer, chunk_len),
        }
        result
    }

    /// Clears what a failed commit may have left after the write position, so that no part of
    /// it can be read back or recovered; the segment writer's tail stays where the last kept
    /// write ended.
    ///
    /// On a full disk the zeroing write itself may fail (a region the failed write extended the
    /// file into is not allocated). Punching a hole, and failing that cutting the file at the
    /// write position, frees space instead of needing it; the file regrows on the next write.
    fn write_chunk_undo(&self, writer: &Writer, chunk_len: u64) {
        let segment = &writer.active;
        let (from, to) = (writer.position, writer.position + chunk_len);
        let Err(error) = zero_range(&self.ops, &segment.file, &segment.path, from, to) else {
            return;
        };
        if punch_hole(&segment.file, from, to).is_ok() {
            return;
        }
        if let Err(cut) = segment.file.set_len(from) {
            tracing::warn!(
                path = %segment.path.display(), %error, %cut,
                "could not clear a failed append"
            );
        }
    }

    fn sync_writer(&self, writer: &mut Writer) -> Result<(), StorageError> {
        let started = Instant::now();
        self.ops
            .sync_data(writer.segment_writer.sync_handle(&writer.active))
            .map_err(|e| StorageError::io(&writer.active.path, e))?;
        self.metrics.fsyncs.inc();
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        writer.dirty = false;
        writer.last_sync = Instant::now();
        Ok(())
    }

    /// Waits for a spare segment still being prepared, then syncs. No thread of this log writes
    /// in its directory afterwards, which a reopen or a deletion of the directory relies on.
    fn close_files(&self) -> Result<(), StorageError> {
        let preparing = self.writer.lock().expect("writer lock").spare.take();
        if let Some(preparing) = preparing {
            // Its file is not needed: a spare is cheap to prepare again and an empty or
            // zero-filled leftover would only puzzle an operator reading the directory.
            let _ = preparing.join();
            let spare = self.dir.join(SPARE_FILE_NAME);
            if let Err(error) = fs::remove_file(&spare) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    return Err(StorageError::io(&spare, error));
                }
            }
        }
        self.sync_now()
    }

    fn sync_now(&self) -> Result<(), StorageError> {
        let mut writer = self.writer.lock().expect("writer lock");
        if writer.dirty {
            self.sync_writer(&mut writer)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts the next one at the current end offset.
    ///
    /// The old segment is synced first: a valid record in a newer segment then always implies an
    /// intact older one, which is how recovery tells a torn tail from damage.
    fn rotate(&self, writer: &mut Writer) -> Result<(), StorageError> {
        if writer.dirty && self.config.fsync != FsyncPolicy::Never {
            self.sync_writer(writer)?;
        }
        let base = writer.active.end_offset();
        let path = self.dir.join(segment::segment_file_name(base));
        let spare = match writer.spare.take() {
            _ if !self.config.preallocate => None,
            // A spare that failed (the disk was full, a sync failed) is prepared again now: the
            // fault may be gone, and its old error must not fail an append after it is.
            Some(preparing) => Some(
                (preparing.join().expect("spare preparation panicked")).or_else(|_| {
                    prepare_spare(&self.dir, self.spare_fill_bytes(writer), &self.ops)
                }),
            ),
            None => Some(prepare_spare(
                &self.dir,
                self.spare_fill_bytes(writer),
                &self.ops,
            )),
        };
        let file = match spare {
            Some(Ok(spare)) => {
                let spare_path = self.dir.join(SPARE_FILE_NAME);
                fs::rename(&spare_path, &path).map_err(|e| StorageError::io(&path, e))?;
                spare
            }
            // On a full disk a whole preallocated segment may not fit where the next few
            // records would (the disk reserve is sized for settle records, not segments): the
            // segment then grows as it is written, like a transient log's.
            Some(Err(error)) if error.is_disk_full() => create_segment_file(&path)?,
            Some(Err(error)) => return Err(error),
            None => create_segment_file(&path)?,
        };
        if self.config.fsync != FsyncPolicy::Never {
            self.sync_dir()?;
        }
        let segment = Arc::new(Segment::new(base, path, file, empty_scan()));
        self.segments
            .write()
            .expect("segments lock")
            .push(segment.clone());
        self.metrics.segments.inc();
        writer.segment_writer = SegmentWriter::open(&segment, 0, self.config.direct_io)?;
        writer.active = segment;
        writer.position = 0;
        Ok(())
    }

    /// Seals the active segment when every record in it may go (`offset` is its end) and it
    /// holds at least a quarter of a segment: only sealed segments are deleted, so otherwise a
    /// drained log would keep its last segment's data until enough new records arrive to
    /// fill it, on a nearly full disk perhaps never.
    fn roll_if_drained(&self, offset: Offset) -> Result<(), StorageError> {
        let mut writer = self.writer.lock().expect("writer lock");
        let drained = writer.active.end_offset() == offset && writer.active.base < offset;
        if drained && writer.position >= self.config.segment_bytes / 4 {
            self.rotate(&mut writer)?;
        }
        Ok(())
    }

    fn start_spare_if_half_full(&self, writer: &mut Writer) {
        if self.config.preallocate
            && writer.spare.is_none()
            && writer.position > self.config.segment_bytes / 2
        {
            let (dir, bytes, ops) = (
                self.dir.clone(),
                self.spare_fill_bytes(writer),
                self.ops.clone(),
            );
            writer.spare = Some(std::thread::spawn(move || prepare_spare(&dir, bytes, &ops)));
        }
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        sync_dir(&self.ops, &self.dir)
    }

    /// How much of the next segment to zero-fill: all of it for small commits, none for large.
    fn spare_fill_bytes(&self, writer: &Writer) -> u64 {
        if writer.commit_bytes_average < LARGE_COMMIT_BYTES {
            self.config.segment_bytes
        } else {
            0
        }
    }
}

fn empty_scan() -> Scan {
    Scan {
        positions: Vec::new(),
        end: 0,
        torn: None,
        damage: Vec::new(),
        quarantined: Vec::new(),
    }
}

fn create_segment_file(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))
}

/// Creates `spare.tmp` zero-filled to `bytes` and synced, ready to become the next segment.
fn prepare_spare(dir: &Path, bytes: u64, ops: &FileOps) -> Result<File, StorageError> {
    let path = dir.join(SPARE_FILE_NAME);
    let result = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))
        .and_then(|file| {
            let direct = segment_writer::open_direct(&path);
            segment_writer::zero_fill(ops, &file, direct.as_ref(), bytes)
                .and_then(|()| ops.sync_all(&file))
                .map_err(|e| StorageError::io(&path, e))?;
            Ok(file)
        });
    if result.is_err() {
        let _ = fs::remove_file(&path);
    }
    result
}

fn zero_range(
    ops: &FileOps,
    file: &File,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<(), StorageError> {
    let zeroes = vec![0u8; ZERO_CHUNK_BYTES];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZERO_CHUNK_BYTES as u64) as usize;
        ops.write_all_at(file, &zeroes[..n], at)
            .map_err(|e| StorageError::io(path, e))?;
        at += n as u64;
    }
    Ok(())
}

/// Deallocates `[from, to)` of `file`, which then reads as zeroes; needs no free space.
fn punch_hole(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate only reads its integer arguments; the descriptor is open for writing.
    let result = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, len) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub(crate) fn sync_dir(ops: &FileOps, dir: &Path) -> Result<(), StorageError> {
    let handle = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    ops.sync_all(&handle).map_err(|e| StorageError::io(dir, e))
}

/// Opens and scans every segment, creating the first one for a new log, and applies recovery:
/// the last segment's torn tail is cleared; damage before it is recorded on its segment.
pub(crate) fn open_segments(
    dir: &Path,
    config: &LogConfig,
    ops: &FileOps,
    metrics: &StorageMetrics,
) -> Result<Vec<Arc<Segment>>, StorageError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_segment_file_name)
        {
            bases.push(base);
        }
    }
    bases.sort();
    if bases.is_empty() {
        return Ok(vec![first_segment(dir, config, ops)?]);
    }
    let mut segments = Vec::with_capacity(bases.len());
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let path = dir.join(segment::segment_file_name(base));
        let open = || {
            (OpenOptions::new().read(true).write(true).open(&path))
                .map_err(|e| StorageError::io(&path, e))
        };
        let mut file = open()?;
        let sealed = i + 1 < bases.len();
        let mut scan = segment::scan(&path, &file, base, sealed)?;
        let end_offset = base.0 + scan.positions.len() as u64;
        if sealed && drop_failed_rotations(dir, ops, &mut bases, i, end_offset)? {
            // This segment may be the last now: scanned again as such, from its start.
            file = open()?;
            scan = segment::scan(&path, &file, base, i + 1 < bases.len())?;
        }
        let (torn, end) = (scan.torn, scan.end);
        let mut segment = Segment::new(base, path, file, scan);
        match bases.get(i + 1) {
            None => clear_tail(ops, &segment, end, torn)?,
            Some(next_base) => {
                if let Some(damage) = sealed_damage(&segment, *next_base, end, torn)? {
                    segment.damage.push(damage);
                }
            }
        }
        segments.push(Arc::new(segment));
        i += 1;
    }
    report_damage(dir, &segments, metrics);
    Ok(segments)
}

/// The first segment of a new log, zero-filled ahead when the configuration says so.
fn first_segment(
    dir: &Path,
    config: &LogConfig,
    ops: &FileOps,
) -> Result<Arc<Segment>, StorageError> {
    let path = dir.join(segment::segment_file_name(Offset(0)));
    let file = create_segment_file(&path)?;
    if config.preallocate && config.preallocate_first {
        let direct = segment_writer::open_direct(&path);
        let filled = segment_writer::zero_fill(ops, &file, direct.as_ref(), config.segment_bytes)
            .and_then(|()| ops.sync_all(&file));
        match filled {
            Ok(()) => {}
            // A disk smaller than a segment, or full: the segment grows as it is written
            // rather than the log failing to open.
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
                file.set_len(0).map_err(|e| StorageError::io(&path, e))?
            }
            Err(error) => return Err(StorageError::io(&path, error)),
        }
    }
    sync_dir(ops, dir)?;
    Ok(Arc::new(Segment::new(Offset(0), path, file, empty_scan())))
}

/// Removes the segment files after `bases[i]` that a failed rotation left: a rotation that
/// failed after it named the next segment's file (its directory sync failed) leaves that file
/// empty, while later appends go on in the segment before it, past the file's base. Their
/// records are whole and checked; read by base, the empty file would hide them. So an empty
/// next segment whose base lies below `end` (the end offset of segment `i`) is removed, and
/// its base with it. Returns whether any was.
fn drop_failed_rotations(
    dir: &Path,
    ops: &FileOps,
    bases: &mut Vec<Offset>,
    i: usize,
    end: u64,
) -> Result<bool, StorageError> {
    let mut dropped = false;
    while let Some(next_base) = bases.get(i + 1).copied() {
        if next_base.0 >= end {
            break;
        }
        let path = dir.join(segment::segment_file_name(next_base));
        let file = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        let empty = data_end(&file, 0).map_err(|e| StorageError::io(&path, e))? == 0;
        if !empty {
            break;
        }
        tracing::warn!(
            path = %path.display(),
            records_after = end - next_base.0,
            "removing an empty segment file a failed rotation left; the segment before it holds its offsets"
        );
        fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        sync_dir(ops, dir)?;
        bases.remove(i + 1);
        dropped = true;
    }
    Ok(dropped)
}

/// Logs the damage of one log once, naming the log and every damaged range, and counts the
/// damaged records.
fn report_damage(dir: &Path, segments: &[Arc<Segment>], metrics: &StorageMetrics) {
    let quarantined: u64 = (segments.iter().flat_map(|s| &s.quarantined))
        .map(|q| q.offsets.end.0 - q.offsets.start.0)
        .sum();
    if segments.iter().any(|s| !s.quarantined.is_empty()) {
        tracing::warn!(
            log = %dir.display(), records = quarantined,
            "log has ranges moved aside by wharf check --repair; their records are gone"
        );
    }
    let damage: Vec<&Damage> = segments.iter().flat_map(|s| &s.damage).collect();
    if damage.is_empty() {
        return;
    }
    let records: u64 = damage
        .iter()
        .map(|d| d.offsets.end.0 - d.offsets.start.0)
        .sum();
    metrics.corrupt_records.inc_by(records);
    let ranges: Vec<String> = damage
        .iter()
        .map(|d| {
            format!(
                "offsets {}..{} in {} at byte {} ({})",
                d.offsets.start,
                d.offsets.end,
                d.path.display(),
                d.position,
                d.reason
            )
        })
        .collect();
    tracing::error!(
        log = %dir.display(), records,
        "damaged log: these records are unreadable, the others stay readable: {}",
        ranges.join("; ")
    );
}

/// A sealed segment must end cleanly exactly where the next one starts; the offsets missing
/// before the next segment are damage, which spans the bytes from there to the end of the
/// segment's data.
fn sealed_damage(
    segment: &Segment,
    next_base: Offset,
    end: u64,
    torn: Option<(u64, &'static str)>,
) -> Result<Option<Damage>, StorageError> {
    let (position, reason) = match torn {
        Some(torn) => torn,
        None if segment.end_offset() < next_base => {
            (end, "records missing before the next segment")
        }
        None => return Ok(None),
    };
    let data_end =
        data_end(&segment.file, position).map_err(|e| StorageError::io(&segment.path, e))?;
    Ok(Some(Damage {
        path: segment.path.clone(),
        offsets: segment.end_offset()..next_base.max(segment.end_offset()),
        position,
        length: data_end - position,
        reason,
    }))
}

/// The position just past the last byte of `file` at or after `from` that is not zero, or
/// `from` when there is none: where the written data ends, zero padding aside.
pub(crate) fn data_end(file: &File, from: u64) -> std::io::Result<u64> {
    let file_len = file.metadata()?.len();
    let mut data_end = from;
    let mut buf = vec![0u8; ZERO_CHUNK_BYTES];
    let mut at = from;
    while at < file_len {
        let n = (file_len - at).min(ZERO_CHUNK_BYTES as u64) as usize;
        std::os::unix::fs::FileExt::read_exact_at(file, &mut buf[..n], at)?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b != 0) {
            data_end = at + i as u64 + 1;
        }
        at += n as u64;
    }
    Ok(data_end)
}

/// Zeroes whatever lies after the last complete append of the active segment, so bytes of an
/// unfinished write can never join the log later (for example after a new record of the same
/// length is written in front of them).
fn clear_tail(
    ops: &FileOps,
    segment: &Segment,
    end: u64,
    torn: Option<(u64, &'static str)>,
) -> Result<(), StorageError> {
    let io_error = |e| StorageError::io(&segment.path, e);
    let dirty_end = data_end(&segment.file, end).map_err(io_error)?;
    if dirty_end > end {
        if let Some((position, reason)) = torn {
            tracing::warn!(path = %segment.path.display(), position, reason, "truncating torn tail");
        }
        zero_range(ops, &segment.file, &segment.path, end, dirty_end)?;
        ops.sync_data(&segment.file).map_err(io_error)?;
    }
    Ok(())
}
