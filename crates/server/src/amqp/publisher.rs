//! Publishes leave the connection's read loop for a task of their own, which stores them in
//! order and reports each outcome back. The read loop so keeps reading (acks, more publishes,
//! consumers' deliveries) while the log commits, and the publishes that arrive during one
//! commit are stored together in the next: a client with a window of unconfirmed publishes
//! gets group commit within its own connection, not one fsync per message.
//!
//! Order: one task per connection takes jobs in arrival order; the messages of one batch go to
//! each destination in that order, and outcomes are reported in arrival order, so confirms of a
//! channel go out in its publish order. A `tx.commit` is a barrier: what came before it is
//! stored first.

use bytes::Bytes;
use std::{collections::HashMap, time::Duration};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use wharf_codec_amqp::{BasicProperties, ShortString};
use wharf_engine::{
    broker::{NackAction, PublishMessage, SendMessage},
    Engine, EngineError,
};

/// Most messages taken into one batch.
const BATCH_MESSAGES: usize = 512;
/// Most body bytes taken into one batch (a batch is stored whole or not at all; the engine's
/// default limit is 8 MiB).
const BATCH_BYTES: usize = 4 << 20;
/// Flow control: publishes to a queue whose consumers have this many messages ready and not
/// taken wait (see [`hold_while_behind`]).
const FLOW_READY_MAX: u64 = 512;
/// The longest a batch waits for consumers to catch up; then it is stored anyway.
const FLOW_WAIT_MAX: Duration = Duration::from_millis(100);
/// How often a held batch looks again.
const FLOW_POLL: Duration = Duration::from_millis(1);
/// Jobs queued between the read loop and the task: past it the read loop waits, and so does
/// the client (TCP's backpressure).
const JOBS_BUFFER: usize = 4_096;

/// One publish on its way to the engine.
pub(super) struct Publish {
    pub channel: u16,
    /// The channel's incarnation: a report for a channel closed and reopened since is dropped.
    pub epoch: u64,
    /// Its publisher-confirm sequence number, in confirm mode.
    pub confirm: Option<u64>,
    pub target: Target,
    pub message: SendMessage,
    /// A mandatory publish keeps what a `basic.return` sends back if nothing takes it.
    pub returned: Option<Box<Returned>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Target {
    /// The default exchange: the queue the routing key names.
    Queue(String),
    /// A named exchange: its topic, with the routing key.
    Topic {
        exchange: String,
        routing_key: String,
    },
}

impl Target {
    /// What one engine call takes together: a queue, or a topic (each message keeps its key).
    fn batch_key(&self) -> (&str, bool) {
        match self {
            Target::Queue(queue) => (queue, false),
            Target::Topic { exchange, .. } => (exchange, true),
        }
    }
}

pub(super) struct Returned {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// Deliveries settled at a `tx.commit`: (queue, receipt) pairs, acked (`requeue` None),
/// requeued or dead-lettered.
pub(super) struct Settle {
    pub deliveries: Vec<(String, String)>,
    pub requeue: Option<bool>,
}

pub(super) enum Job {
    /// Boxed: a channel holds its first block of slots from the start, so an idle connection
    /// would otherwise hold 32 publishes' worth (10 KiB) for nothing.
    Publish(Box<Publish>),
    /// `tx.commit`: the channel's buffered publishes, then its buffered settles.
    Commit {
        channel: u16,
        epoch: u64,
        publishes: Vec<Publish>,
        settles: Vec<Settle>,
    },
}

impl Job {
    /// Body bytes of the publishes it carries: its share of the connection's
    /// [`PublishBudget`](crate::door::PublishBudget).
    pub(super) fn body_bytes(&self) -> usize {
        match self {
            Job::Publish(publish) => publish.message.body.len(),
            Job::Commit { publishes, .. } => publishes.iter().map(|p| p.message.body.len()).sum(),
        }
    }
}

/// A job and its share of the connection's publish budget, held until it is stored.
pub(super) type Budgeted = (Job, OwnedSemaphorePermit);

pub(super) enum Outcome {
    Stored,
    /// No queue took it: the default exchange's queue is missing, or no binding matched.
    Unroutable,
    Refused(EngineError),
}

/// A publish's outcome, with what the connection needs to answer it.
pub(super) struct Done {
    pub channel: u16,
    pub epoch: u64,
    pub confirm: Option<u64>,
    pub returned: Option<Box<Returned>>,
    pub outcome: Outcome,
}

pub(super) enum Report {
    Published(Vec<Done>),
    /// A `tx.commit` finished; the error is the first thing that failed.
    Committed {
        channel: u16,
        epoch: u64,
        dones: Vec<Done>,
        result: Result<(), EngineError>,
    },
}

/// Starts the task of one connection. Reports go on an unbounded channel: the task never waits
/// for the read loop, which may itself be waiting for room in the jobs channel.
pub(super) fn spawn(
    engine: Engine,
) -> (
    mpsc::Sender<Budgeted>,
    mpsc::UnboundedReceiver<Report>,
    tokio::task::JoinHandle<()>,
) {
    let (jobs, jobs_rx) = mpsc::channel(JOBS_BUFFER);
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(engine, jobs_rx, reports_tx));
    (jobs, reports, task)
}

async fn run(
    engine: Engine,
    mut jobs: mpsc::Receiver<Budgeted>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut batch = Vec::new();
    // The budget of what is in `batch` or being stored, given back once it is stored.
    let mut held = Vec::new();
    while let Some(first) = jobs.recv().await {
        let mut next = Some(first);
        let mut bytes = 0;
        while let Some((job, permit)) = next.take() {
            held.push(permit);
            match job {
                Job::Publish(publish) => {
                    bytes += publish.message.body.len();
                    batch.push(*publish);
                    if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                        break;
                    }
                }
                Job::Commit {
                    channel,
                    epoch,
                    publishes,
                    settles,
                } => {
                    flush(&engine, &mut batch, &reports).await;
                    let report = commit(&engine, channel, epoch, publishes, settles).await;
                    let _ = reports.send(report);
                    bytes = 0;
                }
            }
            next = jobs.try_recv().ok();
        }
        flush(&engine, &mut batch, &reports).await;
        held.clear();
    }
}

