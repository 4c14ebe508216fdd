//! Invariants over the engine's gauges and counters, checked after every step and at every
//! start.
//!
//! Always:
//! - **counters are conserved**: per queue, `ready + delayed + leased + settled - sent` stays
//!   what it was at open (settled = acked + dead-lettered + dropped + purged + redriven; the
//!   counters are per process lifetime, so the constant is taken at each start);
//! - **nothing is dropped**: every queue but the dead-letter queue sends its dead letters
//!   there, and the dead-letter queue is never asked to dead-letter;
//! - **live state equals replay**: after a restart or a crash between operations, each
//!   queue's replayed length (the constant above) equals its live length before.
//!
//! In a lifetime without injected faults, exactly:
//! - leased gauges equal the leases the model holds, and the counters equal the model's counts
//!   of sends, duplicates, deliveries, acks, nacks and purges;
//! - the dead-letter queue received exactly what the other queues dead-lettered, and the
//!   other queues received exactly what it redrove;
//! - no ordering group has two messages leased at once.

use crate::{
    defects::Defect,
    model::{violation, Violation, DEAD},
    sim::{Before, Sim},
    topic::TOPIC,
};
use std::collections::{BTreeMap, BTreeSet};

/// Messages a diagnostic peek looks at: more than any queue of a run holds.
const PEEK_MAX: usize = 100_000;
use wharf_engine::queue::QueueStats;

pub(crate) fn check_queues(sim: &mut Sim) -> Result<(), Violation> {
    let stats = all_stats(sim)?;
    let model = &sim.model;
    for (queue, stats) in model.queues.iter().zip(&stats) {
        let conserved = conserved(stats);
        if conserved != queue.conserved {
            return Err(violation(
                "counters are conserved",
                format!(
                    "{}: len + settled - sent is {conserved}, was {} at open ({stats:?})",
                    queue.name, queue.conserved
                ),
            ));
        }
        if stats.counters.dropped > 0 {
            return Err(violation(
                "nothing is dropped while a dead-letter queue is set",
                format!("{} dropped {}", queue.name, stats.counters.dropped),
            ));
        }
    }
    if model.clean {
        check_exact(sim, &stats)?;
        check_groups(sim)?;
        check_duplicates(sim, &stats)?;
        if let Some(detail) = check_dead_letters(sim, &stats) {
            // Without a fault, the one known way a dead letter goes missing.
            sim.defect(Defect::DeadLetterOfCopiedMessage, detail)?;
            sim.model.diverge();
        }
    }
    Ok(())
}

/// The duplicates counter, apart: it breaks a known defect (see `defects`).
fn check_duplicates(sim: &mut Sim, stats: &[QueueStats]) -> Result<(), Violation> {
    let wrong: Vec<String> = (sim.model.queues.iter().zip(stats))
        .filter(|(queue, stats)| {
            queue.exact && stats.counters.duplicates != queue.expected.duplicates
        })
        .map(|(queue, stats)| {
            format!(
                "{} counts {} duplicates, {} were refused",
                queue.name, stats.counters.duplicates, queue.expected.duplicates
            )
        })
        .collect();
    match wrong.is_empty() {
        true => Ok(()),
        false => sim.defect(Defect::DuplicatesNotCounted, wrong.join("; ")),
    }
}

/// Counters and gauges against the model, in a lifetime without faults.
fn check_exact(sim: &Sim, stats: &[QueueStats]) -> Result<(), Violation> {
    let model = &sim.model;
    for (index, (queue, stats)) in model.queues.iter().zip(stats).enumerate() {
        let counters = stats.counters;
        let leases = model.leases_of(index).len() as u64;
        if stats.leased != leases {
            return Err(violation(
                "leased messages are the leases handed out",
                format!(
                    "{} counts {} leased, the model holds {leases}",
                    queue.name, stats.leased
                ),
            ));
        }
        if !queue.exact {
            continue;
        }
        let expected = &queue.expected;
        let sent_directly = if index == DEAD {
            counters.sent
        } else {
            expected.sent
        };
        let actual = (counters.delivered, counters.acked, counters.nacked);
        let actual = (actual, counters.purged, counters.redriven);
        let wanted = (expected.delivered, expected.acked, expected.nacked);
        let wanted = (wanted, expected.purged, expected.redriven);
        if actual != wanted || counters.sent < sent_directly {
            return Err(violation(
                "counters count what happened",
                format!(
                    "{}: ((delivered, acked, nacked), purged, redriven) is {actual:?}, \
                     expected {wanted:?}; sent {} of at least {sent_directly}",
                    queue.name, counters.sent
                ),
            ));
        }
    }
    Ok(())
}

