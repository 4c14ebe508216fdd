//! The runtime of one simulated process, and the order in which its file I/O happens.
//!
//! The engine's async work runs on a current-thread runtime: yielding lets every runnable task
//! run, in an order fixed by what came before. File I/O is what could break that order:
//! storage runs it as jobs on the blocking pool, and two jobs running at once finish in
//! whatever order the machine decides, which then orders the tasks they wake (two timers
//! moving dead letters, say, put them in the dead-letter queue either way round).
//!
//! So no job runs while anything else does. Every blocking thread stops at a gate when it
//! starts. The simulator drives the runtime itself ([`Io::drive`], [`Io::idle`]): it yields
//! until no task can run, then lets one gated thread through and waits, without yielding,
//! until that thread has run every queued job (in the order they were spawned) and stopped,
//! and until every thread a job started has ended (storage zero-fills the next segment on a
//! plain thread of its own). Only then does the runtime see the results, all at once, in that
//! order. Idle threads stop at once (keep-alive zero), so a job never bypasses the gate on an
//! idle thread.
//!
//! Threads are counted when spawned: the thread-name hook runs on the spawning thread, inside
//! `spawn_blocking`, so the count is up before the spawning task yields. Threads a job starts
//! inherit its thread's name (on Linux a new thread copies its creator's), a name unique to
//! this `Io`, so `/proc/self/task/*/comm` tells whether any is alive; where there is no
//! `/proc`, they are not waited for.
//!
//! A crash inside an operation uses the same gate: the operation runs until its first job is
//! spawned; the simulator decides what that write does (see `CrashPoint`), lets the jobs run,
//! and drops the runtime before any task sees their results, as `kill -9` would.
//!
//! Over the memory store no storage call runs on the blocking pool (the engine's own jobs,
//! such as routing a publish, still do, and still pass the gate). There a crash inside an
//! operation runs it with commits held until it waits on one and nothing else can run
//! ([`Io::drive_until_waiting`]).

use std::{
    future::Future,
    pin::pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    task::Poll,
    time::{Duration, Instant},
};

/// Yield rounds with no file I/O before the engine counts as idle. One round runs every task
/// woken before it; the rest cover chains of wake-ups that end without file I/O.
const IDLE_ROUNDS: u32 = 3;

/// Longest real time the engine may take to become idle, or an operation to complete. Steps
/// take microseconds to milliseconds; this is far enough past that only a hang (a deadlock, a
/// lost wake-up) reaches it on a machine busy with other builds.
pub(crate) const IDLE_WAIT_MAX: Duration = Duration::from_secs(60);

/// How often a wait for blocking threads looks again, once it has yielded its core
/// [`SPINS_BEFORE_SLEEP`] times: jobs on a tmpfs take tens of microseconds, less than one
/// sleep of the OS's timer slack.
const POLL_INTERVAL: Duration = Duration::from_micros(50);
const SPINS_BEFORE_SLEEP: u32 = 20;

/// The blocking-pool bookkeeping of one simulated process. Shared by the hooks of its runtime.
#[derive(Debug)]
pub(crate) struct Io {
    /// The name of this process's I/O threads: at most 15 bytes, the kernel's limit.
    name: String,
    spawned: AtomicU64,
    stopped: AtomicU64,
    /// `spawned` when the process was last seen quiet: with no blocking thread spawned since,
    /// no job can have started a thread, and `/proc` need not be read.
    quiet_at: AtomicU64,
    gate: Mutex<Gate>,
    gate_changed: Condvar,
}

#[derive(Debug, Default)]
struct Gate {
    /// Threads waiting at the gate.
    waiting: u64,
    /// Threads let through and not yet past it.
    permits: u64,
    /// Every thread passes: the runtime is being dropped after a panic, which waits for them.
    open: bool,
}

/// The engine did not become idle in time.
#[derive(Debug)]
pub(crate) struct Stuck {
    pub(crate) blocking_threads: u64,
}

