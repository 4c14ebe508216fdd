//! The storage seam's conformance suite: one set of behaviours, run against every
//! implementation of `Storage` and `LogStore` (the file store and the memory store), so the
//! engine may rely on exactly these and on nothing an implementation happens to do.
//!
//! Each behaviour is a function generic over a [`Backend`]; the `suite!` list at the bottom
//! instantiates it once per backend as `file::NAME` and `memory::NAME`. The file store runs with
//! 4 KiB segments, so rotation and whole-segment truncation are hit by a few hundred records.

use bytes::Bytes;
use serde_json::json;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};
use wharf_storage::{
    Durability, Faults, LogConfig, LogOptions, LogSize, LogStore, MemoryStore, MetaOp, Offset,
    StorageError, Store, StoreConfig,
};

/// An implementation under test, with the few controls the suite needs beyond the seam.
trait Backend {
    fn storage(&self) -> &dyn wharf_storage::Storage;
    /// While `on`, every commit fails with an I/O error.
    fn fail_appends(&self, on: bool);
    /// Closes the storage and opens it again, as a restarted process would.
    async fn restart(&mut self);
}

struct FileBackend {
    dir: tempfile::TempDir,
    faults: Arc<Faults>,
    store: Option<Store>,
}

impl FileBackend {
    fn new() -> FileBackend {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let store = Store::open(dir.path(), file_config(&faults)).unwrap();
        FileBackend {
            dir,
            faults,
            store: Some(store),
        }
    }
}

fn file_config(faults: &Arc<Faults>) -> StoreConfig {
    StoreConfig {
        faults: Some(faults.clone()),
        log: LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        },
        small_log_segment_bytes: 4096,
        // A few records' worth: reads hit the tail cache, its eviction, and the files.
        large_log_tail_cache_bytes: 300,
        // The disk reserve is the engine's policy (tests in crates/engine/tests/failures.rs);
        // here a full disk fails every append.
        reserve_bytes: 0,
    }
}

impl Backend for FileBackend {
    fn storage(&self) -> &dyn wharf_storage::Storage {
        self.store.as_ref().unwrap()
    }

    fn fail_appends(&self, on: bool) {
        self.faults.set_fail_syncs(on);
    }

    async fn restart(&mut self) {
        wharf_storage::Storage::close(self.storage()).await.unwrap();
        // Dropped before the next open: the directory lock is released with it.
        self.store = None;
        self.store = Some(Store::open(self.dir.path(), file_config(&self.faults)).unwrap());
    }
}

struct MemoryBackend {
    store: MemoryStore,
}

impl MemoryBackend {
    fn new() -> MemoryBackend {
        MemoryBackend {
            store: MemoryStore::new(),
        }
    }
}

impl Backend for MemoryBackend {
    fn storage(&self) -> &dyn wharf_storage::Storage {
        &self.store
    }

    fn fail_appends(&self, on: bool) {
        self.store.fail_appends(if on { u32::MAX } else { 0 });
    }

    async fn restart(&mut self) {
        wharf_storage::Storage::close(&self.store).await.unwrap();
        self.store.reopen();
    }
}

const DURABLE: LogOptions = LogOptions {
    durability: Durability::Durable,
    size: LogSize::Large,
};

async fn open(backend: &impl Backend, name: &str) -> Arc<dyn LogStore> {
    backend.storage().open_log(name, DURABLE).await.unwrap()
}

fn record(i: u64) -> Bytes {
    Bytes::from(format!("record {i:04} {}", "x".repeat(i as usize % 40)))
}

fn records(range: std::ops::Range<u64>) -> Vec<Bytes> {
    range.map(record).collect()
}

async fn read_all(log: &dyn LogStore) -> Vec<Bytes> {
    let records = log
        .read_batch(log.start_offset(), usize::MAX, usize::MAX)
        .await
        .unwrap();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, Offset(log.start_offset().0 + i as u64));
    }
    records.into_iter().map(|r| r.payload).collect()
}

