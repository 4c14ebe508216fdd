//! Messages leaving a queue other than by ack: dead-lettering, dropping, redrive, and the timer
//! task that finds expired leases, due delays and expired messages.

use super::{
    queue_runtime::QueueRuntime, records::SettleReason as RecordSettleReason, Engine, Inner,
};
use crate::{
    error::EngineError,
    log_throttle::LogThrottle,
    queue::{DeadLetterReason as StateReason, QueueOptions, Seq, Settle, SettleReason},
};
use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc, Weak},
};
use wharf_model::message::{DeadLetter, DeadLetterReason, Message};

/// How long a queue's timer waits after failing to persist what it settled (a full disk).
const TIMER_RETRY_MS: u64 = 1_000;

/// Messages examined per redrive step: bounds the memory and the lock hold of one step.
const REDRIVE_BATCH_MAX: usize = 100;

impl Engine {
    /// Writes, then applies, what the state machine decided to settle on its own (the messages
    /// are `Settling` meanwhile): dead letters are copied to the dead-letter queue (durably)
    /// before the source records them settled; drops are recorded. When a write fails, the
    /// messages it did not record are put back as they were, so memory never runs ahead of
    /// the log; their timers retry them.
    pub(crate) fn persist_settlements<'a>(
        &'a self,
        queue: &'a Arc<QueueRuntime>,
        settles: Vec<Settle>,
    ) -> Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send + 'a>> {
        Box::pin(async move {
            if settles.is_empty() {
                return Ok(());
            }
            let mut dropped = Vec::new();
            let mut moved = Vec::new();
            for settle in settles {
                match &settle.reason {
                    SettleReason::DeadLettered(_) => moved.push(settle),
                    // Damaged ones are recorded as dropped: their record is unreadable.
                    SettleReason::Dropped(_) | SettleReason::Damaged => dropped.push(settle),
                    // Written and applied by their callers; a state never returns them here.
                    SettleReason::Acked | SettleReason::Purged | SettleReason::Redriven => {
                        tracing::error!(queue = %queue.name, reason = ?settle.reason, "unexpected settlement; ignored");
                    }
                }
            }
            let store = self.inner.store.as_ref();
            let target = queue.options()?.dead_letter_queue;
            match target {
                Some(target) if !moved.is_empty() => {
                    let (seqs, reasons) = seqs_and_reasons(&moved);
                    let written = match self
                        .move_to_dead_letters(queue, target.as_str(), &moved)
                        .await
                    {
                        Ok(()) => {
                            let reason = RecordSettleReason::DeadLettered;
                            (queue.write_settled(store, &seqs, reason, &reasons)).await
                        }
                        failed => failed,
                    };
                    if let Err(error) = written {
                        // A copy may already be in the dead-letter queue: at least once.
                        return Err(abort_after(queue, error, moved.iter().chain(&dropped)));
                    }
                }
                // The dead-letter queue was unset since the state decided: drop instead.
                _ => dropped.extend(moved.drain(..).map(|settle| Settle {
                    reason: match settle.reason {
                        SettleReason::DeadLettered(why) => SettleReason::Dropped(why),
                        other => other,
                    },
                    ..settle
                })),
            }
            let (seqs, reasons) = seqs_and_reasons(&dropped);
            if let Err(error) = queue
                .write_settled(store, &seqs, RecordSettleReason::Dropped, &reasons)
                .await
            {
                return Err(abort_after(queue, error, dropped.iter()));
            }
            self.reclaim().await;
            Ok(())
        })
    }

    /// [`Engine::persist_settlements`], then a dispatch when anything settled: a settled group
    /// head lets the next message of its group go to waiting consumers.
    pub(crate) async fn persist_and_dispatch(
        &self,
        queue: &Arc<QueueRuntime>,
        settles: Vec<Settle>,
    ) -> Result<(), EngineError> {
        if settles.is_empty() {
            return Ok(());
        }
        let persisted = self.persist_settlements(queue, settles).await;
        self.dispatch(queue).await;
        persisted
    }

    /// Persists what a send evicted (`drop_oldest`). Never fails the send, whose messages are
    /// stored: evictions that cannot be written were put back, and the failure is logged.
    pub(crate) async fn persist_evictions(&self, queue: &Arc<QueueRuntime>, evicted: Vec<Settle>) {
        if let Err(error) = self.persist_settlements(queue, evicted).await {
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(suppressed) = THROTTLE.allow() {
                tracing::warn!(queue = %queue.name, %error, suppressed, "could not record evictions; the messages stay");
            }
        }
    }

    async fn move_to_dead_letters(
        &self,
        queue: &Arc<QueueRuntime>,
        target: &str,
        moved: &[Settle],
    ) -> Result<(), EngineError> {
        let target = match self.find(target) {
            Some(target) => target,
            None => {
                // Deleted after it was named: recreate it rather than lose the messages.
                self.put_queue(target, QueueOptions::default()).await?;
                self.queue(target)?
            }
        };
        let now = self.now();
        let mut messages = Vec::with_capacity(moved.len());
        for settle in moved {
            let SettleReason::DeadLettered(reason) = &settle.reason else {
                continue; // The caller passes only dead letters.
            };
            let mut message = queue.read_message_at(settle.seq, settle.location).await?;
            let last_error = match reason {
                StateReason::Rejected { reason } if !reason.is_empty() => Some(reason.clone()),
                _ => queue.take_last_error(settle.seq.0)?,
            };
            message.dead_letter = Some(DeadLetter {
                reason: dead_letter_reason(reason),
                source_queue: queue.name.to_string(),
                at: now,
                delivery_count: settle.delivery_count,
                last_error,
            });
            message.deliver_at = None;
            message.expires_at = None;
            messages.push((message, false));
        }
        self.send_to(target, messages, now).await?;
        Ok(())
    }

    /// Moves up to `max` dead letters (all when `None`) from a dead-letter queue back to the
    /// queues they came from. Walks the messages that were ready when it started, once, in
    /// send order and in bounded steps, so it always ends: messages that are not dead letters,
    /// or whose source queue no longer exists, stay where they are and are counted as skipped;
    /// leased ones are left to their consumers. Each moved message is stored in its source
    /// (durably) before its settle record is written here, so a crash in between can only
    /// leave it in both queues, never in neither.
    pub async fn redrive(&self, queue: &str, max: Option<u64>) -> Result<Redriven, EngineError> {
        self.check_open()?;
        let dead_letters = self.queue(queue)?;
        self.check_space().await?;
        let end = dead_letters.log.end_offset().0;
        let mut report = Redriven::default();
        let mut cursor = None;
        while max.is_none_or(|max| report.moved < max) {
            let seqs = dead_letters.ready_after(cursor, REDRIVE_BATCH_MAX)?;
            let seqs: Vec<u64> = seqs.into_iter().take_while(|seq| *seq < end).collect();
            let Some(&last) = seqs.last() else {
                break;
            };
            cursor = Some(last);
            let room = max.map_or(u64::MAX, |max| max - report.moved);
            let moves = (self.redrive_choose(&dead_letters, seqs, room, &mut report)).await?;
            for (source, seqs, messages) in moves.into_values() {
                self.send_to(source, messages, self.now()).await?;
                dead_letters
                    .write_settled(
                        self.inner.store.as_ref(),
                        &seqs,
                        RecordSettleReason::Redriven,
                        &[SettleReason::Redriven],
                    )
                    .await?;
                report.moved += seqs.len() as u64;
            }
        }
        self.dispatch(&dead_letters).await;
        self.reclaim().await;
        Ok(report)
    }

    /// Reads the messages at `seqs` and picks up to `room` dead letters whose source exists,
    /// grouped by source queue; counts the others as skipped.
    async fn redrive_choose(
        &self,
        dead_letters: &QueueRuntime,
        seqs: Vec<u64>,
        room: u64,
        report: &mut Redriven,
    ) -> Result<BTreeMap<String, RedriveMove>, EngineError> {
        let mut moves: BTreeMap<String, RedriveMove> = BTreeMap::new();
        let mut chosen = 0u64;
        let now = self.now();
        for seq in seqs {
            if chosen >= room {
                break;
            }
            let message = dead_letters.read_message(Seq(seq)).await?;
            let Some(dead_letter) = &message.dead_letter else {
                report.skipped_not_dead_letter += 1;
                continue;
            };
            let Some(source) = self.find(&dead_letter.source_queue) else {
                report.skipped_source_missing += 1;
                continue;
            };
            let (_, seqs, messages) = moves
                .entry(dead_letter.source_queue.clone())
                .or_insert_with(|| (source, Vec::new(), Vec::new()));
            seqs.push(seq);
            let fresh = Message {
                dead_letter: None,
                sent_at: now,
                ..message
            };
            messages.push((fresh, false));
            chosen += 1;
        }
        Ok(moves)
    }
}

