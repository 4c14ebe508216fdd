//! Segments cut right after their last frame, as the upgrade fixtures keep them: the end of
//! the file reads like the zero end marker, for the active segment and for sealed ones, and
//! appends after such a cut work and survive a reopen.

use std::{fs, path::Path, sync::Arc};
use wharf_storage::{Log, LogConfig, Offset, StorageMetrics};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir, config(), Arc::new(StorageMetrics::default())).unwrap()
}

/// Ends in zero bytes on purpose: a cut at the last non-zero byte would lose them.
fn payload(i: u64) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..200).map(|j| (i * 7 + j) as u8 | 1).collect();
    bytes.extend_from_slice(&[0, 0, 0]);
    bytes
}

/// Cuts every segment after its last frame (the u32 LE length at the start of each frame
/// counts the whole frame) and removes the spare segment.
fn cut_after_last_frame(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "tmp") {
            fs::remove_file(&path).unwrap();
            continue;
        }
        let bytes = fs::read(&path).unwrap();
        let mut end = 0;
        while let Some(length) = bytes.get(end..end + 4) {
            let length = u32::from_le_bytes(length.try_into().unwrap()) as usize;
            if length == 0 {
                break;
            }
            end += length;
        }
        assert!(bytes[end..].iter().all(|&b| b == 0), "{path:?}");
        fs::write(&path, &bytes[..end]).unwrap();
    }
}

fn assert_reads(log: &Log, count: u64) {
    assert_eq!(log.end_offset(), Offset(count));
    assert!(log.damage().is_empty(), "{:?}", log.damage());
    let records = log.read_batch(Offset(0), 1_000, usize::MAX).unwrap();
    assert_eq!(records.len() as u64, count);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.payload.as_ref(), payload(i as u64).as_slice());
    }
}

#[tokio::test]
async fn segments_cut_after_their_last_frame_open_and_take_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..50 {
        log.append_one(payload(i)).await.unwrap();
    }
    assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
    log.close().await.unwrap();
    drop(log);

    cut_after_last_frame(dir.path());
    let log = open(dir.path());
    assert_reads(&log, 50);
    for i in 50..80 {
        log.append_one(payload(i)).await.unwrap();
    }
    log.close().await.unwrap();
    drop(log);

    let log = open(dir.path());
    assert_reads(&log, 80);
}
