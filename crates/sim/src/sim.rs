//! One run: the seed's workload over a sequence of simulated processes.
//!
//! Each process lifetime runs on a runtime of its own. A crash ends the lifetime without
//! closing anything and drops the runtime, which kills every task the engine had spawned, as
//! `kill -9` would; the next lifetime opens the same storage (`backend`) with the same clock.
//! A clean restart closes the engine and the store and opens them again within the lifetime.

use crate::{
    backend::Disk,
    clock::SimClock,
    defects::{Defect, Sighting},
    io::Io,
    model::{violation, Model, Violation},
    node::{self, Node},
    ops::{self, Fault, Op, Scene},
    rng::Rng,
    topic::Binding,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{Hash, Hasher},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};
use wharf_engine::{Engine, EngineError};
use wharf_storage::{Durability, LogOptions, LogStore, StorageError};

/// Simulated time at the first step: a fixed instant, so traces do not depend on the date.
pub(crate) const START_MS: u64 = 1_800_000_000_000;

/// How a process lifetime ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Killed: the next lifetime recovers from whatever is on disk.
    Crashed,
    /// The workload and the final checks are done.
    Finished,
}

/// Queue lengths at the end of a lifetime that ended idle (a restart or a crash between
/// operations), and whether its live state may have left its log behind.
#[derive(Debug, Clone)]
pub(crate) struct Before {
    pub(crate) lengths: Vec<u64>,
    pub(crate) diverged: bool,
    /// Per queue, the ids of its deliverable and leased messages: a mismatch names the
    /// messages that came back or went (messages behind a group head or delayed are not seen).
    pub(crate) seen: Vec<BTreeSet<String>>,
    /// The lifetime crashed over storage that loses transient queues' records in a crash:
    /// replay owes them nothing.
    pub(crate) transient_lost: bool,
}

/// How a call that returned an error may have left things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Nothing of it happened.
    Cleanly,
    /// It may have done part or all of its work before failing.
    Partly,
}

/// What a run did, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub(crate) crashes: u64,
    pub(crate) crashes_inside_operations: u64,
    pub(crate) restarts: u64,
    pub(crate) faults: u64,
    pub(crate) drained: u64,
}

pub(crate) struct Sim {
    pub(crate) rng: Rng,
    pub(crate) model: Model,
    pub(crate) trace: Vec<String>,
    pub(crate) step: usize,
    pub(crate) disk: Disk,
    pub(crate) clock: Arc<SimClock>,
    pub(crate) fault: Option<Fault>,
    /// Every fault injected so far.
    pub(crate) injected: Vec<Fault>,
    pub(crate) io: Arc<Io>,
    pub(crate) node: Option<Node>,
    pub(crate) bindings: Vec<Binding>,
    pub(crate) tally: Tally,
    pub(crate) next_consumer: u64,
    /// The last lifetime, when it ended idle: replay must rebuild its queue lengths.
    pub(crate) before: Option<Before>,
    /// Fail at known defects too, instead of recording them.
    pub(crate) strict: bool,
    /// Inject the faults behind the known defects otherwise avoided.
    pub(crate) provoke: bool,
    /// End each step's trace line with a digest of the WAL.
    pub(crate) digest: bool,
    pub(crate) defects: BTreeMap<Defect, Sighting>,
}

impl Sim {
    pub(crate) fn new(seed: u64, options: crate::Options) -> Result<Sim, Violation> {
        let mut sim = Sim {
            rng: Rng::new(seed),
            model: Model {
                now: START_MS,
                ..Model::default()
            },
            trace: Vec::new(),
            step: 0,
            disk: Disk::new(options.storage)?,
            clock: Arc::new(SimClock::new(START_MS)),
            fault: None,
            injected: Vec::new(),
            io: Arc::new(Io::new()),
            node: None,
            bindings: Vec::new(),
            tally: Tally::default(),
            next_consumer: 0,
            before: None,
            strict: options.strict,
            provoke: options.provoke,
            digest: options.digest,
            defects: BTreeMap::new(),
        };
        // A trace names its storage: the same seed over the other one is another run.
        sim.note(format!("storage {}", options.storage));
        Ok(sim)
    }

    /// Runs `steps` operations, then the final checks, over as many lifetimes as crashes make.
    pub(crate) fn run(&mut self, steps: usize) -> Result<(), Violation> {
        loop {
            let runtime = self.io.runtime();
            let ended = catch_unwind(AssertUnwindSafe(|| runtime.block_on(self.lifetime(steps))));
            if !matches!(ended, Ok(Ok(_))) {
                self.io.open_for_good();
            }
            // The process is gone: its tasks die with the runtime, then its handles.
            drop(runtime);
            self.node = None;
            match ended {
                Ok(Ok(End::Finished)) => return Ok(()),
                Ok(Ok(End::Crashed)) => self.after_crash(),
                Ok(Err(violation)) => return Err(self.attribute(violation)),
                Err(panic) => return Err(panicked(panic)),
            }
        }
    }

