//! `Store::repair_log` (what `wharf check --repair` runs): damaged ranges are moved into
//! `DATA_DIR/quarantine/LOG/` with their original bytes, quarantined frames take their place,
//! and the log then reports no damage, keeps every other record at its offset, takes appends,
//! and a second repair changes nothing.

use proptest::prelude::*;
use std::{
    collections::BTreeMap,
    fs,
    ops::Range,
    path::{Path, PathBuf},
};
use wharf_storage::{
    Faults, Log, LogConfig, Offset, Repair, StorageError, Store, StoreConfig, QUARANTINED_REASON,
    RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX,
};

#[allow(dead_code)]
mod common;
use common::{apply, config, harm_strategy, modify, payload, runtime};

const LOG: &str = "wal";

fn log_dir(data: &Path) -> PathBuf {
    data.join("logs").join(LOG)
}

/// Writes one record per append into the store's log and returns each record's (file, byte
/// range).
fn write_records(
    data: &Path,
    config: LogConfig,
    payloads: &[Vec<u8>],
) -> Vec<(PathBuf, Range<usize>)> {
    let store = Store::open(data, StoreConfig::default()).unwrap();
    let log = store.log(LOG, config).unwrap();
    runtime().block_on(async {
        for payload in payloads {
            log.append([payload]).await.unwrap();
        }
        log.close().await.unwrap();
    });
    let bases = log.segment_bases();
    let mut frames = Vec::new();
    let mut position = 0;
    for (i, payload) in payloads.iter().enumerate() {
        let base = bases.iter().rev().find(|b| b.0 <= i as u64).unwrap();
        if base.0 == i as u64 {
            position = 0;
        }
        let path = log_dir(data).join(format!("{:020}.log", base.0));
        frames.push((path, position..position + 16 + payload.len()));
        position += 16 + payload.len();
    }
    frames
}

fn segment_files(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(log_dir(data))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// Repairs the log in a store of its own, as `wharf check --repair` does.
fn repair(data: &Path) -> Repair {
    Store::open(data, StoreConfig::default())
        .unwrap()
        .repair_log(LOG)
        .unwrap()
}

/// Opens the log in a store the caller keeps (the log needs its store's lock held).
fn open(data: &Path, config: LogConfig) -> (Store, Log) {
    let store = Store::open(data, StoreConfig::default()).unwrap();
    let log = store.log(LOG, config).unwrap();
    (store, log)
}

/// Every file under `dir` with its bytes: what a second repair must leave alone.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else if path.file_name().is_some_and(|n| n != "lock") {
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
    files
}

fn assert_quarantined(log: &Log, offset: Offset) {
    match log.read(offset) {
        Err(StorageError::Corrupt { reason, .. }) => assert_eq!(reason, QUARANTINED_REASON),
        other => panic!("offset {offset}: {other:?}"),
    }
}

