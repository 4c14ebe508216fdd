//! The queue state machine: every unsettled message's delivery state and the indexes over it.
//!
//! Indexes, each kept exact by `detach`/`attach` around every status change:
//! - `deliverable`: what receive may hand out next, ordered by (priority desc, seq asc). It
//!   holds ready messages without a group, and of each group only its head (oldest unsettled
//!   message) when that head is ready. A group whose head is leased or delayed has no entry,
//!   so receive never scans past blocked groups: it always takes the first entry.
//! - `ready`: every ready message by seq (group members waiting behind their head included),
//!   for the oldest-ready age, `drop_oldest` and the ready count.
//! - `timers`: one (time, seq) per message that has a next event: a ready message's expiry, a
//!   delayed message's due time or expiry (whichever is first), a leased message's deadline.
//!   Leased messages do not expire: a consumer holding one may still ack it; the expiry is
//!   checked again when the lease ends.
//!
//! Settling is two steps, so that nothing is applied before its record is durable. A decision
//! the state makes by itself (an expiry, a lease run out for the last time, a dead-letter nack,
//! an overflow eviction) only marks the message `Settling`: it leaves every index and stops
//! counting towards the queue's length, but stays, with the status it had, until the caller
//! has written the settlement and calls [`QueueState::apply_settled`], or could not and calls
//! [`QueueState::abort_settle`], which puts it back exactly as it was.

use super::backoff::retry_delay_ms;
use super::dedup::{DedupKey, DedupWindow};
use super::groups::{GroupId, Groups};
use super::message::{Browse, EnqueueMeta, MessageStatus, MessageView, Seq};
use super::options::{OptionsError, Overflow, QueueOptions};
use super::outcome::{
    DeadLetterReason, Delivery, EnqueueOutcome, NackAction, NackOutcome, QueueFull, Received,
    Settle, SettleReason,
};
use super::receipt::{Receipt, ReceiptError};
use super::stats::{QueueCounters, QueueStats};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use wharf_model::Priority;

/// `Entry::expires_at` of a message that never expires. A sentinel rather than `Option<u64>`
/// saves 8 bytes per message, and "expires at the end of time" compares correctly.
const NEVER: u64 = u64::MAX;

/// The delivery state of one queue. Single owner, no locks: the queue's task calls it.
#[derive(Debug)]
pub struct QueueState {
    options: QueueOptions,
    /// Makes this incarnation's receipts unique and seeds the retry jitter.
    seed: u64,
    /// Unsettled messages by seq. A B-tree, not a hash map: about 90 bytes a message with no
    /// doubling spike (a hash table of a million entries jumps to two million buckets and holds
    /// both while it rehashes), and the oldest message is its first key.
    entries: BTreeMap<Seq, Entry>,
    deliverable: BTreeSet<(Reverse<u8>, Seq)>,
    ready: BTreeSet<Seq>,
    timers: BTreeSet<(u64, Seq)>,
    groups: Groups,
    dedup: DedupWindow,
    delayed_count: u64,
    leased_count: u64,
    /// The next lease number; never reused within an incarnation, so stale receipts fail.
    lease_next: u64,
    counters: QueueCounters,
    /// Whether to record ended leases (push consumers attached): a consumer's credit returns
    /// when a lease it holds ends, however it ends (ack, nack, expiry, purge, redrive).
    track_lease_ends: bool,
    /// Lease numbers that ended since the caller last took them.
    ended_leases: Vec<u64>,
    /// Where the record of each relocated message lives now (copied forward so an old log
    /// segment can go). Messages not listed live at their seq. Few: only stragglers move.
    locations: BTreeMap<Seq, u64>,
    /// Messages whose settlement is being written, with what to put back if it fails.
    settling: BTreeMap<Seq, Pending>,
    /// Every unsettled message's id hash, to find one message by id (reading its record
    /// confirms it); `None` until the first lookup asks for it (see
    /// [`QueueState::start_id_index`]): about 24 bytes a message, paid only by queues whose
    /// messages are looked up. Settled messages' entries are not removed one by one (the state
    /// does not know their ids): lookups skip them, and they are swept when the index outgrows
    /// the queue twice over.
    ids: Option<BTreeSet<(DedupKey, Seq)>>,
}

/// A settlement decided but not yet written.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The status before: restored by [`QueueState::abort_settle`].
    prior: Status,
    /// A nack decided it: counted as a nack once applied.
    nacked: bool,
}

/// One unsettled message: 72 bytes, no body, no strings.
#[derive(Debug, Clone, Copy)]
struct Entry {
    enqueued_at: u64,
    expires_at: u64,
    /// Meaningful only when `delivery_count > 0`.
    first_delivered_at: u64,
    last_delivered_at: u64,
    status: Status,
    delivery_count: u32,
    group: Option<GroupId>,
    priority: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ready,
    Delayed {
        due: u64,
    },
    Leased {
        deadline: u64,
        lease: u64,
    },
    /// Its settlement is being written (see the module header); in no index.
    Settling,
}

/// Entries of settled messages the id index may hold beyond twice the queue's length before
/// it is swept: keeps small queues from sweeping on every send.
const ID_INDEX_SLACK: usize = 1024;

