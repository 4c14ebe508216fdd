//! Queue operations: each calls the engine once, checks the reply against the model and
//! records what it changed.

use crate::{
    defects::Defect,
    model::{violation, CopyKey, Extra, MessageCopy, Stored, Violation, DEAD},
    node::SimConsumer,
    ops::{self, Draft},
    sim::{Failed, Sim},
};
use std::time::Duration;
use wharf_engine::{
    broker::{ConsumeRequest, NackAction, ReceiptResult, ReceiveRequest, SendMessage},
    queue::{Overflow, QueueOptions},
};

pub(crate) async fn send(sim: &mut Sim, queue: usize, count: usize) -> Result<(), Violation> {
    let drafts: Vec<Draft> = (0..count)
        .map(|_| ops::draft(&mut sim.rng, &mut sim.model))
        .collect();
    let name = sim.name(queue);
    sim.note(format!("send {name} {}", draft_ids(&drafts)));
    let batch = drafts.iter().map(send_message).collect();
    match sim.call(sim.engine().send(&name, batch)).await? {
        Ok(sent) => {
            sim.outcome("ok");
            for (draft, sent) in drafts.iter().zip(&sent) {
                if sent.duplicate || sent.id != format!("m{}", draft.id) {
                    return Err(violation(
                        "fresh ids are stored",
                        format!("sending m{} answered {sent:?}", draft.id),
                    ));
                }
                add_draft(sim, queue, draft, Stored::Confirmed);
                sim.model.queues[queue].expected.sent += 1;
            }
        }
        Err(error) => {
            let options = &sim.model.queues[queue].options;
            let full_ok = options.max_length.is_some();
            let evicting = full_ok && options.overflow == Overflow::DropOldest;
            let stored = match sim.expect_error(&error, full_ok)? {
                Failed::Cleanly => Stored::Refused,
                Failed::Partly => Stored::Unknown,
            };
            for draft in &drafts {
                add_draft(sim, queue, draft, stored);
                let key = CopyKey {
                    home: queue,
                    id: draft.id,
                };
                if let Some(copy) = sim.model.copies.get_mut(&key) {
                    copy.refused_evicting = evicting;
                }
            }
        }
    }
    Ok(())
}

/// Sends an earlier message again with its id, as a client retrying would: within the dedup
/// window it must not be stored twice, and a send that failed must not have been stored.
pub(crate) async fn resend(sim: &mut Sim, key: CopyKey) -> Result<(), Violation> {
    let copy = sim.model.copies[&key].clone();
    let name = sim.name(key.home);
    sim.note(format!("resend {name} m{} ({:?})", key.id, copy.stored));
    let message = SendMessage {
        id: Some(format!("m{}", key.id)),
        body: copy.body.clone(),
        group: copy.group.clone(),
        ..SendMessage::default()
    };
    let sent = match sim.call(sim.engine().send(&name, vec![message])).await? {
        Ok(sent) => sent,
        Err(error) => {
            let full_ok = sim.model.queues[key.home].options.max_length.is_some();
            if sim.expect_error(&error, full_ok)? == Failed::Partly {
                let copy = sim
                    .model
                    .copies
                    .get_mut(&key)
                    .expect("chosen from the model");
                if copy.stored == Stored::Refused {
                    copy.stored = Stored::Unknown;
                }
            }
            return Ok(());
        }
    };
    let duplicate = sent.first().is_some_and(|s| s.duplicate);
    sim.outcome(if duplicate { "duplicate" } else { "stored" });
    resend_check(sim, key, &copy, duplicate)?;
    if let Some(copy) = sim.model.copies.get_mut(&key) {
        copy.stored = Stored::Confirmed;
    }
    Ok(())
}