/// Polls a future by hand and records whether it asked to be polled again, so a test checks
/// that a wake-up happens (not merely that a later poll would succeed), with no timing.
struct WakeProbe(AtomicBool);

impl Wake for WakeProbe {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl WakeProbe {
    fn new() -> Arc<WakeProbe> {
        Arc::new(WakeProbe(AtomicBool::new(false)))
    }

    fn poll<F: Future + ?Sized>(self: &Arc<Self>, future: Pin<&mut F>) -> Poll<F::Output> {
        self.0.store(false, Ordering::SeqCst);
        let waker = Waker::from(self.clone());
        future.poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How long a test waits for something that should happen at once: a deadline, not a sleep.
const DEADLINE: Duration = Duration::from_secs(10);

async fn offsets_are_sequential_from_zero_and_records_read_back(backend: impl Backend) {
    let log = open(&backend, "a").await;
    assert_eq!(
        (log.start_offset(), log.end_offset()),
        (Offset(0), Offset(0))
    );
    assert_eq!(
        log.append(&[record(0)], None).await.unwrap(),
        Offset(0)..Offset(1)
    );
    assert_eq!(
        log.append(&records(1..4), None).await.unwrap(),
        Offset(1)..Offset(4)
    );
    assert_eq!(log.end_offset(), Offset(4));
    assert_eq!(read_all(&*log).await, records(0..4));
    let third = log.read(Offset(2)).await.unwrap().unwrap();
    assert_eq!((third.offset, third.payload), (Offset(2), record(2)));
}

async fn concurrent_appends_of_many_records_get_consecutive_offsets(backend: impl Backend) {
    let log = open(&backend, "a").await;
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let batch = records(task * 100..task * 100 + 1 + task % 4);
                let range = log.append(&batch, None).await.unwrap();
                (range, batch)
            })
        })
        .collect();
    let mut appended = Vec::new();
    for task in tasks {
        appended.push(task.await.unwrap());
    }
    appended.sort_by_key(|(range, _)| range.start);
    let mut expected = Vec::new();
    for (range, batch) in appended {
        assert_eq!(range.start, Offset(expected.len() as u64), "no gaps");
        assert_eq!(range.end.0 - range.start.0, batch.len() as u64);
        expected.extend(batch);
    }
    assert_eq!(
        read_all(&*log).await,
        expected,
        "each append lies in one piece"
    );
}

async fn an_empty_append_takes_no_offset(backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&[record(0)], None).await.unwrap();
    assert_eq!(log.append(&[], None).await.unwrap(), Offset(1)..Offset(1));
    assert_eq!(log.append_lazy(&[]).unwrap(), Offset(1)..Offset(1));
    assert_eq!(
        log.append(&[record(1)], None).await.unwrap(),
        Offset(1)..Offset(2)
    );
}

async fn a_conditional_append_succeeds_when_the_log_ends_there(backend: impl Backend) {
    let log = open(&backend, "a").await;
    assert_eq!(
        log.append(&records(0..2), Some(Offset(0))).await.unwrap(),
        Offset(0)..Offset(2)
    );
    assert_eq!(
        log.append(&[record(2)], Some(Offset(2))).await.unwrap(),
        Offset(2)..Offset(3)
    );
    assert_eq!(read_all(&*log).await, records(0..3));
}

async fn a_failed_condition_writes_nothing_and_names_the_end(backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&records(0..3), None).await.unwrap();
    for expected in [0, 2, 4] {
        let error = log
            .append(&[record(99)], Some(Offset(expected)))
            .await
            .unwrap_err();
        match error {
            StorageError::ConditionFailed {
                expected: got,
                actual,
            } => assert_eq!((got, actual), (Offset(expected), Offset(3))),
            other => panic!("expected ConditionFailed, got {other:?}"),
        }
    }
    let error = log.append(&[], Some(Offset(1))).await.unwrap_err();
    assert!(
        matches!(error, StorageError::ConditionFailed { .. }),
        "{error:?}"
    );
    assert_eq!(log.end_offset(), Offset(3));
    assert_eq!(
        log.append(&[record(3)], None).await.unwrap(),
        Offset(3)..Offset(4),
        "a refused append took no offset"
    );
    assert_eq!(read_all(&*log).await, records(0..4));
}