impl QueueState {
    /// An empty queue. `seed` must differ between incarnations of the same queue (take it
    /// from a random source, or a persisted restart counter): receipts carry it, so receipts
    /// issued before a restart cannot match leases made after it. Tests pass a constant.
    pub fn new(options: QueueOptions, seed: u64) -> Result<QueueState, OptionsError> {
        options.validate()?;
        Ok(QueueState {
            options,
            seed,
            entries: BTreeMap::new(),
            deliverable: BTreeSet::new(),
            ready: BTreeSet::new(),
            timers: BTreeSet::new(),
            groups: Groups::default(),
            dedup: DedupWindow::default(),
            delayed_count: 0,
            leased_count: 0,
            lease_next: 0,
            counters: QueueCounters::default(),
            track_lease_ends: false,
            ended_leases: Vec::new(),
            locations: BTreeMap::new(),
            settling: BTreeMap::new(),
            ids: None,
        })
    }

    /// Starts the id index, empty, unless it is there; returns every unsettled message and
    /// where its record is, for the caller to read their ids and [`QueueState::index_id`]
    /// them (messages enqueued from now on are indexed by whoever enqueues them). Returns
    /// nothing when the index was already there.
    pub fn start_id_index(&mut self) -> Vec<(Seq, u64)> {
        if self.ids.is_some() {
            return Vec::new();
        }
        self.ids = Some(BTreeSet::new());
        (self.entries.keys())
            .map(|&seq| (seq, self.location(seq)))
            .collect()
    }

    /// Forgets the id index (its building failed); the next lookup starts it again.
    pub fn drop_id_index(&mut self) {
        self.ids = None;
    }

    /// Indexes message `seq` under the hash of its id, if the index is there and the message
    /// unsettled (see [`QueueState::seqs_with_id`]); `key` hashes the id only then.
    pub fn index_id(&mut self, key: impl FnOnce() -> DedupKey, seq: Seq) {
        let Some(ids) = &mut self.ids else {
            return;
        };
        if !self.entries.contains_key(&seq) {
            return;
        }
        ids.insert((key(), seq));
        if ids.len() > 2 * self.entries.len() + ID_INDEX_SLACK {
            let entries = &self.entries;
            ids.retain(|(_, seq)| entries.contains_key(seq));
        }
    }

    /// Entries in the id index, live or not yet swept.
    #[cfg(test)]
    pub(crate) fn id_index_len(&self) -> usize {
        self.ids.as_ref().map_or(0, BTreeSet::len)
    }

    /// The unsettled messages whose id hashes to `key`: almost always none or one; the caller
    /// reads their records to match the id itself. `None` when the index is not there.
    pub fn seqs_with_id(&self, key: DedupKey) -> Option<Vec<Seq>> {
        let ids = self.ids.as_ref()?;
        Some(
            (ids.range((key, Seq(0))..=(key, Seq(u64::MAX))))
                .map(|&(_, seq)| seq)
                .filter(|seq| self.entries.contains_key(seq))
                .collect(),
        )
    }

    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Changes the policy on the fly. New values apply from the next decision they govern:
    /// leases, retries, dead-lettering and length checks at once; `message_ttl_ms` to messages
    /// enqueued (or replayed) from now on; a shorter `max_length` evicts nothing by itself.
    pub fn set_options(&mut self, options: QueueOptions) -> Result<(), OptionsError> {
        options.validate()?;
        self.options = options;
        Ok(())
    }

    /// The message a client id enqueued within the dedup window, if any. Lets the caller skip
    /// writing a record for a duplicate send.
    pub fn find_duplicate(&self, key: DedupKey, now: u64) -> Option<Seq> {
        self.dedup.find(key, now, self.options.dedup_window_ms)
    }

    /// Counts sends refused as duplicates before anything was written (the caller checked
    /// `find_duplicate` and wrote nothing for them).
    pub fn count_duplicates(&mut self, count: u64) {
        self.counters.duplicates += count;
    }

    /// Whether `count` more messages (none of them duplicates) would all be accepted, so a
    /// batch can be refused whole before anything is written. Duplicates in the batch only
    /// make room, so the answer is safe for any batch of `count` sends.
    pub fn can_accept(&self, count: usize) -> bool {
        let Some(max_length) = self.options.max_length else {
            return true;
        };
        let count = count as u64;
        let after = self.live_len().saturating_add(count);
        if after <= max_length {
            return true;
        }
        match self.options.overflow {
            Overflow::Reject => false,
            // Each send past the limit evicts one message that is ready now; messages of the
            // batch itself are newer, so they are never the ones evicted.
            Overflow::DropOldest => {
                count <= max_length && after - max_length <= self.ready.len() as u64
            }
        }
    }

    /// Applies a send whose enqueue record is written. Duplicates within the dedup window are
    /// not enqueued; a full queue evicts (`drop_oldest`) or refuses (`reject`).
    ///
    /// Replay applies enqueue records without these checks, so the caller must write records
    /// only for sends this call will accept: check `find_duplicate` per message (and repeated
    /// ids within the batch) and `can_accept` for the batch, write, then call this with the
    /// same `now`; nothing else runs in between, so it then returns `Accepted`.
    pub fn enqueue(
        &mut self,
        meta: EnqueueMeta<'_>,
        now: u64,
    ) -> Result<EnqueueOutcome, QueueFull> {
        if let Some(original_seq) = meta.dedup_key.and_then(|key| self.find_duplicate(key, now)) {
            self.counters.duplicates += 1;
            return Ok(EnqueueOutcome::Duplicate { original_seq });
        }
        let evicted = self.enqueue_make_room()?;
        self.insert(meta, now);
        self.counters.sent += 1;
        Ok(EnqueueOutcome::Accepted { evicted })
    }

