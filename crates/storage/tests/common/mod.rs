//! Helpers shared by the storage tests that damage files: a log configuration, records with
//! recognisable payloads, and the kinds of harm (byte flips, truncations, zeroed ranges) with
//! their proptest strategy.

use proptest::prelude::*;
use std::{fs, ops::Range, path::Path};
use wharf_storage::{FsyncPolicy, LogConfig};

pub fn config(segment_bytes: u64, preallocate: bool) -> LogConfig {
    LogConfig {
        segment_bytes,
        preallocate,
        // The tests damage files after a clean close; real fsyncs would only slow them.
        fsync: FsyncPolicy::Never,
        direct_io: false,
        ..LogConfig::default()
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i as usize * 31 + j * 7 + 1) as u8)
        .collect()
}

pub fn modify(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    change(&mut bytes);
    fs::write(path, bytes).unwrap();
}

#[derive(Debug, Clone)]
pub enum Harm {
    Flip {
        at: prop::sample::Index,
        count: usize,
    },
    Truncate {
        at: prop::sample::Index,
    },
    Zero {
        at: prop::sample::Index,
        len: usize,
    },
}

pub fn harm_strategy() -> impl Strategy<Value = Harm> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1..9usize).prop_map(|(at, count)| Harm::Flip { at, count }),
        any::<prop::sample::Index>().prop_map(|at| Harm::Truncate { at }),
        (any::<prop::sample::Index>(), 1..600usize).prop_map(|(at, len)| Harm::Zero { at, len }),
    ]
}

/// Applies `harm` to `bytes` and returns the byte range it may have changed.
pub fn apply(harm: &Harm, bytes: &mut Vec<u8>) -> Range<usize> {
    match harm {
        Harm::Flip { at, count } => {
            let at = at.index(bytes.len());
            let end = (at + count).min(bytes.len());
            for b in &mut bytes[at..end] {
                *b ^= 0xa5;
            }
            at..end
        }
        Harm::Truncate { at } => {
            let at = at.index(bytes.len());
            let len = bytes.len();
            bytes.truncate(at);
            at..len
        }
        Harm::Zero { at, len } => {
            let at = at.index(bytes.len());
            let end = (at + len).min(bytes.len());
            bytes[at..end].fill(0);
            at..end
        }
    }
}
