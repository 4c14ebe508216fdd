//! Property tests of recovery: whatever a crash does to the unsynced tail, reopening never
//! serves a corrupt record, never loses a durable one, and keeps appends all-or-nothing unless
//! it reports damage; and a bit flip inside sealed data is reported, never served.

use proptest::prelude::*;
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};
use wharf_storage::{FsyncPolicy, Log, LogConfig, Offset, StorageError, StorageMetrics};

const SECTOR: usize = 512;

fn config(preallocate: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        preallocate,
        // Durability is simulated by how the crash image is built, so skip real fsyncs.
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, preallocate: bool) -> Log {
    Log::open(
        dir,
        config(preallocate),
        Arc::new(StorageMetrics::default()),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

type Appends = Vec<Vec<Vec<u8>>>;

fn appends_strategy(max_appends: usize) -> impl Strategy<Value = Appends> {
    let record = proptest::collection::vec(any::<u8>(), 0..400);
    let append = proptest::collection::vec(record, 1..5);
    proptest::collection::vec(append, 1..max_appends)
}

async fn append_all(log: &Log, appends: &Appends) -> Vec<std::ops::Range<Offset>> {
    let mut ranges = Vec::new();
    for records in appends {
        ranges.push(log.append(records).await.unwrap());
    }
    ranges
}

fn segment_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn segment_base(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// What a crash may leave of each sector written after the last sync.
#[derive(Debug, Clone, Copy)]
enum SectorFate {
    Kept,
    Lost,
    Garbage(u8),
    BitFlip(u16),
}

fn fate_strategy() -> impl Strategy<Value = SectorFate> {
    prop_oneof![
        3 => Just(SectorFate::Kept),
        2 => Just(SectorFate::Lost),
        1 => any::<u8>().prop_map(SectorFate::Garbage),
        1 => any::<u16>().prop_map(SectorFate::BitFlip),
    ]
}

fn damage(bytes: &mut [u8], from: usize, fates: &[SectorFate]) {
    let first_sector = from / SECTOR;
    for (i, fate) in fates.iter().enumerate() {
        let start = (first_sector + i) * SECTOR;
        if start >= bytes.len() {
            break;
        }
        let start = start.max(from);
        let end = ((first_sector + i + 1) * SECTOR).min(bytes.len());
        match *fate {
            SectorFate::Kept => {}
            SectorFate::Lost => bytes[start..end].fill(0),
            SectorFate::Garbage(seed) => {
                for (j, b) in bytes[start..end].iter_mut().enumerate() {
                    *b = seed.wrapping_mul(j as u8).wrapping_add(7);
                }
            }
            SectorFate::BitFlip(bit) => {
                let bit = bit as usize % ((end - start) * 8);
                bytes[start + bit / 8] ^= 1 << (bit % 8);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Appends A are durable; appends B were in flight when the process died, and any sector of
    /// the last segment they touched may be kept, lost, garbled or bit-flipped. Durable records
    /// always come back intact. A garbled sector with kept records after it is reported as
    /// damage (recovery cannot tell it from a bad block), never served; without such a sector,
    /// in-flight appends come back whole, as a prefix.
    #[test]
    fn torn_tail_never_serves_garbage_or_loses_durable_records(
        durable in appends_strategy(12),
        in_flight in appends_strategy(12),
        fates in proptest::collection::vec(fate_strategy(), 16),
        preallocate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime();
        let (durable_ranges, in_flight_ranges) = runtime.block_on(async {
            let log = open(dir.path(), preallocate);
            let durable_ranges = append_all(&log, &durable).await;
            let snapshot = segment_files(dir.path());
            let in_flight_ranges = append_all(&log, &in_flight).await;
            log.close().await.unwrap();
            // Only the last segment holds unsynced bytes: rotation syncs the one before.
            let mut files = segment_files(dir.path());
            let (last_path, last_bytes) = files.iter_mut().next_back().unwrap();
            let before = snapshot.get(last_path).cloned().unwrap_or_default();
            let from = last_bytes.iter().zip(before.iter()).take_while(|(a, b)| a == b).count();
            damage(last_bytes, from, &fates);
            fs::write(last_path, last_bytes).unwrap();
            (durable_ranges, in_flight_ranges)
        });
        let last_base = {
            let files = segment_files(dir.path());
            let name = files.keys().next_back().unwrap().file_stem().unwrap().to_str().unwrap().to_string();
            Offset(name.parse().unwrap())
        };
        let log = open(dir.path(), preallocate);
        let end = log.end_offset();
        let durable_end = durable_ranges.last().unwrap().end;
        prop_assert!(end >= durable_end, "lost durable records: end {} < {}", end, durable_end);
        let damage = log.damage();
        for range in &damage {
            // Sectors kept after a garbled one: valid records follow, so recovery reports
            // damage instead of cutting them. Never in durable data, never in a sealed segment.
            prop_assert!(range.offsets.start >= durable_end, "durable record reported damaged: {:?}", range);
            prop_assert!(range.offsets.start >= last_base, "sealed record reported damaged: {:?}", range);
        }
        if damage.is_empty() {
            // A pure torn tail: in-flight appends come back whole, as a prefix.
            let kept: Vec<_> = in_flight_ranges.iter().take_while(|r| r.end <= end).collect();
            prop_assert_eq!(kept.last().map_or(durable_end, |r| r.end), end, "an append came back in part");
        }
        for range in &in_flight_ranges {
            if range.end <= last_base {
                prop_assert!(range.end <= end, "append in a sealed segment lost");
            }
        }
        let expected: Vec<&Vec<u8>> = durable.iter().chain(in_flight.iter()).flatten().collect();
        for (offset, payload) in expected.iter().enumerate().take(end.0 as usize) {
            match log.read(Offset(offset as u64)) {
                Ok(Some(record)) => prop_assert_eq!(record.payload.as_ref(), payload.as_slice()),
                Err(StorageError::Corrupt { .. }) => prop_assert!(
                    damage.iter().any(|d| d.offsets.contains(&Offset(offset as u64))),
                    "record {} corrupt but not reported", offset
                ),
                other => prop_assert!(false, "record {}: {:?}", offset, other),
            }
        }
        // And the log goes on from there.
        let next = runtime.block_on(log.append_one(b"after recovery")).unwrap();
        prop_assert_eq!(next, end);
    }

    /// A bit flip anywhere in a sealed segment is reported (open or read fails for the damaged
    /// records) and never served as data.
    #[test]
    fn bit_flip_in_sealed_data_is_never_served(
        appends in appends_strategy(40),
        which in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime();
        runtime.block_on(async {
            let log = open(dir.path(), false);
            append_all(&log, &appends).await;
            log.close().await.unwrap();
        });
        let files = segment_files(dir.path());
        prop_assume!(files.len() >= 2);
        let sealed: Vec<_> = files.iter().take(files.len() - 1).collect();
        let chosen = which.index(sealed.len());
        let (path, bytes) = sealed[chosen];
        let mut bytes = bytes.clone();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        fs::write(path, &bytes).unwrap();
        // Bytes of records in this segment; past them lies zero padding up to a block boundary.
        let expected: Vec<&Vec<u8>> = appends.iter().flatten().collect();
        let base = segment_base(path);
        let next_base = segment_base(sealed.get(chosen + 1).map_or_else(|| files.keys().next_back().unwrap(), |(p, _)| *p));
        let data_len: usize = expected[base as usize..next_base as usize].iter().map(|p| 16 + p.len()).sum();

        let log = open(dir.path(), false);
        if bit / 8 >= data_len {
            // A flip in the padding touches no record: everything must read back intact.
            for (offset, payload) in expected.iter().enumerate() {
                let record = log.read(Offset(offset as u64)).unwrap().unwrap();
                prop_assert_eq!(record.payload.as_ref(), payload.as_slice());
            }
            return Ok(());
        }
        prop_assert!(!log.damage().is_empty(), "flip in {:?} not reported", path);
        let mut errors = 0;
        for (offset, payload) in expected.iter().enumerate() {
            match log.read(Offset(offset as u64)) {
                Ok(Some(record)) => prop_assert_eq!(record.payload.as_ref(), payload.as_slice()),
                Ok(None) => prop_assert!(false, "record {} vanished without an error", offset),
                Err(StorageError::Corrupt { .. }) => errors += 1,
                Err(other) => prop_assert!(false, "unexpected error {}", other),
            }
        }
        prop_assert!(errors > 0, "damaged records were all served");
    }
}