    /// Applies a send whose enqueue record is already durable. Unlike [`QueueState::enqueue`]
    /// it cannot refuse: the record is in the log and replay will apply it whatever the state,
    /// so the live state must too. The caller checked `find_duplicate` and `can_accept` before
    /// writing, but a receive (leasing the ready messages `drop_oldest` meant to evict) or a
    /// lowered `max_length` may have run since; then the queue holds more than `max_length`
    /// until consumers catch up, as replay of the same log would. Returns the evictions.
    pub fn apply_enqueued(&mut self, meta: EnqueueMeta<'_>, now: u64) -> Vec<Settle> {
        let evicted = match self.options.max_length {
            Some(max_length) => self.evict_oldest_ready(max_length),
            None => Vec::new(),
        };
        if self.entries.contains_key(&meta.seq) {
            // Only a caller bug applies one record twice; refuse it rather than corrupt indexes.
            tracing::error!(seq = %meta.seq, "an enqueue record was applied twice; ignored");
            return evicted;
        }
        self.insert(meta, now);
        self.counters.sent += 1;
        evicted
    }

    /// Leases up to `max` messages in delivery order (priority desc, then send order), for
    /// `lease_ms` or the queue's `lease_ms` when `None`. Runs [`QueueState::tick`] first, so
    /// due messages are included and expired ones never delivered, whether or not the
    /// caller's timer has fired yet; its settlements come back in `Received::settled`.
    pub fn receive(&mut self, max: usize, lease_ms: Option<u64>, now: u64) -> Received {
        let settled = self.tick(now);
        let lease_ms = lease_ms.unwrap_or(self.options.lease_ms);
        let mut deliveries = Vec::with_capacity(max.min(self.deliverable.len()));
        while deliveries.len() < max {
            let Some(&(_, seq)) = self.deliverable.first() else {
                break;
            };
            deliveries.push(self.receive_lease(seq, lease_ms, now));
        }
        Received {
            deliveries,
            settled,
        }
    }

    /// Settles a leased message as processed. Returns its seq for the settle record.
    pub fn ack(&mut self, receipt: Receipt, now: u64) -> Result<Seq, ReceiptError> {
        self.check_lease(receipt, now)?;
        self.settle(receipt.seq(), SettleReason::Acked);
        Ok(receipt.seq())
    }

    /// Returns a leased message at once, as when its consumer goes away: ready again (its
    /// delivery count stays), or dead-lettered if it has used up its deliveries or expired.
    /// Not a nack: the consumer did not judge the message.
    pub fn release(&mut self, receipt: Receipt, now: u64) -> Result<Option<Settle>, ReceiptError> {
        self.check_lease(receipt, now)?;
        Ok(self.requeue(receipt.seq(), now, now))
    }

    /// Starts or stops recording ended leases for [`QueueState::take_ended_leases`].
    pub fn track_lease_ends(&mut self, on: bool) {
        self.track_lease_ends = on;
        if !on {
            self.ended_leases.clear();
        }
    }

