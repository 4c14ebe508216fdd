//! The workload: which operation comes next, drawn from the seed and the model's state.
//!
//! Choosing reads the model but never the engine, and executing an operation (see `apply`)
//! is the only place that talks to the engine, so a trace is a function of the seed alone.

use crate::{
    backend::Backend,
    model::{CopyKey, Model, Stored, DEAD, STEADY},
    rng::Rng,
    topic::{KEYS, PATTERNS},
};
use bytes::Bytes;
use std::str::FromStr;
use wharf_engine::queue::{Overflow, QueueOptions};
use wharf_model::QueueName;

/// Every source queue deduplicates client ids for one minute: long enough for resends to hit
/// the window, short enough for runs to outlive it.
pub(crate) const DEDUP_WINDOW_MS: u64 = 60_000;
/// A resend counts on the window only this long before it ends, so clock rounding never
/// decides the outcome.
const DEDUP_MARGIN_MS: u64 = 1_000;
/// Most bindings on the topic at once.
const BINDINGS_MAX: usize = 6;
/// Most push consumers at once.
const CONSUMERS_MAX: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) id: u64,
    pub(crate) body: Bytes,
    pub(crate) priority: Option<u8>,
    pub(crate) delay_ms: Option<u64>,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) group: Option<String>,
}

/// A fault of the storage, until healed or a crash. Which ones a run draws depends on its
/// backend (`backend`): the first two are files-only, the last memory-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Files: the disk takes this many more bytes, then every write fails with ENOSPC.
    DiskFull { bytes: u64 },
    /// Files: every fsync fails with EIO.
    SyncsFail,
    /// Memory: the next `count` commits fail with EIO, storing nothing; every commit until
    /// healed without a count.
    CommitsFail { count: Option<u32> },
}

/// Where a crash inside an operation lands, once the operation's first write is spawned
/// (files) or it waits on its held commit (memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// The write completes (and is synced); the process dies before anyone sees the result.
    AfterWrite,
    /// The write stores nothing: the disk is full (files), or the commit is lost with the
    /// process (memory).
    WriteFails,
    /// Files only: the write is cut after this many bytes, as power loss or a full disk may
    /// cut it.
    WriteTorn { bytes: u64 },
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `count` new messages; their drafts are drawn when the send runs.
    Send {
        queue: usize,
        count: usize,
    },
    Resend {
        key: CopyKey,
    },
    Receive {
        queue: usize,
        max: usize,
        lease_ms: Option<u64>,
    },
    Ack {
        queue: usize,
        leases: Vec<usize>,
        stale: Option<String>,
    },
    Nack {
        queue: usize,
        leases: Vec<usize>,
        dead_letter: bool,
        delay_ms: Option<u64>,
    },
    Extend {
        queue: usize,
        leases: Vec<usize>,
        lease_ms: u64,
    },
    Advance {
        ms: u64,
    },
    SetOptions {
        queue: usize,
        options: QueueOptions,
    },
    /// One new message per routing key.
    Publish {
        keys: Vec<&'static str>,
    },
    Bind {
        pattern: &'static str,
        queue: usize,
    },
    Unbind {
        binding: usize,
    },
    Purge {
        queue: usize,
    },
    Redrive {
        max: Option<u64>,
    },
    Attach {
        queue: usize,
        credit: usize,
        lease_ms: Option<u64>,
    },
    Detach {
        consumer: usize,
    },
    Fault(Fault),
    Heal,
    Crash,
    CrashDuring {
        op: Box<Op>,
        point: CrashPoint,
    },
    Restart,
}

/// What the chooser may look at besides the model.
pub(crate) struct Scene<'a> {
    pub(crate) model: &'a Model,
    pub(crate) bindings: usize,
    /// Per attached consumer, how many live leases it holds.
    pub(crate) consumer_leases: Vec<usize>,
    pub(crate) fault: Option<Fault>,
    /// Inject the faults behind the known defects otherwise avoided (see `defects`).
    pub(crate) provoke: bool,
    pub(crate) backend: Backend,
}