async fn of_appends_expecting_the_same_end_exactly_one_wins(backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&[record(0)], None).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move { log.append(&records(task..task + 2), Some(Offset(1))).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(range) => {
                assert_eq!(range, Offset(1)..Offset(3));
                winners += 1;
            }
            Err(StorageError::ConditionFailed { expected, actual }) => {
                assert_eq!((expected, actual), (Offset(1), Offset(3)));
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(log.end_offset(), Offset(3));
}

async fn a_condition_counts_appends_still_being_committed(backend: impl Backend) {
    let log = open(&backend, "a").await;
    let first = [record(0)];
    let second = [record(1)];
    // Polled in order: the first append has its offset, not yet its commit, when the second
    // one's condition is checked.
    let (a, b) = tokio::join!(
        log.append(&first, None),
        log.append(&second, Some(Offset(1)))
    );
    assert_eq!(a.unwrap(), Offset(0)..Offset(1));
    assert_eq!(b.unwrap(), Offset(1)..Offset(2));
}

async fn a_record_too_large_is_refused_and_nothing_written(backend: impl Backend) {
    let log = open(&backend, "a").await;
    let large = Bytes::from(vec![7u8; wharf_storage::RECORD_PAYLOAD_BYTES_MAX + 1]);
    let error = log
        .append(&[record(0), large.clone()], None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::RecordTooLarge { .. }),
        "{error:?}"
    );
    let error = log.append_lazy(&[large]).unwrap_err();
    assert!(
        matches!(error, StorageError::RecordTooLarge { .. }),
        "{error:?}"
    );
    assert_eq!(
        log.append(&[record(0)], None).await.unwrap(),
        Offset(0)..Offset(1)
    );
}

async fn read_batch_stops_at_max_records_and_max_bytes(backend: impl Backend) {
    let log = open(&backend, "a").await;
    let payloads: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i; 100])).collect();
    for chunk in payloads.chunks(7) {
        log.append(chunk, None).await.unwrap();
    }
    let batch = log.read_batch(Offset(3), 5, usize::MAX).await.unwrap();
    let offsets: Vec<u64> = batch.iter().map(|r| r.offset.0).collect();
    assert_eq!(offsets, vec![3, 4, 5, 6, 7]);
    assert_eq!(batch[0].payload, payloads[3]);
    // 350 bytes of payload allow three 100-byte records, not four.
    let batch = log.read_batch(Offset(10), 100, 350).await.unwrap();
    assert_eq!(batch.len(), 3);
    let batch = log.read_batch(Offset(10), 100, 300).await.unwrap();
    assert_eq!(batch.len(), 3, "a batch may fill max_bytes exactly");
    let batch = log.read_batch(Offset(0), 100, usize::MAX).await.unwrap();
    assert_eq!(batch.len(), 50, "a batch crosses segments");
    assert!(log
        .read_batch(Offset(0), 0, usize::MAX)
        .await
        .unwrap()
        .is_empty());
}

async fn read_batch_returns_one_record_larger_than_max_bytes(backend: impl Backend) {
    let log = open(&backend, "a").await;
    let big = Bytes::from(vec![1u8; 1000]);
    log.append(&[big.clone(), record(1)], None).await.unwrap();
    let batch = log.read_batch(Offset(0), 10, 10).await.unwrap();
    assert_eq!(batch.len(), 1, "a reader always makes progress");
    assert_eq!(batch[0].payload, big);
}