    /// The lease numbers that ended (settled, returned or expired) since the last call.
    pub fn take_ended_leases(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.ended_leases)
    }

    /// Checks that `receipt` names a live lease, changing nothing: the first half of an ack
    /// whose settle record is written before it is applied with [`QueueState::apply_settled`].
    pub fn check_ack(&self, receipt: Receipt, now: u64) -> Result<Seq, ReceiptError> {
        self.check_lease(receipt, now)?;
        Ok(receipt.seq())
    }

    /// Applies a settle record that is durable: the message leaves the queue whatever its
    /// status now (settling included), exactly as replay removes it, and is counted under
    /// `reason`. Returns false, changing nothing, when it had already left (an eviction or
    /// expiry that ran between the caller's check and its write).
    pub fn apply_settled(&mut self, seq: Seq, reason: SettleReason) -> bool {
        if !self.entries.contains_key(&seq) {
            return false;
        }
        if self
            .settling
            .get(&seq)
            .is_some_and(|pending| pending.nacked)
        {
            self.counters.nacked += 1;
        }
        self.settle(seq, reason);
        true
    }

    /// Puts a settling message back as it was before its settlement was decided: its
    /// settlement could not be written. Its timers fire again (an expiry retries at the next
    /// tick), its lease holds again, and nothing was counted. False when it was not settling.
    pub fn abort_settle(&mut self, seq: Seq) -> bool {
        let Some(pending) = self.settling.remove(&seq) else {
            return false;
        };
        self.entry_mut(seq).status = pending.prior;
        self.attach(seq);
        true
    }

    /// Ready messages with a seq above `after`, in seq order, at most `max`: lets a caller walk
    /// a queue's ready messages in bounded steps (redrive) without leasing them.
    pub fn ready_after(&self, after: Option<Seq>, max: usize) -> Vec<Seq> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        (self.ready.range((from, std::ops::Bound::Unbounded)))
            .take(max)
            .copied()
            .collect()
    }

    /// The ready and delayed messages a purge would settle, in seq order, changing nothing.
    pub fn purgeable(&self) -> Vec<Seq> {
        (self.entries.iter())
            .filter(|(_, entry)| matches!(entry.status, Status::Ready | Status::Delayed { .. }))
            .map(|(&seq, _)| seq)
            .collect()
    }

    /// Where the record of message `seq` is read from: its seq, unless it was relocated.
    pub fn location(&self, seq: Seq) -> u64 {
        self.locations.get(&seq).copied().unwrap_or(seq.0)
    }

    /// Records that the record of unsettled message `seq` now lives at `location`; false,
    /// changing nothing, when the message has left meanwhile.
    pub fn relocate(&mut self, seq: Seq, location: u64) -> bool {
        if !self.entries.contains_key(&seq) {
            return false;
        }
        self.locations.insert(seq, location);
        true
    }

    /// Replays a `relocated` record at `location`. The message may still be here (its
    /// `enqueued` record was replayed) or not (that record's segment is gone): either way it
    /// ends up with its seq, its delivery history and its new location.
    pub fn replay_relocated(
        &mut self,
        meta: EnqueueMeta<'_>,
        location: u64,
        enqueued_at: u64,
        delivered: (u32, u64, u64),
    ) {
        let seq = meta.seq;
        if !self.entries.contains_key(&seq) {
            self.insert(meta, enqueued_at);
        }
        let (delivery_count, first_delivered_at, last_delivered_at) = delivered;
        if delivery_count > 0 {
            self.replay_delivered(seq, delivery_count, last_delivered_at);
            let entry = self.entry_mut(seq);
            entry.first_delivered_at = entry.first_delivered_at.min(first_delivered_at);
        }
        self.locations.insert(seq, location);
    }

    /// The lowest location of an unsettled message: log records below it are not needed for
    /// any message (the dedup window may still need some; see `oldest_dedup_seq`).
    pub fn oldest_location(&self) -> Option<u64> {
        let unmoved = (self.entries.keys())
            .find(|seq| !self.locations.contains_key(seq))
            .map(|seq| seq.0);
        unmoved
            .into_iter()
            .chain(self.locations.values().copied())
            .min()
    }

    /// Up to `max` unsettled messages whose record lies below `location`, by seq.
    pub fn located_below(&self, location: u64, max: usize) -> Vec<Seq> {
        // Relocation only moves records forward, so nothing at or past `location` by seq is
        // below it.
        (self.entries.range(..Seq(location)).map(|(seq, _)| seq))
            .filter(|seq| self.location(**seq) < location)
            .take(max)
            .copied()
            .collect()
    }

    /// The oldest message whose client id is still within the dedup window. Its enqueue
    /// record must outlive reclaim, or a restart would forget the id and accept it again.
    pub fn oldest_dedup_seq(&self) -> Option<Seq> {
        self.dedup.oldest_seq()
    }

    /// Whether a nack of `receipt` with `action` would settle the message (dead-letter or drop
    /// it) rather than return it for another attempt; changes nothing. Lets a caller write the
    /// settlements of a batch of nacks before it applies any of them.
    pub fn nack_settles(
        &self,
        receipt: Receipt,
        action: &NackAction,
        now: u64,
    ) -> Result<bool, ReceiptError> {
        self.check_lease(receipt, now)?;
        let entry = self.entry(receipt.seq());
        let exhausted = (self.options.max_deliveries)
            .is_some_and(|max_deliveries| entry.delivery_count >= max_deliveries);
        Ok(match action {
            NackAction::DeadLetter { .. } => true,
            NackAction::Requeue { .. } => exhausted || entry.expires_at <= now,
        })
    }

    /// Gives a leased message back: for another attempt or to the dead-letter queue.
    pub fn nack(
        &mut self,
        receipt: Receipt,
        action: NackAction,
        now: u64,
    ) -> Result<NackOutcome, ReceiptError> {
        self.check_lease(receipt, now)?;
        let seq = receipt.seq();
        let settle = match action {
            NackAction::DeadLetter { reason } => {
                Some(self.dead_letter(seq, DeadLetterReason::Rejected { reason }))
            }
            NackAction::Requeue { delay_ms } => {
                let delay_ms = delay_ms.unwrap_or_else(|| self.retry_delay(seq));
                let ready_at = now.saturating_add(delay_ms);
                match self.requeue(seq, ready_at, now) {
                    Some(settle) => Some(settle),
                    None => {
                        self.counters.nacked += 1;
                        return Ok(NackOutcome::Requeued {
                            seq,
                            ready_at: ready_at.max(now),
                        });
                    }
                }
            }
        };
        let settle = settle.expect("a nack that does not requeue settles");
        // Counted as a nack when its settlement is applied.
        if let Some(pending) = self.settling.get_mut(&seq) {
            pending.nacked = true;
        }
        Ok(NackOutcome::Settled(settle))
    }

    /// Moves a lease's deadline to `now + lease_ms` (shorter or longer than before; 0 returns
    /// the message at the next tick as an expired lease would). Returns the new deadline.
    /// The door bounds `lease_ms` by [`super::options::LEASE_MS_MAX`].
    pub fn extend(
        &mut self,
        receipt: Receipt,
        lease_ms: u64,
        now: u64,
    ) -> Result<u64, ReceiptError> {
        self.check_lease(receipt, now)?;
        let deadline = now.saturating_add(lease_ms);
        self.set_status(
            receipt.seq(),
            Status::Leased {
                deadline,
                lease: receipt.lease(),
            },
        );
        Ok(deadline)
    }

    /// Runs every timer due at `now`: delayed messages become ready; expired messages are
    /// dead-lettered (reason `expired`) or dropped; expired leases return the message after
    /// the retry backoff, or dead-letter it (reason `max_deliveries`) once it has had
    /// `max_deliveries` deliveries. Returns the settlements for the caller to persist.
    pub fn tick(&mut self, now: u64) -> Vec<Settle> {
        let mut settled = Vec::new();
        while let Some(&(at, seq)) = self.timers.first() {
            if at > now {
                break;
            }
            if let Some(settle) = self.tick_fire(seq, now) {
                settled.push(settle);
            }
            assert!(
                self.entries
                    .get(&seq)
                    .and_then(Entry::timer)
                    .is_none_or(|next| next > now),
                "a fired timer must move past now or go, else tick would not end"
            );
        }
        self.dedup.prune(now, self.options.dedup_window_ms);
        settled
    }

    /// When [`QueueState::tick`] next has work, for the caller's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Replays an enqueue record at start-up: the message joins as at `enqueued_at`, without
    /// dedup or length checks (the record proves it was accepted), and its id re-enters the
    /// dedup window. Replay neither leases nor counts; call `tick(now)` when replay is done.
    pub fn replay_enqueued(&mut self, meta: EnqueueMeta<'_>, enqueued_at: u64) {
        self.insert(meta, enqueued_at);
    }

    /// Counts `messages` found lost to damaged storage at replay (see `broker/replay.rs`).
    pub fn count_damaged(&mut self, messages: u64) {
        self.counters.damaged += messages;
    }

    /// Replays a delivered record: the message keeps its delivery count and times, but not
    /// its lease (a restart forgets leases, so the message is ready again). Returns false,
    /// changing nothing, when the message is already settled.
    pub fn replay_delivered(&mut self, seq: Seq, delivery_count: u32, at: u64) -> bool {
        let Some(entry) = self.entries.get_mut(&seq) else {
            return false;
        };
        if entry.delivery_count == 0 {
            entry.first_delivered_at = at;
        }
        entry.delivery_count = entry.delivery_count.max(delivery_count);
        entry.last_delivered_at = entry.last_delivered_at.max(at);
        true
    }

    /// Replays a settle record (any reason). Returns false when the message is unknown, as
    /// for an overflow eviction that replay of its enqueue did not repeat.
    pub fn replay_settled(&mut self, seq: Seq) -> bool {
        if !self.entries.contains_key(&seq) {
            return false;
        }
        self.remove(seq);
        true
    }

    /// Up to `max` messages in the order receive would deliver them, without leasing. Shows
    /// the state as of the last tick, except that expired messages are left out.
    pub fn peek(&self, max: usize, now: u64) -> Vec<Seq> {
        self.deliverable
            .iter()
            .map(|&(_, seq)| seq)
            .filter(|seq| self.entry(*seq).expires_at > now)
            .take(max)
            .collect()
    }

    /// Up to `max` messages that `which` names (none expired): the ready ones in delivery
    /// order, the delayed or leased ones in send order. The walk stops at `max`, so it costs
    /// O(max) for ready ones and O(queue length) at worst for the others.
    pub fn browse(&self, which: Browse, max: usize, now: u64) -> Vec<Seq> {
        let wanted = |status: &Status| match which {
            Browse::Ready => false,
            Browse::Delayed => matches!(status, Status::Delayed { .. }),
            Browse::Leased => matches!(status, Status::Leased { .. }),
        };
        match which {
            Browse::Ready => self.peek(max, now),
            Browse::Delayed | Browse::Leased => (self.entries.iter())
                .filter(|(_, entry)| wanted(&entry.status) && entry.expires_at > now)
                .map(|(seq, _)| *seq)
                .take(max)
                .collect(),
        }
    }

    /// Settles every ready and delayed message (reason `Purged`) and returns them in seq
    /// order. Leased messages stay: their consumers are working on them and their acks must
    /// still succeed (RabbitMQ's purge behaves the same). Costs O(n) in the queue length.
    pub fn purge(&mut self) -> Vec<Seq> {
        let purged = self.purgeable();
        for &seq in &purged {
            self.settle(seq, SettleReason::Purged);
        }
        purged
    }

    pub fn stats(&self, now: u64) -> QueueStats {
        QueueStats {
            ready: self.ready.len() as u64,
            delayed: self.delayed_count,
            leased: self.leased_count,
            oldest_ready_age_ms: (self.ready.first())
                .map(|&seq| now.saturating_sub(self.entry(seq).enqueued_at)),
            consumers: 0,
            counters: self.counters,
        }
    }

    /// The lowest seq still unsettled: log records below it are no longer needed.
    pub fn oldest_seq(&self) -> Option<Seq> {
        self.entries.keys().next().copied()
    }

    /// Unsettled messages: ready, delayed, leased and settling.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Messages whose settlement is decided but not yet applied or aborted.
    pub fn settling_len(&self) -> usize {
        self.settling.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a receive would deliver something (as of the last tick): lets the caller wake
    /// waiting consumers only when there is work.
    pub fn has_ready(&self) -> bool {
        !self.deliverable.is_empty()
    }

    /// A snapshot of one unsettled message; `None` once settled.
    pub fn message(&self, seq: Seq) -> Option<MessageView> {
        let entry = self.entries.get(&seq)?;
        let delivered = entry.delivery_count > 0;
        Some(MessageView {
            seq,
            priority: Priority::new(entry.priority).expect("stored priorities came from Priority"),
            status: match entry.status {
                Status::Ready => MessageStatus::Ready,
                Status::Delayed { due } => MessageStatus::Delayed { due },
                Status::Leased { deadline, .. } => MessageStatus::Leased { deadline },
                Status::Settling => MessageStatus::Settling,
            },
            delivery_count: entry.delivery_count,
            enqueued_at: entry.enqueued_at,
            expires_at: (entry.expires_at != NEVER).then_some(entry.expires_at),
            first_delivered_at: delivered.then_some(entry.first_delivered_at),
            last_delivered_at: delivered.then_some(entry.last_delivered_at),
        })
    }

    /// Ordering groups with unsettled messages.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Client ids held by the dedup window.
    pub fn dedup_len(&self) -> usize {
        self.dedup.len()
    }
}

