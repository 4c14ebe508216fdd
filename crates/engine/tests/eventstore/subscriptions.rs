//! Persistent subscriptions: a group fed from `$all` into its queue, acks and nacks through
//! the queue API, parking after `max_deliveries`, live delivery of later events, and deletion.

use crate::*;
use wharf_engine::broker::{
    eventstore::{subscription_queue, SubscriptionDelivery, SubscriptionSettings},
    NackAction, ReceiveRequest, SendMessage, RECEIVE_MESSAGES_MAX,
};
use wharf_engine::queue::QueueOptions;
use wharf_engine::topic::{BindingSpec, Destination};

fn settings(stream_prefix: &str, from_end: bool) -> SubscriptionSettings {
    SubscriptionSettings {
        stream: None,
        type_prefix: None,
        stream_prefix: Some(stream_prefix.to_string()),
        from_end,
        max_deliveries: 2,
        lease_ms: 30_000,
    }
}

/// Receives until `count` deliveries came, long-polling: the manual clock never reaches a
/// receive's deadline, so each call returns when something is delivered.
async fn receive(engine: &Engine, group: &str, count: usize) -> Vec<SubscriptionDelivery> {
    let mut deliveries = Vec::new();
    while deliveries.len() < count {
        let wait = Duration::from_secs(10);
        let more = guard(engine.receive_subscription_events(
            group,
            (count - deliveries.len()).min(RECEIVE_MESSAGES_MAX),
            wait,
        ))
        .await
        .unwrap();
        deliveries.extend(more);
    }
    deliveries
}

fn receipts(deliveries: &[SubscriptionDelivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.receipt.clone()).collect()
}