/// What a resend's answer says of the earlier send, and what the model learns from it.
fn resend_check(
    sim: &mut Sim,
    key: CopyKey,
    copy: &MessageCopy,
    duplicate: bool,
) -> Result<(), Violation> {
    let name = sim.name(key.home);
    let refused = |invariant, what: &str| {
        Err(violation(
            invariant,
            format!("m{} in {name} {what}", key.id),
        ))
    };
    match (copy.stored, duplicate) {
        (Stored::Confirmed, false) => refused(
            "a resend within the dedup window is not stored again",
            "was stored a second time",
        ),
        (Stored::Refused, true) if !copy.refused_evicting => refused(
            "a failed send stores nothing",
            "failed to send, yet a resend found it stored",
        ),
        (Stored::Refused, true) => {
            let detail = format!("m{} failed to send, yet a resend found it stored", key.id);
            sim.model.queues[key.home].expected.duplicates += 1;
            sim.defect(Defect::SendFailsAfterStoring, detail)
        }
        (Stored::Confirmed | Stored::Unknown, true) => {
            sim.model.queues[key.home].expected.duplicates += 1;
            Ok(())
        }
        (Stored::Refused | Stored::Unknown, false) => {
            sim.model.queues[key.home].expected.sent += 1;
            let may_leave = sim.model.queues[key.home].may_dead_letter();
            let now = sim.model.now;
            let copy = (sim.model.copies.get_mut(&key)).expect("chosen from the model");
            copy.sent_at = now;
            copy.may_leave |= may_leave;
            copy.in_home = true;
            Ok(())
        }
    }
}

pub(crate) async fn receive(
    sim: &mut Sim,
    queue: usize,
    max: usize,
    lease_ms: Option<u64>,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    sim.note(format!("receive {name} max {max} lease {lease_ms:?}"));
    let request = ReceiveRequest {
        max_messages: max,
        wait: Duration::ZERO,
        lease: lease_ms.map(Duration::from_millis),
    };
    match sim.call(sim.engine().receive(&name, request)).await? {
        Ok(deliveries) => {
            let ids: Vec<&str> = deliveries.iter().map(|d| d.message.id.as_str()).collect();
            sim.outcome(&ids.join(" "));
            let lease_ms = lease_ms.unwrap_or(sim.model.queues[queue].options.lease_ms);
            for delivery in &deliveries {
                sim.model.on_delivery(queue, delivery, lease_ms, None)?;
            }
            Ok(())
        }
        Err(error) => sim.expect_error(&error, false).map(|_| ()),
    }
}

pub(crate) async fn ack(
    sim: &mut Sim,
    queue: usize,
    leases: Vec<usize>,
    stale: Option<String>,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    let receipts = receipts(sim, &leases, stale.as_ref());
    let stale_note = if stale.is_some() { " +stale" } else { "" };
    sim.note(format!(
        "ack {name} {}{stale_note}",
        lease_ids(sim, &leases)
    ));
    match sim.call(sim.engine().ack(&name, &receipts)).await? {
        Ok(results) => {
            sim.outcome("ok");
            check_receipt_results(sim, "ack", &leases, &results)?;
            for index in descending(&leases) {
                let lease = sim.model.end_lease(index);
                if let Some(copy) = sim.model.copies.get_mut(&lease.key) {
                    copy.acked = true;
                }
                sim.model.queues[queue].expected.acked += 1;
            }
            Ok(())
        }
        Err(error) => {
            sim.expect_error(&error, false)?;
            if lease_ended(sim, queue, &leases).await? {
                return Err(failed_call_acted(sim, queue, "ack", &leases));
            }
            Ok(())
        }
    }
}