async fn reads_at_or_past_the_end_find_nothing(backend: impl Backend) {
    let log = open(&backend, "a").await;
    assert_eq!(log.read(Offset(0)).await.unwrap(), None);
    log.append(&records(0..3), None).await.unwrap();
    assert_eq!(log.read(Offset(3)).await.unwrap(), None);
    assert_eq!(log.read(Offset(1_000)).await.unwrap(), None);
    assert!(log
        .read_batch(Offset(3), 10, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(log
        .read_batch(Offset(9), 10, usize::MAX)
        .await
        .unwrap()
        .is_empty());
}

async fn wait_for_wakes_when_the_record_is_committed(backend: impl Backend) {
    let log = open(&backend, "a").await;
    // The lazy append comes before any commit: a flusher still finishing one on its own thread
    // may take a lazy append with its next commit, which is allowed.
    let probe = WakeProbe::new();
    let mut waiting = log.wait_for(Offset(0));
    assert!(probe.poll(waiting.as_mut()).is_pending());
    log.append_lazy(&[record(0)]).unwrap();
    assert!(!probe.woken(), "a lazy append is not readable yet");
    log.append(&[record(1)], None).await.unwrap();
    assert!(probe.woken(), "the commit wakes the reader");
    assert!(matches!(probe.poll(waiting.as_mut()), Poll::Ready(Ok(()))));
    tokio::time::timeout(DEADLINE, log.wait_for(Offset(1)))
        .await
        .expect("a readable record needs no waiting")
        .unwrap();
    log.append(&[record(2)], None).await.unwrap();

    // A tailing reader on another task.
    let tail = {
        let log = log.clone();
        tokio::spawn(async move {
            log.wait_for(Offset(5)).await.unwrap();
            log.read(Offset(5)).await.unwrap().unwrap().payload
        })
    };
    log.append(&records(3..6), None).await.unwrap();
    let payload = tokio::time::timeout(DEADLINE, tail).await.unwrap().unwrap();
    assert_eq!(payload, record(5));
}

async fn wait_for_fails_when_the_log_closes_first(backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&[record(0)], None).await.unwrap();
    let probe = WakeProbe::new();
    let mut waiting = log.wait_for(Offset(1));
    assert!(probe.poll(waiting.as_mut()).is_pending());
    log.close().await.unwrap();
    assert!(probe.woken(), "a close wakes waiting readers");
    let result = probe.poll(waiting.as_mut());
    assert!(
        matches!(result, Poll::Ready(Err(StorageError::Closed { .. }))),
        "{result:?}"
    );
    let result = log.wait_for(Offset(1)).await;
    assert!(
        matches!(result, Err(StorageError::Closed { .. })),
        "{result:?}"
    );
    log.wait_for(Offset(0)).await.unwrap();
}

async fn truncate_before_keeps_everything_from_the_offset_on(backend: impl Backend) {
    let log = open(&backend, "a").await;
    for i in 0..100 {
        log.append(&[Bytes::from(vec![i as u8; 300])], None)
            .await
            .unwrap();
    }
    let start = log.truncate_before(Offset(50)).await.unwrap();
    assert_eq!(start, log.start_offset());
    // Storage may keep records below the offset (the file store drops whole segments), but
    // with 4 KiB segments every backend drops some here.
    assert!(start > Offset(0) && start <= Offset(50), "start {start}");
    for below in [Offset(0), Offset(start.0 - 1)] {
        let error = log.read(below).await.unwrap_err();
        assert!(
            matches!(error, StorageError::OffsetTruncated { offset, start: s } if offset == below.0 && s == start.0),
            "{error:?}"
        );
        let error = log.read_batch(below, 10, usize::MAX).await.unwrap_err();
        assert!(
            matches!(error, StorageError::OffsetTruncated { .. }),
            "{error:?}"
        );
    }
    let kept = log.read_batch(Offset(50), 100, usize::MAX).await.unwrap();
    assert_eq!(kept.len(), 50);
    assert!(kept.iter().all(|r| r.payload[0] as u64 == r.offset.0));

    assert_eq!(
        log.truncate_before(Offset(10)).await.unwrap(),
        start,
        "never moves back"
    );
    let end = log.truncate_before(Offset(1_000)).await.unwrap();
    assert!(end <= log.end_offset(), "the start never passes the end");
    assert_eq!(log.end_offset(), Offset(100));
    assert_eq!(
        log.append(&[record(100)], None).await.unwrap(),
        Offset(100)..Offset(101),
        "offsets go on after a truncation"
    );
}

async fn read_many_answers_scattered_offsets_in_the_order_asked(mut backend: impl Backend) {
    let log = open(&backend, "a").await;
    for i in 0..40 {
        log.append(&[record(i)], None).await.unwrap();
    }
    let asked = [39, 0, 17, 17, 3, 40, 1_000].map(Offset);
    let check = |found: Vec<Option<wharf_storage::Record>>| {
        let payloads: Vec<Option<Bytes>> =
            found.into_iter().map(|r| r.map(|r| r.payload)).collect();
        let expected: Vec<Option<Bytes>> = (asked.iter())
            .map(|offset| (offset.0 < 40).then(|| record(offset.0)))
            .collect();
        assert_eq!(
            payloads, expected,
            "the newest from memory, the oldest from the files"
        );
    };
    check(log.read_many(&asked).await.unwrap());
    backend.restart().await;
    let log = open(&backend, "a").await;
    check(log.read_many(&asked).await.unwrap());
    let start = log.truncate_before(Offset(20)).await.unwrap();
    if start > Offset(0) {
        let error = log.read_many(&[Offset(30), Offset(0)]).await.unwrap_err();
        assert!(
            matches!(error, StorageError::OffsetTruncated { offset: 0, .. }),
            "{error:?}"
        );
    }
}

async fn truncation_survives_a_restart(mut backend: impl Backend) {
    let log = open(&backend, "a").await;
    for i in 0..100 {
        log.append(&[Bytes::from(vec![i as u8; 300])], None)
            .await
            .unwrap();
    }
    let start = log.truncate_before(Offset(60)).await.unwrap();
    drop(log);
    backend.restart().await;
    let log = open(&backend, "a").await;
    assert!(log.start_offset() >= start && log.start_offset() <= Offset(60));
    assert_eq!(log.end_offset(), Offset(100));
    assert_eq!(log.read(Offset(60)).await.unwrap().unwrap().payload[0], 60);
}

async fn records_survive_a_restart_and_offsets_go_on(mut backend: impl Backend) {
    let log = open(&backend, "a").await;
    for i in 0..40 {
        log.append(&records(i * 3..i * 3 + 3), None).await.unwrap();
    }
    backend.restart().await;
    let error = log.append(&[record(0)], None).await.unwrap_err();
    assert!(
        matches!(error, StorageError::Closed { .. }),
        "a handle from before the restart refuses appends: {error:?}"
    );
    drop(log);
    let log = open(&backend, "a").await;
    assert_eq!(log.end_offset(), Offset(120));
    assert_eq!(read_all(&*log).await, records(0..120));
    assert_eq!(
        log.append(&[record(120)], Some(Offset(120))).await.unwrap(),
        Offset(120)..Offset(121)
    );
}

async fn a_closed_log_refuses_appends_and_opens_again_with_its_records(backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&records(0..5), None).await.unwrap();
    log.close().await.unwrap();
    let error = log.append(&[record(5)], None).await.unwrap_err();
    assert!(matches!(error, StorageError::Closed { .. }), "{error:?}");
    let error = log.append_lazy(&[record(5)]).unwrap_err();
    assert!(matches!(error, StorageError::Closed { .. }), "{error:?}");
    assert_eq!(
        log.read(Offset(4)).await.unwrap().unwrap().payload,
        record(4),
        "a closed handle still reads"
    );
    let again = open(&backend, "a").await;
    assert_eq!(read_all(&*again).await, records(0..5));
    assert_eq!(
        again.append(&[record(5)], None).await.unwrap(),
        Offset(5)..Offset(6)
    );
}

