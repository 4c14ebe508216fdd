//! The simulator over a fixed set of seeds: every invariant holds on each (known engine
//! defects are recorded in the report, not failed on; `known_defects.rs` pins those), and a
//! seed's run is the same every time it runs. Most seeds run over the in-memory storage; a few
//! run over the file store, so that its own defects stay exercised.

use wharf_sim::{Backend, Options, Report};

/// Steps per seed over memory: a few dozen crashes, faults and restarts each, and well under
/// a second a seed in a debug build (no file I/O, no threads to wait for).
const STEPS: usize = 500;

/// Steps per seed over files: a few crashes, faults and restarts each, and about a second a
/// seed in a debug build on a busy two-core machine (every file job waits at the gate).
const FILE_STEPS: usize = 250;

fn run_seeds(seeds: std::ops::RangeInclusive<u64>, storage: Backend, steps: usize) -> Vec<Report> {
    let options = Options {
        storage,
        ..Options::default()
    };
    seeds
        .map(|seed| match wharf_sim::run_with(seed, steps, options) {
            Ok(report) => report,
            Err(failure) => panic!("{failure}"),
        })
        .collect()
}

/// The seeds keep exercising what they exist for.
fn assert_exercised(reports: &[Report]) {
    let sum = |field: fn(&Report) -> u64| reports.iter().map(field).sum::<u64>();
    assert!(sum(|r| r.crashes) > 0, "no crash in the fixed seeds");
    assert!(
        sum(|r| r.crashes_inside_operations) > 0,
        "no crash inside an operation"
    );
    assert!(
        sum(|r| r.restarts) > 0,
        "no clean restart in the fixed seeds"
    );
    assert!(sum(|r| r.faults) > 0, "no storage fault in the fixed seeds");
    assert!(sum(|r| r.drained) > 0, "nothing left to drain at the end");
}

// Tests of twenty memory seeds each, so that the test harness spreads them over the cores.

#[test]
fn seeds_1_to_20_hold_every_invariant_over_memory() {
    run_seeds(1..=20, Backend::Memory, STEPS);
}

#[test]
fn seeds_21_to_40_hold_every_invariant_over_memory() {
    run_seeds(21..=40, Backend::Memory, STEPS);
}

#[test]
fn seeds_41_to_60_hold_every_invariant_over_memory() {
    run_seeds(41..=60, Backend::Memory, STEPS);
}

#[test]
fn seeds_61_to_80_hold_every_invariant_over_memory() {
    let reports = run_seeds(61..=80, Backend::Memory, STEPS);
    assert_exercised(&reports);
}

#[test]
fn seeds_1_to_5_hold_every_invariant_over_files() {
    let reports = run_seeds(1..=5, Backend::Files, FILE_STEPS);
    assert_exercised(&reports);
}

#[test]
fn a_seed_gives_the_same_trace_and_the_same_bytes_every_run() {
    for (storage, seed, steps) in [
        (Backend::Memory, 3, STEPS),
        (Backend::Memory, 17, STEPS),
        (Backend::Files, 3, FILE_STEPS),
    ] {
        let options = Options {
            storage,
            digest: true,
            ..Options::default()
        };
        let run = || wharf_sim::run_with(seed, steps, options).unwrap_or_else(|f| panic!("{f}"));
        let (first, second) = (run(), run());
        assert!(first.trace.len() > steps, "every step leaves a trace line");
        if let Some(line) = (first.trace.iter().zip(&second.trace)).find(|(a, b)| a != b) {
            panic!(
                "seed {seed} over {storage} diverged:\n  {}\n  {}",
                line.0, line.1
            );
        }
        assert_eq!(first.trace.len(), second.trace.len());
        assert_eq!(first.defects, second.defects);
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let run = |seed| wharf_sim::run(seed, 30).unwrap_or_else(|f| panic!("{f}"));
    assert_ne!(run(1).trace, run(2).trace);
}

#[test]
fn the_storage_is_part_of_what_names_a_run() {
    let options = Options {
        storage: Backend::Files,
        ..Options::default()
    };
    let files = wharf_sim::run_with(1, 30, options).unwrap_or_else(|f| panic!("{f}"));
    let memory = wharf_sim::run(1, 30).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(
        (files.storage, memory.storage),
        (Backend::Files, Backend::Memory)
    );
    assert_eq!(files.trace[0], "    0         0 storage files");
    assert_eq!(memory.trace[0], "    0         0 storage memory");
}

/// A redrive failed (its settlements could not be synced) after it stored a dead letter back
/// in its source, a transient queue whose append needs no sync: the message is in both queues,
/// as the redrive documents (never in neither), and is delivered from both. The model took the
/// second delivery for a message out of its place until a failed redrive allowed repeats.
#[test]
fn a_failed_redrive_may_leave_a_message_in_both_queues() {
    let options = Options {
        storage: Backend::Files,
        strict: true,
        ..Options::default()
    };
    if let Err(failure) = wharf_sim::run_with(8_191_354_673_223_772_506, 300, options) {
        panic!("{failure}");
    }
}
