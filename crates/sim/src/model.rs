//! The reference model: what the engine must hold, as far as the simulator can know it.
//!
//! A *copy* is one message in one queue: a send makes one, a publish one per destination
//! queue. It keeps its identity (its home queue and id) when it is dead-lettered and redriven,
//! since dead letters name their source queue. The model is exact where the engine's promises
//! are exact (a confirmed send is stored, an acked copy is gone, a live lease can be acked) and
//! says "possibly" where the engine decides on its own (a TTL or a delivery limit may move a
//! copy to the dead-letter queue at any time) or where a failure leaves the outcome open.
//!
//! Deliveries are checked here, as they are seen; gauges and counters in `checks`.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use wharf_engine::{broker::Delivery, queue::QueueOptions};

/// Index of the dead-letter queue in [`Model::queues`]; every other queue sends its dead
/// letters there, so no message is ever dropped and every one stays accountable by id.
pub(crate) const DEAD: usize = 0;
/// Index of the queue whose options never change: post-fault probes send there, since it
/// can never be full.
pub(crate) const STEADY: usize = 1;
/// Stale receipts kept for acks that must fail.
const STALE_RECEIPTS_MAX: usize = 16;

/// One message in one queue, named by its home queue (where it was sent or published) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct CopyKey {
    pub(crate) home: usize,
    pub(crate) id: u64,
}

/// What the engine said about storing a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The call returned Ok: the copy must never be lost.
    Confirmed,
    /// The call returned an error: nothing of it may ever appear.
    Refused,
    /// The reply was lost (a crash mid-call) or the call failed after some destinations
    /// stored it (a publish): it may appear, once.
    Unknown,
}

#[derive(Debug, Clone)]
pub(crate) struct MessageCopy {
    pub(crate) body: Bytes,
    pub(crate) stored: Stored,
    /// When the send that made it was made (the dedup window runs from there).
    pub(crate) sent_at: u64,
    /// Sent with its own id by `send` (so deduplicated), not by a publish.
    pub(crate) deduplicated: bool,
    pub(crate) group: Option<String>,
    pub(crate) acked: bool,
    /// May be in its home queue / in the dead-letter queue, as far as known events tell.
    pub(crate) in_home: bool,
    pub(crate) in_dead: bool,
    /// The engine may dead-letter it on its own (a TTL, a delivery limit, overflow eviction).
    pub(crate) may_leave: bool,
    /// A failure may have left it in two places (moved, but the move not recorded), so it may
    /// be delivered after an ack and from either queue.
    pub(crate) may_repeat: bool,
    /// May be gone without an ack the simulator saw (a purge, an ack whose reply was lost).
    pub(crate) may_be_gone: bool,
    /// Refused by a send to a queue that was evicting (`drop_oldest` at its length): the
    /// error may have come after the messages were stored (`Defect::SendFailsAfterStoring`).
    pub(crate) refused_evicting: bool,
    /// The queue and delivery count of its last delivery in this process lifetime.
    pub(crate) last_delivery: Option<(usize, u32)>,
}

/// A lease the model holds: live until acked, nacked, released, expired or a restart.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) queue: usize,
    pub(crate) key: CopyKey,
    pub(crate) receipt: String,
    pub(crate) deadline: u64,
    /// The push consumer it was dispatched to, if any.
    pub(crate) consumer: Option<u64>,
    pub(crate) group: Option<String>,
}

/// Counter values the engine must report for one queue in this process lifetime, when no
/// fault was injected in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) sent: u64,
    pub(crate) duplicates: u64,
    pub(crate) delivered: u64,
    pub(crate) acked: u64,
    pub(crate) nacked: u64,
    pub(crate) purged: u64,
    pub(crate) redriven: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct QueueModel {
    pub(crate) name: String,
    pub(crate) options: QueueOptions,
    pub(crate) expected: Expected,
    /// Whether `expected` is exact: a call that failed after storing part of its work (a
    /// publish to several queues, a redrive) leaves the counts unknown until the next start.
    pub(crate) exact: bool,
    /// `len + settled - sent` as the engine reported it at open: constant for the lifetime.
    pub(crate) conserved: i128,
}

impl QueueModel {
    /// Whether its options let the engine dead-letter messages on its own.
    pub(crate) fn may_dead_letter(&self) -> bool {
        let options = &self.options;
        options.message_ttl_ms.is_some()
            || options.max_deliveries.is_some()
            || (options.max_length.is_some()
                && options.overflow == wharf_engine::queue::Overflow::DropOldest)
    }
}