/// Two flipped records, one in an older segment and one in the middle of the last: after the
/// repair their bytes are in quarantine/, the log has no damage but two quarantined offsets,
/// every other record reads back, appends go on, and a reopen sees the same.
#[test]
fn repair_moves_damage_aside_and_keeps_every_other_record() {
    let data = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..600).map(|i| payload(i, 200)).collect();
    let frames = write_records(data.path(), config(64 << 10, true), &payloads);
    for (index, at) in [(100, 50), (550, 40)] {
        let (path, frame) = &frames[index];
        modify(path, |bytes| {
            for b in &mut bytes[frame.start + at..frame.start + at + 8] {
                *b ^= 0xff;
            }
        });
    }
    let damaged: Vec<Vec<u8>> = [100, 550]
        .iter()
        .map(|i| fs::read(&frames[*i].0).unwrap()[frames[*i].1.clone()].to_vec())
        .collect();

    let repaired = repair(data.path());
    assert!(repaired.left.is_empty(), "{repaired:?}");
    assert_eq!(repaired.moved.len(), 2, "{repaired:?}");
    for (moved, bytes) in repaired.moved.iter().zip(&damaged) {
        assert!(moved
            .file
            .starts_with(data.path().join("quarantine").join(LOG)));
        assert_eq!(&fs::read(&moved.file).unwrap(), bytes);
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(moved.file.with_extension("json")).unwrap()).unwrap();
        assert_eq!(json["log"], LOG);
        assert_eq!(json["position"], moved.damage.position);
        assert_eq!(json["length"], bytes.len() as u64);
        assert_eq!(json["offsets"]["start"], moved.damage.offsets.start.0);
    }

    let (store, log) = open(data.path(), config(64 << 10, true));
    assert!(log.damage().is_empty(), "{:?}", log.damage());
    let quarantined: Vec<Range<Offset>> =
        log.quarantined().into_iter().map(|q| q.offsets).collect();
    assert_eq!(
        quarantined,
        vec![Offset(100)..Offset(101), Offset(550)..Offset(551)]
    );
    for (i, expected) in payloads.iter().enumerate() {
        if i == 100 || i == 550 {
            assert_quarantined(&log, Offset(i as u64));
        } else {
            let record = log.read(Offset(i as u64)).unwrap().unwrap();
            assert_eq!(&record.payload[..], &expected[..], "record {i}");
        }
    }
    // A batch over a quarantined offset stops before it, like one over damage.
    assert_eq!(
        log.read_batch(Offset(90), 50, usize::MAX).unwrap().len(),
        10
    );
    assert_eq!(log.read_batch(Offset(101), 5, usize::MAX).unwrap().len(), 5);
    let runtime = runtime();
    assert_eq!(
        runtime.block_on(log.append_one(b"next")).unwrap(),
        Offset(600)
    );
    runtime.block_on(log.close()).unwrap();
    drop(store);

    let (_store, log) = open(data.path(), config(64 << 10, true));
    assert!(log.damage().is_empty());
    assert_eq!(log.quarantined().len(), 2);
    assert_eq!(
        &log.read(Offset(600)).unwrap().unwrap().payload[..],
        b"next"
    );
    assert_eq!(log.end_offset(), Offset(601));
}

/// A second repair, and a third, find nothing to do and change no byte of the directory.
#[test]
fn repair_is_idempotent() {
    let data = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..300).map(|i| payload(i, 100)).collect();
    let frames = write_records(data.path(), config(8 << 10, true), &payloads);
    let (path, frame) = frames[20].clone();
    modify(&path, |bytes| bytes[frame.start..frames[24].1.end].fill(0));

    assert_eq!(repair(data.path()).moved.len(), 1);
    let after_first = snapshot(data.path());
    assert_eq!(repair(data.path()), Repair::default());
    assert_eq!(repair(data.path()), Repair::default());
    assert_eq!(snapshot(data.path()), after_first);

    let (_store, log) = open(data.path(), config(8 << 10, true));
    assert!(log.damage().is_empty());
    assert_eq!(log.quarantined()[0].offsets, Offset(20)..Offset(25));
}

/// An older segment cut short, inside a header or at a frame boundary: the bytes left (fewer
/// than a header, or none) are moved aside and one quarantined frame, grown past the cut,
/// stands for every record lost before the next segment.
#[test]
fn segment_cut_short_is_repaired_with_a_frame_past_the_cut() {
    for cut_into in [0, 5, 100] {
        let data = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..600).map(|i| payload(i, 200)).collect();
        let frames = write_records(data.path(), config(64 << 10, false), &payloads);
        let first = segment_files(data.path())[0].clone();
        let cut = frames[10].1.start + cut_into;
        let lost = frames
            .iter()
            .filter(|(p, r)| *p == first && r.end > cut)
            .count() as u64;
        modify(&first, |bytes| bytes.truncate(cut));

        let repaired = repair(data.path());
        assert_eq!(repaired.moved.len(), 1, "cut {cut_into}: {repaired:?}");
        assert_eq!(fs::read(&repaired.moved[0].file).unwrap().len(), cut_into);

        let (_store, log) = open(data.path(), config(64 << 10, false));
        assert!(
            log.damage().is_empty(),
            "cut {cut_into}: {:?}",
            log.damage()
        );
        let quarantined = log.quarantined();
        assert_eq!(quarantined[0].offsets, Offset(10)..Offset(10 + lost));
        assert_quarantined(&log, Offset(10));
        assert_quarantined(&log, Offset(9 + lost));
        assert!(log.read(Offset(9)).unwrap().is_some());
        assert!(log.read(Offset(10 + lost)).unwrap().is_some());
        assert_eq!(log.end_offset(), Offset(600));
    }
}