/// Dead letters going back to one source queue: the source, their seqs in the dead-letter
/// queue, and the fresh messages to send.
type RedriveMove = (Arc<QueueRuntime>, Vec<u64>, Vec<(Message, bool)>);

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Dead letters moved back to their source queue.
    pub moved: u64,
    /// Messages left in place because they are not dead letters (sent to this queue directly).
    pub skipped_not_dead_letter: u64,
    /// Dead letters left in place because their source queue no longer exists.
    pub skipped_source_missing: u64,
}

/// Puts unrecorded settlements back into the queue's state after `error`; returns the error.
fn abort_after<'a>(
    queue: &QueueRuntime,
    error: EngineError,
    settles: impl Iterator<Item = &'a Settle>,
) -> EngineError {
    if let Err(abort_error) = queue.abort_settles(settles) {
        tracing::error!(queue = %queue.name, %abort_error, "could not put back messages whose settlement failed; a restart will");
    }
    error
}

/// The seqs of `settles` for a settle record, and the reason each is counted under.
fn seqs_and_reasons(settles: &[Settle]) -> (Vec<u64>, Vec<SettleReason>) {
    (settles.iter())
        .map(|settle| (settle.seq.0, settle.reason.clone()))
        .unzip()
}

fn dead_letter_reason(reason: &StateReason) -> DeadLetterReason {
    match reason {
        StateReason::MaxDeliveries => DeadLetterReason::MaxDeliveries,
        StateReason::Expired => DeadLetterReason::Expired,
        StateReason::Rejected { .. } => DeadLetterReason::Rejected,
        StateReason::Overflow => DeadLetterReason::Overflow,
    }
}