async fn a_failed_append_leaves_nothing_and_its_offsets_are_reused(mut backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&records(0..3), None).await.unwrap();
    backend.fail_appends(true);
    for _ in 0..3 {
        let error = log.append(&records(100..104), None).await.unwrap_err();
        assert!(matches!(error, StorageError::Io { .. }), "{error:?}");
        assert_eq!(log.end_offset(), Offset(3));
        assert_eq!(log.read(Offset(3)).await.unwrap(), None);
    }
    let error = log
        .append(&[record(100)], Some(Offset(3)))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Io { .. }), "{error:?}");
    backend.fail_appends(false);
    assert_eq!(
        log.append(&records(3..5), Some(Offset(3))).await.unwrap(),
        Offset(3)..Offset(5),
        "the failed appends' offsets are handed out again"
    );
    drop(log);
    backend.restart().await;
    let log = open(&backend, "a").await;
    assert_eq!(
        read_all(&*log).await,
        records(0..5),
        "nothing of a failed append comes back"
    );
}

async fn lazy_appends_ride_the_next_commit(backend: impl Backend) {
    // Lazy appends first: a flusher still finishing an earlier commit on its own thread would
    // take them with its next one, which is allowed (they ride whatever commit comes next).
    let log = open(&backend, "a").await;
    assert_eq!(
        log.append_lazy(&records(0..2)).unwrap(),
        Offset(0)..Offset(2)
    );
    assert_eq!(log.append_lazy(&[record(2)]).unwrap(), Offset(2)..Offset(3));
    assert_eq!(log.end_offset(), Offset(0), "not readable before a commit");
    assert_eq!(log.read(Offset(0)).await.unwrap(), None);
    assert_eq!(
        log.append(&[record(3)], Some(Offset(3))).await.unwrap(),
        Offset(3)..Offset(4)
    );
    assert_eq!(log.end_offset(), Offset(4));
    assert_eq!(read_all(&*log).await, records(0..4));
}

