//! Time, faults and the life of the process: setting up, advancing the clock, breaking the
//! storage and mending it, restarting, and crashing between or inside operations.

use crate::{
    backend::Disk,
    io::{Io, Reached, Stuck},
    model::{violation, CopyKey, QueueModel, Stored, Violation, STEADY},
    node::{self, stuck},
    ops::{self, CrashPoint, Fault, Op},
    queue_ops::{self, add_draft, draft_ids, nack_action, receipts, send_message},
    sim::{End, Sim},
    topic::{self, TOPIC},
};
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};
use wharf_engine::{broker::PublishMessage, queue::QueueOptions};
use wharf_storage::{Faults, MemoryStore};

/// Creates the queues (the dead-letter queue first), the topic and a few bindings.
pub(crate) async fn setup(sim: &mut Sim) -> Result<(), Violation> {
    let dead = QueueOptions {
        dead_letter_queue: None,
        lease_ms: 10_000,
        ..ops::steady_options(true)
    };
    let mut queues = vec![
        ("dead", dead),
        ("steady", ops::steady_options(true)),
        ("work", ops::random_options(&mut sim.rng, true)),
        ("batch", ops::random_options(&mut sim.rng, true)),
    ];
    if sim.rng.percent(50) {
        queues.push(("temp", ops::random_options(&mut sim.rng, false)));
    }
    for (name, options) in queues {
        sim.note(format!(
            "create {name} {}",
            queue_ops::describe_options(&options)
        ));
        let created = sim
            .call(sim.engine().put_queue(name, options.clone()))
            .await?;
        if !matches!(created, Ok(true)) {
            return Err(violation(
                "the simulator can set up",
                format!("creating {name} answered {created:?}"),
            ));
        }
        sim.outcome("ok");
        sim.model.queues.push(QueueModel {
            name: name.to_string(),
            options,
            expected: Default::default(),
            exact: true,
            conserved: 0,
        });
    }
    sim.model.clean = true;
    topic::create(sim).await?;
    for _ in 0..sim.rng.between(2, 3) {
        let pattern = *sim.rng.pick(topic::PATTERNS);
        let queue = 1 + sim.rng.index(sim.model.queues.len() - 1);
        topic::bind(sim, pattern, queue).await?;
    }
    Ok(())
}

pub(crate) async fn advance(sim: &mut Sim, ms: u64) -> Result<(), Violation> {
    sim.note(format!("advance {ms} ms"));
    sim.clock.advance(Duration::from_millis(ms));
    sim.model.now += ms;
    sim.model.expire_leases();
    sim.outcome("ok");
    Ok(())
}

pub(crate) fn inject(sim: &mut Sim, fault: Fault) {
    sim.note(format!("fault {fault:?}"));
    sim.disk.inject(fault);
    sim.fault = Some(fault);
    sim.injected.push(fault);
    // Failures it causes in the background (timers) are not seen; assume the worst.
    sim.model.clean = false;
    sim.model.diverged = true;
    sim.tally.faults += 1;
    sim.outcome("ok");
}

/// Mends the storage, then checks that service resumes at once: a send and a definition
/// change must succeed.
pub(crate) async fn heal(sim: &mut Sim) -> Result<(), Violation> {
    sim.note("heal".to_string());
    sim.disk.heal();
    sim.fault = None;
    // A dead letter whose move failed halfway may now be in both queues, and delivery
    // counts that rode a failed commit are lost.
    sim.model.allow_repeats_of_movable();
    for copy in sim.model.copies.values_mut() {
        copy.last_delivery = None;
    }
    sim.outcome("ok");
    queue_ops::send(sim, STEADY, 1).await?;
    let options = sim.model.queues[STEADY].options.clone();
    queue_ops::set_options(sim, STEADY, options).await
}

/// A clean restart: close everything, open again, check what came back.
pub(crate) async fn restart(sim: &mut Sim) -> Result<(), Violation> {
    sim.note("restart".to_string());
    sim.before = Some(crate::checks::before(sim).await?);
    let node = sim.node.take().expect("the process is open");
    node::close(node, &sim.disk, &sim.io).await?;
    sim.model.forget_leases();
    sim.tally.restarts += 1;
    sim.start_process().await?;
    sim.outcome("ok");
    Ok(())
}