/// One per queue: sleeps until the queue's next deadline (or until it moves), then ticks the
/// state and persists what settled. Ends when the queue is deleted or the engine closes.
pub(super) async fn run_timer(inner: Weak<Inner>, queue: Arc<QueueRuntime>) {
    loop {
        let Some(clock) = inner.upgrade().map(|inner| inner.clock.clone()) else {
            return;
        };
        let closing = inner
            .upgrade()
            .is_none_or(|inner| inner.closing.load(Ordering::Acquire));
        if closing || queue.is_deleted() {
            return;
        }
        let changed = queue.timer_changed.notified();
        let Ok(next_deadline) = queue.next_deadline() else {
            return; // Closed by an internal error; nothing left to time.
        };
        match next_deadline {
            None => {
                changed.await;
                continue;
            }
            Some(at) if at > clock.now() => {
                tokio::select! {
                    _ = clock.sleep_until(at) => {}
                    _ = changed => continue,
                }
            }
            Some(_) => {}
        }
        let Some(engine) = inner.upgrade().map(|inner| Engine { inner }) else {
            return;
        };
        let Ok(settles) = queue.tick(clock.now()) else {
            return;
        };
        let persisted = engine.persist_settlements(&queue, settles).await;
        engine.dispatch(&queue).await;
        if let Err(error) = persisted {
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(suppressed) = THROTTLE.allow() {
                tracing::warn!(queue = %queue.name, %error, suppressed, "could not persist timer settlements");
            }
            // The messages were put back and are due at once: wait before trying again, so a
            // full disk costs a retry a second, not a loop at full speed.
            drop(engine);
            clock
                .sleep_until(clock.now().saturating_add(TIMER_RETRY_MS))
                .await;
        }
    }
}
