//! Model-based property test: random operation sequences run against [`QueueState`] and
//! against a deliberately simple reference model (a `Vec` of messages scanned linearly),
//! comparing every result and the full state after every step.
//!
//! "Restart" rebuilds the queue state from the records the operations produced (enqueued,
//! delivered, settled), as the engine does at start-up, while the model forgets its leases
//! and backoffs the same way. The jitter of retries comes from [`retry_delay_ms`], which the
//! model calls too; its own rules are tested in `rules.rs`.

use super::support::{dedup_key, T0};
use crate::queue::*;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::HashSet;
use wharf_model::{Priority, QueueName};

const NEVER: u64 = u64::MAX;

#[derive(Debug, Clone)]
struct SendSpec {
    priority: u8,
    group: Option<u8>,
    delay_ms: Option<u64>,
    ttl_ms: Option<u64>,
    id: Option<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    Send(SendSpec),
    SendBatch { count: usize },
    Receive { max: usize, lease_ms: Option<u64> },
    Ack { pick: usize },
    Nack { pick: usize, action: NackAction },
    Extend { pick: usize, lease_ms: u64 },
    Tick,
    Advance { ms: u64 },
    Purge,
    Restart,
}

/// What the engine would have written to the log.
#[derive(Debug, Clone)]
enum Record {
    Enqueued {
        seq: u64,
        spec: SendSpec,
        at: u64,
    },
    Delivered {
        seq: u64,
        delivery_count: u32,
        at: u64,
    },
    Settled {
        seq: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelStatus {
    Ready,
    Delayed { due: u64 },
    Leased { deadline: u64, receipt: Receipt },
    Settled,
}

#[derive(Debug, Clone)]
struct ModelMessage {
    seq: u64,
    priority: u8,
    group: Option<u8>,
    enqueued_at: u64,
    deliver_at: Option<u64>,
    expires_at: u64,
    status: ModelStatus,
    delivery_count: u32,
    first_delivered_at: Option<u64>,
    last_delivered_at: Option<u64>,
}

/// The reference: every rule written the plainest way, with linear scans.
struct Model {
    options: QueueOptions,
    seed: u64,
    messages: Vec<ModelMessage>,
    /// (client id, seq, time) of every accepted send with an id, in send order.
    dedup: Vec<(u8, u64, u64)>,
    counters: QueueCounters,
}

impl Model {
    fn unsettled(&self) -> impl Iterator<Item = &ModelMessage> {
        self.messages
            .iter()
            .filter(|m| m.status != ModelStatus::Settled)
    }

    fn index(&self, seq: u64) -> usize {
        self.messages
            .iter()
            .position(|m| m.seq == seq)
            .expect("model knows the seq")
    }

    fn settle(&mut self, seq: u64, reason: SettleReason) -> Settle {
        let index = self.index(seq);
        self.messages[index].status = ModelStatus::Settled;
        let delivery_count = self.messages[index].delivery_count;
        let expired = matches!(
            reason,
            SettleReason::DeadLettered(DeadLetterReason::Expired)
                | SettleReason::Dropped(DeadLetterReason::Expired)
        );
        self.counters.expired += u64::from(expired);
        match reason {
            SettleReason::Acked => self.counters.acked += 1,
            SettleReason::Purged => self.counters.purged += 1,
            SettleReason::Redriven => self.counters.redriven += 1,
            SettleReason::DeadLettered(_) => self.counters.dead_lettered += 1,
            SettleReason::Dropped(_) => self.counters.dropped += 1,
            SettleReason::Damaged => self.counters.damaged += 1,
        }
        Settle {
            seq: Seq(seq),
            reason,
            delivery_count,
            location: seq,
        }
    }

    fn dead_letter(&mut self, seq: u64, reason: DeadLetterReason) -> Settle {
        if self.options.dead_letter_queue.is_some() {
            self.settle(seq, SettleReason::DeadLettered(reason))
        } else {
            self.settle(seq, SettleReason::Dropped(reason))
        }
    }

    /// A failed delivery: dead-letter when out of deliveries or expired, else back at
    /// `ready_at`. Returns the settlement, if any.
    fn requeue(&mut self, index: usize, ready_at: u64, now: u64) -> Option<Settle> {
        let message = &self.messages[index];
        let seq = message.seq;
        if self
            .options
            .max_deliveries
            .is_some_and(|max| message.delivery_count >= max)
        {
            return Some(self.dead_letter(seq, DeadLetterReason::MaxDeliveries));
        }
        if message.expires_at <= now {
            return Some(self.dead_letter(seq, DeadLetterReason::Expired));
        }
        self.messages[index].status = if ready_at <= now {
            ModelStatus::Ready
        } else {
            ModelStatus::Delayed { due: ready_at }
        };
        None
    }

    fn retry_delay(&self, index: usize) -> u64 {
        let message = &self.messages[index];
        retry_delay_ms(
            &self.options,
            self.seed,
            Seq(message.seq),
            message.delivery_count,
        )
    }

    fn tick(&mut self, now: u64) -> Vec<Settle> {
        let mut settled = Vec::new();
        for index in 0..self.messages.len() {
            if let Some(settle) = self.tick_message(index, now) {
                settled.push(settle);
            }
        }
        settled
    }

    fn tick_message(&mut self, index: usize, now: u64) -> Option<Settle> {
        if let ModelStatus::Leased { deadline, .. } = self.messages[index].status {
            if deadline > now {
                return None;
            }
            let ready_at = deadline + self.retry_delay(index);
            if let Some(settle) = self.requeue(index, ready_at, now) {
                return Some(settle);
            }
        }
        let message = &mut self.messages[index];
        match message.status {
            ModelStatus::Delayed { .. } | ModelStatus::Ready if message.expires_at <= now => {
                let seq = message.seq;
                Some(self.dead_letter(seq, DeadLetterReason::Expired))
            }
            ModelStatus::Delayed { due } if due <= now => {
                message.status = ModelStatus::Ready;
                None
            }
            _ => None,
        }
    }

    fn is_group_head(&self, message: &ModelMessage) -> bool {
        message.group.is_none_or(|group| {
            !self
                .unsettled()
                .any(|other| other.group == Some(group) && other.seq < message.seq)
        })
    }

    /// Ready group heads and ungrouped messages in delivery order.
    fn deliverable(&self) -> Vec<u64> {
        self.deliverable_while_settling(&[])
    }

    /// [`Model::deliverable`] while the messages `settling` are settled but not yet written:
    /// until then each still heads its group, so the messages behind it wait.
    fn deliverable_while_settling(&self, settling: &[Settle]) -> Vec<u64> {
        let blocked = |m: &ModelMessage| {
            (settling.iter()).any(|s| {
                s.seq.0 < m.seq
                    && m.group.is_some()
                    && self.messages[self.index(s.seq.0)].group == m.group
            })
        };
        let mut candidates: Vec<&ModelMessage> = (self.unsettled())
            .filter(|m| m.status == ModelStatus::Ready && self.is_group_head(m) && !blocked(m))
            .collect();
        candidates.sort_by_key(|m| (Reverse(m.priority), m.seq));
        candidates.iter().map(|m| m.seq).collect()
    }

    fn lease(&mut self, seq: u64, receipt: Receipt, lease_ms: u64, now: u64) -> Delivery {
        let index = self.index(seq);
        let message = &mut self.messages[index];
        assert_eq!(message.status, ModelStatus::Ready);
        message.delivery_count += 1;
        message.first_delivered_at.get_or_insert(now);
        message.last_delivered_at = Some(now);
        let deadline = now + lease_ms;
        message.status = ModelStatus::Leased { deadline, receipt };
        self.counters.delivered += 1;
        Delivery {
            seq: Seq(seq),
            receipt,
            delivery_count: message.delivery_count,
            first_delivered_at: message.first_delivered_at.expect("just set"),
            last_delivered_at: now,
            lease_deadline: deadline,
        }
    }

    fn find_duplicate(&self, id: u8, now: u64) -> Option<u64> {
        let &(_, seq, at) = self.dedup.iter().rev().find(|entry| entry.0 == id)?;
        (at + self.options.dedup_window_ms > now).then_some(seq)
    }

    fn enqueue(
        &mut self,
        seq: u64,
        spec: &SendSpec,
        now: u64,
    ) -> Result<EnqueueOutcome, QueueFull> {
        if let Some(original) = spec.id.and_then(|id| self.find_duplicate(id, now)) {
            self.counters.duplicates += 1;
            return Ok(EnqueueOutcome::Duplicate {
                original_seq: Seq(original),
            });
        }
        let mut evicted = Vec::new();
        if let Some(max_length) = self.options.max_length {
            let len = self.unsettled().count() as u64;
            let ready = self
                .unsettled()
                .filter(|m| m.status == ModelStatus::Ready)
                .count() as u64;
            let excess = (len + 1).saturating_sub(max_length);
            if excess > 0 && (self.options.overflow == Overflow::Reject || excess > ready) {
                return Err(QueueFull { max_length, len });
            }
            for _ in 0..excess {
                let oldest = (self.unsettled())
                    .filter(|m| m.status == ModelStatus::Ready)
                    .map(|m| m.seq)
                    .min()
                    .expect("checked enough ready messages");
                evicted.push(self.dead_letter(oldest, DeadLetterReason::Overflow));
            }
        }
        self.insert(seq, spec, now);
        self.counters.sent += 1;
        Ok(EnqueueOutcome::Accepted { evicted })
    }

    fn insert(&mut self, seq: u64, spec: &SendSpec, at: u64) {
        let own = spec.ttl_ms.map(|ttl| at + ttl).unwrap_or(NEVER);
        let queue = self
            .options
            .message_ttl_ms
            .map(|ttl| at + ttl)
            .unwrap_or(NEVER);
        let deliver_at = spec.delay_ms.map(|delay| at + delay);
        let status = match deliver_at {
            Some(due) if due > at => ModelStatus::Delayed { due },
            _ => ModelStatus::Ready,
        };
        self.messages.push(ModelMessage {
            seq,
            priority: spec.priority,
            group: spec.group,
            enqueued_at: at,
            deliver_at,
            expires_at: own.min(queue),
            status,
            delivery_count: 0,
            first_delivered_at: None,
            last_delivered_at: None,
        });
        if let (Some(id), true) = (spec.id, self.options.dedup_window_ms > 0) {
            self.dedup.push((id, seq, at));
        }
    }

    fn check_receipt(&self, receipt: Receipt, now: u64) -> Result<usize, ReceiptError> {
        let found = (self.messages.iter()).position(
            |m| matches!(m.status, ModelStatus::Leased { receipt: held, .. } if held == receipt),
        );
        let Some(index) = found else {
            return Err(ReceiptError::Stale { receipt });
        };
        match self.messages[index].status {
            ModelStatus::Leased { deadline, .. } if deadline <= now => {
                Err(ReceiptError::LeaseExpired {
                    receipt,
                    expired_at: deadline,
                })
            }
            _ => Ok(index),
        }
    }

    fn nack(&mut self, index: usize, action: &NackAction, now: u64) -> NackOutcome {
        self.counters.nacked += 1;
        let seq = self.messages[index].seq;
        match action {
            NackAction::DeadLetter { reason } => NackOutcome::Settled(self.dead_letter(
                seq,
                DeadLetterReason::Rejected {
                    reason: reason.clone(),
                },
            )),
            NackAction::Requeue { delay_ms } => {
                let ready_at = now + delay_ms.unwrap_or_else(|| self.retry_delay(index));
                match self.requeue(index, ready_at, now) {
                    Some(settle) => NackOutcome::Settled(settle),
                    None => NackOutcome::Requeued {
                        seq: Seq(seq),
                        ready_at,
                    },
                }
            }
        }
    }

    fn purge(&mut self) -> Vec<Seq> {
        let purged: Vec<u64> = (self.unsettled())
            .filter(|m| !matches!(m.status, ModelStatus::Leased { .. }))
            .map(|m| m.seq)
            .collect();
        for &seq in &purged {
            self.settle(seq, SettleReason::Purged);
        }
        purged.into_iter().map(Seq).collect()
    }

    /// A restart: leases and backoffs are forgotten, delivery counts kept, counters reset.
    fn restart(&mut self, seed: u64) {
        self.seed = seed;
        self.counters = QueueCounters::default();
        for message in &mut self.messages {
            if message.status == ModelStatus::Settled {
                continue;
            }
            message.status = match message.deliver_at {
                Some(due) if due > message.enqueued_at => ModelStatus::Delayed { due },
                _ => ModelStatus::Ready,
            };
        }
    }

    fn stats(&self, now: u64) -> QueueStats {
        let count = |wanted: fn(&ModelStatus) -> bool| {
            self.unsettled().filter(|m| wanted(&m.status)).count() as u64
        };
        let oldest_ready = (self.unsettled())
            .filter(|m| m.status == ModelStatus::Ready)
            .min_by_key(|m| m.seq);
        QueueStats {
            ready: count(|s| *s == ModelStatus::Ready),
            delayed: count(|s| matches!(s, ModelStatus::Delayed { .. })),
            leased: count(|s| matches!(s, ModelStatus::Leased { .. })),
            oldest_ready_age_ms: oldest_ready.map(|m| now - m.enqueued_at),
            consumers: 0,
            counters: self.counters,
        }
    }
}

/// Runs the same operations on the queue state and the model and compares.
struct Harness {
    options: QueueOptions,
    restarts: u64,
    now: u64,
    queue: QueueState,
    model: Model,
    history: Vec<Record>,
    receipts: Vec<Receipt>,
    acked: HashSet<u64>,
    seq_next: u64,
}

impl Harness {
    fn new(options: QueueOptions) -> Harness {
        let queue = QueueState::new(options.clone(), 0).expect("generated options are valid");
        let model = Model {
            options: options.clone(),
            seed: 0,
            messages: Vec::new(),
            dedup: Vec::new(),
            counters: QueueCounters::default(),
        };
        Harness {
            options,
            restarts: 0,
            now: T0,
            queue,
            model,
            history: Vec::new(),
            receipts: Vec::new(),
            acked: HashSet::new(),
            seq_next: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Send(spec) => self.send(spec),
            Op::SendBatch { count } => self.send_batch(*count),
            Op::Receive { max, lease_ms } => self.receive(*max, *lease_ms),
            Op::Ack { pick } => self.ack(*pick),
            Op::Nack { pick, action } => self.nack(*pick, action),
            Op::Extend { pick, lease_ms } => self.extend(*pick, *lease_ms),
            Op::Tick => {
                let settled = self.queue.tick(self.now);
                let expected = self.model.tick(self.now);
                self.settled(settled, expected);
            }
            Op::Advance { ms } => self.now += ms,
            Op::Purge => {
                let purged = self.queue.purge();
                assert_eq!(purged, self.model.purge());
                self.history
                    .extend(purged.iter().map(|seq| Record::Settled { seq: seq.0 }));
            }
            Op::Restart => self.restart(),
        }
        self.compare();
    }

    fn send(&mut self, spec: &SendSpec) {
        let seq = self.seq_next;
        self.seq_next += 1;
        let group = spec.group.map(|group| format!("group-{group}"));
        let meta = meta_of(seq, spec, group.as_deref(), self.now);
        let outcome = self.queue.enqueue(meta, self.now);
        assert_eq!(outcome, self.model.enqueue(seq, spec, self.now));
        if let Ok(EnqueueOutcome::Accepted { evicted }) = outcome {
            for settle in &evicted {
                self.queue.apply_settled(settle.seq, settle.reason.clone());
            }
            self.history.extend(
                evicted
                    .iter()
                    .map(|settle| Record::Settled { seq: settle.seq.0 }),
            );
            self.history.push(Record::Enqueued {
                seq,
                spec: spec.clone(),
                at: self.now,
            });
        }
    }

    /// All-or-nothing: a batch `can_accept` admits must be accepted whole.
    fn send_batch(&mut self, count: usize) {
        if !self.queue.can_accept(count) {
            return;
        }
        for _ in 0..count {
            let spec = SendSpec {
                priority: 0,
                group: None,
                delay_ms: None,
                ttl_ms: None,
                id: None,
            };
            let len_before = self.model.messages.len();
            self.send(&spec);
            assert_eq!(
                self.model.messages.len(),
                len_before + 1,
                "batch send refused"
            );
        }
    }

    fn receive(&mut self, max: usize, lease_ms: Option<u64>) {
        let received = self.queue.receive(max, lease_ms, self.now);
        let expected_settled = self.model.tick(self.now);
        let expected: Vec<u64> = (self.model.deliverable_while_settling(&expected_settled))
            .into_iter()
            .take(max)
            .collect();
        self.settled(received.settled, expected_settled);
        let delivered: Vec<u64> = received.deliveries.iter().map(|d| d.seq.0).collect();
        assert_eq!(delivered, expected, "delivery order");
        let lease_ms = lease_ms.unwrap_or(self.options.lease_ms);
        for delivery in received.deliveries {
            assert!(
                !self.acked.contains(&delivery.seq.0),
                "an acked message came back"
            );
            let modelled = self
                .model
                .lease(delivery.seq.0, delivery.receipt, lease_ms, self.now);
            assert_eq!(delivery, modelled);
            self.receipts.push(delivery.receipt);
            self.history.push(Record::Delivered {
                seq: delivery.seq.0,
                delivery_count: delivery.delivery_count,
                at: self.now,
            });
        }
    }

    fn ack(&mut self, pick: usize) {
        let Some(receipt) = self.pick(pick) else {
            return;
        };
        let expected = self.model.check_receipt(receipt, self.now);
        let result = self.queue.ack(receipt, self.now);
        match expected {
            Ok(index) => {
                let seq = self.model.messages[index].seq;
                self.model.settle(seq, SettleReason::Acked);
                assert_eq!(result, Ok(Seq(seq)));
                self.acked.insert(seq);
                self.history.push(Record::Settled { seq });
            }
            Err(error) => assert_eq!(result, Err(error)),
        }
    }

    fn nack(&mut self, pick: usize, action: &NackAction) {
        let Some(receipt) = self.pick(pick) else {
            return;
        };
        let expected = self.model.check_receipt(receipt, self.now);
        let result = self.queue.nack(receipt, action.clone(), self.now);
        match expected {
            Ok(index) => {
                let outcome = self.model.nack(index, action, self.now);
                assert_eq!(result, Ok(outcome.clone()));
                if let NackOutcome::Settled(settle) = &outcome {
                    self.queue.apply_settled(settle.seq, settle.reason.clone());
                    self.history.push(Record::Settled { seq: settle.seq.0 });
                }
            }
            Err(error) => assert_eq!(result, Err(error)),
        }
    }

    fn extend(&mut self, pick: usize, lease_ms: u64) {
        let Some(receipt) = self.pick(pick) else {
            return;
        };
        let expected = self.model.check_receipt(receipt, self.now);
        let result = self.queue.extend(receipt, lease_ms, self.now);
        match expected {
            Ok(index) => {
                let deadline = self.now + lease_ms;
                self.model.messages[index].status = ModelStatus::Leased { deadline, receipt };
                assert_eq!(result, Ok(deadline));
            }
            Err(error) => assert_eq!(result, Err(error)),
        }
    }

    /// Rebuilds the queue state from the records, as the engine does at start-up.
    fn restart(&mut self) {
        self.restarts += 1;
        let mut queue = QueueState::new(self.options.clone(), self.restarts)
            .expect("generated options are valid");
        for record in &self.history {
            match record {
                Record::Enqueued { seq, spec, at } => {
                    let group = spec.group.map(|group| format!("group-{group}"));
                    queue.replay_enqueued(meta_of(*seq, spec, group.as_deref(), *at), *at);
                }
                Record::Delivered {
                    seq,
                    delivery_count,
                    at,
                } => {
                    queue.replay_delivered(Seq(*seq), *delivery_count, *at);
                }
                Record::Settled { seq } => {
                    queue.replay_settled(Seq(*seq));
                }
            }
        }
        self.queue = queue;
        self.model.restart(self.restarts);
        let settled = self.queue.tick(self.now);
        let expected = self.model.tick(self.now);
        self.settled(settled, expected);
    }

    fn pick(&self, pick: usize) -> Option<Receipt> {
        (!self.receipts.is_empty()).then(|| self.receipts[pick % self.receipts.len()])
    }

    fn settled(&mut self, mut settled: Vec<Settle>, mut expected: Vec<Settle>) {
        settled.sort_by_key(|settle| settle.seq);
        expected.sort_by_key(|settle| settle.seq);
        assert_eq!(settled, expected, "settlements");
        for settle in &settled {
            self.queue.apply_settled(settle.seq, settle.reason.clone());
        }
        self.history.extend(
            settled
                .iter()
                .map(|settle| Record::Settled { seq: settle.seq.0 }),
        );
    }

    /// The whole state, message by message, plus the stats and the invariants.
    fn compare(&self) {
        self.queue.check_invariants();
        for message in &self.model.messages {
            let view = self.queue.message(Seq(message.seq));
            let status = view.map(|view| view.status);
            let expected = match message.status {
                ModelStatus::Settled => None,
                ModelStatus::Ready => Some(MessageStatus::Ready),
                ModelStatus::Delayed { due } => Some(MessageStatus::Delayed { due }),
                ModelStatus::Leased { deadline, .. } => Some(MessageStatus::Leased { deadline }),
            };
            assert_eq!(status, expected, "status of seq {}", message.seq);
            if let Some(view) = view {
                assert_eq!(view.delivery_count, message.delivery_count);
                assert_eq!(view.first_delivered_at, message.first_delivered_at);
                assert_eq!(view.last_delivered_at, message.last_delivered_at);
                assert_eq!(
                    view.expires_at,
                    (message.expires_at != NEVER).then_some(message.expires_at)
                );
            }
        }
        let leased_groups: Vec<u8> = (self.model.unsettled())
            .filter(|m| matches!(m.status, ModelStatus::Leased { .. }))
            .filter_map(|m| m.group)
            .collect();
        let distinct: HashSet<&u8> = leased_groups.iter().collect();
        assert_eq!(
            distinct.len(),
            leased_groups.len(),
            "a group has two messages in flight"
        );
        assert_eq!(self.queue.stats(self.now), self.model.stats(self.now));
        assert_eq!(self.queue.len(), self.model.unsettled().count());
        let peek_expected: Vec<Seq> = (self.model.deliverable().into_iter())
            .filter(|&seq| self.model.messages[self.model.index(seq)].expires_at > self.now)
            .take(5)
            .map(Seq)
            .collect();
        assert_eq!(self.queue.peek(5, self.now), peek_expected);
    }
}

fn meta_of<'a>(seq: u64, spec: &SendSpec, group: Option<&'a str>, at: u64) -> EnqueueMeta<'a> {
    EnqueueMeta {
        seq: Seq(seq),
        dedup_key: spec.id.map(|id| dedup_key(&format!("id-{id}"))),
        priority: Priority::new(spec.priority).expect("generated priorities are in range"),
        deliver_at: spec.delay_ms.map(|delay| at + delay),
        expires_at: spec.ttl_ms.map(|ttl| at + ttl),
        group,
    }
}