/// A repair that fails while writing its quarantined frames (here a full disk, as a crash
/// would) leaves the range damaged; the rerun moves it aside again into a new file, and the
/// first file still holds the original bytes.
#[test]
fn interrupted_repair_keeps_the_original_bytes_and_a_rerun_finishes_it() {
    let data = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 100)).collect();
    let frames = write_records(data.path(), config(1 << 20, true), &payloads);
    let (path, frame) = frames[50].clone();
    modify(&path, |bytes| bytes[frame.start + 30] ^= 0xff);
    let original = fs::read(&path).unwrap()[frame.clone()].to_vec();

    let faults = Faults::new();
    let store_config = StoreConfig {
        faults: Some(faults.clone()),
        ..StoreConfig::default()
    };
    let store = Store::open(data.path(), store_config).unwrap();
    faults.set_space(Some(5));
    let error = store.repair_log(LOG).unwrap_err();
    assert!(error.is_disk_full(), "{error}");
    drop(store);
    let first = data.path().join("quarantine").join(LOG).join(format!(
        "{}@{}.bin",
        path.file_name().unwrap().to_string_lossy(),
        frame.start
    ));
    assert_eq!(fs::read(&first).unwrap(), original);

    let repaired = repair(data.path());
    assert_eq!(repaired.moved.len(), 1, "{repaired:?}");
    assert!(
        repaired.moved[0].file.to_string_lossy().ends_with("~2.bin"),
        "{repaired:?}"
    );
    assert_eq!(fs::read(&first).unwrap(), original);
    let (_store, log) = open(data.path(), config(1 << 20, true));
    assert!(log.damage().is_empty(), "{:?}", log.damage());
    assert_eq!(log.quarantined()[0].offsets, Offset(50)..Offset(51));
    assert_eq!(
        log.read_batch(Offset(51), 100, usize::MAX).unwrap().len(),
        49
    );
}

/// Five bytes inserted between two records: a damaged range with no offset in it, shorter than
/// any frame, with records after it. No frame fits: the repair leaves it as damage, says why,
/// and writes nothing.
#[test]
fn range_shorter_than_a_header_with_records_after_it_is_left_as_damage() {
    let data = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..50).map(|i| payload(i, 40)).collect();
    let frames = write_records(data.path(), config(1 << 20, false), &payloads);
    let (path, frame) = frames[20].clone();
    modify(&path, |bytes| {
        bytes.splice(frame.start..frame.start, [1, 2, 3, 4, 5]);
    });
    let before = snapshot(data.path());

    let repaired = repair(data.path());
    assert!(repaired.moved.is_empty(), "{repaired:?}");
    assert_eq!(repaired.left.len(), 1, "{repaired:?}");
    assert_eq!(repaired.left[0].damage.offsets, Offset(20)..Offset(20));
    assert_eq!(repaired.left[0].damage.length, 5);
    assert!(repaired.left[0]
        .reason
        .contains("shorter than a frame header"));
    assert_eq!(snapshot(data.path()), before);
    assert!(!data.path().join("quarantine").exists());

    let (_store, log) = open(data.path(), config(1 << 20, false));
    assert_eq!(log.damage().len(), 1);
    assert_eq!(
        log.read_batch(Offset(0), 100, usize::MAX).unwrap().len(),
        20
    );
    assert_eq!(
        log.read_batch(Offset(20), 100, usize::MAX).unwrap().len(),
        30
    );
}

