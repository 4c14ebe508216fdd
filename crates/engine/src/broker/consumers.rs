//! Push consumers: attached to a queue with a credit window, handed deliveries as they become
//! ready.
//!
//! A consumer's credit is how many of its deliveries may be unsettled at once (AMQP's prefetch,
//! MQTT's receive maximum). Whenever messages may have become ready or credit may have come
//! back (a send, an ack, a nack, a timer, an attach or a detach), the engine dispatches: it
//! leases ready messages to consumers with credit, round-robin (or only to the first attached,
//! with `single_active_consumer`), reads their bodies and hands them over. Credit comes back
//! when a lease a consumer holds ends, however it ends: the queue state records ended leases
//! and dispatch collects them first. A consumer that goes away returns its leases at once.
//!
//! One dispatcher runs per queue at a time (others ask it to go again), so each consumer gets
//! its messages in lease order. The HTTP long poll is a consumer that lives for one request,
//! so a send wakes only as many waiting receivers as it has messages for.

use super::{api::Delivery, queue_runtime::QueueRuntime, Engine};
use crate::{
    error::{EngineError, Field, FieldProblem},
    log_throttle::LogThrottle,
    queue::{Delivery as StateDelivery, Receipt, Settle},
};
use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};
use tokio::sync::mpsc;

/// Most credit one consumer may ask for: its channel holds this many deliveries, so it bounds
/// the memory one slow consumer pins (1,000 deliveries of 1 KiB is 1 MiB), and matches the
/// largest prefetch RabbitMQ users set in practice.
pub const CONSUMER_CREDIT_MAX: usize = 1_000;

/// Most deliveries one dispatch round leases before it lets the queue's lock go.
const DISPATCH_ROUND_MAX: usize = 256;

/// How a consumer attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeRequest {
    /// Unsettled deliveries it may hold at once: 1..=[`CONSUMER_CREDIT_MAX`].
    pub credit: usize,
    /// Lease of each delivery; the queue's `lease_ms` when absent.
    pub lease: Option<Duration>,
}

/// A consumer attached to a queue. Deliveries arrive on [`Consumer::next`]; settle them with
/// the engine's `ack`, `nack` or `extend` as any delivery. Dropping it detaches it and returns
/// every lease it still holds to the queue.
#[derive(Debug)]
pub struct Consumer {
    engine: Engine,
    queue: Arc<QueueRuntime>,
    id: u64,
    /// Boxed: a channel holds its first block of slots (32) from the start, so an idle
    /// consumer would otherwise hold 32 deliveries' worth (about 11 KiB) for nothing.
    deliveries: mpsc::Receiver<Box<Delivery>>,
}

/// The consumers of one queue, kept with its state under the queue's lock.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    /// In attach order: the first is the single active consumer when the queue asks for one.
    slots: Vec<Slot>,
    /// Lease number -> (consumer id, receipt) of every lease a consumer holds.
    owners: HashMap<u64, (u64, Receipt)>,
    next_id: u64,
    /// Where the next round-robin pass starts.
    cursor: usize,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    /// Deliveries it may still take.
    credit: usize,
    lease_ms: Option<u64>,
    sender: mpsc::Sender<Box<Delivery>>,
}

/// Deliveries chosen under the lock, handed over after it.
struct Round {
    deliveries: Vec<(mpsc::Sender<Box<Delivery>>, StateDelivery)>,
    settled: Vec<Settle>,
}

impl Engine {
    /// Attaches a push consumer to `queue`.
    pub async fn consume(
        &self,
        queue: &str,
        request: ConsumeRequest,
    ) -> Result<Consumer, EngineError> {
        self.check_open()?;
        if request.credit == 0 || request.credit > CONSUMER_CREDIT_MAX {
            let problem = FieldProblem::OutOfRange {
                value: request.credit as u64,
                min: 1,
                max: CONSUMER_CREDIT_MAX as u64,
            };
            return Err(EngineError::invalid_field(Field::Credit, problem));
        }
        if let Some(lease) = request.lease {
            super::check_lease(lease)?;
        }
        let lease_ms = request.lease.map(|lease| lease.as_millis() as u64);
        let queue = self.queue(queue)?;
        queue.touch(self.now());
        let (sender, deliveries) = mpsc::channel(request.credit);
        let id = {
            let mut core = queue.core()?;
            core.state.track_lease_ends(true);
            core.consumers.attach(request.credit, lease_ms, sender)
        };
        self.dispatch(&queue).await;
        Ok(Consumer {
            engine: self.clone(),
            queue,
            id,
            deliveries,
        })
    }