/// Stores `batch` (emptied) and reports its outcomes in arrival order.
async fn flush(engine: &Engine, batch: &mut Vec<Publish>, reports: &mpsc::UnboundedSender<Report>) {
    if batch.is_empty() {
        return;
    }
    let dones = store(engine, std::mem::take(batch)).await;
    let _ = reports.send(Report::Published(dones));
}

/// Stores publishes: one engine call per destination, all destinations at once. A refused
/// batch is stored again message by message, so one bad message does not fail its neighbours.
async fn store(engine: &Engine, publishes: Vec<Publish>) -> Vec<Done> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<(&str, bool), usize> = HashMap::new();
    for (index, publish) in publishes.iter().enumerate() {
        let group = *group_of
            .entry(publish.target.batch_key())
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        groups[group].push(index);
    }
    for indexes in &groups {
        let first = indexes.first().map(|&index| &publishes[index].target);
        if let Some(Target::Queue(queue)) = first {
            hold_while_behind(engine, queue).await;
        }
    }
    let calls = groups.iter().map(|indexes| {
        let members: Vec<&Publish> = indexes.iter().map(|&index| &publishes[index]).collect();
        store_group(engine, members)
    });
    let results = futures_util::future::join_all(calls).await;
    let mut outcomes: Vec<Option<Outcome>> = publishes.iter().map(|_| None).collect();
    for (indexes, results) in groups.iter().zip(results) {
        for (&index, outcome) in indexes.iter().zip(results) {
            outcomes[index] = Some(outcome);
        }
    }
    publishes
        .into_iter()
        .zip(outcomes)
        .map(|(publish, outcome)| Done {
            channel: publish.channel,
            epoch: publish.epoch,
            confirm: publish.confirm,
            returned: publish.returned,
            outcome: outcome.unwrap_or(Outcome::Refused(EngineError::Internal {
                operation: "amqp publish",
            })),
        })
        .collect()
}

/// Flow control, as RabbitMQ's credit flow does it: while a queue has consumers and more than
/// [`FLOW_READY_MAX`] messages wait for them, the consumers are behind, and publishes to it
/// wait (up to [`FLOW_WAIT_MAX`] a batch). Their confirms wait with them, so producers with a
/// window of unconfirmed publishes slow to what the consumers take, instead of burying them
/// under a backlog whose age every later message then carries. A queue without consumers
/// (a backlog being loaded) never waits.
async fn hold_while_behind(engine: &Engine, queue: &str) {
    let deadline = tokio::time::Instant::now() + FLOW_WAIT_MAX;
    while tokio::time::Instant::now() < deadline {
        match engine.queue_info(queue) {
            Ok(info) if info.stats.consumers > 0 && info.stats.ready > FLOW_READY_MAX => {
                tokio::time::sleep(FLOW_POLL).await;
            }
            _ => return,
        }
    }
}

/// One engine call for publishes to one destination; on a refusal, one call per message.
async fn store_group(engine: &Engine, members: Vec<&Publish>) -> Vec<Outcome> {
    let whole = call(engine, &members).await;
    match whole {
        Err(_) if members.len() > 1 => {
            let mut outcomes = Vec::with_capacity(members.len());
            for member in members {
                outcomes.push(match call(engine, &[member]).await {
                    Ok(mut one) => one.pop().unwrap_or(Outcome::Unroutable),
                    Err(error) => Outcome::Refused(error),
                });
            }
            outcomes
        }
        Err(error) => vec![Outcome::Refused(error)],
        Ok(outcomes) => outcomes,
    }
}