// Transitions shared by the operations above.
impl QueueState {
    fn enqueue_make_room(&mut self) -> Result<Vec<Settle>, QueueFull> {
        let Some(max_length) = self.options.max_length else {
            return Ok(Vec::new());
        };
        if !self.can_accept(1) {
            return Err(QueueFull {
                max_length,
                len: self.live_len(),
            });
        }
        Ok(self.evict_oldest_ready(max_length))
    }

    /// Under `drop_oldest`, evicts ready messages, oldest first, until the queue holds fewer
    /// than `max_length` or nothing ready is left. Under `reject`, evicts nothing.
    fn evict_oldest_ready(&mut self, max_length: u64) -> Vec<Settle> {
        let mut evicted = Vec::new();
        if self.options.overflow != Overflow::DropOldest {
            return evicted;
        }
        while self.live_len() >= max_length {
            let Some(&oldest) = self.ready.first() else {
                break;
            };
            evicted.push(self.dead_letter(oldest, DeadLetterReason::Overflow));
        }
        evicted
    }

    fn insert(&mut self, meta: EnqueueMeta<'_>, at: u64) {
        let queue_expiry = self
            .options
            .message_ttl_ms
            .map(|ttl| at.saturating_add(ttl));
        let expires_at = meta
            .expires_at
            .into_iter()
            .chain(queue_expiry)
            .min()
            .unwrap_or(NEVER);
        let status = match meta.deliver_at {
            Some(due) if due > at => Status::Delayed { due },
            _ => Status::Ready,
        };
        let head_before = (meta.group.and_then(|name| self.groups.id(name)))
            .and_then(|group| self.groups.head(group));
        let group = meta.group.map(|name| self.groups.join(name, meta.seq));
        let entry = Entry {
            enqueued_at: at,
            expires_at,
            first_delivered_at: 0,
            last_delivered_at: 0,
            status,
            delivery_count: 0,
            group,
            priority: meta.priority.get(),
        };
        let replaced = self.entries.insert(meta.seq, entry);
        assert!(replaced.is_none(), "message {} enqueued twice", meta.seq);
        self.attach_entry(meta.seq, &entry);
        // Replay in log order never puts a message before its group's head, but a caller
        // enqueueing a lower seq must not leave two heads deliverable.
        if let Some(head_before) = head_before {
            self.reindex(head_before);
        }
        if let Some(key) = meta.dedup_key {
            self.dedup
                .record(key, meta.seq, at, self.options.dedup_window_ms);
        }
    }