/// Draws the next operation. Weights are per thousand and favour the message path; rare
/// operations (crashes, faults, purges) still come every few hundred steps.
pub(crate) fn choose(rng: &mut Rng, scene: &Scene<'_>) -> Op {
    if scene.fault.is_some() && rng.percent(25) {
        return Op::Heal;
    }
    loop {
        let roll = rng.below(1_000);
        let op = match roll {
            0..=189 => Some(send(rng, scene.model)),
            190..=339 => Some(receive(rng, scene.model)),
            340..=459 => ack(rng, scene.model),
            460..=519 => nack(rng, scene.model),
            520..=549 => extend(rng, scene.model),
            550..=669 => Some(advance(rng)),
            670..=739 => Some(publish(rng)),
            740..=769 => resend(rng, scene.model),
            770..=789 => Some(set_options(rng, scene.model)),
            790..=799 => Some(Op::Purge {
                queue: rng.index(scene.model.queues.len()),
            }),
            800..=819 => Some(redrive(rng)),
            820..=849 => consumers(rng, scene),
            850..=869 => bindings(rng, scene),
            870..=889 => ack_stale(rng, scene.model),
            890..=919 => (scene.fault.is_none()).then(|| fault(rng, scene)),
            920..=939 => Some(Op::Crash),
            940..=969 => crash_during(rng, scene),
            _ => scene.fault.is_none().then_some(Op::Restart),
        };
        if let Some(op) = op {
            return op;
        }
    }
}

/// Options of a queue other than the steady one and the dead-letter queue.
pub(crate) fn random_options(rng: &mut Rng, durable: bool) -> QueueOptions {
    QueueOptions {
        durable,
        lease_ms: *rng.pick(&[300, 2_000, 10_000]),
        max_deliveries: rng.percent(40).then(|| rng.between(1, 4) as u32),
        message_ttl_ms: rng.percent(25).then(|| rng.between(2_000, 30_000)),
        max_length: rng.percent(25).then(|| rng.between(3, 12)),
        overflow: if rng.percent(50) {
            Overflow::Reject
        } else {
            Overflow::DropOldest
        },
        single_active_consumer: rng.percent(30),
        ..steady_options(durable)
    }
}

/// Options that never dead-letter on their own: no TTL, no delivery limit, no length limit.
/// Retry backoff is zero everywhere because the engine jitters it with a per-process random
/// seed, which no simulator seed could reproduce.
pub(crate) fn steady_options(durable: bool) -> QueueOptions {
    QueueOptions {
        durable,
        lease_ms: 5_000,
        dead_letter_queue: Some(QueueName::from_str("dead").expect("a valid name")),
        retry_backoff_ms: 0,
        retry_backoff_max_ms: 0,
        dedup_window_ms: DEDUP_WINDOW_MS,
        ..QueueOptions::default()
    }
}

pub(crate) fn draft(rng: &mut Rng, model: &mut Model) -> Draft {
    let id = model.next_id;
    model.next_id += 1;
    let filler: String = (0..rng.below(240))
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect();
    Draft {
        id,
        body: Bytes::from(format!("m{id}|{filler}")),
        priority: rng.percent(30).then(|| rng.below(10) as u8),
        delay_ms: rng.percent(15).then(|| rng.between(1, 8_000)),
        ttl_ms: rng.percent(10).then(|| rng.between(500, 20_000)),
        group: rng.percent(20).then(|| format!("g{}", rng.below(3))),
    }
}

fn source_queue(rng: &mut Rng, model: &Model) -> usize {
    1 + rng.index(model.queues.len() - 1)
}

fn send(rng: &mut Rng, model: &Model) -> Op {
    Op::Send {
        queue: source_queue(rng, model),
        count: rng.between(1, 4) as usize,
    }
}