pub(crate) async fn nack(
    sim: &mut Sim,
    queue: usize,
    leases: Vec<usize>,
    dead_letter: bool,
    delay_ms: Option<u64>,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    let receipts = receipts(sim, &leases, None);
    let what = if dead_letter {
        "to dead letters"
    } else {
        "requeue"
    };
    sim.note(format!(
        "nack {name} {} {what} delay {delay_ms:?}",
        lease_ids(sim, &leases)
    ));
    match sim
        .call(
            sim.engine()
                .nack(&name, &receipts, nack_action(dead_letter, delay_ms)),
        )
        .await?
    {
        Ok(results) => {
            sim.outcome("ok");
            check_receipt_results(sim, "nack", &leases, &results)?;
            for index in descending(&leases) {
                let lease = sim.model.end_lease(index);
                sim.model.queues[queue].expected.nacked += 1;
                if let (true, Some(copy)) = (dead_letter, sim.model.copies.get_mut(&lease.key)) {
                    copy.in_home = copy.may_repeat;
                    copy.in_dead = true;
                }
            }
            Ok(())
        }
        Err(error) => {
            sim.expect_error(&error, false)?;
            if !lease_ended(sim, queue, &leases).await? {
                return Ok(());
            }
            let failure = failed_call_acted(sim, queue, "nack", &leases);
            sim.defect(Defect::SettleAppliedBeforeWritten, failure.detail)?;
            // It acted on every lease it named: they ended, and dead letters may be anywhere.
            for index in descending(&leases) {
                let lease = sim.model.end_lease(index);
                sim.model.queues[queue].expected.nacked += 1;
                if let Some(copy) = sim.model.copies.get_mut(&lease.key) {
                    copy.in_dead |= dead_letter;
                }
            }
            sim.model.diverge();
            Ok(())
        }
    }
}

pub(crate) fn nack_action(dead_letter: bool, delay_ms: Option<u64>) -> NackAction {
    if dead_letter {
        NackAction::DeadLetter {
            error: Some("rejected by the simulator".to_string()),
        }
    } else {
        NackAction::Requeue {
            delay: delay_ms.map(Duration::from_millis),
            error: None,
        }
    }
}

pub(crate) async fn extend(
    sim: &mut Sim,
    queue: usize,
    leases: Vec<usize>,
    lease_ms: u64,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    let receipts = receipts(sim, &leases, None);
    sim.note(format!(
        "extend {name} {} to {lease_ms} ms",
        lease_ids(sim, &leases)
    ));
    let lease = Duration::from_millis(lease_ms);
    match sim
        .call(sim.engine().extend(&name, &receipts, lease))
        .await?
    {
        Ok(results) => {
            sim.outcome("ok");
            check_receipt_results(sim, "extend", &leases, &results)?;
            for index in leases {
                sim.model.leases[index].deadline = sim.model.now + lease_ms;
            }
            Ok(())
        }
        Err(error) => sim.expect_error(&error, false).map(|_| ()),
    }
}

pub(crate) async fn set_options(
    sim: &mut Sim,
    queue: usize,
    options: QueueOptions,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    sim.note(format!("options {name} {}", describe_options(&options)));
    match sim
        .call(sim.engine().put_queue(&name, options.clone()))
        .await?
    {
        Ok(false) => {
            sim.outcome("ok");
            sim.model.queues[queue].options = options;
            if sim.model.queues[queue].may_dead_letter() {
                for (key, copy) in sim.model.copies.iter_mut() {
                    copy.may_leave |= key.home == queue;
                }
            }
            Ok(())
        }
        Ok(true) => Err(violation(
            "queues survive",
            format!("updating {name} created it anew"),
        )),
        Err(error) => sim.expect_error(&error, false).map(|_| ()),
    }
}

pub(crate) async fn purge(sim: &mut Sim, queue: usize) -> Result<(), Violation> {
    let name = sim.name(queue);
    sim.note(format!("purge {name}"));
    let purged = match sim.call(sim.engine().purge(&name)).await? {
        Ok(purged) => purged,
        Err(error) => return sim.expect_error(&error, false).map(|_| ()),
    };
    sim.outcome(&format!("{purged} purged"));
    sim.model.queues[queue].expected.purged += purged;
    let certain = sim.model.clean;
    let candidates: Vec<CopyKey> = sim.model.copies.keys().copied().collect();
    for key in candidates {
        if sim.model.is_leased(queue, key) {
            continue;
        }
        let copy = sim.model.copies.get_mut(&key).expect("listed above");
        let (here, elsewhere) = if queue == DEAD {
            (copy.in_dead || copy.may_leave, copy.in_home)
        } else {
            (
                key.home == queue && copy.in_home,
                copy.in_dead || copy.may_leave,
            )
        };
        if !here || copy.acked {
            continue;
        }
        copy.may_be_gone = true;
        if certain && !elsewhere && !copy.may_repeat {
            if queue == DEAD {
                copy.in_dead = false;
            } else {
                copy.in_home = false;
            }
        }
    }
    crate::checks::check_purged(sim, queue)
}