/// A crash between operations: nothing is closed; what was not yet committed is lost.
pub(crate) async fn crash(sim: &mut Sim) -> Result<End, Violation> {
    sim.note("crash".to_string());
    sim.io.idle().await.map_err(stuck)?;
    let mut before = crate::checks::before(sim).await?;
    before.transient_lost = sim.disk.crash_loses_transient();
    sim.before = Some(before);
    sim.disk.crash();
    sim.tally.crashes += 1;
    sim.outcome("killed");
    Ok(End::Crashed)
}

/// A crash inside an operation: it runs until its first write (files) or until it waits on a
/// held commit (memory); the write then happens as `point` says, and the process dies before
/// anything sees its result.
pub(crate) async fn crash_during(
    sim: &mut Sim,
    op: Op,
    point: CrashPoint,
) -> Result<End, Violation> {
    sim.io.idle().await.map_err(stuck)?;
    let (call, forget) = start(sim, op);
    if let Some(line) = sim.trace.last_mut() {
        line.push_str(&format!(" (crash at {point:?})"));
    }
    let io = sim.io.clone();
    let reached = match &sim.disk {
        Disk::Memory(store) => crash_in_commit(&io, store, call, point).await,
        Disk::Files { faults, .. } => crash_at_write(&io, faults, call, point).await,
    };
    let reached = reached.map_err(stuck)?;
    forget(sim);
    sim.model.allow_repeats_of_movable();
    sim.before = None;
    sim.tally.crashes += 1;
    sim.tally.crashes_inside_operations += 1;
    sim.outcome(match (reached, &sim.disk) {
        (Reached::Write, Disk::Memory(_)) => "killed at its commit",
        (Reached::Write, Disk::Files { .. }) => "killed at its write",
        (Reached::End, _) => "killed after it",
    });
    Ok(End::Crashed)
}

/// Over files: the operation runs until its first blocking job is spawned (the gate holds
/// it), the disk is set as `point` says, and every queued job runs; the caller then drops the
/// runtime before any task sees a result.
async fn crash_at_write(
    io: &Io,
    faults: &Arc<Faults>,
    call: Call,
    point: CrashPoint,
) -> Result<Reached, Stuck> {
    let reached = io.drive_to_write(call).await?;
    if reached == Reached::Write {
        match point {
            CrashPoint::AfterWrite => {}
            CrashPoint::WriteFails => {
                faults.set_space(Some(0));
                faults.set_fail_syncs(true);
            }
            CrashPoint::WriteTorn { bytes } => faults.set_space(Some(bytes)),
        }
    }
    io.run_jobs()?;
    Ok(reached)
}

/// Over memory: commits are held while the operation runs, until it waits on one with nothing
/// else able to run (or ends). `AfterWrite` then releases the held commits (they are synced,
/// their appends answered) and the store crashes at once, before any task runs again; else it
/// crashes with them held, and they are lost. The call lives until the crash, so nothing its
/// dropping does reaches the store. A torn write is files-only: a memory commit is all or
/// nothing, so `WriteTorn` is never drawn here.
async fn crash_in_commit(
    io: &Io,
    store: &MemoryStore,
    mut call: Call,
    point: CrashPoint,
) -> Result<Reached, Stuck> {
    store.hold_commits();
    let reached = io
        .drive_until_waiting(&mut call, || store.held_appends() > 0)
        .await?;
    if reached == Reached::End || point == CrashPoint::AfterWrite {
        store.release_commits();
    }
    store.crash();
    // The next process commits at once: the crash left nothing pending to release.
    store.release_commits();
    drop(call);
    Ok(reached)
}

type Call = Pin<Box<dyn Future<Output = ()> + Send>>;
type Forget = Box<dyn FnOnce(&mut Sim) + Send>;

