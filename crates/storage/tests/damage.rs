//! Recovery tells torn tails from damage: a torn tail (invalid bytes after the last valid record
//! of the last segment) is cut; damage (invalid bytes with valid records after them, in any
//! segment, or an older segment ending early) costs only the damaged records, is counted and
//! reported, and the log goes on.

use proptest::prelude::*;
use std::{
    collections::BTreeMap,
    fs,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};
use wharf_storage::{Faults, Log, LogConfig, Offset, StorageError, StorageMetrics};

#[allow(dead_code)]
mod common;
use common::{apply, config, harm_strategy, modify, payload, runtime};

fn open(dir: &Path, config: LogConfig) -> (Log, Arc<StorageMetrics>) {
    let metrics = Arc::new(StorageMetrics::default());
    (Log::open(dir, config, metrics.clone()).unwrap(), metrics)
}

/// Writes one record per append and returns each record's (file, byte range).
fn write_records(
    dir: &Path,
    config: LogConfig,
    payloads: &[Vec<u8>],
) -> Vec<(PathBuf, Range<usize>)> {
    let runtime = runtime();
    runtime.block_on(async {
        let (log, _) = open(dir, config);
        for payload in payloads {
            log.append([payload]).await.unwrap();
        }
        log.close().await.unwrap();
        let bases = log.segment_bases();
        let mut frames = Vec::new();
        let mut position = 0;
        for (i, payload) in payloads.iter().enumerate() {
            let base = bases.iter().rev().find(|b| b.0 <= i as u64).unwrap();
            if base.0 == i as u64 {
                position = 0;
            }
            let path = dir.join(format!("{:020}.log", base.0));
            frames.push((path, position..position + 16 + payload.len()));
            position += 16 + payload.len();
        }
        frames
    })
}

/// XORs the bytes `at` of the file at `path` with `mask`.
fn flip(path: &Path, at: Range<usize>, mask: u8) {
    modify(path, |bytes| bytes[at].iter_mut().for_each(|b| *b ^= mask));
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

fn metric(metrics: &StorageMetrics) -> u64 {
    metrics.corrupt_records.get()
}

/// 8 bytes flipped in the middle of an older segment cost the records they touch; the old code
/// made every record from there to the end of the segment unreadable.
#[test]
fn flip_in_older_segment_costs_only_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..600).map(|i| payload(i, 200)).collect();
    let frames = write_records(dir.path(), config(64 << 10, true), &payloads);
    let (path, frame) = frames[100].clone();
    assert_ne!(&path, segment_files(dir.path()).last().unwrap());
    flip(&path, frame.start + 50..frame.start + 58, 0xff);
    let (log, metrics) = open(dir.path(), config(64 << 10, true));
    let damage = log.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(damage[0].offsets, Offset(100)..Offset(101));
    assert_eq!(metric(&metrics), 1);
    for (i, expected) in payloads.iter().enumerate() {
        match log.read(Offset(i as u64)) {
            Err(StorageError::Corrupt { offset, .. }) => assert_eq!(offset, Offset(100)),
            Ok(Some(record)) => assert_eq!(&record.payload[..], &expected[..], "record {i}"),
            other => panic!("record {i}: {other:?}"),
        }
    }
    // A batch over the damage returns what precedes it; the next read from the damage fails.
    let batch = log.read_batch(Offset(90), 50, usize::MAX).unwrap();
    assert_eq!(batch.len(), 10);
    assert!(log.read_batch(Offset(100), 50, usize::MAX).is_err());
    assert_eq!(log.read_batch(Offset(101), 5, usize::MAX).unwrap().len(), 5);
}

/// Scattered reads share one positional read among nearby offsets: a damaged record between
/// two wanted ones costs nothing, and asking for the damaged one fails as a single read would.
#[test]
fn a_scattered_read_over_damage_it_does_not_ask_for_succeeds() {
    use wharf_storage::LogStore;
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 200)).collect();
    let frames = write_records(dir.path(), config(64 << 10, true), &payloads);
    let (path, frame) = frames[20].clone();
    flip(&path, frame.start + 50..frame.start + 58, 0xff);
    let (log, _) = open(dir.path(), config(64 << 10, true));
    runtime().block_on(async {
        let asked: Vec<Offset> = [25, 17, 19, 21, 23, 18].map(Offset).to_vec();
        let found = LogStore::read_many(&log, &asked).await.unwrap();
        for (offset, record) in asked.iter().zip(found) {
            let record = record.unwrap_or_else(|| panic!("record {offset:?} missing"));
            assert_eq!(record.offset, *offset);
            assert_eq!(&record.payload[..], &payloads[offset.0 as usize][..]);
        }
        let error = LogStore::read_many(&log, &[Offset(19), Offset(20), Offset(21)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::Corrupt {
                    offset: Offset(20),
                    ..
                }
            ),
            "{error:?}"
        );
    });
}