    fn receive_lease(&mut self, seq: Seq, lease_ms: u64, now: u64) -> Delivery {
        let lease = self.lease_next;
        self.lease_next += 1;
        let deadline = now.saturating_add(lease_ms);
        let entry = self.entry_mut(seq);
        assert_eq!(
            entry.status,
            Status::Ready,
            "only ready messages are deliverable"
        );
        assert!(
            entry.expires_at > now,
            "tick removed expired messages before delivery"
        );
        if entry.delivery_count == 0 {
            entry.first_delivered_at = now;
        }
        let before = *entry;
        entry.delivery_count = entry.delivery_count.saturating_add(1);
        entry.last_delivered_at = now;
        entry.status = Status::Leased { deadline, lease };
        let after = *entry;
        self.status_changed(seq, &before, &after);
        let (delivery_count, first_delivered_at) = (after.delivery_count, after.first_delivered_at);
        self.counters.delivered += 1;
        Delivery {
            seq,
            receipt: Receipt::new(seq, self.seed, lease),
            delivery_count,
            first_delivered_at,
            last_delivered_at: now,
            lease_deadline: deadline,
        }
    }

    fn check_lease(&self, receipt: Receipt, now: u64) -> Result<(), ReceiptError> {
        let stale = ReceiptError::Stale { receipt };
        if receipt.incarnation() != self.seed {
            return Err(stale);
        }
        let Some(entry) = self.entries.get(&receipt.seq()) else {
            return Err(stale);
        };
        match entry.status {
            Status::Leased { deadline, lease } if lease == receipt.lease() => {
                if deadline <= now {
                    return Err(ReceiptError::LeaseExpired {
                        receipt,
                        expired_at: deadline,
                    });
                }
                Ok(())
            }
            _ => Err(stale),
        }
    }

    fn tick_fire(&mut self, seq: Seq, now: u64) -> Option<Settle> {
        let entry = *self.entry(seq);
        match entry.status {
            Status::Ready => {
                assert!(
                    entry.expires_at <= now,
                    "a ready message's timer is its expiry"
                );
                Some(self.dead_letter(seq, DeadLetterReason::Expired))
            }
            Status::Delayed { .. } if entry.expires_at <= now => {
                Some(self.dead_letter(seq, DeadLetterReason::Expired))
            }
            Status::Delayed { due } => {
                assert!(
                    due <= now,
                    "a delayed message's timer is its due time or expiry"
                );
                self.set_status(seq, Status::Ready);
                None
            }
            // Settling messages have no timer (detached when marked), so none fires here.
            Status::Settling => None,
            Status::Leased { deadline, .. } => {
                assert!(deadline <= now, "a leased message's timer is its deadline");
                // Backoff counts from the deadline, not from when the tick ran, so a late
                // tick does not lengthen the wait.
                let ready_at = deadline.saturating_add(self.retry_delay(seq));
                self.requeue(seq, ready_at, now)
            }
        }
    }