    /// Hands ready messages to consumers with credit until one or the other runs out. Never
    /// fails its caller: the send, ack or timer that asked for it has already succeeded, and
    /// a failed delivery leaves its lease to expire and the message to be delivered again.
    pub(crate) async fn dispatch(&self, queue: &Arc<QueueRuntime>) {
        let Ok(_dispatching) = queue.dispatching.try_lock() else {
            // The running dispatcher goes round once more and sees what changed.
            queue.dispatch_again.store(true, Ordering::Release);
            return;
        };
        loop {
            queue.dispatch_again.store(false, Ordering::Release);
            loop {
                match self.dispatch_round(queue).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        static THROTTLE: LogThrottle = LogThrottle::new();
                        if let Some(suppressed) = THROTTLE.allow() {
                            tracing::warn!(queue = %queue.name, %error, suppressed, "dispatch to consumers failed");
                        }
                        return;
                    }
                }
            }
            if !queue.dispatch_again.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// One bounded round; true when it delivered something (another may follow).
    async fn dispatch_round(&self, queue: &Arc<QueueRuntime>) -> Result<bool, EngineError> {
        let now = self.now();
        let round = {
            let mut core = queue.core()?;
            let core = &mut *core;
            let single = core.state.options().single_active_consumer;
            core.consumers
                .plan(&mut core.state, single, now, DISPATCH_ROUND_MAX)
        };
        self.persist_settlements(queue, round.settled).await?;
        let delivered = !round.deliveries.is_empty();
        let leased: Vec<StateDelivery> = round.deliveries.iter().map(|(_, d)| *d).collect();
        if !leased.is_empty() {
            queue.record_deliveries(&leased);
            queue.timer_changed.notify_one();
        }
        let (read, damaged) = queue.read_deliveries(leased, now).await?;
        let mut senders: std::collections::HashMap<_, _> = (round.deliveries.into_iter())
            .map(|(sender, delivery)| (delivery.seq, sender))
            .collect();
        for (delivery, message) in read {
            let Some(sender) = senders.remove(&delivery.seq) else {
                continue;
            };
            // A consumer that went away meanwhile had its leases returned by its detach.
            let _ = sender.try_send(Box::new(Delivery {
                message,
                receipt: queue.sign_receipt(delivery.receipt),
                delivery_count: delivery.delivery_count,
                first_delivered_at: delivery.first_delivered_at,
                last_delivered_at: delivery.last_delivered_at,
            }));
        }
        self.persist_settlements(queue, damaged).await?;
        Ok(delivered)
    }
}