/// Sends or publishes `members` (one destination) as one batch.
async fn call(engine: &Engine, members: &[&Publish]) -> Result<Vec<Outcome>, EngineError> {
    let Some(first) = members.first() else {
        return Ok(Vec::new());
    };
    match &first.target {
        Target::Queue(queue) => {
            let batch = members.iter().map(|p| p.message.clone()).collect();
            match engine.send(queue, batch).await {
                Ok(_) => Ok(members.iter().map(|_| Outcome::Stored).collect()),
                Err(EngineError::QueueNotFound { .. }) => {
                    Ok(members.iter().map(|_| Outcome::Unroutable).collect())
                }
                Err(error) => Err(error),
            }
        }
        Target::Topic { exchange, .. } => {
            let batch = members
                .iter()
                .map(|p| PublishMessage {
                    routing_key: match &p.target {
                        Target::Topic { routing_key, .. } => routing_key.clone(),
                        Target::Queue(queue) => queue.clone(),
                    },
                    message: p.message.clone(),
                    retain: false,
                })
                .collect();
            let published = engine.publish(exchange, batch).await?;
            Ok(published
                .iter()
                .map(|p| match p.routed {
                    0 => Outcome::Unroutable,
                    _ => Outcome::Stored,
                })
                .collect())
        }
    }
}

/// A `tx.commit`: the publishes, then the settles; the first failure ends it.
async fn commit(
    engine: &Engine,
    channel: u16,
    epoch: u64,
    publishes: Vec<Publish>,
    settles: Vec<Settle>,
) -> Report {
    let mut dones = store(engine, publishes).await;
    // A failed commit closes the channel: its dones are not answered, so the error can move.
    let refused = dones.iter_mut().find_map(|done| match done.outcome {
        Outcome::Refused(_) => match std::mem::replace(&mut done.outcome, Outcome::Unroutable) {
            Outcome::Refused(error) => Some(error),
            _ => None,
        },
        _ => None,
    });
    let result = match refused {
        Some(error) => Err(error),
        None => settle_all(engine, settles).await,
    };
    Report::Committed {
        channel,
        epoch,
        dones,
        result,
    }
}

async fn settle_all(engine: &Engine, settles: Vec<Settle>) -> Result<(), EngineError> {
    for settle in settles {
        settle_deliveries(engine, settle.deliveries, settle.requeue).await?;
    }
    Ok(())
}

/// Acks (`requeue` None), requeues (Some(true)) or dead-letters (Some(false)) deliveries.
pub(super) async fn settle_deliveries(
    engine: &Engine,
    deliveries: Vec<(String, String)>,
    requeue: Option<bool>,
) -> Result<(), EngineError> {
    let mut by_queue: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (queue, receipt) in deliveries {
        by_queue.entry(queue).or_default().push(receipt);
    }
    for (queue, receipts) in by_queue {
        match requeue {
            None => engine.ack(&queue, &receipts).await.map(drop)?,
            Some(true) => {
                let action = NackAction::Requeue {
                    delay: Some(std::time::Duration::ZERO),
                    error: None,
                };
                engine.nack(&queue, &receipts, action).await.map(drop)?
            }
            Some(false) => {
                let action = NackAction::DeadLetter { error: None };
                engine.nack(&queue, &receipts, action).await.map(drop)?
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wharf_engine::{
        broker::ConsumeRequest, clock::SystemClock, queue::QueueOptions, EngineConfig,
    };
    use wharf_storage::{Store, StoreConfig};

    async fn engine(dir: &std::path::Path) -> Engine {
        let store = Arc::new(Store::open(dir, StoreConfig::default()).expect("store"));
        Engine::open(store, Arc::new(SystemClock), EngineConfig::default())
            .await
            .expect("engine")
    }

    /// Publishes wait while a consumed queue's backlog is over the mark, up to the bound, and
    /// never for a queue nobody consumes. Tokio's clock is paused: the test waits for nothing.
    #[tokio::test(start_paused = true)]
    async fn publishes_wait_for_consumers_that_are_behind_and_only_for_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = engine(dir.path()).await;
        engine
            .put_queue("backlog", QueueOptions::default())
            .await
            .expect("queue");
        let batch = (0..FLOW_READY_MAX + 100)
            .map(|_| SendMessage::default())
            .collect();
        engine.send("backlog", batch).await.expect("send");
        let started = tokio::time::Instant::now();
        hold_while_behind(&engine, "backlog").await;
        assert_eq!(started.elapsed(), Duration::ZERO, "no consumer: no wait");
        let request = ConsumeRequest {
            credit: 1,
            lease: None,
        };
        let _consumer = engine.consume("backlog", request).await.expect("consume");
        let started = tokio::time::Instant::now();
        hold_while_behind(&engine, "backlog").await;
        assert!(
            started.elapsed() >= FLOW_WAIT_MAX,
            "{:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < FLOW_WAIT_MAX + FLOW_POLL * 2);
        engine.purge("backlog").await.expect("purge");
        let started = tokio::time::Instant::now();
        hold_while_behind(&engine, "backlog").await;
        assert_eq!(started.elapsed(), Duration::ZERO, "caught up: no wait");
    }
}
