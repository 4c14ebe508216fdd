//! Behaviour of one log through its public API: appends, reads, rotation, tailing, truncation,
//! fsync policies and reopening.

use std::{sync::Arc, time::Duration};
use wharf_storage::{FsyncPolicy, Log, LogConfig, Offset, StorageError, StorageMetrics};

fn small(preallocate: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        preallocate,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path, config: LogConfig) -> Log {
    Log::open(dir, config, Arc::new(StorageMetrics::default())).unwrap()
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[tokio::test]
async fn offsets_are_sequential_and_records_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    assert_eq!(log.append_one(b"a").await.unwrap(), Offset(0));
    let range = log.append([b"b".as_slice(), b"", b"d"]).await.unwrap();
    assert_eq!(range, Offset(1)..Offset(4));
    assert_eq!(log.end_offset(), Offset(4));
    let records = log.read_batch(Offset(0), 10, usize::MAX).unwrap();
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_ref()).collect();
    assert_eq!(payloads, vec![b"a".as_slice(), b"b", b"", b"d"]);
    assert_eq!(log.read(Offset(4)).unwrap(), None);
}

#[tokio::test]
async fn segments_rotate_at_the_configured_size_and_reads_cross_them() {
    for (preallocate, direct_io) in [(true, true), (false, true), (true, false), (false, false)] {
        let config = LogConfig {
            direct_io,
            ..small(preallocate)
        };
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config.clone());
        for i in 0..100u64 {
            log.append_one(payload(i, 300)).await.unwrap();
        }
        assert!(log.segment_count() >= 8, "{} segments", log.segment_count());
        let records = log.read_batch(Offset(0), 1000, usize::MAX).unwrap();
        assert_eq!(records.len(), 100);
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset, Offset(i as u64));
            assert_eq!(record.payload.as_ref(), payload(i as u64, 300).as_slice());
        }
        log.close().await.unwrap();
        let reopened = open(dir.path(), config);
        assert_eq!(reopened.end_offset(), Offset(100));
        let record = reopened.read(Offset(57)).unwrap().unwrap();
        assert_eq!(record.payload.as_ref(), payload(57, 300).as_slice());
    }
}

/// Commits large and small, direct and through the page cache, from appenders racing so that
/// their appends share commits, each starting partway into a block: every record reads back,
/// before and after a reopen, and every offset once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_of_every_size_starting_mid_block_read_back() {
    const APPENDERS: u64 = 4;
    const APPENDS: u64 = 12;
    let size = |appender: u64, i: u64| ((appender * 7 + i * 13) % 23) as usize * 4_001 + 1;
    for direct_io in [true, false] {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            direct_io,
            ..LogConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(dir.path(), config.clone()));
        let mut tasks = Vec::new();
        for appender in 0..APPENDERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..APPENDS {
                    let records = [payload(appender, size(appender, i)), payload(i, 7)];
                    let range = log.append(&records).await.unwrap();
                    written.push((range.start, records));
                }
                written
            }));
        }
        let mut written = Vec::new();
        for task in tasks {
            written.extend(task.await.unwrap());
        }
        let check = |log: &Log| {
            for (first, records) in &written {
                for (i, expected) in records.iter().enumerate() {
                    let offset = Offset(first.0 + i as u64);
                    let record = log.read(offset).unwrap().expect("stored");
                    assert_eq!(record.payload.as_ref(), expected.as_slice(), "{offset:?}");
                }
            }
            assert_eq!(log.end_offset(), Offset(APPENDERS * APPENDS * 2));
        };
        check(&log);
        log.close().await.unwrap();
        check(&open(dir.path(), config));
    }
}

#[tokio::test]
async fn an_append_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    log.append_one(b"small").await.unwrap();
    let big = payload(1, 10_000);
    log.append_one(&big).await.unwrap();
    log.append_one(b"after").await.unwrap();
    assert_eq!(log.read(Offset(1)).unwrap().unwrap().payload.as_ref(), big);
    log.close().await.unwrap();
    let reopened = open(dir.path(), small(true));
    assert_eq!(reopened.end_offset(), Offset(3));
    assert_eq!(
        reopened.read(Offset(2)).unwrap().unwrap().payload.as_ref(),
        b"after"
    );
}