/// The dead-letter queue received exactly what the other queues dead-lettered, and they
/// received exactly what it redrove (when the counts are exact): `Some(what differs)` when not.
fn check_dead_letters(sim: &Sim, stats: &[QueueStats]) -> Option<String> {
    let queues = &sim.model.queues;
    let sources = queues.iter().zip(stats).skip(1);
    let dead_lettered: u64 = sources.clone().map(|(_, s)| s.counters.dead_lettered).sum();
    let dead = stats[DEAD].counters;
    if dead.sent != dead_lettered {
        return Some(format!(
            "queues dead-lettered {dead_lettered}, the dead-letter queue received {}",
            dead.sent
        ));
    }
    if !queues.iter().all(|q| q.exact) {
        return None;
    }
    let redriven_in: u64 = sources
        .map(|(q, s)| s.counters.sent - q.expected.sent)
        .sum();
    (dead.redriven != redriven_in).then(|| {
        format!(
            "the dead-letter queue redrove {}, queues received {redriven_in} beyond their sends",
            dead.redriven
        )
    })
}

/// Messages of one ordering group are leased one at a time.
fn check_groups(sim: &Sim) -> Result<(), Violation> {
    let mut seen: BTreeMap<(usize, &str), u64> = BTreeMap::new();
    for lease in &sim.model.leases {
        let Some(group) = lease.group.as_deref() else {
            continue;
        };
        if let Some(other) = seen.insert((lease.queue, group), lease.key.id) {
            return Err(violation(
                "one lease per ordering group",
                format!(
                    "m{other} and m{} of group {group} are both leased in {}",
                    lease.key.id, sim.model.queues[lease.queue].name
                ),
            ));
        }
    }
    Ok(())
}

/// After a purge no message is ready or delayed (leased ones stay).
pub(crate) fn check_purged(sim: &mut Sim, queue: usize) -> Result<(), Violation> {
    let name = sim.name(queue);
    let stats = queue_stats(sim, &name)?;
    if stats.ready + stats.delayed > 0 {
        return Err(violation(
            "a purge removes every ready and delayed message",
            format!(
                "{name} still holds {} ready, {} delayed",
                stats.ready, stats.delayed
            ),
        ));
    }
    Ok(())
}

/// What a start must have recovered: every queue with its acknowledged options, the
/// acknowledged bindings, and each queue's length from before (when the last lifetime ended
/// idle). Takes the lifetime's conservation constants and resets its expected counts.
pub(crate) async fn check_recovered(sim: &mut Sim) -> Result<(), Violation> {
    check_undamaged(sim)?;
    check_definitions(sim)?;
    let stats = all_stats(sim)?;
    let before = sim.before.take();
    for (index, stats) in stats.iter().enumerate() {
        let conserved = conserved(stats);
        if let Some(before) = &before {
            check_replayed(sim, before, index, conserved).await?;
        }
        let queue = &mut sim.model.queues[index];
        queue.conserved = conserved;
        queue.expected = Default::default();
        queue.exact = true;
    }
    sim.model.clean = true;
    sim.model.diverged = false;
    // Opening dead-letters what expired meanwhile, before the first step.
    if let Some(detail) = check_dead_letters(sim, &stats) {
        sim.defect(Defect::DeadLetterOfCopiedMessage, detail)?;
        sim.model.diverge();
    }
    Ok(())
}

/// Queues and bindings came back as acknowledged.
fn check_definitions(sim: &Sim) -> Result<(), Violation> {
    let engine = sim.engine();
    for queue in &sim.model.queues {
        let info = engine.queue_info(&queue.name).map_err(|error| {
            violation(
                "queues survive restarts",
                format!("{}: {error}", queue.name),
            )
        })?;
        if info.options != queue.options {
            return Err(violation(
                "options survive restarts as acknowledged",
                format!(
                    "{}: {:?}, acknowledged {:?}",
                    queue.name, info.options, queue.options
                ),
            ));
        }
    }
    let bindings: BTreeSet<String> = (engine.list_bindings(TOPIC))
        .map_err(|error| violation("topics survive restarts", error.to_string()))?
        .into_iter()
        .map(|b| b.id)
        .collect();
    let acknowledged: BTreeSet<String> = sim.bindings.iter().map(|b| b.id.clone()).collect();
    if bindings != acknowledged {
        return Err(violation(
            "bindings survive restarts as acknowledged",
            format!(
                "{} bindings came back, {} were acknowledged",
                bindings.len(),
                acknowledged.len()
            ),
        ));
    }
    Ok(())
}

