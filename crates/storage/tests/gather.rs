//! Commit gathering (`LogConfig::commit_gather`): under load a small pending batch waits for
//! more appends before its commit, up to a deadline or a size, and never past a close.
//!
//! Each test makes the log busy the same way: while the first commit syncs, a hook appends one
//! small record lazily, so that a batch is pending when that commit ends.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};
use wharf_storage::{Faults, Log, LogConfig, Offset, StorageMetrics, GATHER_BYTES};

/// Longer than any test may take: a commit that waited this long would time the test out.
const FOREVER: Duration = Duration::from_secs(60);
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Busy {
    log: Arc<OnceLock<Log>>,
    metrics: Arc<StorageMetrics>,
}

impl Busy {
    /// Opens a log gathering for `commit_gather`, whose first commit gets company.
    fn open(dir: &std::path::Path, commit_gather: Duration) -> Busy {
        let faults = Faults::new();
        let metrics = Arc::new(StorageMetrics::default());
        let config = LogConfig {
            faults: Some(faults.clone()),
            commit_gather,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config, metrics.clone()).unwrap();
        let cell = Arc::new(OnceLock::new());
        cell.set(log).unwrap();
        let fired = AtomicBool::new(false);
        faults.set_before_sync_data(Some(Arc::new({
            let cell = cell.clone();
            move || {
                if !fired.swap(true, Ordering::SeqCst) {
                    cell.get().unwrap().append_lazy([b"small"]).unwrap();
                }
            }
        })));
        Busy { log: cell, metrics }
    }

    /// Returns once the flusher waits for more appends.
    async fn waiting(&self) {
        tokio::time::timeout(TEST_TIMEOUT, async {
            while self.metrics.commit_gathers.get() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the flusher waits for more");
    }

    fn log(&self) -> &Log {
        self.log.get().unwrap()
    }
}

#[tokio::test]
async fn a_small_batch_waits_for_more_and_a_large_one_goes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Busy::open(dir.path(), FOREVER);
    let log = busy.log();
    assert_eq!(log.append_one(b"first").await.unwrap(), Offset(0));
    assert_eq!(
        busy.metrics.fsyncs.get(),
        1,
        "after an idle moment: no wait"
    );
    // The small record waits: the large append below comes while it does.
    busy.waiting().await;
    let large = vec![7u8; GATHER_BYTES];
    let appended = tokio::time::timeout(TEST_TIMEOUT, log.append_one(&large))
        .await
        .expect("a batch past GATHER_BYTES is committed at once");
    assert_eq!(appended.unwrap(), Offset(2));
    assert_eq!(
        busy.metrics.fsyncs.get(),
        2,
        "the small record waited and shared the large one's commit"
    );
    assert_eq!(
        log.read(Offset(1)).unwrap().unwrap().payload.as_ref(),
        b"small"
    );
}

#[tokio::test]
async fn a_small_batch_waits_until_the_deadline_and_no_longer() {
    let dir = tempfile::tempdir().unwrap();
    let gather = Duration::from_millis(50);
    let busy = Busy::open(dir.path(), gather);
    let log = busy.log();
    let started = Instant::now();
    log.append_one(b"first").await.unwrap();
    tokio::time::timeout(TEST_TIMEOUT, log.wait_for(Offset(1)))
        .await
        .expect("the small record is committed at its deadline");
    assert!(
        started.elapsed() >= gather,
        "committed {:?} after the first commit began: it did not wait",
        started.elapsed()
    );
    assert_eq!(busy.metrics.fsyncs.get(), 2);
    assert_eq!(busy.metrics.commit_gathers.get(), 1);
    assert_eq!(log.end_offset(), Offset(2));
}

#[tokio::test]
async fn a_close_ends_the_wait_and_commits_what_was_gathered() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Busy::open(dir.path(), FOREVER);
    let log = busy.log();
    log.append_one(b"first").await.unwrap();
    busy.waiting().await;
    tokio::time::timeout(TEST_TIMEOUT, log.close())
        .await
        .expect("the close ended the wait")
        .unwrap();
    let reopened = Log::open(
        dir.path(),
        LogConfig::default(),
        Arc::new(StorageMetrics::default()),
    )
    .unwrap();
    assert_eq!(
        reopened.end_offset(),
        Offset(2),
        "the gathered record is stored"
    );
}
