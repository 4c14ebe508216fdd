//! One test per lifecycle rule: TTL, delay, dedup, overflow, replay, peek, purge, stats.

use super::support::*;
use crate::queue::*;

#[test]
fn expired_message_is_never_delivered_even_without_a_tick() {
    let mut queue = queue(QueueOptions::default());
    send(
        &mut queue,
        EnqueueMeta {
            expires_at: Some(T0 + 50),
            ..meta(1)
        },
        T0,
    );
    send(&mut queue, meta(2), T0);
    assert_eq!(queue.peek(10, T0 + 50), [Seq(2)]);
    let received = queue.receive(10, None, T0 + 50);
    assert_eq!(seqs(&received.deliveries), [2]);
    assert_eq!(received.settled, [dropped(1, 0, DeadLetterReason::Expired)]);
}

#[test]
fn expired_message_goes_to_the_dead_letter_queue_when_there_is_one() {
    let mut queue = queue(QueueOptions {
        message_ttl_ms: Some(100),
        ..with_dead_letter_queue()
    });
    send(&mut queue, meta(1), T0);
    assert_eq!(queue.next_deadline(), Some(T0 + 100));
    assert!(queue.tick(T0 + 99).is_empty());
    let settled = queue.tick(T0 + 100);
    assert_eq!(settled, [dead_lettered(1, 0, DeadLetterReason::Expired)]);
    apply(&mut queue, &settled);
    let counters = queue.stats(T0 + 100).counters;
    assert_eq!(
        (counters.expired, counters.dead_lettered, counters.dropped),
        (1, 1, 0)
    );
}