impl Consumer {
    /// The next delivery; `None` once the queue is deleted or the engine closes.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await.map(|delivery| *delivery)
    }

    /// [`Consumer::next`] as it was handed over, boxed: for a caller that passes it on.
    pub async fn next_boxed(&mut self) -> Option<Box<Delivery>> {
        self.deliveries.recv().await
    }

    /// A delivery already handed over, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.deliveries.try_recv().ok().map(|delivery| *delivery)
    }

    /// Stops further deliveries and takes what was handed over: those leases become ordinary
    /// ones that no longer count against this consumer (the long poll returns them to its
    /// client). Leases being handed over right now are returned to the queue on drop.
    pub(crate) fn take_remaining(&mut self) -> Vec<Delivery> {
        if let Ok(mut core) = self.queue.core() {
            core.consumers.stop(self.id);
        }
        let mut taken = Vec::new();
        while let Ok(delivery) = self.deliveries.try_recv() {
            taken.push(*delivery);
        }
        self.disown(&taken);
        taken
    }

    /// Leases of `deliveries` no longer count against this consumer.
    pub(crate) fn disown(&self, deliveries: &[Delivery]) {
        if let Ok(mut core) = self.queue.core() {
            for delivery in deliveries {
                if let Ok(receipt) = self.queue.open_receipt(&delivery.receipt) {
                    core.consumers.disown(receipt);
                }
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let now = self.engine.now();
        let settled = match self.queue.core() {
            Ok(mut core) => {
                let core = &mut *core;
                core.consumers.detach(self.id, &mut core.state, now)
            }
            Err(_) => return,
        };
        // Returned leases may go to other consumers, and returned messages that used up their
        // deliveries are dead-lettered: both need the async engine, so a task does it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let engine = self.engine.clone();
            let queue = self.queue.clone();
            runtime.spawn(async move {
                if let Err(error) = engine.persist_settlements(&queue, settled).await {
                    tracing::warn!(queue = %queue.name, %error, "returning a consumer's leases");
                }
                engine.dispatch(&queue).await;
            });
        }
    }
}

impl Consumers {
    fn attach(
        &mut self,
        credit: usize,
        lease_ms: Option<u64>,
        sender: mpsc::Sender<Box<Delivery>>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push(Slot {
            id,
            credit,
            lease_ms,
            sender,
        });
        id
    }

    /// Removes a consumer and returns its leases to the queue; returns what that settled
    /// (messages out of deliveries are dead-lettered rather than returned).
    fn detach(&mut self, id: u64, state: &mut crate::queue::QueueState, now: u64) -> Vec<Settle> {
        self.slots.retain(|slot| slot.id != id);
        let held: Vec<Receipt> = (self.owners.values())
            .filter(|(owner, _)| *owner == id)
            .map(|(_, receipt)| *receipt)
            .collect();
        let mut settled = Vec::new();
        for receipt in held {
            self.owners.remove(&receipt.lease());
            if let Ok(Some(settle)) = state.release(receipt, now) {
                settled.push(settle);
            }
        }
        if self.slots.is_empty() {
            state.track_lease_ends(false);
            self.owners.clear();
        }
        settled
    }

    /// Consumers attached now.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn detach_all(&mut self) {
        self.slots.clear();
        self.owners.clear();
    }

    fn stop(&mut self, id: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.id == id) {
            slot.credit = 0;
        }
    }

    fn disown(&mut self, receipt: Receipt) {
        self.owners.remove(&receipt.lease());
    }

    /// Returns the credit of ended leases, then leases ready messages to consumers with credit.
    fn plan(
        &mut self,
        state: &mut crate::queue::QueueState,
        single_active: bool,
        now: u64,
        max: usize,
    ) -> Round {
        for lease in state.take_ended_leases() {
            if let Some((owner, _)) = self.owners.remove(&lease) {
                if let Some(slot) = self.slots.iter_mut().find(|slot| slot.id == owner) {
                    slot.credit += 1;
                }
            }
        }
        let mut round = Round {
            deliveries: Vec::new(),
            settled: Vec::new(),
        };
        let eligible = if single_active {
            self.slots.len().min(1)
        } else {
            self.slots.len()
        };
        while round.deliveries.len() < max && state.has_ready() {
            let mut progressed = false;
            for step in 0..eligible {
                let index = (self.cursor + step) % eligible;
                let slot = &mut self.slots[index];
                if slot.credit == 0 || slot.sender.is_closed() {
                    continue;
                }
                let received = state.receive(1, slot.lease_ms, now);
                round.settled.extend(received.settled);
                let Some(delivery) = received.deliveries.into_iter().next() else {
                    break;
                };
                slot.credit -= 1;
                self.owners
                    .insert(delivery.receipt.lease(), (slot.id, delivery.receipt));
                round.deliveries.push((slot.sender.clone(), delivery));
                progressed = true;
            }
            if eligible > 0 {
                self.cursor = (self.cursor + 1) % eligible;
            }
            if !progressed {
                break;
            }
        }
        round
    }
}