/// An invariant the engine broke, in the simulator's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) invariant: &'static str,
    pub(crate) detail: String,
    /// The known defect it is, when a strict run stops at one.
    pub(crate) defect: Option<crate::Defect>,
}

pub(crate) fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation {
        invariant,
        detail,
        defect: None,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) queues: Vec<QueueModel>,
    pub(crate) copies: BTreeMap<CopyKey, MessageCopy>,
    /// Live leases, oldest first.
    pub(crate) leases: Vec<Lease>,
    pub(crate) stale: VecDeque<(usize, String)>,
    pub(crate) next_id: u64,
    pub(crate) now: u64,
    /// No fault was injected in this process lifetime: counters and gauges must be exact.
    pub(crate) clean: bool,
    /// The engine's live state may have left its log behind in this lifetime (a settlement
    /// failed to be written after it was applied): a restart may bring messages back.
    pub(crate) diverged: bool,
    /// Deliveries seen in this lifetime that failed no check (for the report).
    pub(crate) deliveries: u64,
    /// Known defects seen while checking, for the simulator to record (or fail on).
    pub(crate) sightings: Vec<(crate::Defect, String)>,
}

impl Model {
    pub(crate) fn queue_index(&self, name: &str) -> Option<usize> {
        self.queues.iter().position(|q| q.name == name)
    }

    /// Records a new copy as the engine reported it.
    pub(crate) fn add_copy(&mut self, key: CopyKey, body: Bytes, stored: Stored, draft: Extra) {
        let may_leave = draft.ttl || self.queues[key.home].may_dead_letter();
        let copy = MessageCopy {
            body,
            stored,
            sent_at: self.now,
            deduplicated: draft.deduplicated,
            group: draft.group,
            acked: false,
            in_home: true,
            in_dead: false,
            may_leave,
            may_repeat: false,
            may_be_gone: false,
            refused_evicting: false,
            last_delivery: None,
        };
        self.copies.insert(key, copy);
    }

    /// Checks a delivery from queue `from` and records its lease.
    pub(crate) fn on_delivery(
        &mut self,
        from: usize,
        delivery: &Delivery,
        lease_ms: u64,
        consumer: Option<u64>,
    ) -> Result<CopyKey, Violation> {
        let key = self.delivered_key(from, delivery)?;
        let copy = self.copies.get_mut(&key).expect("delivered_key checked it");
        if copy.stored == Stored::Refused && copy.refused_evicting {
            let detail = format!(
                "{} was refused by its send, yet delivered",
                delivery.message.id
            );
            self.sightings
                .push((crate::Defect::SendFailsAfterStoring, detail));
            copy.stored = Stored::Unknown;
        }
        check_delivery(from, key, copy, delivery)?;
        copy.stored = Stored::Confirmed;
        copy.last_delivery = Some((from, delivery.delivery_count));
        if from == DEAD {
            copy.in_dead = true;
            copy.in_home &= copy.may_repeat;
        } else {
            copy.in_home = true;
            copy.in_dead &= copy.may_repeat;
        }
        let group = copy.group.clone();
        self.queues[from].expected.delivered += 1;
        self.deliveries += 1;
        self.leases.push(Lease {
            queue: from,
            key,
            receipt: delivery.receipt.clone(),
            deadline: self.now + lease_ms,
            consumer,
            group,
        });
        Ok(key)
    }

