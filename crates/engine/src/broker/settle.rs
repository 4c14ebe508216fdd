//! Messages leaving a queue other than by ack: dead-lettering, dropping, redrive, and the timer
//! task that finds expired leases, due delays and expired messages.

use super::{
    queue_runtime::QueueRuntime, records::SettleReason as RecordSettleReason, Engine, Inner,
};
use crate::{
    error::EngineError,
    queue::{DeadLetterReason as StateReason, QueueOptions, Settle, SettleReason},
};
use std::{
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc, Weak},
};
use wharf_model::message::{DeadLetter, DeadLetterReason, Message};

/// Messages moved per redrive step: one receive's worth.
const REDRIVE_BATCH_MAX: usize = 100;
/// Lease taken on dead letters while redrive moves them; released by ack right after.
const REDRIVE_LEASE_MS: u64 = 60_000;

impl Engine {
    /// Persists what the state machine settled on its own: dead letters are copied to the
    /// dead-letter queue (durably) before the source records them settled; drops are recorded.
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
                    SettleReason::Dropped(_) => dropped.push(settle.seq.0),
                    SettleReason::Acked | SettleReason::Purged => {
                        unreachable!("acks and purges are written by their callers")
                    }
                }
            }
            let target = queue.options().dead_letter_queue;
            match target {
                Some(target) if !moved.is_empty() => {
                    let seqs = moved.iter().map(|s| s.seq.0).collect();
                    self.move_to_dead_letters(queue, target.as_str(), moved)
                        .await?;
                    queue
                        .write_settled(seqs, RecordSettleReason::DeadLettered, self.now())
                        .await?;
                }
                // The dead-letter queue was unset since the state decided: drop instead.
                _ => dropped.extend(moved.iter().map(|s| s.seq.0)),
            }
            queue
                .write_settled(dropped, RecordSettleReason::Dropped, self.now())
                .await
        })
    }

    async fn move_to_dead_letters(
        &self,
        queue: &Arc<QueueRuntime>,
        target: &str,
        moved: Vec<Settle>,
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
            let SettleReason::DeadLettered(reason) = settle.reason else {
                unreachable!("only dead letters are moved");
            };
            let mut message = queue.read_message(settle.seq)?;
            let last_error = match &reason {
                StateReason::Rejected { reason } if !reason.is_empty() => Some(reason.clone()),
                _ => queue.take_last_error(settle.seq.0),
            };
            message.dead_letter = Some(DeadLetter {
                reason: dead_letter_reason(&reason),
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

    /// Moves up to `max` messages (all when `None`) from a dead-letter queue back to the queues
    /// they came from; returns how many moved.
    pub async fn redrive(&self, queue: &str, max: Option<u64>) -> Result<u64, EngineError> {
        self.check_open()?;
        let dead_letters = self.queue(queue)?;
        let mut moved = 0u64;
        while max.is_none_or(|max| moved < max) {
            let want = max.map_or(REDRIVE_BATCH_MAX as u64, |max| max - moved);
            let now = self.now();
            let (deliveries, settles) = dead_letters.receive(
                want.min(REDRIVE_BATCH_MAX as u64) as usize,
                Some(REDRIVE_LEASE_MS),
                now,
            )?;
            self.persist_settlements(&dead_letters, settles).await?;
            if deliveries.is_empty() {
                break;
            }
            for delivery in deliveries {
                let receipt = [delivery.receipt];
                let Some(source) = delivery
                    .message
                    .dead_letter
                    .as_ref()
                    .and_then(|d| self.find(&d.source_queue))
                else {
                    // Not a dead letter, or its source is gone: leave it where it is.
                    dead_letters.nack(
                        &receipt,
                        &crate::queue::NackAction::Requeue { delay_ms: Some(0) },
                        None,
                        now,
                    );
                    continue;
                };
                let message = Message {
                    dead_letter: None,
                    sent_at: now,
                    ..delivery.message
                };
                self.send_to(source, vec![(message, false)], now).await?;
                let (seqs, _) = dead_letters.ack(&receipt, now);
                dead_letters
                    .write_settled(seqs, RecordSettleReason::Redriven, self.now())
                    .await?;
                moved += 1;
            }
        }
        Ok(moved)
    }
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
        match queue.next_deadline() {
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
        let settles = queue.tick(clock.now());
        if let Err(error) = engine.persist_settlements(&queue, settles).await {
            tracing::warn!(queue = %queue.name, %error, "could not persist timer settlements");
        }
    }
}