    /// Returns a message whose delivery failed, unless it has used up its deliveries or has
    /// expired meanwhile (then it is dead-lettered).
    fn requeue(&mut self, seq: Seq, ready_at: u64, now: u64) -> Option<Settle> {
        let entry = self.entry(seq);
        let exhausted = (self.options.max_deliveries)
            .is_some_and(|max_deliveries| entry.delivery_count >= max_deliveries);
        if exhausted {
            return Some(self.dead_letter(seq, DeadLetterReason::MaxDeliveries));
        }
        if entry.expires_at <= now {
            return Some(self.dead_letter(seq, DeadLetterReason::Expired));
        }
        let status = if ready_at <= now {
            Status::Ready
        } else {
            Status::Delayed { due: ready_at }
        };
        self.set_status(seq, status);
        None
    }

    fn retry_delay(&self, seq: Seq) -> u64 {
        retry_delay_ms(
            &self.options,
            self.seed,
            seq,
            self.entry(seq).delivery_count,
        )
    }

    /// Decides that leased message `seq`, whose record could not be read back, leaves the
    /// queue as damaged, and marks it settling like any settlement the queue decides. `None`
    /// when the lease is no longer current.
    pub fn settle_damaged(&mut self, receipt: Receipt, now: u64) -> Option<Settle> {
        self.check_lease(receipt, now).ok()?;
        Some(self.begin_settle(receipt.seq(), SettleReason::Damaged))
    }

    /// Decides that `seq` leaves for the dead-letter queue (or is dropped when there is none)
    /// and marks it settling: the caller writes it, then applies or aborts.
    fn dead_letter(&mut self, seq: Seq, reason: DeadLetterReason) -> Settle {
        let reason = match self.options.dead_letter_queue {
            Some(_) => SettleReason::DeadLettered(reason),
            None => SettleReason::Dropped(reason),
        };
        self.begin_settle(seq, reason)
    }

    /// Marks `seq` settling towards `reason` (see the module header).
    fn begin_settle(&mut self, seq: Seq, reason: SettleReason) -> Settle {
        let entry = *self.entry(seq);
        assert!(
            entry.status != Status::Settling,
            "message {seq} is settled twice"
        );
        self.detach(seq);
        self.entry_mut(seq).status = Status::Settling;
        let pending = Pending {
            prior: entry.status,
            nacked: false,
        };
        self.settling.insert(seq, pending);
        Settle {
            seq,
            reason,
            delivery_count: entry.delivery_count,
            location: self.location(seq),
        }
    }

    fn settle(&mut self, seq: Seq, reason: SettleReason) -> Settle {
        let location = self.location(seq);
        let delivery_count = self.remove(seq).delivery_count;
        self.count_settle(&reason);
        Settle {
            seq,
            reason,
            delivery_count,
            location,
        }
    }
}

impl QueueState {
    /// Counts an applied settlement.
    fn count_settle(&mut self, reason: &SettleReason) {
        let counters = &mut self.counters;
        let (counter, expired) = match reason {
            SettleReason::Acked => (&mut counters.acked, false),
            SettleReason::Purged => (&mut counters.purged, false),
            SettleReason::Redriven => (&mut counters.redriven, false),
            SettleReason::DeadLettered(why) => (
                &mut counters.dead_lettered,
                *why == DeadLetterReason::Expired,
            ),
            SettleReason::Dropped(why) => {
                (&mut counters.dropped, *why == DeadLetterReason::Expired)
            }
            SettleReason::Damaged => (&mut counters.damaged, false),
        };
        *counter += 1;
        if expired {
            counters.expired += 1;
        }
    }
}

// Index maintenance: the only code that touches `deliverable`, `ready`, `timers`, the
// status counts and group membership.
impl QueueState {
    fn set_status(&mut self, seq: Seq, status: Status) {
        let entry = self.entry_mut(seq);
        let before = *entry;
        entry.status = status;
        let after = *entry;
        self.status_changed(seq, &before, &after);
    }

    /// Moves message `seq` in the indexes from its entry `before` to the one `after`, which
    /// the caller has just stored.
    fn status_changed(&mut self, seq: Seq, before: &Entry, after: &Entry) {
        self.detach_entry(seq, before);
        self.note_lease_end(before.status, Some(after.status));
        self.attach_entry(seq, after);
    }

    /// Records a lease that ended when a status `before` became `after` (`None`: removed).
    fn note_lease_end(&mut self, before: Status, after: Option<Status>) {
        if !self.track_lease_ends {
            return;
        }
        if let Status::Leased { lease, .. } = before {
            let same_lease =
                matches!(after, Some(Status::Leased { lease: next, .. }) if next == lease);
            if !same_lease {
                self.ended_leases.push(lease);
            }
        }
    }