    async fn lifetime(&mut self, steps: usize) -> Result<End, Violation> {
        self.start_process().await?;
        while self.step < steps {
            self.step += 1;
            let scene = Scene {
                model: &self.model,
                bindings: self.bindings.len(),
                consumer_leases: self.consumer_leases(),
                fault: self.fault,
                provoke: self.provoke,
                backend: self.disk.backend(),
            };
            let op = ops::choose(&mut self.rng, &scene);
            if let Some(end) = self.apply(op).await? {
                return Ok(end);
            }
            self.settle().await?;
        }
        crate::finish::finish(self).await?;
        Ok(End::Finished)
    }

    /// The end of each WAL and a hash of every record of the durable one: two runs of a seed
    /// that agree on these wrote the same bytes in the same order.
    async fn wal_digest(&self) -> Result<String, Violation> {
        let unreadable = |error: StorageError| violation("the WAL reads back", error.to_string());
        let wal = self.log("wal", Durability::Durable).await?;
        let transient = self.log("wal-transient", Durability::Transient).await?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut at = wal.start_offset();
        loop {
            let records =
                (self.call(wal.read_batch(at, 1_024, 1 << 20)).await?).map_err(unreadable)?;
            let Some(last) = records.last() else {
                break;
            };
            at = last.offset.next();
            for record in &records {
                (record.offset.0, &record.payload[..]).hash(&mut hasher);
            }
        }
        Ok(format!(
            "[wal {} {:016x}, transient {}]",
            wal.end_offset().0,
            hasher.finish(),
            transient.end_offset().0
        ))
    }

    /// The open log `name`, through the seam: the engine's own handle to it.
    async fn log(
        &self,
        name: &str,
        durability: Durability,
    ) -> Result<Arc<dyn LogStore>, Violation> {
        let store = self
            .node
            .as_ref()
            .expect("the process is open")
            .store
            .clone();
        let options = LogOptions {
            durability,
            ..LogOptions::default()
        };
        (self.call(store.open_log(name, options)).await?)
            .map_err(|error| violation("the WAL reads back", error.to_string()))
    }

    /// Per attached consumer, in attach order, the live leases it holds.
    fn consumer_leases(&self) -> Vec<usize> {
        (self.node.iter())
            .flat_map(|node| &node.consumers)
            .map(|c| {
                (self.model.leases.iter())
                    .filter(|l| l.consumer == Some(c.id))
                    .count()
            })
            .collect()
    }

    /// Runs one operation; `Some` when it ended the process.
    async fn apply(&mut self, op: Op) -> Result<Option<End>, Violation> {
        use crate::{lifecycle, queue_ops, topic};
        match op {
            Op::Send { queue, count } => queue_ops::send(self, queue, count).await?,
            Op::Resend { key } => queue_ops::resend(self, key).await?,
            Op::Receive {
                queue,
                max,
                lease_ms,
            } => queue_ops::receive(self, queue, max, lease_ms).await?,
            Op::Ack {
                queue,
                leases,
                stale,
            } => queue_ops::ack(self, queue, leases, stale).await?,
            Op::Nack {
                queue,
                leases,
                dead_letter,
                delay_ms,
            } => queue_ops::nack(self, queue, leases, dead_letter, delay_ms).await?,
            Op::Extend {
                queue,
                leases,
                lease_ms,
            } => queue_ops::extend(self, queue, leases, lease_ms).await?,
            Op::Advance { ms } => lifecycle::advance(self, ms).await?,
            Op::SetOptions { queue, options } => {
                queue_ops::set_options(self, queue, options).await?
            }
            Op::Publish { keys } => topic::publish(self, keys).await?,
            Op::Bind { pattern, queue } => topic::bind(self, pattern, queue).await?,
            Op::Unbind { binding } => topic::unbind(self, binding).await?,
            Op::Purge { queue } => queue_ops::purge(self, queue).await?,
            Op::Redrive { max } => queue_ops::redrive(self, max).await?,
            Op::Attach {
                queue,
                credit,
                lease_ms,
            } => queue_ops::attach(self, queue, credit, lease_ms).await?,
            Op::Detach { consumer } => queue_ops::detach(self, consumer),
            Op::Fault(fault) => lifecycle::inject(self, fault),
            Op::Heal => lifecycle::heal(self).await?,
            Op::Crash => return lifecycle::crash(self).await.map(Some),
            Op::CrashDuring { op, point } => {
                return lifecycle::crash_during(self, *op, point).await.map(Some)
            }
            Op::Restart => lifecycle::restart(self).await?,
        }
        Ok(None)
    }

    /// After every step: the engine idle, consumers' deliveries taken, every invariant.
    pub(crate) async fn settle(&mut self) -> Result<(), Violation> {
        self.io.idle().await.map_err(node::stuck)?;
        crate::queue_ops::take_consumer_deliveries(self)?;
        self.take_sightings()?;
        if self.digest {
            let digest = self.wal_digest().await?;
            self.outcome(&digest);
        }
        crate::checks::check_queues(self)
    }