fn receive(rng: &mut Rng, model: &Model) -> Op {
    Op::Receive {
        queue: rng.index(model.queues.len()),
        max: rng.between(1, 5) as usize,
        lease_ms: rng
            .percent(50)
            .then(|| *rng.pick(&[200, 1_000, 5_000, 20_000])),
    }
}

/// A queue holding live leases, and some of them.
fn leased(rng: &mut Rng, model: &Model) -> Option<(usize, Vec<usize>)> {
    if model.leases.is_empty() {
        return None;
    }
    let queue = model.leases[rng.index(model.leases.len())].queue;
    let of_queue = model.leases_of(queue);
    let chosen = rng.subset(of_queue.len(), 4);
    Some((queue, chosen.into_iter().map(|i| of_queue[i]).collect()))
}

fn stale_receipt(rng: &mut Rng, model: &Model, queue: usize) -> Option<String> {
    let of_queue: Vec<&String> = (model.stale.iter())
        .filter(|(q, _)| *q == queue)
        .map(|(_, receipt)| receipt)
        .collect();
    (!of_queue.is_empty() && rng.percent(20)).then(|| (*rng.pick(&of_queue)).clone())
}

fn ack(rng: &mut Rng, model: &Model) -> Option<Op> {
    let (queue, leases) = leased(rng, model)?;
    let stale = stale_receipt(rng, model, queue);
    Some(Op::Ack {
        queue,
        leases,
        stale,
    })
}

fn ack_stale(rng: &mut Rng, model: &Model) -> Option<Op> {
    let (queue, receipt) = model.stale.get(rng.index(model.stale.len().max(1)))?;
    Some(Op::Ack {
        queue: *queue,
        leases: Vec::new(),
        stale: Some(receipt.clone()),
    })
}

fn nack(rng: &mut Rng, model: &Model) -> Option<Op> {
    let (queue, leases) = leased(rng, model)?;
    // Dead-lettering from the dead-letter queue drops the message (it has no dead-letter
    // queue of its own): the one way to lose a message on purpose, so never asked for.
    let dead_letter = queue != DEAD && rng.percent(25);
    let delay_ms = rng.percent(50).then(|| rng.between(1, 5_000));
    Some(Op::Nack {
        queue,
        leases,
        dead_letter,
        delay_ms,
    })
}

fn extend(rng: &mut Rng, model: &Model) -> Option<Op> {
    let (queue, leases) = leased(rng, model)?;
    Some(Op::Extend {
        queue,
        leases,
        lease_ms: *rng.pick(&[100, 1_000, 10_000]),
    })
}

fn advance(rng: &mut Rng) -> Op {
    let ms = match rng.below(10) {
        0..=5 => rng.between(1, 500),
        6..=8 => rng.between(500, 5_000),
        _ => rng.between(5_000, 40_000),
    };
    Op::Advance { ms }
}

fn publish(rng: &mut Rng) -> Op {
    let count = rng.between(1, 3);
    Op::Publish {
        keys: (0..count).map(|_| *rng.pick(KEYS)).collect(),
    }
}

/// A resend of an earlier send, as a client retrying would: within the dedup window, or of
/// a send that failed.
fn resend(rng: &mut Rng, model: &Model) -> Option<Op> {
    let now = model.now;
    let candidates: Vec<CopyKey> = (model.copies.iter())
        .filter(|(_, copy)| {
            copy.deduplicated
                && (copy.stored == Stored::Refused
                    || now + DEDUP_MARGIN_MS < copy.sent_at + DEDUP_WINDOW_MS)
        })
        .map(|(key, _)| *key)
        .collect();
    (!candidates.is_empty()).then(|| Op::Resend {
        key: *rng.pick(&candidates),
    })
}