async fn lazy_appends_are_written_at_close(mut backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&[record(0)], None).await.unwrap();
    log.append_lazy(&records(1..4)).unwrap();
    drop(log);
    backend.restart().await;
    let log = open(&backend, "a").await;
    assert_eq!(read_all(&*log).await, records(0..4));
}

async fn open_log_returns_the_same_log_while_it_is_open(backend: impl Backend) {
    let one = open(&backend, "a").await;
    let two = open(&backend, "a").await;
    let other = open(&backend, "b").await;
    one.append(&records(0..2), None).await.unwrap();
    assert_eq!(two.end_offset(), Offset(2));
    assert_eq!(
        two.append(&[record(2)], Some(Offset(2))).await.unwrap(),
        Offset(2)..Offset(3)
    );
    assert_eq!(read_all(&*one).await, records(0..3));
    assert_eq!(other.end_offset(), Offset(0), "logs are independent");
}

async fn a_deleted_log_starts_again_empty(backend: impl Backend) {
    let log = open(&backend, "a").await;
    log.append(&records(0..5), None).await.unwrap();
    backend.storage().delete_log("a").await.unwrap();
    let error = log.append(&[record(5)], None).await.unwrap_err();
    assert!(matches!(error, StorageError::Closed { .. }), "{error:?}");
    let log = open(&backend, "a").await;
    assert_eq!(
        (log.start_offset(), log.end_offset()),
        (Offset(0), Offset(0))
    );
    assert_eq!(log.read(Offset(0)).await.unwrap(), None);
    backend.storage().delete_log("never-opened").await.unwrap();
}

async fn a_transient_log_keeps_the_same_promises_short_of_a_crash(mut backend: impl Backend) {
    let options = LogOptions {
        durability: Durability::Transient,
        size: LogSize::Small,
    };
    let log = backend.storage().open_log("t", options).await.unwrap();
    for i in 0..30 {
        log.append(&records(i * 10..i * 10 + 10), None)
            .await
            .unwrap();
    }
    assert_eq!(read_all(&*log).await, records(0..300));
    drop(log);
    backend.restart().await;
    let log = backend.storage().open_log("t", options).await.unwrap();
    assert_eq!(
        log.end_offset(),
        Offset(300),
        "a clean close syncs a transient log"
    );
}