/// An older segment cut short: the records it lost are damage, counted one by one; the old code
/// counted one per segment.
#[test]
fn truncated_older_segment_counts_every_lost_record() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..600).map(|i| payload(i, 200)).collect();
    let frames = write_records(dir.path(), config(64 << 10, false), &payloads);
    let files = segment_files(dir.path());
    let cut = frames[10].1.start + 5;
    let lost = frames
        .iter()
        .filter(|(p, r)| *p == files[0] && r.end > cut)
        .count();
    modify(&files[0], |bytes| bytes.truncate(cut));
    let (log, metrics) = open(dir.path(), config(64 << 10, false));
    assert_eq!(
        log.damage()[0].offsets,
        Offset(10)..Offset(10 + lost as u64)
    );
    assert_eq!(metric(&metrics), lost as u64);
    assert!(matches!(
        log.read(Offset(10)),
        Err(StorageError::Corrupt { .. })
    ));
    assert!(log.read(Offset(9)).unwrap().is_some());
    assert!(log.read(Offset(10 + lost as u64)).unwrap().is_some());
    assert_eq!(log.end_offset(), Offset(600));
}

/// 8 bytes flipped inside the last segment with valid records after them are damage, not a torn
/// tail; the old code zeroed everything after them and lost 500 confirmed records.
#[test]
fn flip_in_last_segment_is_damage_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..600).map(|i| payload(i, 300)).collect();
    let frames = write_records(dir.path(), config(1 << 20, true), &payloads);
    let (path, frame) = frames[99].clone();
    flip(&path, frame.start + 40..frame.start + 48, 0x5a);
    let (log, metrics) = open(dir.path(), config(1 << 20, true));
    assert_eq!(log.end_offset(), Offset(600));
    assert_eq!(log.damage()[0].offsets, Offset(99)..Offset(100));
    assert_eq!(metric(&metrics), 1);
    let after = log.read_batch(Offset(100), usize::MAX, usize::MAX).unwrap();
    assert_eq!(after.len(), 500);
    let runtime = runtime();
    assert_eq!(
        runtime.block_on(log.append_one(b"next")).unwrap(),
        Offset(600)
    );
}

/// Zeroes over records in the middle of the last segment, valid records after them: damage.
#[test]
fn zero_filled_range_before_valid_records_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 100)).collect();
    let frames = write_records(dir.path(), config(1 << 20, true), &payloads);
    let (path, first) = frames[40].clone();
    let last = frames[44].1.clone();
    modify(&path, |bytes| bytes[first.start..last.end].fill(0));
    let (log, metrics) = open(dir.path(), config(1 << 20, true));
    assert_eq!(log.damage()[0].offsets, Offset(40)..Offset(45));
    assert_eq!(metric(&metrics), 5);
    assert_eq!(
        log.read_batch(Offset(45), usize::MAX, usize::MAX)
            .unwrap()
            .len(),
        55
    );
    // Zeroes after the last record are the end, not damage.
    let (path, first) = frames[90].clone();
    log_closed(log);
    modify(&path, |bytes| bytes[first.start..].fill(0));
    let (log, _) = open(dir.path(), config(1 << 20, true));
    assert_eq!(log.end_offset(), Offset(90));
    assert_eq!(log.damage().len(), 1);
}

fn log_closed(log: Log) {
    runtime().block_on(log.close()).unwrap();
}

/// On a full disk the failed append's bytes are cleared without needing space; the old code's
/// zeroing write failed too and left them in the file.
#[test]
fn failed_append_on_full_disk_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let config = LogConfig {
        faults: Some(faults.clone()),
        ..config(1 << 20, false)
    };
    let runtime = runtime();
    runtime.block_on(async {
        let (log, _) = open(dir.path(), config.clone());
        log.append_one(payload(0, 100)).await.unwrap();
        faults.set_space(Some(150));
        let records = [payload(1, 100), payload(2, 100), payload(3, 100)];
        assert!(log.append(&records).await.unwrap_err().is_disk_full());
        let bytes = fs::read(&segment_files(dir.path())[0]).unwrap();
        assert!(
            bytes[116..].iter().all(|b| *b == 0),
            "bytes of the failed append left in the file"
        );
        faults.set_space(None);
        assert_eq!(log.append_one(b"after").await.unwrap(), Offset(1));
        log.close().await.unwrap();
    });
    let (log, _) = open(dir.path(), config);
    assert_eq!(log.end_offset(), Offset(2));
    assert!(log.damage().is_empty());
}

