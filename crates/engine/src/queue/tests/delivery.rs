//! One test per delivery rule: order, groups, leases, retries, nack, extend, receipts.

use super::support::*;
use crate::queue::*;

#[test]
fn receive_delivers_higher_priority_first() {
    let mut queue = queue(QueueOptions::default());
    send(
        &mut queue,
        EnqueueMeta {
            priority: priority(1),
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            priority: priority(9),
            ..meta(2)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            priority: priority(5),
            ..meta(3)
        },
        T0,
    );
    assert_eq!(seqs(&queue.receive(10, None, T0).deliveries), [2, 3, 1]);
}

#[test]
fn receive_is_fifo_within_a_priority() {
    let mut queue = queue(QueueOptions::default());
    for seq in [10, 11, 12, 13] {
        send(&mut queue, meta(seq), T0);
    }
    assert_eq!(seqs(&queue.receive(2, None, T0).deliveries), [10, 11]);
    assert_eq!(seqs(&queue.receive(2, None, T0).deliveries), [12, 13]);
}

#[test]
fn group_has_at_most_one_message_in_flight_in_send_order() {
    let mut queue = queue(QueueOptions::default());
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("a"),
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("a"),
            priority: priority(9),
            ..meta(2)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("b"),
            ..meta(3)
        },
        T0,
    );
    send(&mut queue, meta(4), T0);
    // The higher priority of seq 2 does not let it overtake seq 1 of its group.
    let first = queue.receive(10, None, T0).deliveries;
    assert_eq!(seqs(&first), [1, 3, 4]);
    assert!(queue.receive(10, None, T0).deliveries.is_empty());
    assert!(
        !queue.has_ready(),
        "group a's second message waits behind its leased head"
    );
    queue.ack(first[0].receipt, T0 + 1).unwrap();
    assert_eq!(seqs(&queue.receive(10, None, T0 + 1).deliveries), [2]);
}

#[test]
fn group_head_returned_by_nack_is_delivered_before_later_group_messages() {
    let mut queue = queue(QueueOptions::default());
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("a"),
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("a"),
            ..meta(2)
        },
        T0,
    );
    let delivery = queue.receive(1, None, T0).deliveries[0];
    queue.nack(delivery.receipt, requeue_now(), T0).unwrap();
    let again = queue.receive(10, None, T0).deliveries;
    assert_eq!(seqs(&again), [1]);
    assert_eq!(again[0].delivery_count, 2);
}

#[test]
fn group_with_a_delayed_head_blocks_only_its_own_messages() {
    let mut queue = queue(QueueOptions::default());
    let delayed = EnqueueMeta {
        group: Some("a"),
        deliver_at: Some(T0 + 500),
        ..meta(1)
    };
    send(&mut queue, delayed, T0);
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("a"),
            ..meta(2)
        },
        T0,
    );
    send(&mut queue, meta(3), T0);
    assert_eq!(seqs(&queue.receive(10, None, T0).deliveries), [3]);
    assert_eq!(seqs(&queue.receive(10, None, T0 + 500).deliveries), [1]);
}

#[test]
fn expired_lease_redelivers_after_backoff() {
    let options = QueueOptions {
        lease_ms: 100,
        retry_backoff_ms: 1_000,
        ..QueueOptions::default()
    };
    let mut queue = queue(options.clone());
    send(&mut queue, meta(1), T0);
    let first = queue.receive(1, None, T0).deliveries[0];
    assert_eq!(first.lease_deadline, T0 + 100);
    let delay = retry_delay_ms(&options, SEED, Seq(1), 1);
    assert!(
        (500..=1_000).contains(&delay),
        "first retry waits 1 s with jitter: {delay}"
    );
    assert!(queue.receive(1, None, T0 + 100).deliveries.is_empty());
    assert_eq!(
        queue.message(Seq(1)).unwrap().status,
        MessageStatus::Delayed {
            due: T0 + 100 + delay
        }
    );
    assert!(queue
        .receive(1, None, T0 + 100 + delay - 1)
        .deliveries
        .is_empty());
    let second = queue.receive(1, None, T0 + 100 + delay).deliveries[0];
    assert_eq!((second.seq, second.delivery_count), (Seq(1), 2));
    assert_eq!(
        (second.first_delivered_at, second.last_delivered_at),
        (T0, T0 + 100 + delay)
    );
}