#[test]
fn expired_message_is_dropped_and_counted_without_a_dead_letter_queue() {
    let mut queue = queue(QueueOptions {
        message_ttl_ms: Some(100),
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    let settled = queue.tick(T0 + 100);
    assert_eq!(settled, [dropped(1, 0, DeadLetterReason::Expired)]);
    apply(&mut queue, &settled);
    let counters = queue.stats(T0 + 100).counters;
    assert_eq!(
        (counters.expired, counters.dead_lettered, counters.dropped),
        (1, 0, 1)
    );
}

#[test]
fn the_earlier_of_message_expiry_and_queue_ttl_wins() {
    let mut queue = queue(QueueOptions {
        message_ttl_ms: Some(100),
        ..QueueOptions::default()
    });
    send(
        &mut queue,
        EnqueueMeta {
            expires_at: Some(T0 + 40),
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            expires_at: Some(T0 + 400),
            ..meta(2)
        },
        T0,
    );
    assert_eq!(queue.message(Seq(1)).unwrap().expires_at, Some(T0 + 40));
    assert_eq!(queue.message(Seq(2)).unwrap().expires_at, Some(T0 + 100));
}

#[test]
fn leased_message_outlives_its_expiry_until_the_lease_ends() {
    let options = QueueOptions {
        lease_ms: 100,
        ..QueueOptions::default()
    };
    let mut queue = queue(options);
    send(
        &mut queue,
        EnqueueMeta {
            expires_at: Some(T0 + 50),
            ..meta(1)
        },
        T0,
    );
    let delivery = queue.receive(1, None, T0).deliveries[0];
    assert!(queue.tick(T0 + 60).is_empty());
    queue.extend(delivery.receipt, 100, T0 + 60).unwrap();
    assert!(queue.receive(1, None, T0 + 60).deliveries.is_empty());
    // Once the lease ends, the expired message is settled instead of returning.
    assert_eq!(
        queue.tick(T0 + 160),
        [dropped(1, 1, DeadLetterReason::Expired)]
    );
}

#[test]
fn delayed_message_is_hidden_until_deliver_at() {
    let mut queue = queue(QueueOptions::default());
    send(
        &mut queue,
        EnqueueMeta {
            deliver_at: Some(T0 + 1_000),
            ..meta(1)
        },
        T0,
    );
    assert_eq!(
        queue.message(Seq(1)).unwrap().status,
        MessageStatus::Delayed { due: T0 + 1_000 }
    );
    assert_eq!(queue.next_deadline(), Some(T0 + 1_000));
    assert!(queue.receive(1, None, T0 + 999).deliveries.is_empty());
    assert_eq!(seqs(&queue.receive(1, None, T0 + 1_000).deliveries), [1]);
}

#[test]
fn deliver_at_in_the_past_is_ready_at_once() {
    let mut queue = queue(QueueOptions::default());
    send(
        &mut queue,
        EnqueueMeta {
            deliver_at: Some(T0 - 5),
            ..meta(1)
        },
        T0,
    );
    assert_eq!(queue.message(Seq(1)).unwrap().status, MessageStatus::Ready);
}

#[test]
fn duplicate_within_the_window_is_not_enqueued_again() {
    let mut queue = queue(QueueOptions {
        dedup_window_ms: 1_000,
        ..QueueOptions::default()
    });
    let key = Some(dedup_key("order-1"));
    send(
        &mut queue,
        EnqueueMeta {
            dedup_key: key,
            ..meta(1)
        },
        T0,
    );
    assert_eq!(
        queue.find_duplicate(dedup_key("order-1"), T0 + 999),
        Some(Seq(1))
    );
    let outcome = queue
        .enqueue(
            EnqueueMeta {
                dedup_key: key,
                ..meta(2)
            },
            T0 + 999,
        )
        .unwrap();
    assert_eq!(
        outcome,
        EnqueueOutcome::Duplicate {
            original_seq: Seq(1)
        }
    );
    assert_eq!(queue.len(), 1);
    // Settling the original does not end the window.
    let delivery = queue.receive(1, None, T0 + 999).deliveries[0];
    queue.ack(delivery.receipt, T0 + 999).unwrap();
    let outcome = queue
        .enqueue(
            EnqueueMeta {
                dedup_key: key,
                ..meta(3)
            },
            T0 + 999,
        )
        .unwrap();
    assert_eq!(
        outcome,
        EnqueueOutcome::Duplicate {
            original_seq: Seq(1)
        }
    );
    assert_eq!(queue.stats(T0).counters.duplicates, 2);
}

#[test]
fn same_id_after_the_window_is_a_new_message() {
    let mut queue = queue(QueueOptions {
        dedup_window_ms: 1_000,
        ..QueueOptions::default()
    });
    let key = Some(dedup_key("order-1"));
    send(
        &mut queue,
        EnqueueMeta {
            dedup_key: key,
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            dedup_key: key,
            ..meta(2)
        },
        T0 + 1_000,
    );
    assert_eq!(
        queue.find_duplicate(dedup_key("order-1"), T0 + 1_500),
        Some(Seq(2))
    );
    assert_eq!(queue.len(), 2);
}

#[test]
fn dedup_window_forgets_old_ids_on_tick() {
    let mut queue = queue(QueueOptions {
        dedup_window_ms: 1_000,
        ..QueueOptions::default()
    });
    for seq in 0..10 {
        let key = dedup_key(&format!("id-{seq}"));
        send(
            &mut queue,
            EnqueueMeta {
                dedup_key: Some(key),
                ..meta(seq)
            },
            T0 + seq * 100,
        );
    }
    assert_eq!(queue.dedup_len(), 10);
    queue.tick(T0 + 1_450);
    assert_eq!(queue.dedup_len(), 5, "ids sent at T0+500.. remain");
}

#[test]
fn dedup_window_of_zero_turns_dedup_off() {
    let mut queue = queue(QueueOptions {
        dedup_window_ms: 0,
        ..QueueOptions::default()
    });
    let key = Some(dedup_key("same"));
    send(
        &mut queue,
        EnqueueMeta {
            dedup_key: key,
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            dedup_key: key,
            ..meta(2)
        },
        T0,
    );
    assert_eq!(queue.dedup_len(), 0);
}

#[test]
fn overflow_reject_refuses_sends_when_full() {
    let mut queue = queue(QueueOptions {
        max_length: Some(2),
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    assert_eq!(
        queue.enqueue(meta(3), T0),
        Err(QueueFull {
            max_length: 2,
            len: 2
        })
    );
    assert_eq!(queue.len(), 2);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    assert!(
        !queue.can_accept(1),
        "leased messages count towards max_length"
    );
    queue.ack(delivery.receipt, T0).unwrap();
    send(&mut queue, meta(3), T0);
}

#[test]
fn overflow_drop_oldest_dead_letters_the_oldest_ready_message() {
    let options = QueueOptions {
        max_length: Some(3),
        overflow: Overflow::DropOldest,
        ..with_dead_letter_queue()
    };
    let mut queue = queue(options);
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    send(&mut queue, meta(3), T0);
    // Seq 1 is leased, so seq 2 is the oldest ready message.
    assert_eq!(seqs(&queue.receive(1, None, T0).deliveries), [1]);
    let outcome = queue.enqueue(meta(4), T0).unwrap();
    let evicted = vec![dead_lettered(2, 0, DeadLetterReason::Overflow)];
    assert_eq!(
        outcome,
        EnqueueOutcome::Accepted {
            evicted: evicted.clone()
        }
    );
    assert_eq!(
        queue.len(),
        4,
        "the evicted message stays until its settlement is written"
    );
    apply(&mut queue, &evicted);
    assert_eq!(queue.len(), 3);
}

#[test]
fn overflow_drop_oldest_refuses_when_no_message_is_ready() {
    let options = QueueOptions {
        max_length: Some(1),
        overflow: Overflow::DropOldest,
        ..QueueOptions::default()
    };
    let mut queue = queue(options);
    send(
        &mut queue,
        EnqueueMeta {
            deliver_at: Some(T0 + 10),
            ..meta(1)
        },
        T0,
    );
    assert_eq!(
        queue.enqueue(meta(2), T0),
        Err(QueueFull {
            max_length: 1,
            len: 1
        })
    );
}

#[test]
fn a_written_send_applies_even_when_a_receive_took_the_messages_it_would_evict() {
    let options = QueueOptions {
        max_length: Some(2),
        overflow: Overflow::DropOldest,
        ..with_dead_letter_queue()
    };
    let mut queue = queue(options);
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    assert!(
        queue.can_accept(1),
        "checked before writing: seq 1 can be evicted"
    );
    // While the record is being written, a receive leases both messages.
    assert_eq!(seqs(&queue.receive(2, None, T0).deliveries), [1, 2]);
    let evicted = queue.apply_enqueued(meta(3), T0);
    queue.check_invariants();
    assert!(evicted.is_empty(), "leased messages are never evicted");
    assert_eq!(
        queue.len(),
        3,
        "over max_length, as replay of the same log would be"
    );
}

#[test]
fn a_written_send_applies_after_max_length_was_lowered() {
    let options = QueueOptions {
        max_length: Some(10),
        overflow: Overflow::Reject,
        ..QueueOptions::default()
    };
    let mut queue = queue(options.clone());
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    assert!(queue.can_accept(1));
    let lowered = QueueOptions {
        max_length: Some(1),
        ..options
    };
    queue.set_options(lowered).unwrap();
    assert!(queue.apply_enqueued(meta(3), T0).is_empty());
    queue.check_invariants();
    assert_eq!(queue.len(), 3);
}

#[test]
fn a_durable_settle_applies_whatever_the_status() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    let delivery = queue.receive(1, None, T0).deliveries[0];
    assert_eq!(queue.check_ack(delivery.receipt, T0), Ok(Seq(1)));
    assert_eq!(queue.len(), 2, "checking changes nothing");
    assert!(queue.apply_settled(Seq(1), SettleReason::Acked));
    assert!(
        queue.apply_settled(Seq(2), SettleReason::Purged),
        "ready too"
    );
    assert!(
        !queue.apply_settled(Seq(2), SettleReason::Purged),
        "already gone"
    );
    queue.check_invariants();
    assert!(queue.is_empty());
    let counters = queue.stats(T0).counters;
    assert_eq!((counters.acked, counters.purged), (1, 1));
}

#[test]
fn can_accept_refuses_a_whole_batch_that_does_not_fit() {
    let mut queue = queue(QueueOptions {
        max_length: Some(5),
        ..QueueOptions::default()
    });
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    assert!(queue.can_accept(3));
    assert!(!queue.can_accept(4));
    let options = QueueOptions {
        max_length: Some(5),
        overflow: Overflow::DropOldest,
        ..QueueOptions::default()
    };
    queue.set_options(options).unwrap();
    assert!(
        queue.can_accept(5),
        "two ready messages can make room for two"
    );
    assert!(
        !queue.can_accept(6),
        "a batch longer than max_length would evict itself"
    );
}

#[test]
fn replay_forgets_leases_but_keeps_delivery_counts() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    let delivery = queue.receive(1, None, T0 + 5).deliveries[0];
    // The restarted queue replays the three records the engine wrote.
    let mut restarted = QueueState::new(QueueOptions::default(), SEED + 1).unwrap();
    restarted.replay_enqueued(meta(1), T0);
    restarted.replay_enqueued(meta(2), T0);
    assert!(restarted.replay_delivered(Seq(1), 1, T0 + 5));
    assert!(restarted.tick(T0 + 6).is_empty());
    assert_eq!(restarted.stats(T0 + 6).leased, 0);
    let view = restarted.message(Seq(1)).unwrap();
    assert_eq!(
        (view.status, view.delivery_count),
        (MessageStatus::Ready, 1)
    );
    assert_eq!(view.first_delivered_at, Some(T0 + 5));
    let again = restarted.receive(1, None, T0 + 6).deliveries[0];
    assert_eq!(
        (again.seq, again.delivery_count, again.first_delivered_at),
        (Seq(1), 2, T0 + 5)
    );
    assert!(
        restarted.ack(delivery.receipt, T0 + 6).is_err(),
        "old receipts die with the restart"
    );
    assert_eq!(
        restarted.stats(T0 + 6).counters.sent,
        0,
        "replay does not count"
    );
}

#[test]
fn replay_applies_settles_and_rebuilds_groups_delays_and_dedup() {
    let options = QueueOptions {
        dedup_window_ms: 1_000,
        ..QueueOptions::default()
    };
    let mut restarted = queue(options);
    let key = Some(dedup_key("x"));
    restarted.replay_enqueued(
        EnqueueMeta {
            group: Some("g"),
            dedup_key: key,
            ..meta(1)
        },
        T0,
    );
    restarted.replay_enqueued(
        EnqueueMeta {
            group: Some("g"),
            ..meta(2)
        },
        T0,
    );
    restarted.replay_enqueued(
        EnqueueMeta {
            deliver_at: Some(T0 + 100),
            ..meta(3)
        },
        T0,
    );
    assert!(restarted.replay_settled(Seq(1)));
    assert!(!restarted.replay_settled(Seq(1)));
    assert!(!restarted.replay_delivered(Seq(1), 1, T0));
    assert_eq!(
        restarted.find_duplicate(dedup_key("x"), T0 + 999),
        Some(Seq(1))
    );
    assert_eq!(seqs(&restarted.receive(10, None, T0 + 1).deliveries), [2]);
    assert_eq!(seqs(&restarted.receive(10, None, T0 + 100).deliveries), [3]);
}

#[test]
fn peek_shows_delivery_order_without_leasing() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    send(
        &mut queue,
        EnqueueMeta {
            priority: priority(3),
            ..meta(2)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("g"),
            ..meta(3)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            group: Some("g"),
            ..meta(4)
        },
        T0,
    );
    assert_eq!(queue.peek(10, T0), [Seq(2), Seq(1), Seq(3)]);
    assert_eq!(queue.peek(1, T0), [Seq(2)]);
    assert_eq!(queue.stats(T0).leased, 0);
}

#[test]
fn purge_settles_ready_and_delayed_but_keeps_leased() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0);
    send(
        &mut queue,
        EnqueueMeta {
            deliver_at: Some(T0 + 100),
            ..meta(3)
        },
        T0,
    );
    let delivery = queue.receive(1, None, T0).deliveries[0];
    assert_eq!(queue.purge(), [Seq(2), Seq(3)]);
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.stats(T0).counters.purged, 2);
    assert_eq!(queue.ack(delivery.receipt, T0), Ok(Seq(1)));
}

