//! Wharf's simulator: a seeded workload drives the engine over the in-memory storage (or the
//! file store) with a manual clock, injects storage faults and crashes, and checks the engine
//! against a reference model after every step.
//!
//! One seed over one storage backend (`backend`) names one run. Every choice comes from one
//! generator seeded with it, time moves only when the workload advances the clock, and the
//! engine runs on a current-thread runtime that the simulator lets go idle before each step
//! (`io`), so the same seed over the same storage gives the same trace of operations and
//! outcomes, and reproduces any failure it finds.
//!
//! What the simulator owns: the workload (`ops`), the model of what the engine must hold
//! (`model`), the operations against the engine (`queue_ops`, `topic`, `lifecycle`), the
//! invariants (`model` for each delivery, `checks` for gauges and counters, `finish` for the
//! final accounting). What it leaves to the engine and storage: everything it checks.
//!
//! `docs/architecture.md` ("Simulation") lists the invariants and the commands.

mod backend;
mod checks;
mod clock;
mod defects;
mod finish;
mod io;
mod lifecycle;
mod model;
mod node;
mod ops;
mod queue_ops;
mod rng;
mod sim;
mod topic;

pub use backend::Backend;
pub use defects::{Defect, Sighting};

use std::{collections::BTreeMap, fmt};

/// Lines of trace a failure shows: enough to see the operations that led up to it.
pub const TRACE_TAIL_LINES: usize = 40;

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub steps: usize,
    pub storage: Backend,
    pub crashes: u64,
    pub crashes_inside_operations: u64,
    pub restarts: u64,
    pub faults: u64,
    /// Messages made (one per queue a send or publish reached).
    pub messages: usize,
    pub deliveries: u64,
    /// Messages the final drain found and acked.
    pub drained: u64,
    /// Known engine defects the run saw (see [`Defect`]), with where it first saw each.
    pub defects: BTreeMap<Defect, Sighting>,
    /// Every operation with its outcome; the same for the same seed.
    pub trace: Vec<String>,
}

/// An invariant the engine broke, with what it takes to reproduce it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub steps: usize,
    pub options: Options,
    /// The step at which it was found.
    pub step: usize,
    /// The invariant, as named in `docs/architecture.md`.
    pub invariant: &'static str,
    /// The known defect that broke it: when a strict run stops at one, or (most likely) when
    /// a run that provokes the avoided ones shows their symptoms.
    pub defect: Option<Defect>,
    /// Known defects the run saw before it failed.
    pub defects: BTreeMap<Defect, Sighting>,
    pub detail: String,
    /// Every operation up to the failure, with its outcome.
    pub trace: Vec<String>,
}

impl Failure {
    /// The last [`TRACE_TAIL_LINES`] operations, oldest first.
    pub fn trace_tail(&self) -> &[String] {
        &self.trace[self.trace.len().saturating_sub(TRACE_TAIL_LINES)..]
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} over {} storage failed at step {}: {}: {}",
            self.seed, self.options.storage, self.step, self.invariant, self.detail
        )?;
        match self.defect {
            Some(defect) if self.options.strict => writeln!(f, "known defect: {defect}")?,
            Some(defect) => writeln!(f, "most likely the known defect: {defect}")?,
            None => {}
        }
        writeln!(
            f,
            "last operations (step, ms since start, operation -> outcome):"
        )?;
        for line in self.trace_tail() {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "reproduce: cargo run -p wharf-sim --release -- --seed {} --steps {} --storage {}{}{}",
            self.seed,
            self.steps,
            self.options.storage,
            if self.options.strict { " --strict" } else { "" },
            if self.options.provoke {
                " --provoke"
            } else {
                ""
            },
        )
    }
}

/// How to run a seed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The storage the engine runs over: memory unless told.
    pub storage: Backend,
    /// Fail at known defects ([`Defect`]) instead of recording them.
    pub strict: bool,
    /// Also inject the faults that trigger the known defects a run otherwise avoids (a disk
    /// that fills in the middle of a write, failing fsyncs); see [`Defect::avoided`]. Those
    /// are file-store defects: over memory there is nothing to avoid, and this changes nothing.
    pub provoke: bool,
    /// End every trace line with a digest of the WAL's records: two runs that agree on the
    /// trace then also wrote the same bytes. Costs a read of the WAL per step.
    pub digest: bool,
}

/// Runs the workload of `seed` for `steps` operations over the in-memory storage, then drains
/// every queue and checks that every confirmed message is accounted for. Known defects
/// ([`Defect`]) are reported in the [`Report`], not failed on.
pub fn run(seed: u64, steps: usize) -> Result<Report, Failure> {
    run_with(seed, steps, Options::default())
}

/// [`run`], as `options` say.
pub fn run_with(seed: u64, steps: usize, options: Options) -> Result<Report, Failure> {
    let mut sim = match sim::Sim::new(seed, options) {
        Ok(sim) => sim,
        Err(violation) => {
            return Err(Failure {
                seed,
                steps,
                options,
                step: 0,
                invariant: violation.invariant,
                defect: violation.defect,
                defects: BTreeMap::new(),
                detail: violation.detail,
                trace: Vec::new(),
            })
        }
    };
    match sim.run(steps) {
        Ok(()) => Ok(Report {
            seed,
            steps,
            storage: options.storage,
            crashes: sim.tally.crashes,
            crashes_inside_operations: sim.tally.crashes_inside_operations,
            restarts: sim.tally.restarts,
            faults: sim.tally.faults,
            messages: sim.model.copies.len(),
            deliveries: sim.model.deliveries,
            drained: sim.tally.drained,
            defects: sim.defects,
            trace: sim.trace,
        }),
        Err(violation) => Err(Failure {
            seed,
            steps,
            options,
            step: sim.step,
            invariant: violation.invariant,
            defect: violation.defect,
            defects: sim.defects,
            detail: violation.detail,
            trace: sim.trace,
        }),
    }
}