#[test]
fn backoff_doubles_per_delivery_and_is_capped() {
    let options = QueueOptions {
        retry_backoff_ms: 100,
        retry_backoff_max_ms: 1_000,
        ..QueueOptions::default()
    };
    for seq in 0..50 {
        for (count, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_000),
            (40, 1_000),
        ] {
            let delay = retry_delay_ms(&options, SEED, Seq(seq), count);
            assert!(
                (full / 2..=full).contains(&delay),
                "count {count}: {delay} not in [{}, {full}]",
                full / 2
            );
        }
    }
    assert_eq!(
        retry_delay_ms(&options, SEED, Seq(1), u32::MAX),
        retry_delay_ms(&options, SEED, Seq(1), u32::MAX)
    );
    let instant = QueueOptions {
        retry_backoff_ms: 0,
        retry_backoff_max_ms: 0,
        ..options
    };
    assert_eq!(retry_delay_ms(&instant, SEED, Seq(1), 3), 0);
}

#[test]
fn backoff_jitter_is_reproducible_for_a_seed_and_spread_across_messages() {
    let options = QueueOptions::default();
    let delays: Vec<u64> = (0..100)
        .map(|seq| retry_delay_ms(&options, SEED, Seq(seq), 1))
        .collect();
    let again: Vec<u64> = (0..100)
        .map(|seq| retry_delay_ms(&options, SEED, Seq(seq), 1))
        .collect();
    assert_eq!(delays, again);
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(
        distinct.len() > 50,
        "jitter spreads retries: {} distinct delays",
        distinct.len()
    );
}

#[test]
fn max_deliveries_dead_letters_when_the_last_lease_expires() {
    let options = QueueOptions {
        max_deliveries: Some(2),
        lease_ms: 10,
        retry_backoff_ms: 0,
        ..with_dead_letter_queue()
    };
    let mut queue = queue(options);
    send(&mut queue, meta(1), T0);
    assert_eq!(queue.receive(1, None, T0).deliveries[0].delivery_count, 1);
    assert_eq!(
        queue.receive(1, None, T0 + 10).deliveries[0].delivery_count,
        2
    );
    let received = queue.receive(1, None, T0 + 20);
    assert!(received.deliveries.is_empty());
    assert_eq!(
        received.settled,
        [dead_lettered(1, 2, DeadLetterReason::MaxDeliveries)]
    );
    assert_eq!(
        queue.stats(T0 + 20).counters.dead_lettered,
        0,
        "not yet written"
    );
    apply(&mut queue, &received.settled);
    assert_eq!(queue.stats(T0 + 20).counters.dead_lettered, 1);
    assert!(queue.is_empty());
}

#[test]
fn max_deliveries_dead_letters_a_requeue_nack_of_the_last_delivery() {
    let mut queue = queue(QueueOptions {
        max_deliveries: Some(1),
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let outcome = queue.nack(delivery.receipt, requeue_now(), T0).unwrap();
    assert_eq!(
        outcome,
        NackOutcome::Settled(dropped(1, 1, DeadLetterReason::MaxDeliveries))
    );
}

#[test]
fn nack_requeue_with_zero_delay_makes_the_message_ready_at_once() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let outcome = queue.nack(delivery.receipt, requeue_now(), T0 + 5).unwrap();
    assert_eq!(
        outcome,
        NackOutcome::Requeued {
            seq: Seq(1),
            ready_at: T0 + 5
        }
    );
    assert_eq!(seqs(&queue.receive(1, None, T0 + 5).deliveries), [1]);
}

#[test]
fn nack_with_delay_hides_message_until_due() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let action = NackAction::Requeue {
        delay_ms: Some(300),
    };
    let outcome = queue.nack(delivery.receipt, action, T0).unwrap();
    assert_eq!(
        outcome,
        NackOutcome::Requeued {
            seq: Seq(1),
            ready_at: T0 + 300
        }
    );
    assert!(queue.receive(1, None, T0 + 299).deliveries.is_empty());
    assert_eq!(seqs(&queue.receive(1, None, T0 + 300).deliveries), [1]);
}

