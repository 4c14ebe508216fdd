//! The end of a run: mend the disk, restart cleanly, drain every queue and account for every
//! confirmed message; then restart once more and find nothing.

use crate::{
    defects::Defect,
    lifecycle,
    model::{violation, Stored, Violation},
    node::stuck,
    sim::Sim,
};
use std::time::Duration;
use wharf_engine::broker::ReceiveRequest;

/// Clock steps the drain may take: delays, nack delays and TTLs are all under 40 s, so a few
/// steps of 10 s bring out everything; the rest is margin before calling a queue stuck.
const DRAIN_ROUNDS_MAX: usize = 60;
const DRAIN_STEP_MS: u64 = 10_000;
/// Lease of drain receives: longer than any drain round, so nothing returns while draining.
const DRAIN_LEASE_MS: u64 = 600_000;
/// Drain-and-restart rounds while a known defect keeps bringing messages back.
const FINISH_ROUNDS_MAX: usize = 4;

pub(crate) async fn finish(sim: &mut Sim) -> Result<(), Violation> {
    sim.step += 1;
    if sim.fault.is_some() {
        lifecycle::heal(sim).await?;
    }
    lifecycle::restart(sim).await?;
    for _ in 0..FINISH_ROUNDS_MAX {
        drain(sim).await?;
        sim.take_sightings()?;
        let diverged = sim.model.diverged;
        lifecycle::restart(sim).await?;
        let lengths = crate::checks::lengths(sim)?;
        if lengths.iter().all(|l| *l == 0) {
            return check_nothing_lost(sim);
        }
        if !diverged {
            return Err(violation(
                "no acked message delivered again",
                format!("after draining and a restart, queues hold {lengths:?}"),
            ));
        }
        // A known defect left the live state behind its log: what the restart brought back
        // is drained again.
    }
    Err(violation(
        "every queue drains",
        format!("restarts kept bringing messages back after {FINISH_ROUNDS_MAX} drains"),
    ))
}

/// Receives and acks until every queue is empty, moving the clock past delays.
async fn drain(sim: &mut Sim) -> Result<(), Violation> {
    for _ in 0..DRAIN_ROUNDS_MAX {
        for queue in 0..sim.model.queues.len() {
            drain_queue(sim, queue).await?;
        }
        sim.io.idle().await.map_err(stuck)?;
        crate::checks::check_queues(sim)?;
        let lengths = crate::checks::lengths(sim)?;
        if lengths.iter().all(|l| *l == 0) {
            return Ok(());
        }
        lifecycle::advance(sim, DRAIN_STEP_MS).await?;
        sim.io.idle().await.map_err(stuck)?;
    }
    let lengths = crate::checks::lengths(sim)?;
    Err(violation(
        "every queue drains",
        format!("after {DRAIN_ROUNDS_MAX} rounds queues still hold {lengths:?}"),
    ))
}

async fn drain_queue(sim: &mut Sim, queue: usize) -> Result<(), Violation> {
    let name = sim.name(queue);
    loop {
        let request = ReceiveRequest {
            max_messages: 100,
            wait: Duration::ZERO,
            lease: Some(Duration::from_millis(DRAIN_LEASE_MS)),
        };
        sim.note(format!("drain {name}"));
        let deliveries = (sim.call(sim.engine().receive(&name, request)).await?)
            .map_err(|error| violation("every queue drains", format!("{name}: {error}")))?;
        if deliveries.is_empty() {
            sim.outcome("empty");
            return Ok(());
        }
        let ids: Vec<&str> = deliveries.iter().map(|d| d.message.id.as_str()).collect();
        sim.outcome(&ids.join(" "));
        for delivery in &deliveries {
            sim.model
                .on_delivery(queue, delivery, DRAIN_LEASE_MS, None)?;
        }
        let receipts: Vec<String> = deliveries.into_iter().map(|d| d.receipt).collect();
        let results = (sim.call(sim.engine().ack(&name, &receipts)).await?)
            .map_err(|error| violation("every queue drains", format!("acking: {error}")))?;
        if let Some(failed) = results.iter().find(|r| r.error.is_some()) {
            return Err(violation(
                "a live lease can be settled",
                format!("draining {name}: {failed:?}"),
            ));
        }
        while let Some(index) = sim.model.leases.iter().position(|l| l.queue == queue) {
            let lease = sim.model.end_lease(index);
            sim.model.queues[queue].expected.acked += 1;
            sim.tally.drained += 1;
            if let Some(copy) = sim.model.copies.get_mut(&lease.key) {
                copy.acked = true;
            }
        }
    }
}

/// Every confirmed message was acked at some point (the drain acked the rest), unless a purge
/// or an ack whose reply was lost may have removed it.
fn check_nothing_lost(sim: &mut Sim) -> Result<(), Violation> {
    let lost: Vec<(String, bool)> = (sim.model.copies.iter())
        .filter(|(_, c)| c.stored == Stored::Confirmed && !c.acked && !c.may_be_gone)
        .map(|(key, c)| {
            let name = format!("m{} of {}", key.id, sim.model.queues[key.home].name);
            (name, c.may_leave || c.in_dead)
        })
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = lost.iter().map(|(name, _)| name.as_str()).collect();
    let detail = format!(
        "{} never delivered after their confirmation: {}",
        lost.len(),
        names.join(", ")
    );
    // A dead letter whose settlement was not written vanishes from the live state, and reclaim
    // may then delete it for good; when the run has seen a defect that makes such dead
    // letters, messages that may have been dead-lettered are its casualties.
    let vanishing = [
        Defect::SettleAppliedBeforeWritten,
        Defect::DeadLetterOfCopiedMessage,
    ];
    let seen = vanishing.iter().any(|d| sim.defects.contains_key(d));
    if seen && lost.iter().all(|(_, movable)| *movable) {
        return sim.defect(Defect::ReclaimDropsVanishedMessage, detail);
    }
    Err(violation("no confirmed message lost", detail))
}