fn set_options(rng: &mut Rng, model: &Model) -> Op {
    // The steady queue keeps its options: post-fault probes rely on it never being full.
    let queue = if model.queues.len() > 2 {
        2 + rng.index(model.queues.len() - 2)
    } else {
        STEADY
    };
    let durable = model.queues[queue].options.durable;
    let options = if queue == STEADY {
        steady_options(durable)
    } else {
        random_options(rng, durable)
    };
    Op::SetOptions { queue, options }
}

fn redrive(rng: &mut Rng) -> Op {
    Op::Redrive {
        max: rng.percent(50).then(|| rng.between(1, 5)),
    }
}

fn consumers(rng: &mut Rng, scene: &Scene<'_>) -> Option<Op> {
    let attached = scene.consumer_leases.len();
    if attached > 0 && rng.percent(45) {
        // A consumer that goes away returns its leases in an order the engine does not fix
        // (a hash map's), which would reorder dead letters between runs: detach only those
        // holding at most one.
        let calm: Vec<usize> = (0..attached)
            .filter(|i| scene.consumer_leases[*i] <= 1)
            .collect();
        return (!calm.is_empty()).then(|| Op::Detach {
            consumer: *rng.pick(&calm),
        });
    }
    (attached < CONSUMERS_MAX).then(|| Op::Attach {
        queue: rng.index(scene.model.queues.len()),
        credit: rng.between(1, 3) as usize,
        lease_ms: rng.percent(50).then(|| *rng.pick(&[500, 3_000, 20_000])),
    })
}

fn bindings(rng: &mut Rng, scene: &Scene<'_>) -> Option<Op> {
    if scene.bindings > 0 && (scene.bindings >= BINDINGS_MAX || rng.percent(40)) {
        return Some(Op::Unbind {
            binding: rng.index(scene.bindings),
        });
    }
    Some(Op::Bind {
        pattern: PATTERNS[rng.index(PATTERNS.len())],
        queue: source_queue(rng, scene.model),
    })
}

/// Over files, a disk that fills after a few bytes cuts a commit short, which triggers a known
/// defect (`Defect::FailedAppendLeftOnDisk`); only runs that provoke ask for it. Failing syncs
/// (which could fail a rotation halfway, `Defect::FailedRotationLeavesSegment`, fixed since)
/// and a disk that is full at once come in every run. Over memory, commits fail (a memory
/// commit is all or nothing, so neither defect can happen there): half the time until healed,
/// else the next few, so that later commits succeed while the fault is still on.
fn fault(rng: &mut Rng, scene: &Scene<'_>) -> Op {
    if scene.backend == Backend::Memory {
        let count = rng.percent(50).then(|| rng.between(1, 3) as u32);
        return Op::Fault(Fault::CommitsFail { count });
    }
    if !scene.provoke {
        return Op::Fault(match rng.percent(50) {
            true => Fault::SyncsFail,
            false => Fault::DiskFull { bytes: 0 },
        });
    }
    Op::Fault(match rng.below(10) {
        0..=3 => Fault::DiskFull {
            bytes: rng.between(1, 3_000),
        },
        4..=5 => Fault::DiskFull { bytes: 0 },
        _ => Fault::SyncsFail,
    })
}

fn crash_during(rng: &mut Rng, scene: &Scene<'_>) -> Option<Op> {
    let model = scene.model;
    let op = match rng.below(6) {
        0 | 1 => send(rng, model),
        2 => publish(rng),
        3 => ack(rng, model)?,
        4 => nack(rng, model)?,
        _ => redrive(rng),
    };
    let point = match (scene.backend, rng.below(3)) {
        (_, 0) => CrashPoint::AfterWrite,
        (Backend::Memory, _) | (Backend::Files, 1) => CrashPoint::WriteFails,
        (Backend::Files, _) => CrashPoint::WriteTorn {
            bytes: rng.between(1, 400),
        },
    };
    Some(Op::CrashDuring {
        op: Box::new(op),
        point,
    })
}