#[test]
fn nack_without_delay_waits_for_the_retry_backoff() {
    let options = QueueOptions::default();
    let mut queue = queue(options.clone());
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let action = NackAction::Requeue { delay_ms: None };
    let ready_at = T0 + retry_delay_ms(&options, SEED, Seq(1), 1);
    let outcome = queue.nack(delivery.receipt, action, T0).unwrap();
    assert_eq!(
        outcome,
        NackOutcome::Requeued {
            seq: Seq(1),
            ready_at
        }
    );
    assert_eq!(queue.stats(T0).counters.nacked, 1);
}

#[test]
fn nack_to_dead_letter_settles_with_the_consumers_reason() {
    let mut queue = queue(with_dead_letter_queue());
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let action = NackAction::DeadLetter {
        reason: "bad input".into(),
    };
    let outcome = queue.nack(delivery.receipt, action, T0).unwrap();
    let reason = DeadLetterReason::Rejected {
        reason: "bad input".into(),
    };
    assert_eq!(
        outcome,
        NackOutcome::Settled(dead_lettered(1, 1, reason.clone()))
    );
    assert_eq!(reason.code(), "rejected");
    let NackOutcome::Settled(settle) = outcome else {
        unreachable!()
    };
    apply(&mut queue, &[settle]);
    assert!(queue.is_empty());
    assert_eq!(queue.stats(T0).counters.nacked, 1);
}