#[test]
fn stats_count_states_counters_and_the_oldest_ready_age() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    send(&mut queue, meta(2), T0 + 10);
    send(&mut queue, meta(3), T0 + 20);
    send(
        &mut queue,
        EnqueueMeta {
            deliver_at: Some(T0 + 900),
            ..meta(4)
        },
        T0 + 30,
    );
    let delivery = queue.receive(1, None, T0 + 40).deliveries[0];
    queue.ack(delivery.receipt, T0 + 40).unwrap();
    queue.receive(1, None, T0 + 40);
    let stats = queue.stats(T0 + 100);
    assert_eq!((stats.ready, stats.delayed, stats.leased), (1, 1, 1));
    assert_eq!(stats.oldest_ready_age_ms, Some(80), "seq 3, sent at T0+20");
    let counters = stats.counters;
    assert_eq!(
        (counters.sent, counters.delivered, counters.acked),
        (4, 2, 1)
    );
    assert_eq!(queue.len(), 3);
}

#[test]
fn next_deadline_is_the_earliest_timer() {
    let mut queue = queue(QueueOptions {
        lease_ms: 500,
        ..QueueOptions::default()
    });
    assert_eq!(queue.next_deadline(), None);
    send(
        &mut queue,
        EnqueueMeta {
            deliver_at: Some(T0 + 900),
            ..meta(1)
        },
        T0,
    );
    send(
        &mut queue,
        EnqueueMeta {
            expires_at: Some(T0 + 700),
            ..meta(2)
        },
        T0,
    );
    send(&mut queue, meta(3), T0);
    assert_eq!(queue.next_deadline(), Some(T0 + 700));
    queue.receive(2, None, T0);
    assert_eq!(
        queue.next_deadline(),
        Some(T0 + 500),
        "the two leases end first"
    );
}