    /// Removes a message from every index and from its group; its group's next message may
    /// become deliverable. Returns its entry.
    fn remove(&mut self, seq: Seq) -> Entry {
        let entry = self.entries.remove(&seq).expect("removed messages exist");
        self.detach_entry(seq, &entry);
        self.locations.remove(&seq);
        // A settling message's lease ends now, not when its settlement was decided: until the
        // settlement is written it may still be put back under that lease.
        let status = match self.settling.remove(&seq) {
            Some(pending) => pending.prior,
            None => entry.status,
        };
        self.note_lease_end(status, None);
        if let Some(group) = entry.group {
            self.groups.leave(group, seq);
            if let Some(head) = self.groups.head(group) {
                self.reindex(head);
            }
        }
        entry
    }

    fn detach(&mut self, seq: Seq) {
        let entry = *self.entry(seq);
        self.detach_entry(seq, &entry);
    }

    /// [`QueueState::detach`] of `entry`, message `seq`'s entry as the indexes know it.
    fn detach_entry(&mut self, seq: Seq, entry: &Entry) {
        if let Some(at) = entry.timer() {
            let removed = self.timers.remove(&(at, seq));
            assert!(removed, "message {seq} had its timer indexed");
        }
        match entry.status {
            Status::Ready => {
                self.ready.remove(&seq);
                self.deliverable.remove(&(Reverse(entry.priority), seq));
            }
            Status::Delayed { .. } => self.delayed_count -= 1,
            Status::Leased { .. } => self.leased_count -= 1,
            Status::Settling => {}
        }
    }

    fn attach(&mut self, seq: Seq) {
        let entry = *self.entry(seq);
        self.attach_entry(seq, &entry);
    }

    /// [`QueueState::attach`] of `entry`, message `seq`'s entry as it stands now.
    fn attach_entry(&mut self, seq: Seq, entry: &Entry) {
        if let Some(at) = entry.timer() {
            self.timers.insert((at, seq));
        }
        match entry.status {
            Status::Ready => {
                self.ready.insert(seq);
                if self.is_group_head_or_ungrouped(seq, entry) {
                    self.deliverable.insert((Reverse(entry.priority), seq));
                }
            }
            Status::Delayed { .. } => self.delayed_count += 1,
            Status::Leased { .. } => {
                assert!(
                    self.is_group_head_or_ungrouped(seq, entry),
                    "only group heads lease"
                );
                self.leased_count += 1;
            }
            Status::Settling => {}
        }
    }

    /// Puts a ready message in or out of `deliverable` after its group's head changed.
    fn reindex(&mut self, seq: Seq) {
        let entry = *self.entry(seq);
        if entry.status != Status::Ready {
            return;
        }
        let key = (Reverse(entry.priority), seq);
        if self.is_group_head_or_ungrouped(seq, &entry) {
            self.deliverable.insert(key);
        } else {
            self.deliverable.remove(&key);
        }
    }

    fn is_group_head_or_ungrouped(&self, seq: Seq, entry: &Entry) -> bool {
        entry
            .group
            .is_none_or(|group| self.groups.head(group) == Some(seq))
    }

    fn entry(&self, seq: Seq) -> &Entry {
        self.entries
            .get(&seq)
            .expect("indexes only name unsettled messages")
    }

    fn entry_mut(&mut self, seq: Seq) -> &mut Entry {
        self.entries
            .get_mut(&seq)
            .expect("indexes only name unsettled messages")
    }

    /// Messages that count towards `max_length`: settling ones are on their way out.
    fn live_len(&self) -> u64 {
        (self.entries.len() - self.settling.len()) as u64
    }
}

impl Entry {
    /// The time of this message's next event, if it has one.
    fn timer(&self) -> Option<u64> {
        match self.status {
            Status::Ready => (self.expires_at != NEVER).then_some(self.expires_at),
            Status::Delayed { due } => Some(due.min(self.expires_at)),
            Status::Leased { deadline, .. } => Some(deadline),
            Status::Settling => None,
        }
    }
}

#[cfg(test)]
impl QueueState {
    /// Recomputes every index from the entries and compares: run after each step of the
    /// property tests.
    pub(crate) fn check_invariants(&self) {
        let mut deliverable = BTreeSet::new();
        let mut ready = BTreeSet::new();
        let mut timers = BTreeSet::new();
        let (mut delayed, mut leased) = (0, 0);
        let mut leased_groups = std::collections::HashSet::new();
        for (&seq, entry) in &self.entries {
            if let Some(at) = entry.timer() {
                timers.insert((at, seq));
            }
            let head = self.is_group_head_or_ungrouped(seq, entry);
            match entry.status {
                Status::Ready => {
                    ready.insert(seq);
                    if head {
                        deliverable.insert((Reverse(entry.priority), seq));
                    }
                }
                Status::Delayed { .. } => delayed += 1,
                Status::Leased { .. } => {
                    leased += 1;
                    assert!(head, "leased message {seq} is not its group's head");
                    if let Some(group) = entry.group {
                        assert!(leased_groups.insert(group), "a group has two leases");
                    }
                }
                Status::Settling => {
                    assert!(self.settling.contains_key(&seq), "{seq} settles untracked");
                }
            }
        }
        let settling = (self.entries.values())
            .filter(|entry| entry.status == Status::Settling)
            .count();
        assert_eq!(
            settling,
            self.settling.len(),
            "settling messages are tracked"
        );
        assert_eq!(deliverable, self.deliverable);
        assert_eq!(ready, self.ready);
        assert_eq!(timers, self.timers);
        assert_eq!((delayed, leased), (self.delayed_count, self.leased_count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_costs_72_bytes_of_entry() {
        assert_eq!(std::mem::size_of::<Entry>(), 72);
    }
}
