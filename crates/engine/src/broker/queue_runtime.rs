//! One live queue: its state machine, the WAL it commits through, and the wake-ups around them.
//!
//! Every change is first a record in the queue's WAL, then applied to the in-memory
//! [`QueueState`] under a short `std` mutex (never held across an await). Sends reserve room and
//! dedup ids before writing so that the state accepts exactly what was written; replay applies
//! the same records without checks. Bodies stay in the log and are read back at delivery, but for
//! messages just sent, whose first delivery takes them as they were sent (see `fresh`).

use super::wal::{unwrap, wrap, wrap_enqueued, wrap_record, ResourceId};
use super::{
    api::{Delivery, PeekedMessage, ReceiptFailure, ReceiptResult},
    records::{DeliveryCount, QueueRecord, SettleReason as RecordSettleReason},
};
use crate::{
    error::EngineError,
    log_throttle::LogThrottle,
    queue::{
        Browse, DedupKey, EnqueueMeta, MessageStatus, NackAction, NackOutcome, QueueOptions,
        QueueState, QueueStats, Receipt, ReceiptKey, Seq, Settle, SettleReason, SignedReceipt,
    },
};
use bytes::Bytes;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
};
use tokio::sync::Notify;
use wharf_model::{message::Message, MessageId, Priority, QueueName};
use wharf_storage::{LogStore, Offset, Storage};

/// Longest nack error text kept per message (longer ones are cut at a character boundary). A
/// consumer may nack with a whole stack trace on every attempt; the text is held in memory
/// until the message settles and travels with its dead letter, so 1 KiB (the engine's limit
/// on other free-text fields) keeps a backlog of nacked messages cheap.
pub(crate) const NACK_ERROR_BYTES_MAX: usize = super::api::FIELD_BYTES_MAX;

/// Most delivery counts in one `delivered` record: about 16 bytes each, so a record stays
/// far below the storage's limit however many messages one dispatch hands out.
const DELIVERIES_PER_RECORD: usize = 4_096;