    /// The copy a delivery names: its id, and its home from the queue or its dead letter.
    fn delivered_key(&self, from: usize, delivery: &Delivery) -> Result<CopyKey, Violation> {
        let message = &delivery.message;
        let phantom = |why: &str| {
            violation(
                "no phantom messages",
                format!(
                    "{} delivered {:?}: {why}",
                    self.queues[from].name, message.id
                ),
            )
        };
        let id = (message.id.strip_prefix('m'))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| phantom("not an id the simulator made"))?;
        let home = match (&message.dead_letter, from == DEAD) {
            (Some(dead_letter), true) => self
                .queue_index(&dead_letter.source_queue)
                .ok_or_else(|| phantom("a dead letter from an unknown queue"))?,
            (None, false) => from,
            (Some(_), false) => return Err(phantom("a dead letter outside the dead-letter queue")),
            (None, true) => return Err(phantom("no dead letter, yet in the dead-letter queue")),
        };
        let key = CopyKey { home, id };
        if !self.copies.contains_key(&key) {
            return Err(phantom("never sent to its queue"));
        }
        Ok(key)
    }

    /// Ends a lease (acked, nacked, released or expired); its receipt is kept as stale.
    pub(crate) fn end_lease(&mut self, index: usize) -> Lease {
        let lease = self.leases.remove(index);
        self.stale.push_back((lease.queue, lease.receipt.clone()));
        if self.stale.len() > STALE_RECEIPTS_MAX {
            self.stale.pop_front();
        }
        lease
    }

    /// A clean restart: leases end (receipts go stale); delivery counts were made durable.
    pub(crate) fn forget_leases(&mut self) {
        while !self.leases.is_empty() {
            self.end_lease(0);
        }
    }

    /// A crash: leases end, and delivery counts not yet committed are lost (so they may drop).
    pub(crate) fn forget_process(&mut self) {
        self.forget_leases();
        for copy in self.copies.values_mut() {
            copy.last_delivery = None;
        }
    }

    /// A crash of storage that keeps transient logs in memory until a clean close: a transient
    /// queue may come back as it was at the last clean restart, so its confirmed copies may be
    /// gone, its acked or moved ones may come back, and its dedup window may have forgotten
    /// them. A copy seen again later (a dead letter in the durable dead-letter queue, redriven
    /// home) is confirmed again, but its window entry stays lost: it is never resent.
    pub(crate) fn lose_transient(&mut self) {
        let Model { queues, copies, .. } = self;
        for (key, copy) in copies.iter_mut() {
            if queues[key.home].options.durable {
                continue;
            }
            if copy.stored == Stored::Confirmed {
                copy.stored = Stored::Unknown;
            }
            copy.may_repeat = true;
            copy.in_home = true;
            copy.deduplicated = false;
        }
    }

    /// Ends every lease whose deadline has passed.
    pub(crate) fn expire_leases(&mut self) {
        while let Some(index) = self.leases.iter().position(|l| l.deadline <= self.now) {
            self.end_lease(index);
        }
    }

    /// After a failure that may have left dead letters in two places: every copy that could
    /// have been moved may now be delivered twice.
    pub(crate) fn allow_repeats_of_movable(&mut self) {
        for copy in self.copies.values_mut() {
            if copy.may_leave || copy.in_dead {
                copy.may_repeat = true;
                copy.in_home = true;
                copy.in_dead = true;
            }
        }
    }

    /// A settlement failed after it was applied: from here, counts are loose, dead letters may
    /// be doubled, and a restart may bring back what the live state dropped.
    pub(crate) fn diverge(&mut self) {
        self.clean = false;
        self.diverged = true;
        self.allow_repeats_of_movable();
    }

    /// Leases of `queue`, as indexes into `leases`.
    pub(crate) fn leases_of(&self, queue: usize) -> Vec<usize> {
        (0..self.leases.len())
            .filter(|i| self.leases[*i].queue == queue)
            .collect()
    }

    /// Whether a copy is leased right now in `queue`.
    pub(crate) fn is_leased(&self, queue: usize, key: CopyKey) -> bool {
        self.leases.iter().any(|l| l.queue == queue && l.key == key)
    }
}

/// What a new copy carries besides its body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    pub(crate) ttl: bool,
    pub(crate) deduplicated: bool,
    pub(crate) group: Option<String>,
}

fn check_delivery(
    from: usize,
    key: CopyKey,
    copy: &MessageCopy,
    delivery: &Delivery,
) -> Result<(), Violation> {
    let id = &delivery.message.id;
    if delivery.message.body != copy.body {
        return Err(violation(
            "no phantom messages",
            format!("{id} delivered with a body it was never sent with"),
        ));
    }
    if copy.stored == Stored::Refused {
        return Err(violation(
            "a failed send stores nothing",
            format!("{id} was refused by its send, yet delivered"),
        ));
    }
    if copy.acked && !copy.may_repeat {
        return Err(violation(
            "no acked message delivered again",
            format!(
                "{id} (home queue #{}) was acked, yet delivered again",
                key.home
            ),
        ));
    }
    let possible = if from == DEAD {
        copy.in_dead || copy.may_leave || copy.may_repeat
    } else {
        copy.in_home || copy.may_repeat
    };
    if !possible {
        return Err(violation(
            "a message is in one place",
            format!("{id} delivered from queue #{from}, which it had left"),
        ));
    }
    match copy.last_delivery {
        Some((queue, count))
            if queue == from && !copy.may_repeat && delivery.delivery_count <= count =>
        {
            Err(violation(
                "delivery counts grow",
                format!(
                    "{id} delivered with count {} after count {count}",
                    delivery.delivery_count
                ),
            ))
        }
        _ => Ok(()),
    }
}