async fn settle(engine: &Engine, group: &str, deliveries: &[SubscriptionDelivery], ack: bool) {
    let queue = subscription_queue(group);
    let receipts = receipts(deliveries);
    let results = match ack {
        true => guard(engine.ack(&queue, &receipts)).await.unwrap(),
        false => {
            let action = NackAction::Requeue {
                delay: Some(Duration::ZERO),
                error: Some("read model rejected it".into()),
            };
            guard(engine.nack(&queue, &receipts, action)).await.unwrap()
        }
    };
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_receives_acks_parks_after_max_deliveries_and_follows_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let events = (1..=3).map(|n| event(n, "OrderPlaced")).collect();
    append(&engine, "order-1", ExpectedVersion::NoStream, events).await;
    append(
        &engine,
        "invoice-1",
        ExpectedVersion::NoStream,
        vec![event(4, "InvoiceSent")],
    )
    .await;

    assert!(
        guard(engine.put_event_subscription("billing", settings("order-", false)))
            .await
            .unwrap()
    );
    assert!(
        !guard(engine.put_event_subscription("billing", settings("order-", false)))
            .await
            .unwrap()
    );
    let other = event_error(
        engine
            .put_event_subscription("billing", settings("invoice-", false))
            .await,
    );
    assert!(
        matches!(other, EventStoreError::SubscriptionConflict { .. }),
        "{other:?}"
    );
    let info = engine.event_subscription("billing").unwrap();
    assert_eq!(
        (info.queue.as_str(), info.parked_queue.as_str()),
        ("events-sub.billing", "events-sub.billing.parked")
    );

    let first = receive(&engine, "billing", 3).await;
    let delivered: Vec<String> = first.iter().map(|d| d.event.id.to_string()).collect();
    assert_eq!(
        delivered,
        [1, 2, 3].map(uuid),
        "in $all order, the other stream left out"
    );
    assert_eq!(
        positions(&first.iter().map(|d| d.event.clone()).collect::<Vec<_>>()),
        [0, 1, 2]
    );
    assert!(first
        .iter()
        .all(|d| d.delivery_count == 1 && d.event.stream == "order-1"));
    assert_eq!(&first[1].event.data[..], b"{\"n\":2}");
    settle(&engine, "billing", &first[..2], true).await;

    // The third fails twice and is parked.
    settle(&engine, "billing", &first[2..], false).await;
    let retried = receive(&engine, "billing", 1).await;
    assert_eq!(
        (retried[0].event.id.to_string(), retried[0].delivery_count),
        (uuid(3), 2)
    );
    settle(&engine, "billing", &retried, false).await;
    let parked = guard(engine.peek(&info.parked_queue, 10)).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        parked[0]
            .message
            .headers
            .get("position")
            .map(String::as_str),
        Some("2")
    );
    let stats = engine.queue_info(&info.queue).unwrap().stats;
    assert_eq!((stats.ready, stats.delayed, stats.leased), (0, 0, 0));

    // Events appended after the group was created are delivered, filtered the same way.
    append(
        &engine,
        "invoice-2",
        ExpectedVersion::NoStream,
        vec![event(5, "InvoiceSent")],
    )
    .await;
    let paid = append(
        &engine,
        "order-1",
        ExpectedVersion::Exact(2),
        vec![event(6, "OrderPaid")],
    )
    .await;
    let live = receive(&engine, "billing", 1).await;
    assert_eq!(
        (live[0].event.id.to_string(), live[0].event.position),
        (uuid(6), paid.position)
    );
    settle(&engine, "billing", &live, true).await;
    eventually("the checkpoint to reach the last event", || {
        engine.event_subscription("billing").unwrap().checkpoint == Some(paid.position)
    })
    .await;
    let nothing = guard(engine.receive_subscription_events("billing", 10, Duration::ZERO))
        .await
        .unwrap();
    assert!(nothing.is_empty(), "{nothing:?}");

    // A group that starts at the end sees only what comes after it.
    assert!(
        guard(engine.put_event_subscription("late", settings("order-", true)))
            .await
            .unwrap()
    );
    append(
        &engine,
        "order-2",
        ExpectedVersion::NoStream,
        vec![event(7, "OrderPlaced")],
    )
    .await;
    let late = receive(&engine, "late", 1).await;
    assert_eq!(late[0].event.id.to_string(), uuid(7));

    // Its queues go with the group, not on their own (the group would be left without them).
    for queue in [&info.queue, &info.parked_queue] {
        let refused = guard(engine.delete_queue(queue)).await;
        assert!(
            matches!(&refused, Err(EngineError::SubscriptionQueue { group, .. }) if group == "billing"),
            "{queue}: {refused:?}"
        );
        assert!(engine.queue_info(queue).is_ok(), "{queue}");
    }

    // Deleting a group removes it and both its queues, and later events do not bring it back.
    guard(engine.delete_event_subscription("billing"))
        .await
        .unwrap();
    let gone = event_error(engine.event_subscription("billing"));
    assert!(
        matches!(gone, EventStoreError::SubscriptionNotFound { .. }),
        "{gone:?}"
    );
    for queue in [&info.queue, &info.parked_queue] {
        let missing = engine.queue_info(queue);
        assert!(
            matches!(missing, Err(EngineError::QueueNotFound { .. })),
            "{queue}: {missing:?}"
        );
    }
    let gone = event_error(
        engine
            .receive_subscription_events("billing", 1, Duration::ZERO)
            .await,
    );
    assert!(
        matches!(gone, EventStoreError::SubscriptionNotFound { .. }),
        "{gone:?}"
    );
    append(
        &engine,
        "order-2",
        ExpectedVersion::Exact(0),
        vec![event(8, "OrderPaid")],
    )
    .await;
    let late = receive(&engine, "late", 1).await;
    assert_eq!(late[0].event.id.to_string(), uuid(8));
    assert!(engine.event_subscription("billing").is_err());
    assert!(engine.queue_info(&info.queue).is_err());
    let names: Vec<String> = engine
        .event_subscriptions()
        .into_iter()
        .map(|s| s.group)
        .collect();
    assert_eq!(names, ["late"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_after_a_restart_without_redelivering_acked_events() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    let events = (1..=3).map(|n| event(n, "OrderPlaced")).collect();
    append(&engine, "order-1", ExpectedVersion::NoStream, events).await;
    assert!(
        guard(engine.put_event_subscription("billing", settings("order-", false)))
            .await
            .unwrap()
    );
    let first = receive(&engine, "billing", 3).await;
    settle(&engine, "billing", &first[..2], true).await;
    eventually("the feeder to checkpoint the third event", || {
        engine.event_subscription("billing").unwrap().checkpoint == Some(2)
    })
    .await;
    close(engine, store).await;

    let (engine, store) = open(dir.path(), &clock).await;
    assert_eq!(
        engine.event_subscription("billing").unwrap().checkpoint,
        Some(2)
    );
    append(
        &engine,
        "order-2",
        ExpectedVersion::NoStream,
        vec![event(4, "OrderPlaced")],
    )
    .await;
    // A restart forgets leases (keeping delivery counts): the third, leased when the engine
    // closed, is ready again, and the feeder runs again for the fourth.
    let mut fed = receive(&engine, "billing", 2).await;
    fed.sort_by_key(|d| d.event.position);
    let fed_ids: Vec<(String, u32)> = (fed.iter())
        .map(|d| (d.event.id.to_string(), d.delivery_count))
        .collect();
    assert_eq!(fed_ids, [(uuid(3), 2), (uuid(4), 1)]);
    settle(&engine, "billing", &fed, true).await;
    let nothing = guard(engine.receive_subscription_events("billing", 10, Duration::ZERO))
        .await
        .unwrap();
    assert!(
        nothing.is_empty(),
        "acked events are not delivered again: {nothing:?}"
    );
    close(engine, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_over_one_stream_gets_each_event_once_in_order_and_a_recreated_group_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    for batch in 0..6u64 {
        let events = (0..100).map(|i| event(batch * 100 + i, "Ticked")).collect();
        append(&engine, "clock-9", ExpectedVersion::Any, events).await;
        // A stream whose id the group's starts with, which it must still leave out.
        append(
            &engine,
            "clock-90",
            ExpectedVersion::Any,
            vec![event(10_000 + batch, "Ticked")],
        )
        .await;
    }
    let settings = SubscriptionSettings {
        stream: Some("clock-9".into()),
        type_prefix: None,
        stream_prefix: None,
        from_end: false,
        max_deliveries: 5,
        lease_ms: 30_000,
    };
    let wanted: Vec<String> = (0..600).map(uuid).collect();
    for round in 0..2 {
        assert!(
            guard(engine.put_event_subscription("ticks", settings.clone()))
                .await
                .unwrap()
        );
        let mut delivered = Vec::new();
        while delivered.len() < 600 {
            let batch = receive(&engine, "ticks", 100).await;
            settle(&engine, "ticks", &batch, true).await;
            delivered.extend(batch.into_iter().map(|d| d.event.id.to_string()));
        }
        assert_eq!(
            delivered, wanted,
            "round {round}: each event once, in order"
        );
        let last = engine.events_end() - 1;
        eventually("the checkpoint to reach the end of $all", || {
            engine.event_subscription("ticks").unwrap().checkpoint == Some(last)
        })
        .await;
        let nothing = guard(engine.receive_subscription_events("ticks", 10, Duration::ZERO))
            .await
            .unwrap();
        assert!(nothing.is_empty(), "round {round}: {nothing:?}");
        guard(engine.delete_event_subscription("ticks"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_while_its_feeder_is_busy_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Keeps the feeder busy: every append wakes it to feed and write its checkpoint.
    let writer = {
        let (engine, writing) = (engine.clone(), writing.clone());
        tokio::spawn(async move {
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let events = vec![unnamed("OrderNoted")];
                guard(engine.append_events("order-churn", ExpectedVersion::Any, events))
                    .await
                    .unwrap();
            }
        })
    };
    for round in 0..100 {
        let created = guard(engine.put_event_subscription("churn", settings("order-", false)))
            .await
            .unwrap();
        assert!(
            created,
            "round {round}: the group deleted in the round before is gone"
        );
        eventually("the feeder to checkpoint", || {
            engine
                .event_subscription("churn")
                .unwrap()
                .checkpoint
                .is_some()
        })
        .await;
        guard(engine.delete_event_subscription("churn"))
            .await
            .unwrap();
        let gone = engine.event_subscription("churn");
        assert!(gone.is_err(), "round {round}: {gone:?}");
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    guard(writer).await.unwrap();
}

/// A node holds at most `event_subscriptions_max` groups, across restarts: a new group past it
/// is refused with nothing created, an existing group put again is not a new one, and a delete
/// makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_past_the_limit_are_refused_until_one_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let config = || EngineConfig {
        event_subscriptions_max: 2,
        ..EngineConfig::default()
    };
    let (engine, store) = open_with(dir.path(), &clock, config()).await;
    for group in ["a", "b"] {
        assert!(
            guard(engine.put_event_subscription(group, settings("order-", false)))
                .await
                .unwrap()
        );
    }
    let refused = guard(engine.put_event_subscription("c", settings("order-", false))).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::LimitReached {
                limit: "limits.event_subscriptions_max",
                max: 2
            })
        ),
        "{refused:?}"
    );
    assert!(engine.event_subscription("c").is_err());
    let queues = engine.list_queues();
    assert!(
        !queues
            .iter()
            .any(|queue| queue.name.starts_with(&subscription_queue("c"))),
        "{queues:?}"
    );
    assert!(
        !guard(engine.put_event_subscription("a", settings("order-", false)))
            .await
            .unwrap(),
        "an existing group with its settings is not a new one"
    );
    close(engine, store).await;

    let (engine, store) = open_with(dir.path(), &clock, config()).await;
    let refused = guard(engine.put_event_subscription("c", settings("order-", false))).await;
    assert!(
        matches!(refused, Err(EngineError::LimitReached { .. })),
        "{refused:?}"
    );
    guard(engine.delete_event_subscription("b")).await.unwrap();
    assert!(
        guard(engine.put_event_subscription("c", settings("order-", false)))
            .await
            .unwrap()
    );
    let groups: Vec<String> = engine
        .event_subscriptions()
        .into_iter()
        .map(|g| g.group)
        .collect();
    assert_eq!(groups, ["a", "c"]);
    close(engine, store).await;
}