#[tokio::test]
async fn read_batch_respects_record_and_byte_limits() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    for i in 0..20u64 {
        log.append_one(payload(i, 100)).await.unwrap();
    }
    assert_eq!(log.read_batch(Offset(0), 5, usize::MAX).unwrap().len(), 5);
    let by_bytes = log.read_batch(Offset(0), 100, 350).unwrap();
    assert!(
        !by_bytes.is_empty() && by_bytes.len() <= 3,
        "{}",
        by_bytes.len()
    );
    // One record is returned even when it alone passes the byte limit.
    assert_eq!(log.read_batch(Offset(3), 100, 1).unwrap().len(), 1);
}

/// Scattered reads of nearby records larger than one read's byte budget, across segments,
/// with gaps and repeats: each offset gets its own record, in the order asked.
#[tokio::test]
async fn scattered_reads_of_large_records_answer_each_offset() {
    use wharf_storage::LogStore;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2 << 20,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    for i in 0..30 {
        log.append_one(&payload(i, 300 << 10)).await.unwrap();
    }
    assert!(log.segment_bases().len() > 1, "the records span segments");
    let asked: Vec<Offset> = [2, 3, 5, 9, 10, 11, 12, 14, 14, 27, 29, 28, 0, 30]
        .map(Offset)
        .to_vec();
    let found = LogStore::read_many(&log, &asked).await.unwrap();
    for (offset, record) in asked.iter().zip(found) {
        match record {
            Some(record) => {
                assert_eq!(record.offset, *offset);
                assert_eq!(record.payload, payload(offset.0, 300 << 10));
            }
            None => assert_eq!(
                *offset,
                Offset(30),
                "only the offset past the end is missing"
            ),
        }
    }
}

#[tokio::test]
async fn concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(StorageMetrics::default());
    let log = Log::open(dir.path(), LogConfig::default(), metrics.clone()).unwrap();
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..20 {
                offsets.push(log.append_one(payload(task * 100 + i, 64)).await.unwrap());
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (0..1280).map(Offset).collect::<Vec<_>>());
    let fsyncs = metrics.fsyncs.get();
    assert!(
        fsyncs < 1280,
        "group commit should batch: {fsyncs} fsyncs for 1280 appends"
    );
    assert_eq!(metrics.appends.get(), 1280);
}

#[tokio::test]
async fn tailing_reader_wakes_when_a_record_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    let reader = log.clone();
    let waiting = tokio::spawn(async move {
        reader.wait_for(Offset(0)).await;
        reader.read(Offset(0)).unwrap().unwrap().payload
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    log.append_one(b"hello").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("tailing reader woke")
        .unwrap();
    assert_eq!(got.as_ref(), b"hello");
}

#[tokio::test]
async fn truncate_before_removes_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    for i in 0..100u64 {
        log.append_one(payload(i, 300)).await.unwrap();
    }
    let held = log.clone();
    let segments_before = log.segment_count();
    let removed = log.truncate_before(Offset(50)).unwrap();
    assert!(removed > 0);
    assert_eq!(log.segment_count(), segments_before - removed);
    let start = log.start_offset();
    assert!(start <= Offset(50) && start > Offset(0), "start {start}");
    assert!(matches!(
        held.read(Offset(0)),
        Err(StorageError::OffsetTruncated { offset: 0, .. })
    ));
    assert_eq!(
        log.read(Offset(50)).unwrap().unwrap().payload.as_ref(),
        payload(50, 300)
    );
    // Never past the active segment, whatever offset is asked for.
    log.truncate_before(Offset(1_000)).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.close().await.unwrap();
    let reopened = open(dir.path(), small(true));
    assert_eq!(reopened.start_offset(), log.start_offset());
    assert_eq!(reopened.end_offset(), Offset(100));
    assert_eq!(reopened.append_one(b"next").await.unwrap(), Offset(100));
}