/// Where an operation stood when a crash was due inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// Its first file write is spawned and waits at the gate (files), or it waits on a held
    /// commit (memory).
    Write,
    /// It completed without writing.
    End,
}

/// Tells the names of concurrent runs' threads apart.
static IO_NEXT: AtomicU64 = AtomicU64::new(0);

impl Io {
    pub(crate) fn new() -> Io {
        Io {
            name: format!(
                "wsim-{}",
                IO_NEXT.fetch_add(1, Ordering::Relaxed) % 1_000_000_000
            ),
            spawned: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            quiet_at: AtomicU64::new(0),
            gate: Mutex::new(Gate::default()),
            gate_changed: Condvar::new(),
        }
    }

    /// A current-thread runtime whose blocking pool reports to `self`.
    pub(crate) fn runtime(self: &Arc<Io>) -> tokio::runtime::Runtime {
        let (named, started, stopped) = (self.clone(), self.clone(), self.clone());
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .thread_keep_alive(Duration::ZERO)
            .thread_name_fn(move || {
                named.spawned.fetch_add(1, Ordering::SeqCst);
                named.name.clone()
            })
            .on_thread_start(move || started.wait_at_gate())
            .on_thread_stop(move || {
                stopped.stopped.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .expect("a current-thread runtime builds")
    }

    /// Runs `future` to completion, running the file I/O it (or anything else) starts.
    pub(crate) async fn drive<F: Future>(&self, future: F) -> Result<F::Output, Stuck> {
        let mut future = pin!(future);
        let deadline = Instant::now() + IDLE_WAIT_MAX;
        loop {
            if let Poll::Ready(output) = poll_once(future.as_mut()).await {
                return Ok(output);
            }
            tokio::task::yield_now().await;
            self.run_jobs()?;
            if Instant::now() > deadline {
                return Err(self.stuck());
            }
        }
    }

    /// Runs `future` until its first file write is spawned (left waiting at the gate) or it
    /// completes; the caller then decides what the write does and calls [`Io::run_jobs`].
    pub(crate) async fn drive_to_write<F: Future>(&self, future: F) -> Result<Reached, Stuck> {
        let mut future = pin!(future);
        let deadline = Instant::now() + IDLE_WAIT_MAX;
        loop {
            if poll_once(future.as_mut()).await.is_ready() {
                return Ok(Reached::End);
            }
            tokio::task::yield_now().await;
            if self.blocking_threads() > 0 {
                return Ok(Reached::Write);
            }
            if Instant::now() > deadline {
                return Err(self.stuck());
            }
        }
    }

    /// Runs `future` (and the file I/O anything starts) until it completes, or until it waits
    /// with no task able to run while `waiting` holds (over memory: a commit is held). Waiting
    /// with `waiting` false is a hang, caught at the deadline like any other.
    pub(crate) async fn drive_until_waiting<F: Future>(
        &self,
        future: F,
        waiting: impl Fn() -> bool,
    ) -> Result<Reached, Stuck> {
        let mut future = pin!(future);
        let deadline = Instant::now() + IDLE_WAIT_MAX;
        let mut calm = 0;
        loop {
            if poll_once(future.as_mut()).await.is_ready() {
                return Ok(Reached::End);
            }
            tokio::task::yield_now().await;
            calm = if self.quiet() { calm + 1 } else { 0 };
            self.run_jobs()?;
            if calm >= IDLE_ROUNDS && waiting() {
                return Ok(Reached::Write);
            }
            if Instant::now() > deadline {
                return Err(self.stuck());
            }
        }
    }

    /// Yields and runs file I/O until no task can run and no I/O is under way.
    pub(crate) async fn idle(&self) -> Result<(), Stuck> {
        let deadline = Instant::now() + IDLE_WAIT_MAX;
        let mut calm = 0;
        while calm < IDLE_ROUNDS {
            tokio::task::yield_now().await;
            calm = if self.quiet() { calm + 1 } else { 0 };
            self.run_jobs()?;
            if Instant::now() > deadline {
                return Err(self.stuck());
            }
        }
        Ok(())
    }

    /// Without yielding to the runtime (so no task sees a result before all are in), lets
    /// the gated threads through one at a time until every blocking job has run and every
    /// thread one started has ended.
    pub(crate) fn run_jobs(&self) -> Result<(), Stuck> {
        let deadline = Instant::now() + IDLE_WAIT_MAX;
        let mut spins = 0;
        while !self.quiet() {
            let mut gate = self.gate.lock().expect("gate lock");
            let blocking = self.blocking_threads();
            // Past the gate (or not yet at it): a let-through thread counts as waiting until
            // it wakes, and `permits` says one is on its way.
            let running = blocking.saturating_sub(gate.waiting);
            let helpers = (self.named_threads() as u64).saturating_sub(blocking);
            if running == 0 && helpers == 0 && gate.waiting > 0 && gate.permits == 0 {
                gate.permits = 1;
                self.gate_changed.notify_all();
            }
            drop(gate);
            if Instant::now() > deadline {
                return Err(self.stuck());
            }
            spins += 1;
            if spins < SPINS_BEFORE_SLEEP {
                std::thread::yield_now();
            } else {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(())
    }

    /// Opens the gate for good, so that dropping the runtime (which waits for its blocking
    /// threads) cannot hang on a gated one after a panic.
    pub(crate) fn open_for_good(&self) {
        self.gate.lock().expect("gate lock").open = true;
        self.gate_changed.notify_all();
    }

    /// Blocking-pool threads alive (at the gate, running jobs, or about to stop).
    pub(crate) fn blocking_threads(&self) -> u64 {
        let stopped = self.stopped.load(Ordering::SeqCst);
        self.spawned.load(Ordering::SeqCst) - stopped
    }

    /// No file I/O of this process under way: no blocking thread, no thread one started.
    fn quiet(&self) -> bool {
        let spawned = self.spawned.load(Ordering::SeqCst);
        if self.blocking_threads() > 0 {
            return false;
        }
        if self.quiet_at.load(Ordering::SeqCst) == spawned {
            return true;
        }
        let quiet = self.named_threads() == 0;
        if quiet {
            self.quiet_at.store(spawned, Ordering::SeqCst);
        }
        quiet
    }

    /// Threads alive with this process's I/O thread name: blocking threads, and the threads
    /// their jobs started. 0 where `/proc` cannot tell.
    fn named_threads(&self) -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        (tasks.flatten())
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == self.name)
            })
            .count()
    }

