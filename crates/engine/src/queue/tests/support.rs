//! Helpers shared by the queue tests.

use crate::queue::*;
use wharf_model::{MessageId, Priority, QueueName};

/// A fixed seed: tests are reproducible, jitter included.
pub const SEED: u64 = 0x5eed;

/// A start time far from 0, so "time minus something" never underflows in a test.
pub const T0: u64 = 1_000_000;

pub fn queue(options: QueueOptions) -> QueueState {
    QueueState::new(options, SEED).expect("test options are valid")
}

pub fn with_dead_letter_queue() -> QueueOptions {
    let dead_letter_queue: QueueName = "dead".parse().expect("valid name");
    QueueOptions {
        dead_letter_queue: Some(dead_letter_queue),
        ..QueueOptions::default()
    }
}

pub fn meta(seq: u64) -> EnqueueMeta<'static> {
    EnqueueMeta {
        seq: Seq(seq),
        dedup_key: None,
        priority: Priority::default(),
        deliver_at: None,
        expires_at: None,
        group: None,
    }
}

pub fn priority(value: u8) -> Priority {
    Priority::new(value).expect("test priorities are in range")
}

pub fn dedup_key(id: &str) -> DedupKey {
    DedupKey::of(&id.parse::<MessageId>().expect("valid id"))
}

/// Enqueues and asserts the message was accepted without evicting anything.
pub fn send(queue: &mut QueueState, meta: EnqueueMeta<'_>, now: u64) {
    let outcome = queue.enqueue(meta, now).expect("queue accepts the send");
    assert_eq!(
        outcome,
        EnqueueOutcome::Accepted {
            evicted: Vec::new()
        }
    );
    queue.check_invariants();
}

/// Applies settlements the state decided, as the engine does once their records are written.
pub fn apply(queue: &mut QueueState, settles: &[Settle]) {
    for settle in settles {
        assert!(queue.apply_settled(settle.seq, settle.reason.clone()));
    }
    queue.check_invariants();
}

pub fn seqs(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|delivery| delivery.seq.0).collect()
}

pub fn requeue_now() -> NackAction {
    NackAction::Requeue { delay_ms: Some(0) }
}

/// A settlement towards the dead-letter queue of a message delivered `delivery_count` times.
pub fn dead_lettered(seq: u64, delivery_count: u32, reason: DeadLetterReason) -> Settle {
    Settle {
        seq: Seq(seq),
        reason: SettleReason::DeadLettered(reason),
        delivery_count,
        location: seq,
    }
}

/// A settlement that discards a message delivered `delivery_count` times.
pub fn dropped(seq: u64, delivery_count: u32, reason: DeadLetterReason) -> Settle {
    Settle {
        seq: Seq(seq),
        reason: SettleReason::Dropped(reason),
        delivery_count,
        location: seq,
    }
}