/// The engine call of an operation the crash interrupts, and what the model must then forget:
/// every outcome of the call is possible.
fn start(sim: &mut Sim, op: Op) -> (Call, Forget) {
    let engine = sim.engine();
    match op {
        Op::Send { queue, count } => {
            let drafts: Vec<_> = (0..count)
                .map(|_| ops::draft(&mut sim.rng, &mut sim.model))
                .collect();
            let name = sim.name(queue);
            sim.note(format!("send {name} {}", draft_ids(&drafts)));
            let batch = drafts.iter().map(send_message).collect();
            let call: Call = Box::pin(async move {
                let _ = engine.send(&name, batch).await;
            });
            let forget: Forget = Box::new(move |sim: &mut Sim| {
                for draft in &drafts {
                    add_draft(sim, queue, draft, Stored::Unknown);
                }
            });
            (call, forget)
        }
        Op::Publish { keys } => start_publish(sim, keys),
        Op::Ack { queue, leases, .. } => start_ack(sim, queue, leases),
        Op::Nack {
            queue,
            leases,
            dead_letter,
            delay_ms,
        } => {
            let (name, receipts, keys) = lease_details(sim, queue, &leases);
            sim.note(format!("nack {name} {} leases", keys.len()));
            let action = nack_action(dead_letter, delay_ms);
            let call: Call = Box::pin(async move {
                let _ = engine.nack(&name, &receipts, action).await;
            });
            let forget: Forget = Box::new(move |sim: &mut Sim| {
                for key in keys {
                    if let Some(copy) = sim.model.copies.get_mut(&key) {
                        copy.in_dead |= dead_letter;
                    }
                }
            });
            (call, forget)
        }
        Op::Redrive { max } => {
            sim.note(format!("redrive dead max {max:?}"));
            let call: Call = Box::pin(async move {
                let _ = engine.redrive("dead", max).await;
            });
            (call, Box::new(|_: &mut Sim| {}))
        }
        other => unreachable!("no crash is chosen inside {other:?}"),
    }
}

fn start_publish(sim: &mut Sim, keys: Vec<&'static str>) -> (Call, Forget) {
    let engine = sim.engine();
    let drafts: Vec<_> = (keys.iter())
        .map(|_| ops::draft(&mut sim.rng, &mut sim.model))
        .collect();
    sim.note(format!("publish {} keys {keys:?}", draft_ids(&drafts)));
    let routes: Vec<_> = keys.iter().map(|key| topic::route(sim, key)).collect();
    let batch = (keys.iter().zip(&drafts))
        .map(|(key, draft)| PublishMessage {
            routing_key: key.to_string(),
            message: send_message(draft),
            retain: false,
        })
        .collect();
    let call: Call = Box::pin(async move {
        let _ = engine.publish(TOPIC, batch).await;
    });
    let forget: Forget = Box::new(move |sim: &mut Sim| {
        for (draft, route) in drafts.iter().zip(&routes) {
            for queue in route {
                topic::add_published(sim, *queue, draft, Stored::Unknown);
            }
        }
    });
    (call, forget)
}

fn start_ack(sim: &mut Sim, queue: usize, leases: Vec<usize>) -> (Call, Forget) {
    let engine = sim.engine();
    let (name, receipts, keys) = lease_details(sim, queue, &leases);
    sim.note(format!("ack {name} {} leases", keys.len()));
    let call: Call = Box::pin(async move {
        let _ = engine.ack(&name, &receipts).await;
    });
    let forget: Forget = Box::new(move |sim: &mut Sim| {
        // Acked or not: both are fine from here on.
        for key in keys {
            if let Some(copy) = sim.model.copies.get_mut(&key) {
                copy.may_be_gone = true;
            }
        }
    });
    (call, forget)
}

fn lease_details(sim: &Sim, queue: usize, leases: &[usize]) -> (String, Vec<String>, Vec<CopyKey>) {
    let keys = leases.iter().map(|i| sim.model.leases[*i].key).collect();
    (sim.name(queue), receipts(sim, leases, None), keys)
}