fn foreign() -> SendMessage {
    SendMessage {
        body: "not an event".into(),
        ..SendMessage::default()
    }
}

/// Only the feeder writes a group's queues (no binding routes there) and only the group sets
/// their options; a message that reaches the queue another way (here dead-lettered there by
/// another queue) is parked when it comes up, and the events behind it are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_queue_takes_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let info = guard(engine.put_event_subscription("billing", settings("order-", false)))
        .await
        .map(|_| engine.event_subscription("billing").unwrap())
        .unwrap();
    guard(engine.put_topic("t", Default::default()))
        .await
        .unwrap();
    for queue in [&info.queue, &info.parked_queue] {
        let refused = guard(engine.send(queue, vec![foreign()])).await;
        assert!(
            matches!(&refused, Err(EngineError::SubscriptionQueue { group, .. }) if group == "billing"),
            "{queue}: {refused:?}"
        );
        let before = engine.queue_info(queue).unwrap();
        let refused = guard(engine.put_queue(queue, QueueOptions::default())).await;
        assert!(
            matches!(&refused, Err(EngineError::SubscriptionQueue { .. })),
            "{queue}: {refused:?}"
        );
        assert_eq!(engine.queue_info(queue).unwrap(), before, "{queue}");
        let spec = BindingSpec {
            pattern: "#".to_string(),
            syntax: Default::default(),
            filter: None,
            headers: None,
            destination: Destination::Queue(queue.clone()),
        };
        let refused = guard(engine.bind("t", spec)).await;
        assert!(
            matches!(&refused, Err(EngineError::SubscriptionQueue { .. })),
            "{queue}: {refused:?}"
        );
    }

    // Another queue whose dead letters go to the group's queue.
    let options = QueueOptions {
        dead_letter_queue: Some(info.queue.parse().unwrap()),
        ..QueueOptions::default()
    };
    guard(engine.put_queue("side", options)).await.unwrap();
    guard(engine.send("side", vec![foreign()])).await.unwrap();
    let request = ReceiveRequest {
        max_messages: 1,
        wait: Duration::ZERO,
        lease: None,
    };
    let leased = guard(engine.receive("side", request)).await.unwrap();
    let rejected = NackAction::DeadLetter { error: None };
    let receipts = [leased[0].receipt.clone()];
    guard(engine.nack("side", &receipts, rejected))
        .await
        .unwrap();
    eventually("the foreign message to reach the group's queue", || {
        engine.queue_info(&info.queue).unwrap().stats.ready == 1
    })
    .await;

    append(
        &engine,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(1, "OrderPlaced")],
    )
    .await;
    let delivered = receive(&engine, "billing", 1).await;
    assert_eq!(delivered[0].event.id.to_string(), uuid(1));
    let parked = guard(engine.peek(&info.parked_queue, 10)).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(&parked[0].message.body[..], b"not an event");
    let reason = parked[0].message.dead_letter.as_ref();
    let reason = reason
        .and_then(|d| d.last_error.as_deref())
        .unwrap_or_default();
    assert!(
        reason.starts_with("not an event of the subscription"),
        "{reason}"
    );
}