async fn metadata_applies_whole_and_survives_a_restart(mut backend: impl Backend) {
    let storage = backend.storage();
    assert_eq!(storage.meta_get("queue/a"), None);
    storage
        .meta_apply(vec![
            MetaOp::Put("queue/b".into(), json!({"durable": true})),
            MetaOp::Put("queue/a".into(), json!(1)),
            MetaOp::Put("topic/x".into(), json!(2)),
        ])
        .await
        .unwrap();
    storage
        .meta_apply(vec![
            MetaOp::Delete("queue/a".into()),
            MetaOp::Put("queue/c".into(), json!(3)),
            MetaOp::Delete("queue/missing".into()),
        ])
        .await
        .unwrap();
    let expected = vec![
        ("queue/b".to_string(), json!({"durable": true})),
        ("queue/c".to_string(), json!(3)),
    ];
    assert_eq!(storage.meta_list("queue/"), expected);
    assert_eq!(storage.meta_get("topic/x"), Some(json!(2)));
    backend.restart().await;
    let storage = backend.storage();
    assert_eq!(storage.meta_list("queue/"), expected);
    assert_eq!(storage.meta_list("").len(), 3);
    assert_eq!(storage.meta_get("queue/a"), None);
    // A page: after a cursor (exclusive), at most a limit, never past the prefix.
    let keys = |entries: Vec<(String, serde_json::Value)>| -> Vec<String> {
        entries.into_iter().map(|(key, _)| key).collect()
    };
    assert_eq!(keys(storage.meta_range("queue/", None, 1)), ["queue/b"]);
    assert_eq!(
        keys(storage.meta_range("queue/", Some("queue/b"), 5)),
        ["queue/c"]
    );
    assert_eq!(
        keys(storage.meta_range("queue/", Some("queue/c"), 5)),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(storage.meta_range("queue/", Some("a"), 5)),
        ["queue/b", "queue/c"],
        "a cursor before the prefix starts at the prefix"
    );
    assert_eq!(
        keys(storage.meta_range("", Some("queue/b"), 5)),
        ["queue/c", "topic/x"]
    );
    assert_eq!(
        keys(storage.meta_range("queue/", None, 0)),
        Vec::<String>::new()
    );
}

/// Instantiates every behaviour once per backend: `file::NAME` and `memory::NAME`.
macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour(super::FileBackend::new()).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour(super::MemoryBackend::new()).await;
                }
            )*
        }
    };
}

suite!(
    offsets_are_sequential_from_zero_and_records_read_back,
    concurrent_appends_of_many_records_get_consecutive_offsets,
    an_empty_append_takes_no_offset,
    a_conditional_append_succeeds_when_the_log_ends_there,
    a_failed_condition_writes_nothing_and_names_the_end,
    of_appends_expecting_the_same_end_exactly_one_wins,
    a_condition_counts_appends_still_being_committed,
    a_record_too_large_is_refused_and_nothing_written,
    read_batch_stops_at_max_records_and_max_bytes,
    read_batch_returns_one_record_larger_than_max_bytes,
    reads_at_or_past_the_end_find_nothing,
    read_many_answers_scattered_offsets_in_the_order_asked,
    wait_for_wakes_when_the_record_is_committed,
    wait_for_fails_when_the_log_closes_first,
    truncate_before_keeps_everything_from_the_offset_on,
    truncation_survives_a_restart,
    records_survive_a_restart_and_offsets_go_on,
    a_closed_log_refuses_appends_and_opens_again_with_its_records,
    a_failed_append_leaves_nothing_and_its_offsets_are_reused,
    lazy_appends_ride_the_next_commit,
    lazy_appends_are_written_at_close,
    open_log_returns_the_same_log_while_it_is_open,
    a_deleted_log_starts_again_empty,
    a_transient_log_keeps_the_same_promises_short_of_a_crash,
    metadata_applies_whole_and_survives_a_restart,
);