/// A duration in whole tens of milliseconds below `10 * tens`: coarse times make operations
/// land exactly on deadlines, due times and window ends, where off-by-one bugs live.
fn tens(range: std::ops::Range<u64>) -> impl Strategy<Value = u64> {
    range.prop_map(|tens| tens * 10)
}

fn options_strategy() -> impl Strategy<Value = QueueOptions> {
    let retry = (tens(0..5), tens(0..10));
    let limits = (
        prop::option::of(1u32..4),
        prop::option::of(tens(1..40)),
        prop::option::of(1u64..8),
    );
    (
        tens(1..20),
        retry,
        limits,
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(0u64), tens(1..40)],
    )
        .prop_map(
            |(lease_ms, (backoff, extra), (deliveries, ttl, length), dlq, drop_oldest, window)| {
                QueueOptions {
                    lease_ms,
                    max_deliveries: deliveries,
                    dead_letter_queue: dlq
                        .then(|| "dead".parse::<QueueName>().expect("valid name")),
                    retry_backoff_ms: backoff,
                    retry_backoff_max_ms: backoff + extra,
                    message_ttl_ms: ttl,
                    max_length: length,
                    overflow: if drop_oldest {
                        Overflow::DropOldest
                    } else {
                        Overflow::Reject
                    },
                    dedup_window_ms: window,
                    ..QueueOptions::default()
                }
            },
        )
}