/// A log whose every record may go gives back its last segment too, once that holds a quarter
/// of a segment: on a disk smaller than a segment nothing would be freed otherwise.
#[tokio::test]
async fn truncating_a_drained_log_seals_and_removes_its_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 << 10,
        ..small(true)
    };
    let log = open(dir.path(), config.clone());
    log.append_one(payload(0, 300)).await.unwrap();
    log.truncate_before(Offset(1)).unwrap();
    assert_eq!(
        (log.segment_count(), log.start_offset()),
        (1, Offset(0)),
        "a few records: the segment stays active"
    );
    for i in 1..100u64 {
        log.append_one(payload(i, 300)).await.unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    log.truncate_before(Offset(99)).unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "not drained: record 99 is still needed"
    );
    log.truncate_before(Offset(100)).unwrap();
    assert_eq!((log.segment_count(), log.start_offset()), (1, Offset(100)));
    let segments = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(segments, 1, "the drained segment's file is gone");
    assert_eq!(log.append_one(b"next").await.unwrap(), Offset(100));
    log.close().await.unwrap();
    let reopened = open(dir.path(), config);
    assert_eq!(reopened.start_offset(), Offset(100));
    assert_eq!(
        reopened
            .read(Offset(100))
            .unwrap()
            .unwrap()
            .payload
            .as_ref(),
        b"next"
    );
}

#[tokio::test]
async fn truncation_while_readers_run_never_yields_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    for i in 0..400u64 {
        log.append_one(payload(i, 200)).await.unwrap();
    }
    let reader = log.clone();
    let reading = std::thread::spawn(move || {
        for round in 0..200u64 {
            let from = Offset(round * 2);
            match reader.read_batch(from, 50, usize::MAX) {
                Ok(records) => {
                    for record in records {
                        assert_eq!(record.payload.as_ref(), payload(record.offset.0, 200));
                    }
                }
                Err(StorageError::OffsetTruncated { .. }) => {}
                Err(other) => panic!("unexpected read error: {other}"),
            }
        }
    });
    for cut in (0..400).step_by(10) {
        log.truncate_before(Offset(cut)).unwrap();
    }
    reading.join().unwrap();
}

#[tokio::test]
async fn closed_log_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    log.append_one(b"x").await.unwrap();
    log.close().await.unwrap();
    let error = log.append_one(b"y").await.unwrap_err();
    assert!(matches!(error, StorageError::Closed { .. }), "{error}");
}

#[tokio::test]
async fn relaxed_policies_make_records_visible_after_the_write() {
    for fsync in [
        FsyncPolicy::Never,
        FsyncPolicy::Interval(Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(StorageMetrics::default());
        let config = LogConfig {
            fsync,
            ..small(true)
        };
        let log = Log::open(dir.path(), config.clone(), metrics.clone()).unwrap();
        for i in 0..10u64 {
            log.append_one(payload(i, 10)).await.unwrap();
        }
        assert_eq!(
            log.read_batch(Offset(0), 100, usize::MAX).unwrap().len(),
            10
        );
        if fsync == FsyncPolicy::Never {
            assert_eq!(
                metrics.fsyncs.get(),
                0,
                "never policy must not fsync appends"
            );
        }
        log.close().await.unwrap();
        let reopened = open(dir.path(), config);
        assert_eq!(reopened.end_offset(), Offset(10));
    }
}

#[tokio::test]
async fn oversized_record_is_refused_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(false));
    let huge = vec![0u8; wharf_storage::RECORD_PAYLOAD_BYTES_MAX + 1];
    let error = log.append_one(&huge).await.unwrap_err();
    assert!(
        matches!(error, StorageError::RecordTooLarge { .. }),
        "{error}"
    );
    assert_eq!(log.end_offset(), Offset(0));
}