/// Replay rebuilt `queue` with as many messages as it held live before the restart (the
/// replayed length is the lifetime's conservation constant, whatever opening did since).
async fn check_replayed(
    sim: &mut Sim,
    before: &Before,
    queue: usize,
    replayed: i128,
) -> Result<(), Violation> {
    let held = before.lengths[queue];
    let durable = sim.model.queues[queue].options.durable;
    if replayed == i128::from(held) || (before.transient_lost && !durable) {
        return Ok(());
    }
    let now_seen = seen(sim, queue, false).await?;
    let came: Vec<_> = now_seen.difference(&before.seen[queue]).collect();
    let went: Vec<_> = before.seen[queue].difference(&now_seen).collect();
    let detail = format!(
        "{} held {held} messages before the restart; replay rebuilt {replayed} \
         (visible now, not before: {came:?}; before, not now: {went:?})",
        sim.model.queues[queue].name
    );
    if !before.diverged {
        return Err(violation("live state equals replay", detail));
    }
    sim.defect(Defect::SettleAppliedBeforeWritten, detail)
}

/// Recovery found every log intact: the simulator crashes processes but never corrupts a
/// byte, so damage (records an older segment should hold and does not) is the storage's own.
/// Over memory there is nothing to check: its records are whole values, never bytes to parse.
fn check_undamaged(sim: &Sim) -> Result<(), Violation> {
    let node = sim.node.as_ref().expect("the process is open");
    let Some(store) = &node.files else {
        return Ok(());
    };
    for name in ["wal", "wal-transient", "topic-events"] {
        let log = (store.log(name, wharf_storage::LogConfig::default()))
            .map_err(|error| violation("recovery finds no damage", format!("{name}: {error}")))?;
        if let Some(damage) = log.damage().first() {
            return Err(violation(
                "recovery finds no damage",
                format!(
                    "{}: records at offsets {}..{} unreadable: {}",
                    damage.path.display(),
                    damage.offsets.start,
                    damage.offsets.end,
                    damage.reason
                ),
            ));
        }
    }
    Ok(())
}

/// What replay must rebuild of the lifetime ending now.
pub(crate) async fn before(sim: &Sim) -> Result<Before, Violation> {
    let mut seen_before = Vec::with_capacity(sim.model.queues.len());
    for queue in 0..sim.model.queues.len() {
        seen_before.push(seen(sim, queue, true).await?);
    }
    Ok(Before {
        lengths: lengths(sim)?,
        diverged: sim.model.diverged,
        seen: seen_before,
        transient_lost: false,
    })
}

/// Ids of a queue's deliverable messages, and of its leased ones when `leased`.
async fn seen(sim: &Sim, queue: usize, leased: bool) -> Result<BTreeSet<String>, Violation> {
    let name = sim.name(queue);
    let engine = sim.engine();
    let peeked = (sim.call(engine.peek(&name, PEEK_MAX)).await?)
        .map_err(|error| violation("queues stay open", format!("{name}: {error}")))?;
    let leases = (sim.model.leases.iter())
        .filter(|l| leased && l.queue == queue)
        .map(|l| format!("m{}", l.key.id));
    Ok(peeked
        .into_iter()
        .map(|p| p.message.id)
        .chain(leases)
        .collect())
}

/// Each queue's live length (ready + delayed + leased).
pub(crate) fn lengths(sim: &Sim) -> Result<Vec<u64>, Violation> {
    Ok(all_stats(sim)?
        .iter()
        .map(|s| s.ready + s.delayed + s.leased)
        .collect())
}

fn all_stats(sim: &Sim) -> Result<Vec<QueueStats>, Violation> {
    (sim.model.queues.iter())
        .map(|queue| queue_stats(sim, &queue.name))
        .collect()
}

fn queue_stats(sim: &Sim, name: &str) -> Result<QueueStats, Violation> {
    (sim.engine().queue_info(name))
        .map(|info| info.stats)
        .map_err(|error| violation("queues stay open", format!("{name}: {error}")))
}

/// `len + settled - sent`: constant while a process lives.
fn conserved(stats: &QueueStats) -> i128 {
    let c = stats.counters;
    let len = stats.ready + stats.delayed + stats.leased;
    let settled = c.acked + c.dead_lettered + c.dropped + c.purged + c.redriven + c.damaged;
    i128::from(len) + i128::from(settled) - i128::from(c.sent)
}