#[test]
fn extend_moves_the_lease_deadline() {
    let mut queue = queue(QueueOptions {
        lease_ms: 100,
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    assert_eq!(
        queue.extend(delivery.receipt, 1_000, T0 + 90),
        Ok(T0 + 1_090)
    );
    assert!(queue.tick(T0 + 500).is_empty());
    assert_eq!(
        queue.message(Seq(1)).unwrap().status,
        MessageStatus::Leased {
            deadline: T0 + 1_090
        }
    );
    assert_eq!(queue.next_deadline(), Some(T0 + 1_090));
    queue.ack(delivery.receipt, T0 + 1_000).unwrap();
}

#[test]
fn receive_takes_its_own_lease_or_the_queue_default() {
    let mut queue = queue(QueueOptions {
        lease_ms: 100,
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    assert_eq!(
        queue.receive(1, None, T0).deliveries[0].lease_deadline,
        T0 + 100
    );
    assert_eq!(
        queue.receive(1, Some(7), T0).deliveries[0].lease_deadline,
        T0 + 7
    );
}

#[test]
fn stale_receipt_never_matches_a_later_lease_of_the_same_message() {
    let mut queue = queue(QueueOptions {
        lease_ms: 10,
        retry_backoff_ms: 0,
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    let first = queue.receive(1, None, T0).deliveries[0];
    let second = queue.receive(1, None, T0 + 10).deliveries[0];
    assert_ne!(first.receipt, second.receipt);
    assert_eq!(
        queue.ack(first.receipt, T0 + 11),
        Err(ReceiptError::Stale {
            receipt: first.receipt
        })
    );
    assert!(queue.extend(first.receipt, 10, T0 + 11).is_err());
    assert_eq!(queue.ack(second.receipt, T0 + 11), Ok(Seq(1)));
    assert_eq!(
        queue.ack(second.receipt, T0 + 11),
        Err(ReceiptError::Stale {
            receipt: second.receipt
        })
    );
}

#[test]
fn ack_after_the_lease_deadline_is_refused() {
    let mut queue = queue(QueueOptions {
        lease_ms: 10,
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let error = queue.ack(delivery.receipt, T0 + 10).unwrap_err();
    assert_eq!(
        error,
        ReceiptError::LeaseExpired {
            receipt: delivery.receipt,
            expired_at: T0 + 10
        }
    );
    assert_eq!(queue.len(), 1);
}

#[test]
fn receipt_survives_its_text_form() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let key = ReceiptKey::from_bytes([3; 32]);
    let text = key.sign(9, delivery.receipt).to_string();
    let signed: SignedReceipt = text.parse().unwrap();
    let parsed = key.verify(9, "jobs", SEED, &signed).unwrap();
    assert_eq!(parsed.seq(), Seq(1));
    assert_eq!(queue.ack(parsed, T0), Ok(Seq(1)));
}

#[test]
fn groups_are_forgotten_when_their_last_message_settles() {
    let mut queue = queue(QueueOptions::default());
    for seq in 0..100 {
        let name = format!("group-{}", seq % 10);
        send(
            &mut queue,
            EnqueueMeta {
                group: Some(&name),
                ..meta(seq)
            },
            T0,
        );
    }
    assert_eq!(queue.group_count(), 10);
    while !queue.is_empty() {
        for delivery in queue.receive(100, None, T0).deliveries {
            queue.ack(delivery.receipt, T0).unwrap();
        }
    }
    assert_eq!(queue.group_count(), 0);
}

#[test]
fn leased_group_heads_leave_nothing_to_scan() {
    let mut queue = queue(QueueOptions::default());
    for seq in 0..10_000 {
        let name = format!("group-{}", seq % 1_000);
        queue
            .enqueue(
                EnqueueMeta {
                    group: Some(&name),
                    ..meta(seq)
                },
                T0,
            )
            .unwrap();
    }
    assert_eq!(queue.receive(usize::MAX, None, T0).deliveries.len(), 1_000);
    // 9,000 ready messages wait behind leased heads; none is in the deliverable index.
    assert_eq!(queue.stats(T0).ready, 9_000);
    assert!(!queue.has_ready());
    assert!(queue.receive(10, None, T0).deliveries.is_empty());
    queue.check_invariants();
}

#[test]
fn an_aborted_nack_leaves_the_lease_and_the_counters_as_they_were() {
    let mut queue = queue(with_dead_letter_queue());
    send(&mut queue, meta(1), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    let action = NackAction::DeadLetter {
        reason: "bad".into(),
    };
    let NackOutcome::Settled(settle) = queue.nack(delivery.receipt, action, T0).unwrap() else {
        panic!("a dead-letter nack settles");
    };
    assert_eq!(queue.settling_len(), 1);
    assert!(queue.check_ack(delivery.receipt, T0).is_err(), "settling");
    assert!(queue.abort_settle(settle.seq));
    queue.check_invariants();
    assert_eq!(
        queue.check_ack(delivery.receipt, T0),
        Ok(Seq(1)),
        "the lease holds"
    );
    let stats = queue.stats(T0);
    assert_eq!((stats.leased, stats.counters.nacked), (1, 0));
    assert_eq!(stats.counters.dead_lettered, 0);
    assert_eq!(queue.settling_len(), 0);
}

#[test]
fn an_aborted_expiry_fires_again_at_the_next_tick() {
    let mut queue = queue(QueueOptions {
        message_ttl_ms: Some(100),
        ..with_dead_letter_queue()
    });
    send(&mut queue, meta(1), T0);
    let settled = queue.tick(T0 + 100);
    assert_eq!(settled, [dead_lettered(1, 0, DeadLetterReason::Expired)]);
    assert!(queue.peek(10, T0 + 100).is_empty());
    assert!(queue.abort_settle(Seq(1)));
    queue.check_invariants();
    assert_eq!(queue.stats(T0 + 100).counters.expired, 0);
    assert_eq!(queue.next_deadline(), Some(T0 + 100), "its timer is back");
    assert_eq!(queue.tick(T0 + 101), settled);
    apply(&mut queue, &settled);
    assert_eq!(queue.stats(T0 + 101).counters.expired, 1);
    assert!(queue.is_empty());
}

#[test]
fn a_settling_group_head_holds_its_group_until_written() {
    let options = QueueOptions {
        max_deliveries: Some(1),
        lease_ms: 10,
        ..with_dead_letter_queue()
    };
    let mut queue = queue(options);
    for seq in [1, 2] {
        let meta = EnqueueMeta {
            group: Some("g"),
            ..meta(seq)
        };
        send(&mut queue, meta, T0);
    }
    assert_eq!(seqs(&queue.receive(1, None, T0).deliveries), [1]);
    // The lease runs out on the last delivery: seq 1 settles, but is not written yet.
    let received = queue.receive(1, None, T0 + 10);
    assert!(
        received.deliveries.is_empty(),
        "seq 2 waits behind its head"
    );
    assert_eq!(
        received.settled,
        [dead_lettered(1, 1, DeadLetterReason::MaxDeliveries)]
    );
    apply(&mut queue, &received.settled);
    assert_eq!(seqs(&queue.receive(1, None, T0 + 10).deliveries), [2]);
}