/// Two damaged records of 64 MiB and 8 MiB next to each other make one range longer than a
/// frame can be: it is replaced by two quarantined frames, which the scan reads back as one
/// quarantined range of the whole length.
#[test]
fn range_longer_than_a_frame_takes_several_frames_and_reads_back_as_one() {
    let data = tempfile::tempdir().unwrap();
    // Zero payloads keep the resync's byte-by-byte search through 72 MiB quick.
    let payloads = vec![
        payload(0, 100),
        vec![0; RECORD_PAYLOAD_BYTES_MAX],
        vec![0; 8 << 20],
        payload(3, 100),
    ];
    let frames = write_records(data.path(), config(256 << 20, false), &payloads);
    for index in [1, 2] {
        let (path, frame) = &frames[index];
        modify(path, |bytes| bytes[frame.start + 5] ^= 0xff);
    }

    let repaired = repair(data.path());
    assert_eq!(repaired.moved.len(), 1, "{repaired:?}");
    let length = (frames[3].1.start - frames[1].1.start) as u64;
    assert_eq!(repaired.moved[0].damage.length, length);
    assert!(length > (RECORD_HEADER_BYTES + RECORD_PAYLOAD_BYTES_MAX) as u64);
    assert_eq!(fs::metadata(&repaired.moved[0].file).unwrap().len(), length);

    let (_store, log) = open(data.path(), config(256 << 20, false));
    assert!(log.damage().is_empty(), "{:?}", log.damage());
    let quarantined = log.quarantined();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].offsets, Offset(1)..Offset(3));
    assert_eq!(quarantined[0].length, length);
    assert_quarantined(&log, Offset(2));
    assert_eq!(
        &log.read(Offset(3)).unwrap().unwrap().payload[..],
        &payloads[3][..]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the damage, a repair turns exactly the damaged offsets into quarantined ones:
    /// no damage is left, every record readable before is readable after with its payload, the
    /// moved bytes are those the segment held, appends go on, and a second repair is a no-op.
    #[test]
    fn repair_quarantines_exactly_the_damaged_offsets(
        lens in proptest::collection::vec(0..300usize, 20..120),
        which in any::<prop::sample::Index>(),
        harm in harm_strategy(),
        preallocate in any::<bool>(),
    ) {
        let data = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, len)| payload(i as u64, *len)).collect();
        write_records(data.path(), config(4096, preallocate), &payloads);
        let files = segment_files(data.path());
        modify(&files[which.index(files.len())], |bytes| {
            apply(&harm, bytes);
        });

        let (store, log) = open(data.path(), config(4096, preallocate));
        let damaged: Vec<Offset> = log.damage().iter().flat_map(|d| (d.offsets.start.0..d.offsets.end.0).map(Offset)).collect();
        let end = log.end_offset();
        let readable: Vec<Offset> = (0..end.0).map(Offset).filter(|o| !damaged.contains(o)).collect();
        let segments_before: BTreeMap<PathBuf, Vec<u8>> = files.iter().map(|p| (p.clone(), fs::read(p).unwrap())).collect();
        runtime().block_on(log.close()).unwrap();
        drop(store);

        let repaired = repair(data.path());
        prop_assert!(repaired.left.is_empty(), "{:?}", repaired);
        for moved in &repaired.moved {
            let segment = &segments_before[&moved.damage.path];
            let at = moved.damage.position as usize;
            let expected = &segment[at.min(segment.len())..(at + moved.damage.length as usize).min(segment.len())];
            prop_assert_eq!(&fs::read(&moved.file).unwrap()[..], expected);
        }

        let (store, log) = open(data.path(), config(4096, preallocate));
        prop_assert!(log.damage().is_empty(), "{:?}", log.damage());
        prop_assert_eq!(log.end_offset(), end);
        let quarantined: Vec<Offset> = log.quarantined().iter().flat_map(|q| (q.offsets.start.0..q.offsets.end.0).map(Offset)).collect();
        prop_assert_eq!(&quarantined, &damaged);
        for offset in &readable {
            let record = log.read(*offset).unwrap().unwrap();
            prop_assert_eq!(&record.payload[..], &payloads[offset.0 as usize][..]);
        }
        for offset in &quarantined {
            let read = log.read(*offset);
            prop_assert!(matches!(read, Err(StorageError::Corrupt { reason: QUARANTINED_REASON, .. })), "{:?}", read);
        }
        let next = runtime().block_on(log.append_one(b"after repair")).unwrap();
        prop_assert_eq!(next, end);
        runtime().block_on(log.close()).unwrap();
        drop(store);

        let after_first = snapshot(data.path());
        prop_assert_eq!(repair(data.path()), Repair::default());
        prop_assert_eq!(snapshot(data.path()), after_first);
    }
}
