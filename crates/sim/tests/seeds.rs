//! The simulator over a fixed set of seeds: every invariant holds on each (known engine
//! defects are recorded in the report, not failed on; `known_defects.rs` pins those), and a
//! seed's run is the same every time it runs.

use wharf_sim::{Options, Report};

/// Steps per seed: a few crashes, faults and restarts each, and under ~1 s a seed in a debug
/// build on a busy two-core machine.
const STEPS: usize = 250;

fn run_seeds(seeds: std::ops::RangeInclusive<u64>) -> Vec<Report> {
    seeds
        .map(|seed| match wharf_sim::run(seed, STEPS) {
            Ok(report) => report,
            Err(failure) => panic!("{failure}"),
        })
        .collect()
}

// Four tests of five seeds, so that the test harness spreads them over the cores.

#[test]
fn seeds_1_to_5_hold_every_invariant() {
    run_seeds(1..=5);
}

#[test]
fn seeds_6_to_10_hold_every_invariant() {
    run_seeds(6..=10);
}

#[test]
fn seeds_11_to_15_hold_every_invariant() {
    run_seeds(11..=15);
}

#[test]
fn seeds_16_to_20_hold_every_invariant() {
    let reports = run_seeds(16..=20);
    // The fixed seeds must keep exercising what they exist for.
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
    assert!(sum(|r| r.faults) > 0, "no disk fault in the fixed seeds");
    assert!(sum(|r| r.drained) > 0, "nothing left to drain at the end");
}

#[test]
fn a_seed_gives_the_same_trace_and_the_same_bytes_every_run() {
    let options = Options {
        digest: true,
        ..Options::default()
    };
    for seed in [3, 17] {
        let first = wharf_sim::run_with(seed, STEPS, options).unwrap_or_else(|f| panic!("{f}"));
        let second = wharf_sim::run_with(seed, STEPS, options).unwrap_or_else(|f| panic!("{f}"));
        assert!(first.trace.len() > STEPS, "every step leaves a trace line");
        if let Some(line) = (first.trace.iter().zip(&second.trace)).find(|(a, b)| a != b) {
            panic!("seed {seed} diverged:\n  {}\n  {}", line.0, line.1);
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