    fn wait_at_gate(&self) {
        let mut gate = self.gate.lock().expect("gate lock");
        gate.waiting += 1;
        while gate.permits == 0 && !gate.open {
            gate = self.gate_changed.wait(gate).expect("gate lock");
        }
        gate.permits = gate.permits.saturating_sub(1);
        gate.waiting -= 1;
    }

    fn stuck(&self) -> Stuck {
        Stuck {
            blocking_threads: self.blocking_threads(),
        }
    }
}

/// Polls a future once, in the calling task.
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_jobs_run_one_at_a_time_in_spawn_order_and_only_when_driven() {
        let io = Arc::new(Io::new());
        let runtime = io.runtime();
        runtime.block_on(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let jobs: Vec<_> = (0..3)
                .map(|i| {
                    let order = order.clone();
                    tokio::task::spawn_blocking(move || {
                        std::thread::sleep(Duration::from_millis(3 - i));
                        order.lock().unwrap().push(i);
                    })
                })
                .collect();
            assert_eq!(io.blocking_threads(), 3, "counted when spawned");
            std::thread::sleep(Duration::from_millis(10));
            assert!(order.lock().unwrap().is_empty(), "the gate holds every job");
            io.idle().await.unwrap();
            assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
            for job in jobs {
                assert!(job.is_finished());
            }
            let answer = io.drive(tokio::task::spawn_blocking(|| 7)).await.unwrap();
            assert_eq!(answer.unwrap(), 7);
        });
    }
}