#[tokio::test]
async fn lazy_appends_ride_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(StorageMetrics::default());
    let log = Log::open(dir.path(), small(true), metrics.clone()).unwrap();
    let lazy = log
        .append_lazy([b"count 1".as_slice(), b"count 2"])
        .unwrap();
    assert_eq!(lazy, Offset(0)..Offset(2));
    tokio::task::yield_now().await;
    assert_eq!(
        log.end_offset(),
        Offset(0),
        "a lazy append starts no commit"
    );
    assert_eq!(metrics.fsyncs.get(), 0);
    assert_eq!(log.append_one(b"durable").await.unwrap(), Offset(2));
    assert_eq!(log.end_offset(), Offset(3));
    assert_eq!(metrics.fsyncs.get(), 1, "one fsync carried all three");
    // Left alone, lazy appends are written at close.
    log.append_lazy([b"last"]).unwrap();
    log.close().await.unwrap();
    let reopened = open(dir.path(), small(true));
    assert_eq!(reopened.end_offset(), Offset(4));
}

#[tokio::test]
async fn lazy_appends_commit_themselves_past_the_pending_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let record = vec![1u8; 1024];
    let count = wharf_storage::LAZY_PENDING_BYTES_MAX / 1024 + 1;
    for _ in 0..count {
        log.append_lazy([&record]).unwrap();
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        log.wait_for(Offset(count as u64 - 1)),
    )
    .await
    .expect("lazy appends were committed once past the limit");
}

/// A log that never goes idle gives its blocking thread back now and then: with one blocking
/// thread for the whole runtime, another log's append still completes while every commit of
/// the first finds something new pending (added while the commit syncs).
#[test]
fn a_busy_log_does_not_keep_the_blocking_pool_from_other_logs() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (busy_dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let faults = wharf_storage::Faults::new();
    let busy_config = LogConfig {
        faults: Some(faults.clone()),
        ..LogConfig::default()
    };
    let busy = Arc::new(OnceLock::<Log>::new());
    let feeding = Arc::new(AtomicBool::new(true));
    faults.set_before_sync_data(Some(Arc::new({
        let (busy, feeding) = (busy.clone(), feeding.clone());
        move || {
            if let Some(log) = busy.get().filter(|_| feeding.load(Ordering::SeqCst)) {
                log.append_lazy([b"more"]).unwrap();
            }
        }
    })));
    busy.set(open(busy_dir.path(), busy_config)).unwrap();
    let busy_log = busy.get().unwrap();
    let other = open(other_dir.path(), LogConfig::default());
    runtime.block_on(async {
        // Holds the only blocking thread from here on, one commit after another.
        let first = busy_log.append_one(b"first");
        let appended = async {
            tokio::task::yield_now().await;
            tokio::time::timeout(Duration::from_secs(10), other.append_one(b"x")).await
        };
        let (first, appended) = tokio::join!(first, appended);
        feeding.store(false, Ordering::SeqCst);
        first.unwrap();
        assert_eq!(
            appended.expect("the other log's append waited").unwrap(),
            Offset(0)
        );
        assert!(busy_log.end_offset() > Offset(1));
        busy_log.close().await.unwrap();
        other.close().await.unwrap();
    });
    faults.set_before_sync_data(None);
}

/// A rotation that failed after it named the next segment's file (its directory sync failed)
/// leaves that file empty while the next appends go on in the segment before it, past the
/// file's base. Reopened, the log reads those records and removes the empty file, which would
/// otherwise claim their offsets.
#[tokio::test]
async fn an_empty_segment_file_left_by_a_failed_rotation_does_not_hide_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(true));
    for i in 0..6 {
        log.append_one(payload(i, 100)).await.unwrap();
    }
    log.close().await.unwrap();
    drop(log);
    // What the failed rotation left: the next segment's file, zero-filled, named for offset 3.
    let leftover = dir.path().join(format!("{:020}.log", 3));
    std::fs::write(&leftover, vec![0u8; 4096]).unwrap();

    let log = open(dir.path(), small(true));
    assert_eq!(log.end_offset(), Offset(6));
    for i in 0..6 {
        let record = log.read(Offset(i)).unwrap().expect("a record");
        assert_eq!(record.payload.as_ref(), payload(i, 100).as_slice());
    }
    assert!(!leftover.exists(), "the empty file is gone");
    assert_eq!(log.append_one(b"next").await.unwrap(), Offset(6));
    log.close().await.unwrap();
    drop(log);
    let log = open(dir.path(), small(true));
    assert_eq!(
        log.read(Offset(6)).unwrap().unwrap().payload.as_ref(),
        b"next"
    );
}