pub(crate) async fn redrive(sim: &mut Sim, max: Option<u64>) -> Result<(), Violation> {
    sim.note(format!("redrive dead max {max:?}"));
    let result = sim.call(sim.engine().redrive("dead", max)).await?;
    let moved_any = match &result {
        Ok(report) => {
            sim.outcome(&format!("{} moved", report.moved));
            sim.model.queues[DEAD].expected.redriven += report.moved;
            report.moved > 0
        }
        Err(error) => {
            let full_ok = sim
                .model
                .queues
                .iter()
                .any(|q| q.options.max_length.is_some());
            sim.expect_error(error, full_ok)?;
            // Some batches may have moved before the failure; how many is not reported. And
            // a batch stored in its source before the failure whose settlement here failed is
            // in both queues, as the redrive documents (never in neither).
            for queue in &mut sim.model.queues {
                queue.exact = false;
            }
            sim.model.allow_repeats_of_movable();
            true
        }
    };
    if moved_any {
        for (key, copy) in sim.model.copies.iter_mut() {
            let in_dead = copy.in_dead || copy.may_leave || copy.may_repeat;
            if in_dead
                && !sim
                    .model
                    .leases
                    .iter()
                    .any(|l| l.queue == DEAD && l.key == *key)
            {
                copy.in_home = true;
                copy.last_delivery = None;
            }
        }
    }
    Ok(())
}

pub(crate) async fn attach(
    sim: &mut Sim,
    queue: usize,
    credit: usize,
    lease_ms: Option<u64>,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    let id = sim.next_consumer;
    sim.next_consumer += 1;
    sim.note(format!(
        "attach c{id} to {name} credit {credit} lease {lease_ms:?}"
    ));
    let request = ConsumeRequest {
        credit,
        lease: lease_ms.map(Duration::from_millis),
    };
    match sim.call(sim.engine().consume(&name, request)).await? {
        Ok(consumer) => {
            sim.outcome("ok");
            let node = sim.node.as_mut().expect("the process is open");
            node.consumers.push(SimConsumer {
                id,
                queue,
                lease_ms,
                consumer,
            });
            Ok(())
        }
        Err(error) => sim.expect_error(&error, false).map(|_| ()),
    }
}

/// Drops a consumer: its leases go back to the queue.
pub(crate) fn detach(sim: &mut Sim, index: usize) {
    let node = sim.node.as_mut().expect("the process is open");
    let consumer = node.consumers.remove(index);
    let id = consumer.id;
    drop(consumer);
    sim.note(format!("detach c{id}"));
    while let Some(index) = sim.model.leases.iter().position(|l| l.consumer == Some(id)) {
        sim.model.end_lease(index);
    }
    sim.outcome("ok");
}

/// Takes every delivery the engine handed to a push consumer, and checks it.
pub(crate) fn take_consumer_deliveries(sim: &mut Sim) -> Result<(), Violation> {
    let Some(node) = sim.node.as_mut() else {
        return Ok(());
    };
    let mut taken = Vec::new();
    for consumer in &mut node.consumers {
        while let Some(delivery) = consumer.consumer.try_next() {
            taken.push((consumer.id, consumer.queue, consumer.lease_ms, delivery));
        }
    }
    for (id, queue, lease_ms, delivery) in taken {
        let lease_ms = lease_ms.unwrap_or(sim.model.queues[queue].options.lease_ms);
        sim.note(format!("c{id} got {}", delivery.message.id));
        sim.model
            .on_delivery(queue, &delivery, lease_ms, Some(id))?;
    }
    Ok(())
}