fn send_strategy() -> impl Strategy<Value = SendSpec> {
    let optional_ms = |max: u64| prop::option::weighted(0.3, tens(0..max));
    (
        0u8..10,
        prop::option::weighted(0.5, 0u8..3),
        optional_ms(15),
        optional_ms(30),
    )
        .prop_flat_map(move |(priority, group, delay_ms, ttl_ms)| {
            prop::option::weighted(0.4, 0u8..4).prop_map(move |id| SendSpec {
                priority,
                group,
                delay_ms,
                ttl_ms: ttl_ms.map(|ttl| ttl + 1),
                id,
            })
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let nack_action = prop_oneof![
        prop::option::of(tens(0..10)).prop_map(|delay_ms| NackAction::Requeue { delay_ms }),
        Just(NackAction::DeadLetter {
            reason: "poison".into()
        }),
    ];
    prop_oneof![
        6 => send_strategy().prop_map(Op::Send),
        1 => (1usize..4).prop_map(|count| Op::SendBatch { count }),
        5 => (0usize..4, prop::option::of(tens(1..15)))
            .prop_map(|(max, lease_ms)| Op::Receive { max, lease_ms }),
        3 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        2 => (any::<usize>(), nack_action).prop_map(|(pick, action)| Op::Nack { pick, action }),
        1 => (any::<usize>(), tens(0..15)).prop_map(|(pick, lease_ms)| Op::Extend { pick, lease_ms }),
        1 => Just(Op::Tick),
        5 => tens(0..12).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Purge),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn queue_state_matches_the_reference_model(
        options in options_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..80),
    ) {
        let mut harness = Harness::new(options);
        for op in &ops {
            harness.apply(op);
        }
    }
}