    /// Opens the process and checks what it recovered against the model.
    pub(crate) async fn start_process(&mut self) -> Result<(), Violation> {
        let node = node::open(&self.disk, &self.clock, &self.io).await?;
        self.node = Some(node);
        if self.model.queues.is_empty() {
            crate::lifecycle::setup(self).await
        } else {
            crate::checks::check_recovered(self).await
        }
    }

    /// The model's side of a crash: leases die with the process, faults were cleared.
    fn after_crash(&mut self) {
        self.model.forget_process();
        if self.disk.crash_loses_transient() {
            self.model.lose_transient();
        }
        if self.fault.take().is_some() {
            self.model.allow_repeats_of_movable();
        }
        self.disk.heal();
    }

    /// Awaits an engine call, running the file I/O it starts (see `io`).
    pub(crate) async fn call<F: std::future::Future>(
        &self,
        future: F,
    ) -> Result<F::Output, Violation> {
        self.io.drive(future).await.map_err(node::stuck)
    }

    pub(crate) fn engine(&self) -> Engine {
        self.node
            .as_ref()
            .expect("operations run while the process is open")
            .engine
            .clone()
    }

    pub(crate) fn name(&self, queue: usize) -> String {
        self.model.queues[queue].name.clone()
    }

    /// Starts the trace line of an operation.
    pub(crate) fn note(&mut self, text: String) {
        let at = self.model.now - START_MS;
        self.trace.push(format!("{:5} {at:>9} {text}", self.step));
    }

    /// Ends the trace line of the current operation with its outcome.
    pub(crate) fn outcome(&mut self, text: &str) {
        if let Some(line) = self.trace.last_mut() {
            line.push_str(" -> ");
            line.push_str(text);
        }
    }

    /// Records (or fails on) the known defects the model saw while checking deliveries.
    pub(crate) fn take_sightings(&mut self) -> Result<(), Violation> {
        for (defect, detail) in std::mem::take(&mut self.model.sightings) {
            self.defect(defect, detail)?;
        }
        Ok(())
    }

    /// Names the avoided defect a failure most likely is, when the run provoked one: after a
    /// fault that leaves bytes behind, anything may follow (see `defects`).
    fn attribute(&self, mut violation: Violation) -> Violation {
        if violation.defect.is_some() {
            return violation;
        }
        let injected = |fault: fn(&Fault) -> bool| self.injected.iter().any(fault);
        let syncs_failed = injected(|f| *f == Fault::SyncsFail);
        let writes_cut = injected(|f| matches!(f, Fault::DiskFull { bytes } if *bytes > 0));
        let hidden = violation
            .detail
            .contains("records missing before the next segment")
            || violation.invariant == "recovery finds no damage";
        violation.defect = match (syncs_failed, writes_cut) {
            (true, _) if hidden => Some(Defect::FailedRotationLeavesSegment),
            (_, true) => Some(Defect::FailedAppendLeftOnDisk),
            (true, false) => Some(Defect::FailedRotationLeavesSegment),
            (false, false) => None,
        };
        violation
    }

    /// A known engine defect showed: a failure when strict, else recorded (first sighting).
    pub(crate) fn defect(&mut self, defect: Defect, detail: String) -> Result<(), Violation> {
        if self.strict || defect.fixed() {
            return Err(Violation {
                defect: Some(defect),
                ..violation(defect.invariant(), detail)
            });
        }
        let step = self.step;
        self.defects
            .entry(defect)
            .or_insert(Sighting { step, detail });
        Ok(())
    }

    /// Classifies an error an operation returned: fine if a fault explains it (or a full
    /// queue, where `full_ok`) or a known defect does, else the engine failed without a cause.
    pub(crate) fn expect_error(
        &mut self,
        error: &EngineError,
        full_ok: bool,
    ) -> Result<Failed, Violation> {
        let (kind, failed) = match error {
            EngineError::Storage(StorageError::Io { .. }) if self.fault.is_some() => {
                ("io error", Failed::Cleanly)
            }
            EngineError::Storage(StorageError::Io { path, .. })
                if !self.model.clean && path.ends_with("spare.tmp") =>
            {
                self.defect(Defect::FailedSpareReused, error.to_string())?;
                ("io error from an old spare", Failed::Cleanly)
            }
            EngineError::Storage(StorageError::OffsetTruncated { .. }) => {
                self.defect(Defect::DeadLetterOfCopiedMessage, error.to_string())?;
                self.model.diverge();
                ("offset truncated", Failed::Partly)
            }
            EngineError::QueueFull { .. } if full_ok => ("queue full", Failed::Cleanly),
            _ => {
                return Err(violation(
                    "operations fail only for a cause",
                    format!("{error} (fault: {:?})", self.fault),
                ))
            }
        };
        self.outcome(kind);
        Ok(failed)
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> Violation {
    let text = (panic.downcast_ref::<String>().cloned())
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string());
    violation("the engine never panics", text)
}