pub(crate) fn send_message(draft: &Draft) -> SendMessage {
    SendMessage {
        id: Some(format!("m{}", draft.id)),
        body: draft.body.clone(),
        priority: draft.priority,
        delay: draft.delay_ms.map(Duration::from_millis),
        ttl: draft.ttl_ms.map(Duration::from_millis),
        group: draft.group.clone(),
        ..SendMessage::default()
    }
}

pub(crate) fn add_draft(sim: &mut Sim, queue: usize, draft: &Draft, stored: Stored) {
    let key = CopyKey {
        home: queue,
        id: draft.id,
    };
    let extra = Extra {
        ttl: draft.ttl_ms.is_some(),
        deduplicated: true,
        group: draft.group.clone(),
    };
    sim.model.add_copy(key, draft.body.clone(), stored, extra);
}

pub(crate) fn draft_ids(drafts: &[Draft]) -> String {
    let ids: Vec<String> = drafts.iter().map(|d| format!("m{}", d.id)).collect();
    ids.join(" ")
}

pub(crate) fn receipts(sim: &Sim, leases: &[usize], stale: Option<&String>) -> Vec<String> {
    (leases.iter())
        .map(|i| sim.model.leases[*i].receipt.clone())
        .chain(stale.cloned())
        .collect()
}

fn lease_ids(sim: &Sim, leases: &[usize]) -> String {
    let ids: Vec<String> = (leases.iter())
        .map(|i| format!("m{}", sim.model.leases[*i].key.id))
        .collect();
    ids.join(" ")
}

/// Lease indexes from the highest, so removing one does not move the next.
fn descending(leases: &[usize]) -> Vec<usize> {
    let mut sorted = leases.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted
}

/// Receipts of `leases` are live and must succeed; any after them are stale and must fail.
fn check_receipt_results(
    sim: &Sim,
    call: &str,
    leases: &[usize],
    results: &[ReceiptResult],
) -> Result<(), Violation> {
    for (index, result) in results.iter().enumerate() {
        match (leases.get(index), &result.error) {
            (Some(lease), Some(error)) => {
                let lease = &sim.model.leases[*lease];
                return Err(violation(
                    "a live lease can be settled",
                    format!(
                        "{call} of m{} (lease ends in {} ms) failed: {error}",
                        lease.key.id,
                        lease.deadline - sim.model.now
                    ),
                ));
            }
            (None, None) => {
                return Err(violation(
                    "a stale receipt settles nothing",
                    format!("{call} of a stale receipt succeeded"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// After an ack or nack failed, its leases must still be live: a failed call changes nothing.
/// Extending each by what it has left tells without changing it. True when one had ended.
async fn lease_ended(sim: &mut Sim, queue: usize, leases: &[usize]) -> Result<bool, Violation> {
    let name = sim.name(queue);
    for index in leases {
        let lease = &sim.model.leases[*index];
        let left = Duration::from_millis(lease.deadline - sim.model.now);
        let receipts = [lease.receipt.clone()];
        let live = match sim
            .call(sim.engine().extend(&name, &receipts, left))
            .await?
        {
            Ok(results) => results.iter().all(|r| r.error.is_none()),
            Err(_) => false,
        };
        if !live {
            return Ok(true);
        }
    }
    Ok(false)
}

fn failed_call_acted(sim: &Sim, queue: usize, call: &str, leases: &[usize]) -> Violation {
    violation(
        "a failed call changes nothing",
        format!(
            "{call} of {} in {} failed, yet a lease it named had ended",
            lease_ids(sim, leases),
            sim.name(queue)
        ),
    )
}

pub(crate) fn describe_options(options: &QueueOptions) -> String {
    format!(
        "lease {} max_deliveries {:?} ttl {:?} max_length {:?} {:?} single {}",
        options.lease_ms,
        options.max_deliveries,
        options.message_ttl_ms,
        options.max_length,
        options.overflow,
        options.single_active_consumer
    )
}