#[test]
fn set_options_applies_to_later_decisions_and_is_validated() {
    let mut queue = queue(QueueOptions::default());
    send(&mut queue, meta(1), T0);
    let shorter = QueueOptions {
        lease_ms: 5,
        ..QueueOptions::default()
    };
    queue.set_options(shorter).unwrap();
    assert_eq!(
        queue.receive(1, None, T0).deliveries[0].lease_deadline,
        T0 + 5
    );
    let bad = QueueOptions {
        lease_ms: 0,
        ..QueueOptions::default()
    };
    assert_eq!(
        queue.set_options(bad).unwrap_err().field(),
        crate::queue::OptionField::LeaseMs
    );
    assert_eq!(queue.options().lease_ms, 5);
    assert!(QueueState::new(
        QueueOptions {
            max_length: Some(0),
            ..QueueOptions::default()
        },
        1
    )
    .is_err());
}

#[test]
fn the_id_index_finds_live_messages_and_stays_within_twice_the_queue() {
    let mut state = queue(QueueOptions::default());
    let key = |i: u64| DedupKey::of_text(&format!("id-{i}"));
    assert_eq!(
        state.seqs_with_id(key(0)),
        None,
        "no index before the first lookup"
    );
    assert!(
        state.start_id_index().is_empty(),
        "an empty queue has nothing to read"
    );
    for round in 0..20u64 {
        for i in round * 500..(round + 1) * 500 {
            state.apply_enqueued(meta(i), T0);
            state.index_id(|| key(i), Seq(i));
        }
        // Swept as it grows: settled entries never pile up past the bound.
        assert!(state.id_index_len() <= 2 * state.len() + 1024);
        // Keep the last 10 of each round, settle the rest.
        for seq in state.purgeable() {
            if seq.0 < (round + 1) * 500 - 10 {
                state.apply_settled(seq, SettleReason::Purged);
            }
        }
    }
    assert_eq!(state.seqs_with_id(key(9_999)), Some(vec![Seq(9_999)]));
    let settled = state.seqs_with_id(key(0));
    assert_eq!(settled, Some(vec![]), "a settled message is not found");
    // Started again from scratch, it lists the live messages to read and index.
    state.drop_id_index();
    let live: Vec<Seq> = state
        .start_id_index()
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(live.len(), state.len());
    let unread = state.seqs_with_id(key(9_999));
    assert_eq!(unread, Some(vec![]), "not indexed until read");
}
