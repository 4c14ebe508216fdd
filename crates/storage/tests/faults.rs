//! A full disk and failing syncs: appends fail with a clear error, nothing of a failed append is
//! ever read back, acknowledged records stay intact, and appends succeed again once the cause is
//! gone.

use std::sync::Arc;
use wharf_storage::{Faults, Log, LogConfig, Offset, StorageError, StorageMetrics};

fn open(dir: &std::path::Path, faults: Option<Arc<Faults>>) -> Log {
    let config = LogConfig {
        segment_bytes: 4096,
        faults,
        ..LogConfig::default()
    };
    Log::open(dir, config, Arc::new(StorageMetrics::default())).unwrap()
}

fn record(i: u64) -> Vec<u8> {
    format!("record {i:04} {}", "x".repeat(150)).into_bytes()
}

fn assert_disk_full(error: &StorageError, dir: &std::path::Path) {
    assert!(
        error.is_disk_full(),
        "expected a disk-full error, got {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("No space left on device") && message.contains(dir.to_str().unwrap()),
        "error should name the cause and the file: {message}"
    );
}

#[tokio::test]
async fn full_disk_fails_appends_cleanly_and_service_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let log = open(dir.path(), Some(faults.clone()));
    for i in 0..30 {
        assert_eq!(log.append_one(record(i)).await.unwrap(), Offset(i));
    }

    // Room for part of one frame: the write is cut short, as on a real full disk.
    faults.set_space(Some(100));
    let error = log
        .append([record(900), record(901), record(902)])
        .await
        .unwrap_err();
    assert_disk_full(&error, dir.path());
    faults.set_space(Some(0));
    for attempt in 0..5 {
        let error = log.append_one(record(950 + attempt)).await.unwrap_err();
        assert_disk_full(&error, dir.path());
    }
    assert_eq!(
        log.end_offset(),
        Offset(30),
        "failed appends must not be visible"
    );

    // Concurrent appenders all fail, none half-applied.
    let results = futures_join(&log, 8).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_err_and(StorageError::is_disk_full)));

    faults.set_space(None);
    for i in 30..80 {
        // The offsets of failed appends are handed out again: no gaps.
        assert_eq!(log.append_one(record(i)).await.unwrap(), Offset(i));
    }
    log.close().await.unwrap();

    let reopened = open(dir.path(), None);
    assert!(reopened.damage().is_empty());
    assert_eq!(reopened.end_offset(), Offset(80));
    let records = reopened.read_batch(Offset(0), 1000, usize::MAX).unwrap();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.payload.as_ref(), record(i as u64).as_slice());
    }
}

#[tokio::test]
async fn failing_fsync_fails_the_append_and_hides_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let log = open(dir.path(), Some(faults.clone()));
    log.append_one(record(0)).await.unwrap();
    faults.set_fail_syncs(true);
    let error = log.append([record(100), record(101)]).await.unwrap_err();
    assert!(
        matches!(&error, StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)),
        "{error}"
    );
    assert_eq!(log.read(Offset(1)).unwrap(), None);
    faults.set_fail_syncs(false);
    assert_eq!(log.append_one(record(1)).await.unwrap(), Offset(1));
    log.close().await.unwrap();
    let reopened = open(dir.path(), None);
    assert_eq!(reopened.end_offset(), Offset(2));
    assert_eq!(
        reopened.read(Offset(1)).unwrap().unwrap().payload.as_ref(),
        record(1).as_slice()
    );
}

#[tokio::test]
async fn full_disk_during_segment_rotation_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let log = open(dir.path(), Some(faults.clone()));
    let mut acknowledged = 0u64;
    // Allow the current segment's writes but not zero-filling a new one.
    faults.set_space(Some(2_000));
    let mut failures = 0;
    for _ in 0..60 {
        match log.append_one(record(acknowledged)).await {
            Ok(offset) => {
                assert_eq!(offset, Offset(acknowledged));
                acknowledged += 1;
            }
            Err(error) => {
                assert_disk_full(&error, dir.path());
                failures += 1;
                if failures == 3 {
                    faults.set_space(None);
                }
            }
        }
    }
    assert!(failures >= 3, "the budget should have run out");
    assert!(
        log.segment_count() > 1,
        "rotation should succeed once space returns"
    );
    log.close().await.unwrap();
    let reopened = open(dir.path(), None);
    assert_eq!(reopened.end_offset(), Offset(acknowledged));
    assert!(reopened.damage().is_empty());
}

async fn futures_join(log: &Log, count: u64) -> Vec<Result<Offset, StorageError>> {
    let mut tasks = Vec::new();
    for i in 0..count {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append_one(record(500 + i)).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Small commits write whole blocks: a write that covers part of a block the page cache does
/// not hold makes the kernel read that block from the disk first, and wait for it. Every
/// commit so takes a multiple of 4 KiB from the disk budget, never the bare record.
#[tokio::test]
async fn small_commits_write_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        faults: Some(faults.clone()),
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config, Arc::new(StorageMetrics::default())).unwrap();
    faults.set_space(Some(1 << 30));
    for i in 0..20 {
        let before = faults.space().unwrap();
        log.append_one(record(i)).await.unwrap();
        let taken = before - faults.space().unwrap();
        assert!(
            taken >= 4096 && taken.is_multiple_of(4096),
            "commit {i} wrote {taken} bytes"
        );
    }
    let read = log.read_batch(Offset(0), 100, usize::MAX).unwrap();
    assert_eq!(read.len(), 20);
    assert_eq!(read[19].payload, record(19));
}