/// A clean close leaves no `spare.tmp` (preallocated or empty) behind.
#[test]
fn clean_close_leaves_no_spare_file() {
    for payload_len in [100, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..35).map(|i| payload(i, payload_len)).collect();
        let bytes = (payload_len as u64 + 16) * 20;
        write_records(dir.path(), config(bytes, true), &payloads);
        let spare = dir.path().join("spare.tmp");
        assert!(
            !spare.exists(),
            "spare.tmp left after payloads of {payload_len}"
        );
    }
}

/// An older segment cut inside a multi-record append: the records of that append before the
/// cut are intact, and the next segment's records follow them, so they are no torn tail and
/// must stay readable. Today the scan of the segment drops the whole append, as it would at the
/// end of the last segment, and reports offsets 5..20 instead of 9..20. The same happens when
/// the last record of an older segment is damaged without a cut. Found by
/// `damage_in_any_file_costs_only_what_it_touched` (wharf-engine), where sends of 5 messages
/// are single appends.
#[test]
fn an_older_segment_cut_inside_an_append_keeps_the_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 181)).collect();
    let runtime = runtime();
    runtime.block_on(async {
        let (log, _) = open(dir.path(), config(4096, false));
        for batch in payloads.chunks(5) {
            log.append(batch).await.unwrap();
        }
        log.close().await.unwrap();
    });
    let files = segment_files(dir.path());
    let frame_bytes = 16 + 181;
    // Records 5..10 are one append; the cut falls inside record 9, the last of it.
    let cut = 9 * frame_bytes + 5;
    modify(&files[0], |bytes| bytes.truncate(cut));
    let (log, metrics) = open(dir.path(), config(4096, false));
    for i in 5..9 {
        let record = log.read(Offset(i)).unwrap().expect("readable");
        assert_eq!(&record.payload[..], &payloads[i as usize][..], "record {i}");
    }
    assert_eq!(log.damage()[0].offsets, Offset(9)..Offset(20));
    assert_eq!(metric(&metrics), 11);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any damage at any place of any segment costs at most the records it touched: every
    /// other record reads back at its offset, the damaged ones fail with `Corrupt` (or are a
    /// torn tail, cut, at the end of the last segment), the metric counts the failing ones and
    /// the log goes on with the next offsets.
    #[test]
    fn damage_costs_only_the_touched_records(
        lens in proptest::collection::vec(0..300usize, 20..120),
        which in any::<prop::sample::Index>(),
        harm in harm_strategy(),
        preallocate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, len)| payload(i as u64, *len)).collect();
        let frames = write_records(dir.path(), config(4096, preallocate), &payloads);
        let files = segment_files(dir.path());
        let path = files[which.index(files.len())].clone();
        let mut bytes = fs::read(&path).unwrap();
        let changed = apply(&harm, &mut bytes);
        fs::write(&path, &bytes).unwrap();
        let touched: BTreeMap<u64, bool> = frames.iter().enumerate()
            .map(|(i, (p, r))| (i as u64, *p == path && r.start < changed.end && changed.start < r.end))
            .collect();

        let (log, metrics) = open(dir.path(), config(4096, preallocate));
        let damaged: Vec<Offset> = log.damage().iter().flat_map(|d| (d.offsets.start.0..d.offsets.end.0).map(Offset)).collect();
        prop_assert_eq!(metric(&metrics), damaged.len() as u64);
        let mut corrupt = Vec::new();
        for (i, expected) in payloads.iter().enumerate() {
            let offset = Offset(i as u64);
            match log.read(offset) {
                Ok(Some(record)) => prop_assert_eq!(&record.payload[..], &expected[..], "record {}", i),
                Err(StorageError::Corrupt { offset: at, .. }) => {
                    prop_assert_eq!(at, offset);
                    corrupt.push(offset);
                }
                Ok(None) => prop_assert!(offset >= log.end_offset()),
                Err(other) => prop_assert!(false, "record {}: {}", i, other),
            }
            if !touched[&(i as u64)] {
                prop_assert!(offset < log.end_offset(), "untouched record {} lost", i);
            }
        }
        prop_assert_eq!(&corrupt, &damaged);
        for offset in &corrupt {
            prop_assert!(touched[&offset.0], "untouched record {} reported corrupt", offset);
        }
        let end = log.end_offset();
        let next = runtime().block_on(log.append_one(b"after damage")).unwrap();
        prop_assert_eq!(next, end);
        prop_assert_eq!(&log.read(next).unwrap().unwrap().payload[..], b"after damage");
    }
}