#[derive(Debug)]
pub(crate) struct QueueRuntime {
    pub name: QueueName,
    /// The shared WAL this queue commits through (durable or transient), and its id there.
    pub log: Arc<dyn LogStore>,
    pub resource: ResourceId,
    /// Signs the receipts this queue hands out, so that they name it and cannot be guessed.
    receipts: ReceiptKey,
    /// The seed of this process's queue states: a receipt signed under another is stale.
    incarnation: u64,
    /// Messages just sent, shared by every queue: a first delivery takes its message from
    /// there rather than decode its record.
    pub(super) fresh: Arc<super::fresh::FreshMessages>,
    /// Fixed at creation: which WAL `log` is.
    pub durable: bool,
    core: Mutex<Core>,
    /// One dispatcher at a time hands deliveries to push consumers, so each consumer gets its
    /// messages in the order they were leased; a dispatch asked for meanwhile sets `again`.
    pub(super) dispatching: tokio::sync::Mutex<()>,
    /// Settle records are written and applied under its read side, relocation under its write
    /// side: so a message is never copied forward after its settle record was written, which
    /// would bring it back at replay.
    settling: tokio::sync::RwLock<()>,
    pub(super) dispatch_again: std::sync::atomic::AtomicBool,
    /// Held while the id index is built (see [`QueueRuntime::find`]).
    id_index_building: tokio::sync::Mutex<()>,
    /// The earliest deadline may have moved: wakes the queue's timer task.
    pub timer_changed: Notify,
    /// When the queue was last used (a consumer attached, a receive, a declare), for
    /// `expires_ms`; 0 until first set.
    last_used: std::sync::atomic::AtomicU64,
    /// A task watches this queue's `expires_ms` (see `expiry`).
    pub(super) expiry_watched: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub(super) struct Core {
    pub(super) state: QueueState,
    /// Sends written or being written but not yet applied: they count against `max_length`.
    reserved: usize,
    /// For each send in flight, the WAL's end when it reserved (its records land at or after
    /// it): reclaim keeps everything from the lowest, so no unapplied record is cut.
    reserved_floors: BTreeMap<u64, usize>,
    /// Client ids of those sends, so a concurrent duplicate is caught before it is written.
    reserved_ids: HashSet<DedupKey>,
    /// The error text of each message's latest nack, shown if it is dead-lettered.
    last_errors: HashMap<u64, String>,
    deleted: bool,
    /// Push consumers in attach order, and who holds which lease.
    pub(super) consumers: super::consumers::Consumers,
}

/// A nack call between its two halves (see [`QueueRuntime::nack_begin`]).
#[derive(Debug, Default)]
pub(crate) struct NackPlan {
    /// Settlements decided, to write.
    pub settles: Vec<Settle>,
    /// Receipts (by index in the call) whose nack returns the message, to apply after.
    requeues: Vec<(usize, Receipt)>,
    /// One per receipt, in order.
    pub results: Vec<ReceiptResult>,
}

/// A send reserved and encoded, not yet written.
pub(crate) struct PreparedSend {
    plan: SendPlan,
    /// The WAL records to append, in order.
    pub records: Vec<bytes::Bytes>,
}

/// What a send decided for each message before writing.
struct SendPlan {
    /// The WAL's end when it reserved: see `Core::reserved_floors`.
    floor: u64,
    /// Index in the batch and dedup key of each message to write.
    to_write: Vec<(usize, Option<DedupKey>)>,
    /// Per message of the batch: a duplicate, or to be written.
    duplicate: Vec<bool>,
}

impl QueueRuntime {
    pub(crate) fn new(
        name: QueueName,
        log: Arc<dyn LogStore>,
        resource: ResourceId,
        state: QueueState,
        receipts: ReceiptKey,
        incarnation: u64,
        fresh: Arc<super::fresh::FreshMessages>,
    ) -> QueueRuntime {
        QueueRuntime {
            name,
            log,
            resource,
            receipts,
            incarnation,
            fresh,
            durable: state.options().durable,
            core: Mutex::new(Core {
                state,
                reserved: 0,
                reserved_floors: BTreeMap::new(),
                reserved_ids: HashSet::new(),
                last_errors: HashMap::new(),
                deleted: false,
                consumers: super::consumers::Consumers::default(),
            }),
            timer_changed: Notify::new(),
            dispatching: tokio::sync::Mutex::new(()),
            settling: tokio::sync::RwLock::new(()),
            dispatch_again: std::sync::atomic::AtomicBool::new(false),
            id_index_building: tokio::sync::Mutex::new(()),
            last_used: std::sync::atomic::AtomicU64::new(0),
            expiry_watched: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Marks the queue used at `now` (for `expires_ms`).
    pub(crate) fn touch(&self, now: u64) {
        self.last_used
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the queue was last used; 0 if never since the process started.
    pub(super) fn last_used(&self) -> u64 {
        self.last_used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Push consumers and waiting receives attached now.
    pub(super) fn consumer_count(&self) -> Result<usize, EngineError> {
        Ok(self.core()?.consumers.len())
    }

    /// The text a client gets for a lease of this queue.
    pub(super) fn sign_receipt(&self, receipt: Receipt) -> String {
        self.receipts.sign(self.resource.0, receipt).to_string()
    }

    /// The lease a client's receipt names, if this queue issued it in this process.
    pub(super) fn open_receipt(&self, text: &str) -> Result<Receipt, ReceiptFailure> {
        let signed: SignedReceipt = text.parse()?;
        let (queue, name) = (self.resource.0, self.name.as_str());
        Ok(self
            .receipts
            .verify(queue, name, self.incarnation, &signed)?)
    }

    pub(crate) fn options(&self) -> Result<QueueOptions, EngineError> {
        Ok(self.core()?.state.options().clone())
    }

    pub(crate) fn set_options(&self, options: QueueOptions) -> Result<(), EngineError> {
        Ok(self.core()?.state.set_options(options)?)
    }

    pub(crate) fn stats(&self, now: u64) -> Result<QueueStats, EngineError> {
        let core = self.core()?;
        let mut stats = core.state.stats(now);
        stats.consumers = core.consumers.len() as u64;
        Ok(stats)
    }

    /// Ends every push consumer's stream (the engine is closing).
    pub(crate) fn close_consumers(&self) {
        if let Ok(mut core) = self.core() {
            core.consumers.detach_all();
        }
    }

    pub(crate) fn mark_deleted(&self) {
        if let Ok(mut core) = self.core() {
            core.deleted = true;
            core.consumers.detach_all();
        }
        self.timer_changed.notify_one();
    }

    /// Deleted, or closed by an internal error: either way, no more work for its tasks.
    pub(crate) fn is_deleted(&self) -> bool {
        self.core().map_or(true, |core| core.deleted)
    }

    /// Writes the non-duplicate messages as one atomic append and applies them. Returns per
    /// message whether it was a duplicate, and the settlements of evicted messages.
    /// The messages written are kept for their first delivery (see `fresh`).
    pub(crate) async fn send(
        &self,
        messages: Vec<(Message, bool)>,
        now: u64,
    ) -> Result<(Vec<bool>, Vec<Settle>), EngineError> {
        let prepared = self.send_prepare(&messages, None, now)?;
        let written: Vec<usize> = prepared.plan.to_write.iter().map(|(i, _)| *i).collect();
        let first = self.log.append(&prepared.records, None).await;
        let first = first.map(|range| range.start.0);
        let outcome = self.send_finish(prepared, &messages, first.clone(), now)?;
        if let Ok(first) = first {
            let mut messages: Vec<_> = messages.into_iter().map(|(m, _)| Some(m)).collect();
            let sent = match written.len() == messages.len() {
                true => messages,
                false => written
                    .iter()
                    .map(|index| messages[*index].take())
                    .collect(),
            };
            self.fresh.keep(self.resource.0, Seq(first), sent);
        }
        Ok(outcome)
    }

    /// The first half of a send: reserves room and dedup ids and encodes the records to
    /// append. Every prepared send must be finished with [`QueueRuntime::send_finish`].
    /// `encoded`, when given, holds each message's `enqueued` record without dedup (a publish
    /// encodes a message once for all the queues that store it).
    pub(crate) fn send_prepare(
        &self,
        messages: &[(Message, bool)],
        encoded: Option<&[Bytes]>,
        now: u64,
    ) -> Result<PreparedSend, EngineError> {
        let plan = self.send_reserve(messages, now)?;
        let records = (plan.to_write.iter())
            .map(|(index, key)| match (encoded, key) {
                (Some(encoded), None) => wrap(self.resource, &encoded[*index]),
                _ => wrap_enqueued(self.resource, &messages[*index].0, key.is_some()),
            })
            .collect();
        Ok(PreparedSend { plan, records })
    }

    /// The second half: releases the reservation and, when the records were written from
    /// offset `first` on, applies them. Returns per message whether it was a duplicate, and
    /// the settlements of evicted messages.
    pub(crate) fn send_finish(
        &self,
        prepared: PreparedSend,
        messages: &[(Message, bool)],
        written: Result<u64, wharf_storage::StorageError>,
        now: u64,
    ) -> Result<(Vec<bool>, Vec<Settle>), EngineError> {
        let plan = prepared.plan;
        let mut core = self.core()?;
        core.reserved -= plan.to_write.len();
        release_floor(&mut core.reserved_floors, plan.floor);
        for (_, key) in &plan.to_write {
            if let Some(key) = key {
                core.reserved_ids.remove(key);
            }
        }
        let first = written?;
        let mut evicted = Vec::new();
        for (i, (index, key)) in plan.to_write.iter().enumerate() {
            let message = &messages[*index].0;
            let seq = Seq(first + i as u64);
            evicted.extend(
                core.state
                    .apply_enqueued(enqueue_meta(seq, message, *key), now),
            );
            core.state.index_id(|| DedupKey::of_text(&message.id), seq);
        }
        drop(core);
        self.timer_changed.notify_one();
        Ok((plan.duplicate, evicted))
    }

    fn send_reserve(
        &self,
        messages: &[(Message, bool)],
        now: u64,
    ) -> Result<SendPlan, EngineError> {
        let mut core = self.core()?;
        let mut seen = HashSet::new();
        let mut plan = SendPlan {
            floor: self.log.end_offset().0,
            to_write: Vec::new(),
            duplicate: Vec::with_capacity(messages.len()),
        };
        let dedup_on = core.state.options().dedup_window_ms > 0;
        for (index, (message, client_id)) in messages.iter().enumerate() {
            let key = (*client_id && dedup_on)
                .then(|| MessageId::try_from(message.id.clone()).ok())
                .flatten()
                .map(|id| DedupKey::of(&id));
            let duplicate = key.is_some_and(|key| {
                !seen.insert(key)
                    || core.reserved_ids.contains(&key)
                    || core.state.find_duplicate(key, now).is_some()
            });
            plan.duplicate.push(duplicate);
            if !duplicate {
                plan.to_write.push((index, key));
            }
        }
        let duplicates = plan.duplicate.iter().filter(|d| **d).count() as u64;
        if !core.state.can_accept(core.reserved + plan.to_write.len()) {
            return Err(EngineError::QueueFull {
                name: self.name.to_string(),
                max_length: core.state.options().max_length.unwrap_or(0),
            });
        }
        core.state.count_duplicates(duplicates);
        core.reserved += plan.to_write.len();
        *core.reserved_floors.entry(plan.floor).or_default() += 1;
        core.reserved_ids
            .extend(plan.to_write.iter().filter_map(|(_, key)| *key));
        Ok(plan)
    }

    /// Leases up to `max` messages and reads their bodies. Also returns settlements that fell
    /// due (expired messages) for the caller to persist.
    pub(crate) async fn receive(
        &self,
        max: usize,
        lease_ms: Option<u64>,
        now: u64,
    ) -> Result<(Vec<Delivery>, Vec<Settle>), EngineError> {
        let received = self.core()?.state.receive(max, lease_ms, now);
        if !received.deliveries.is_empty() {
            self.timer_changed.notify_one();
        }
        self.record_deliveries(&received.deliveries);
        let mut settled = received.settled;
        let (read, damaged) = self.read_deliveries(received.deliveries, now).await?;
        settled.extend(damaged);
        let mut deliveries = Vec::with_capacity(read.len());
        for (delivery, message) in read {
            deliveries.push(Delivery {
                message,
                receipt: self.sign_receipt(delivery.receipt),
                delivery_count: delivery.delivery_count,
                first_delivered_at: delivery.first_delivered_at,
                last_delivered_at: delivery.last_delivered_at,
            });
        }
        Ok((deliveries, settled))
    }

    /// Writes the delivery counts of `deliveries` without waiting and without an fsync of their
    /// own: they ride the next commit. Losing the last few in a crash only gives a message one
    /// extra attempt. One record holds up to [`DELIVERIES_PER_RECORD`] of them.
    pub(super) fn record_deliveries(&self, deliveries: &[crate::queue::Delivery]) {
        let records: Vec<_> = (deliveries.chunks(DELIVERIES_PER_RECORD))
            .map(|chunk| {
                let deliveries = (chunk.iter())
                    .map(|d| DeliveryCount {
                        seq: d.seq.0,
                        delivery_count: d.delivery_count,
                        at: d.last_delivered_at,
                    })
                    .collect();
                wrap_record(self.resource, &QueueRecord::Delivered { deliveries })
            })
            .collect();
        if records.is_empty() {
            return;
        }
        if let Err(error) = self.log.append_lazy(&records) {
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(suppressed) = THROTTLE.allow() {
                tracing::warn!(queue = %self.name, %error, suppressed, "could not record deliveries");
            }
        }
    }

    /// Checks acks without applying them: returns the seqs of live leases (for the caller to
    /// write as settled, then apply with [`QueueRuntime::apply_settled`]) and a result per
    /// receipt. A receipt named twice settles once.
    pub(crate) fn check_acks(
        &self,
        receipts: &[String],
        now: u64,
    ) -> Result<(Vec<u64>, Vec<ReceiptResult>), EngineError> {
        // Parsed and their tags checked before the lock: producers and consumers wait on it.
        let opened: Vec<_> = receipts
            .iter()
            .map(|text| self.open_receipt(text))
            .collect();
        let core = self.core()?;
        let mut seqs = Vec::new();
        // A receipt given twice settles its message once. Receipts mostly come back in the
        // order they were delivered, and a seq above every one before repeats none: a set (a
        // call may carry thousands of receipts) only once one comes out of order.
        let mut seen: Option<HashSet<u64>> = None;
        let results = (receipts.iter().zip(opened))
            .map(|(text, opened)| {
                let checked = opened.and_then(|receipt| {
                    core.state
                        .check_ack(receipt, now)
                        .map_err(ReceiptFailure::from)
                });
                if let Ok(seq) = checked {
                    let first_time = match (&mut seen, seqs.last()) {
                        (Some(seen), _) => seen.insert(seq.0),
                        (None, Some(&last)) if seq.0 <= last => {
                            let seen = seen.insert(seqs.iter().copied().collect());
                            seen.insert(seq.0)
                        }
                        (None, _) => true,
                    };
                    if first_time {
                        seqs.push(seq.0);
                    }
                }
                receipt_result(text, checked.map(|_| ()))
            })
            .collect();
        Ok((seqs, results))
    }

    /// The first half of a nack call: checks every receipt and applies those nacks that settle
    /// their message (which then waits, `Settling`, for its write); those that would return
    /// their message for another attempt are left for [`QueueRuntime::nack_finish`], once the
    /// settlements are written, so that a failed write leaves the whole call undone.
    pub(crate) fn nack_begin(
        &self,
        receipts: &[String],
        action: &NackAction,
        error: Option<&str>,
        now: u64,
    ) -> Result<NackPlan, EngineError> {
        let mut core = self.core()?;
        let mut plan = NackPlan::default();
        for (index, text) in receipts.iter().enumerate() {
            let checked = self.open_receipt(text).and_then(|receipt| {
                let settles = core.state.nack_settles(receipt, action, now)?;
                Ok((receipt, settles))
            });
            match checked {
                Ok((receipt, true)) => {
                    let outcome = core.state.nack(receipt, action.clone(), now);
                    if let Ok(NackOutcome::Settled(settle)) = outcome {
                        plan.settles.push(settle);
                    }
                    if let Some(error) = error {
                        core.last_errors.insert(receipt.seq().0, error.to_string());
                    }
                    plan.results.push(receipt_result(text, Ok(())));
                }
                Ok((receipt, false)) => {
                    plan.requeues.push((index, receipt));
                    plan.results.push(receipt_result(text, Ok(())));
                }
                Err(failure) => plan.results.push(receipt_result(text, Err(failure))),
            }
        }
        Ok(plan)
    }

    /// The second half: returns the messages of the nacks that requeue. A lease that ended
    /// meanwhile is reported per receipt; a nack that now settles after all (its lease ran out
    /// on its last delivery) comes back for the caller to write.
    pub(crate) fn nack_finish(
        &self,
        plan: &mut NackPlan,
        action: &NackAction,
        error: Option<&str>,
        now: u64,
    ) -> Result<Vec<(usize, Settle)>, EngineError> {
        let mut core = self.core()?;
        let mut settles = Vec::new();
        for (index, receipt) in std::mem::take(&mut plan.requeues) {
            match core.state.nack(receipt, action.clone(), now) {
                Ok(outcome) => {
                    if let NackOutcome::Settled(settle) = outcome {
                        settles.push((index, settle));
                    }
                    if let Some(error) = error {
                        core.last_errors.insert(receipt.seq().0, error.to_string());
                    }
                }
                Err(refused) => plan.results[index].error = Some(refused.into()),
            }
        }
        drop(core);
        self.timer_changed.notify_one();
        Ok(settles)
    }

    pub(crate) fn extend(
        &self,
        receipts: &[String],
        lease_ms: u64,
        now: u64,
    ) -> Result<Vec<ReceiptResult>, EngineError> {
        let mut core = self.core()?;
        let results = receipts
            .iter()
            .map(|text| {
                let applied = self.open_receipt(text).and_then(|receipt| {
                    core.state
                        .extend(receipt, lease_ms, now)
                        .map(|_| ())
                        .map_err(ReceiptFailure::from)
                });
                receipt_result(text, applied)
            })
            .collect();
        drop(core);
        self.timer_changed.notify_one();
        Ok(results)
    }

    pub(crate) fn tick(&self, now: u64) -> Result<Vec<Settle>, EngineError> {
        let settles = self.core()?.state.tick(now);
        Ok(settles)
    }

    pub(crate) fn next_deadline(&self) -> Result<Option<u64>, EngineError> {
        Ok(self.core()?.state.next_deadline())
    }

    pub(crate) async fn browse(
        &self,
        which: Browse,
        max: usize,
        now: u64,
    ) -> Result<Vec<PeekedMessage>, EngineError> {
        let seen: Vec<(Seq, (u32, MessageStatus))> = {
            let core = self.core()?;
            (core.state.browse(which, max, now).into_iter())
                .map(|seq| {
                    let view = core.state.message(seq);
                    let seen = view.map_or((0, MessageStatus::Ready), |view| {
                        (view.delivery_count, view.status)
                    });
                    (seq, seen)
                })
                .collect()
        };
        let seqs: Vec<Seq> = seen.iter().map(|(seq, _)| *seq).collect();
        let messages = self.read_messages(&seqs).await?;
        Ok((messages.into_iter().zip(seen))
            .map(|(message, (_, (delivery_count, status)))| PeekedMessage {
                message,
                delivery_count,
                status,
            })
            .collect())
    }

    /// The unsettled message whose id is `id`, with its delivery count and status, if any.
    /// The first lookup of a queue builds its id index, reading every unsettled message's
    /// record (a one-time cost proportional to the backlog); later ones read one record.
    pub(crate) async fn find(&self, id: &str) -> Result<Option<(Seq, PeekedMessage)>, EngineError> {
        self.build_id_index().await?;
        let candidates: Vec<(Seq, u32, MessageStatus)> = {
            let core = self.core()?;
            let seqs = core.state.seqs_with_id(DedupKey::of_text(id));
            (seqs.unwrap_or_default().into_iter())
                .filter_map(|seq| {
                    let view = core.state.message(seq)?;
                    Some((seq, view.delivery_count, view.status))
                })
                .collect()
        };
        let seqs: Vec<Seq> = candidates.iter().map(|(seq, ..)| *seq).collect();
        let messages = self.read_messages(&seqs).await?;
        Ok((messages.into_iter().zip(candidates))
            .find(|(message, _)| message.id == id)
            .map(|(message, (seq, delivery_count, status))| {
                let peeked = PeekedMessage {
                    message,
                    delivery_count,
                    status,
                };
                (seq, peeked)
            }))
    }

    /// Starts the id index if it is not there, and indexes the messages it did not see enqueued,
    /// reading their records a batch at a time. On a failed read the index is dropped, so the
    /// next lookup builds it whole again rather than miss messages.
    async fn build_id_index(&self) -> Result<(), EngineError> {
        // One builder at a time: a lookup during a build waits for the whole index.
        let _building = self.id_index_building.lock().await;
        let unread = self.core()?.state.start_id_index();
        for batch in unread.chunks(ID_INDEX_READ_BATCH) {
            let read = match self.read_records(batch).await {
                Ok(read) => read,
                Err(error) => {
                    self.core()?.state.drop_id_index();
                    return Err(error);
                }
            };
            let mut core = self.core()?;
            for ((seq, _), (message, _)) in batch.iter().zip(read) {
                core.state.index_id(|| DedupKey::of_text(&message.id), *seq);
            }
        }
        Ok(())
    }

    /// The seqs a purge would settle now, changing nothing.
    pub(crate) fn purgeable(&self) -> Result<Vec<u64>, EngineError> {
        Ok(self
            .core()?
            .state
            .purgeable()
            .into_iter()
            .map(|s| s.0)
            .collect())
    }

    /// Up to `max` ready messages above `after`, in seq order, without leasing them.
    pub(crate) fn ready_after(
        &self,
        after: Option<u64>,
        max: usize,
    ) -> Result<Vec<u64>, EngineError> {
        let core = self.core()?;
        Ok(core
            .state
            .ready_after(after.map(Seq), max)
            .into_iter()
            .map(|s| s.0)
            .collect())
    }

    /// Reads message `seq` from its record (its `enqueued` record, or the copy relocation
    /// made).
    pub(crate) async fn read_message(&self, seq: Seq) -> Result<Message, EngineError> {
        let location = self.core()?.state.location(seq);
        Ok(self.read_record(seq, location).await?.0)
    }

    /// Reads message `seq` from `location` (for messages that already left the state).
    pub(crate) async fn read_message_at(
        &self,
        seq: Seq,
        location: u64,
    ) -> Result<Message, EngineError> {
        Ok(self.read_record(seq, location).await?.0)
    }

    /// Puts back settling messages whose settlements could not be written, as they were
    /// (see `QueueState::abort_settle`).
    pub(crate) fn abort_settles<'a>(
        &self,
        settles: impl Iterator<Item = &'a Settle>,
    ) -> Result<(), EngineError> {
        let mut core = self.core()?;
        for settle in settles {
            core.state.abort_settle(settle.seq);
        }
        drop(core);
        self.timer_changed.notify_one();
        Ok(())
    }

    /// The message at `location` and whether its id is deduplicated.
    async fn read_record(&self, seq: Seq, location: u64) -> Result<(Message, bool), EngineError> {
        let mut read = self.read_records(&[(seq, location)]).await?;
        Ok(read.pop().expect("one record asked, one read"))
    }

    /// The messages `seq` at `location` with their dedup flags, in the order asked, read with
    /// one storage call: a batch of deliveries costs one trip to the disk at most.
    pub(crate) async fn read_records(
        &self,
        wanted: &[(Seq, u64)],
    ) -> Result<Vec<(Message, bool)>, EngineError> {
        let offsets: Vec<Offset> = wanted
            .iter()
            .map(|(_, location)| Offset(*location))
            .collect();
        let records = self.log.read_many(&offsets).await?;
        (wanted.iter().zip(records))
            .map(|(&(seq, location), record)| self.decode_record(seq, location, record))
            .collect()
    }

    /// Reads messages `seqs` from wherever their records now are, in the order asked.
    pub(crate) async fn read_messages(&self, seqs: &[Seq]) -> Result<Vec<Message>, EngineError> {
        let wanted: Vec<(Seq, u64)> = {
            let core = self.core()?;
            (seqs.iter())
                .map(|seq| (*seq, core.state.location(*seq)))
                .collect()
        };
        let read = self.read_records(&wanted).await?;
        Ok(read.into_iter().map(|(message, _)| message).collect())
    }

    /// Checks that `record`, read at `location`, is message `seq` of this queue.
    fn decode_record(
        &self,
        seq: Seq,
        location: u64,
        record: Option<wharf_storage::Record>,
    ) -> Result<(Message, bool), EngineError> {
        let invalid = |reason: String| {
            EngineError::Record(super::records::RecordError {
                offset: location,
                reason,
            })
        };
        let record =
            record.ok_or_else(|| invalid(format!("the record of message {seq} is missing")))?;
        let (resource, inner) = unwrap(location, &record.payload)?;
        if resource != self.resource {
            return Err(invalid(format!(
                "record of resource {} read for {}",
                resource.0, self.resource.0
            )));
        }
        match QueueRecord::decode(location, &inner)? {
            QueueRecord::Enqueued { message, dedup } if location == seq.0 => Ok((message, dedup)),
            QueueRecord::Relocated {
                seq: moved,
                message,
                dedup,
                ..
            } if moved == seq.0 => Ok((message, dedup)),
            other => Err(invalid(format!(
                "expected the record of message {seq}, found {other:?}"
            ))),
        }
    }

    /// Copies up to `max` unsettled messages whose records lie below `below` to the end of the
    /// WAL (one atomic append), so the segments below can be deleted. Returns how many moved.
    pub(crate) async fn relocate_below(
        &self,
        below: u64,
        max: usize,
    ) -> Result<usize, EngineError> {
        let _exclusive = self.settling.write().await;
        let moving: Vec<(Seq, u64, crate::queue::MessageView)> = {
            let core = self.core()?;
            (core.state.located_below(below, max).into_iter())
                .filter_map(|seq| Some((seq, core.state.location(seq), core.state.message(seq)?)))
                .collect()
        };
        let wanted: Vec<(Seq, u64)> = moving.iter().map(|(seq, at, _)| (*seq, *at)).collect();
        let read = self.read_records(&wanted).await?;
        let mut records = Vec::with_capacity(moving.len());
        for ((seq, _, view), (message, dedup)) in moving.iter().zip(read) {
            let record = QueueRecord::Relocated {
                seq: seq.0,
                delivery_count: view.delivery_count,
                first_delivered_at: view.first_delivered_at.unwrap_or(0),
                last_delivered_at: view.last_delivered_at.unwrap_or(0),
                dedup,
                message,
            };
            records.push(wrap_record(self.resource, &record));
        }
        if records.is_empty() {
            return Ok(0);
        }
        let range = self.log.append(&records, None).await?;
        let mut core = self.core()?;
        for (i, (seq, _, _)) in moving.iter().enumerate() {
            core.state.relocate(*seq, range.start.0 + i as u64);
        }
        Ok(moving.len())
    }

    /// The lowest WAL offset this queue still needs: its oldest unsettled message, the oldest
    /// record of an id still in the dedup window, and sends in flight. `None`: nothing.
    pub(crate) fn keep_from(&self) -> Result<Option<u64>, EngineError> {
        let core = self.core()?;
        let floors = core.reserved_floors.keys().next().copied();
        let oldest = [
            core.state.oldest_location(),
            core.state.oldest_dedup_seq().map(|seq| seq.0),
        ];
        Ok(oldest.into_iter().flatten().chain(floors).min())
    }

    /// Appends a settle record for `seqs`, waits until it is durable, then applies it: each
    /// message leaves the state, counted under its reason in `apply` (one per seq, or one for
    /// all); their nack error texts are forgotten then, as the messages have left. On a full
    /// disk it releases `store`'s reserve (see `space.rs`).
    pub(crate) async fn write_settled(
        &self,
        store: &dyn Storage,
        seqs: &[u64],
        reason: RecordSettleReason,
        apply: &[SettleReason],
    ) -> Result<(), EngineError> {
        if seqs.is_empty() {
            return Ok(());
        }
        assert!(apply.len() == 1 || apply.len() == seqs.len());
        let _shared = self.settling.read().await;
        let record = QueueRecord::Settled {
            seqs: seqs.to_vec(),
            reason,
        };
        let records = [wrap_record(self.resource, &record)];
        super::space::append_freeing(store, self.log.as_ref(), &records).await?;
        let mut core = self.core()?;
        for (index, seq) in seqs.iter().enumerate() {
            core.last_errors.remove(seq);
            let reason = &apply[index.min(apply.len() - 1)];
            core.state.apply_settled(Seq(*seq), reason.clone());
        }
        drop(core);
        self.timer_changed.notify_one();
        Ok(())
    }

    /// How many unsettled messages have their records below `location` (counting stops past
    /// `max`).
    pub(crate) fn count_located_below(
        &self,
        location: u64,
        max: usize,
    ) -> Result<usize, EngineError> {
        Ok(self.core()?.state.located_below(location, max).len())
    }

    /// The latest nack error of a message leaving the queue.
    pub(crate) fn take_last_error(&self, seq: u64) -> Result<Option<String>, EngineError> {
        Ok(self.core()?.last_errors.remove(&seq))
    }

    /// The queue's state. A panic while it was held (a broken invariant: a bug, never client
    /// input) may have left it half-changed, so from then on the queue is closed: every call
    /// fails with [`EngineError::QueueBroken`] instead of acting on a state it cannot trust,
    /// and other queues go on. A restart rebuilds the state from the log.
    pub(super) fn core(&self) -> Result<std::sync::MutexGuard<'_, Core>, EngineError> {
        self.core.lock().map_err(|_| EngineError::QueueBroken {
            name: self.name.to_string(),
        })
    }
}

/// Records read per storage call while an id index is built.
const ID_INDEX_READ_BATCH: usize = 256;

/// The `enqueued` record of a message whose id is not deduplicated.
pub(crate) fn encode_enqueued(message: &Message) -> Bytes {
    super::records::encode_enqueued_after(&[], message, false)
}

/// The state machine's view of a message: no body, no strings but the group.
pub(crate) fn enqueue_meta(seq: Seq, message: &Message, key: Option<DedupKey>) -> EnqueueMeta<'_> {
    EnqueueMeta {
        seq,
        dedup_key: key,
        priority: Priority::new(message.priority).unwrap_or_default(),
        deliver_at: message.deliver_at,
        expires_at: message.expires_at,
        group: message.group.as_deref(),
    }
}

/// Forgets one send's reservation floor.
fn release_floor(floors: &mut BTreeMap<u64, usize>, floor: u64) {
    if let Some(count) = floors.get_mut(&floor) {
        *count -= 1;
        if *count == 0 {
            floors.remove(&floor);
        }
    }
}

/// Cuts a nack error text to [`NACK_ERROR_BYTES_MAX`] at a character boundary.
pub(crate) fn cap_error_text(mut text: String) -> String {
    if text.len() > NACK_ERROR_BYTES_MAX {
        let mut end = NACK_ERROR_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn receipt_result(text: &str, applied: Result<(), ReceiptFailure>) -> ReceiptResult {
    ReceiptResult {
        receipt: text.to_string(),
        error: applied.err(),
    }
}
