//! The queue engine end to end over a real store, with a manual clock: one test per rule, and
//! restarts that reopen the engine on the same directory.

use bytes::Bytes;
use std::{future::Future, path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{Delivery, NackAction, ReceiptFailure, ReceiveRequest, SendMessage},
    clock::ManualClock,
    error::{DefinitionError, Field, FieldProblem, MessageField, NameProblem, ResourceKind},
    queue::{OptionField, Overflow, QueueOptions, ReceiptError, ReceiptParseError},
    Engine, EngineConfig, EngineError,
};
use wharf_model::{message::DeadLetterReason, QueueName};
use wharf_storage::{LogConfig, Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

struct Broker {
    engine: Engine,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
}

/// A store whose logs rotate every `segment_bytes`, so that reclaim has segments to free.
fn segments_of(segment_bytes: u64) -> StoreConfig {
    StoreConfig {
        log: LogConfig {
            segment_bytes,
            ..LogConfig::default()
        },
        ..StoreConfig::default()
    }
}

async fn open(dir: &Path, clock: Arc<ManualClock>) -> Broker {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    let engine = Engine::open(store.clone(), clock.clone(), EngineConfig::default())
        .await
        .unwrap();
    Broker {
        engine,
        store,
        clock,
    }
}

impl Broker {
    async fn restart(self, dir: &Path) -> Broker {
        self.engine.close();
        self.store.close().await.unwrap();
        let clock = self.clock.clone();
        drop(self);
        open(dir, clock).await
    }

    fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    async fn send(&self, queue: &str, bodies: &[&str]) {
        let batch = bodies.iter().map(|b| message(b)).collect();
        self.engine.send(queue, batch).await.unwrap();
    }

    async fn receive(&self, queue: &str, max: usize) -> Vec<Delivery> {
        self.receive_with(queue, max, None).await
    }

    async fn receive_with(&self, queue: &str, max: usize, lease_ms: Option<u64>) -> Vec<Delivery> {
        self.engine
            .receive(
                queue,
                ReceiveRequest {
                    max_messages: max,
                    wait: Duration::ZERO,
                    lease: lease_ms.map(Duration::from_millis),
                },
            )
            .await
            .unwrap()
    }

    /// Long-polls (in manual time, so only a state change wakes it) with a real-time guard.
    async fn receive_when_ready(&self, queue: &str) -> Vec<Delivery> {
        let request = ReceiveRequest {
            max_messages: 10,
            wait: Duration::from_secs(20),
            lease: None,
        };
        guard(self.engine.receive(queue, request)).await.unwrap()
    }

    async fn ack(&self, queue: &str, deliveries: &[Delivery]) {
        let results = self.engine.ack(queue, &receipts(deliveries)).await.unwrap();
        assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    }
}

async fn guard<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the engine should have woken this call")
}

fn message(body: &str) -> SendMessage {
    SendMessage {
        body: Bytes::copy_from_slice(body.as_bytes()),
        ..SendMessage::default()
    }
}

fn bodies(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8(d.message.body.to_vec()).unwrap())
        .collect()
}

fn receipts(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.receipt.clone()).collect()
}

fn options() -> QueueOptions {
    QueueOptions {
        retry_backoff_ms: 0,
        ..QueueOptions::default()
    }
}

async fn broker_with(queue: &str, options: QueueOptions) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), ManualClock::new(START)).await;
    assert!(broker.engine.put_queue(queue, options).await.unwrap());
    (dir, broker)
}

#[tokio::test]
async fn acked_messages_never_return_and_confirmed_ones_survive_restart() {
    let (dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["a", "b", "c"]).await;
    let first = broker.receive("jobs", 2).await;
    assert_eq!(bodies(&first), ["a", "b"]);
    broker.ack("jobs", &first[..1]).await;
    let broker = broker.restart(dir.path()).await;
    // "a" was acked; "b" was leased (leases do not survive a restart); "c" was ready.
    let after = broker.receive("jobs", 10).await;
    assert_eq!(bodies(&after), ["b", "c"]);
    assert_eq!(
        after[0].delivery_count, 2,
        "delivery counts survive restart"
    );
    broker.ack("jobs", &after).await;
    let broker = broker.restart(dir.path()).await;
    assert!(broker.receive("jobs", 10).await.is_empty());
    let stats = broker.engine.queue_info("jobs").unwrap().stats;
    assert_eq!((stats.ready, stats.leased, stats.delayed), (0, 0, 0));
}

#[tokio::test]
async fn a_first_delivery_from_memory_and_a_redelivery_from_the_log_give_the_same_message() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let sent = SendMessage {
        id: Some("order-7".into()),
        body: Bytes::from_static(b"\x00\xffbody"),
        content_type: Some("application/octet-stream".into()),
        headers: [("k".to_string(), "v \"quoted\"".to_string())].into(),
        priority: Some(4),
        ttl: Some(Duration::from_secs(3600)),
        group: Some("g".into()),
        correlation_id: Some("c".into()),
        reply_to: Some("replies".into()),
        ..SendMessage::default()
    };
    broker.engine.send("jobs", vec![sent]).await.unwrap();
    // The first delivery takes the message kept by the send; the second, after a nack,
    // reads and decodes its record.
    let first = broker.receive("jobs", 1).await;
    let requeue = NackAction::Requeue {
        delay: Some(Duration::ZERO),
        error: None,
    };
    broker
        .engine
        .nack("jobs", &receipts(&first), requeue)
        .await
        .unwrap();
    let second = broker.receive("jobs", 1).await;
    assert_eq!(second[0].message, first[0].message);
    assert_eq!(first[0].message.headers["k"], "v \"quoted\"");
    assert_eq!(second[0].delivery_count, 2);
}

#[tokio::test]
async fn a_receive_of_fresh_and_redelivered_messages_keeps_lease_order() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["a", "b"]).await;
    let first = broker.receive("jobs", 2).await;
    let requeue = NackAction::Requeue {
        delay: Some(Duration::ZERO),
        error: None,
    };
    broker
        .engine
        .nack("jobs", &receipts(&first), requeue)
        .await
        .unwrap();
    let urgent = SendMessage {
        priority: Some(9),
        ..message("c")
    };
    broker.engine.send("jobs", vec![urgent]).await.unwrap();
    broker.send("jobs", &["d"]).await;
    // "a" and "b" are read from the log again, "c" and "d" come as they were sent: in lease
    // order all the same, the urgent one first.
    assert_eq!(
        bodies(&broker.receive("jobs", 4).await),
        ["c", "a", "b", "d"]
    );
}

#[tokio::test]
async fn receipts_from_before_a_restart_are_stale() {
    let (dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["a"]).await;
    let leased = broker.receive("jobs", 1).await;
    let broker = broker.restart(dir.path()).await;
    let results = broker.engine.ack("jobs", &receipts(&leased)).await.unwrap();
    assert!(results[0].error.is_some(), "old receipt must not ack");
    assert_eq!(bodies(&broker.receive("jobs", 1).await), ["a"]);
}

#[tokio::test]
async fn priority_first_then_fifo() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let batch = [("low-1", 0), ("high", 9), ("low-2", 0), ("mid", 5)]
        .iter()
        .map(|(body, priority)| SendMessage {
            priority: Some(*priority),
            ..message(body)
        })
        .collect();
    broker.engine.send("jobs", batch).await.unwrap();
    assert_eq!(
        bodies(&broker.receive("jobs", 10).await),
        ["high", "mid", "low-1", "low-2"]
    );
}

#[tokio::test]
async fn long_poll_wakes_when_a_message_arrives() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let engine = broker.engine.clone();
    let waiting = tokio::spawn(async move {
        let request = ReceiveRequest {
            max_messages: 1,
            wait: Duration::from_secs(20),
            lease: None,
        };
        engine.receive("jobs", request).await.unwrap()
    });
    tokio::task::yield_now().await;
    broker.send("jobs", &["hello"]).await;
    let got = guard(waiting).await.unwrap();
    assert_eq!(bodies(&got), ["hello"]);
}

#[tokio::test]
async fn long_poll_returns_empty_when_its_wait_runs_out() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let engine = broker.engine.clone();
    let waiting = tokio::spawn(async move {
        let request = ReceiveRequest {
            max_messages: 1,
            wait: Duration::from_millis(500),
            lease: None,
        };
        engine.receive("jobs", request).await.unwrap()
    });
    tokio::task::yield_now().await;
    broker.advance(500);
    assert!(guard(waiting).await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_lease_redelivers_and_max_deliveries_dead_letters_with_details() {
    let opts = QueueOptions {
        lease_ms: 1_000,
        max_deliveries: Some(2),
        dead_letter_queue: Some(QueueName::try_from("jobs.dlq".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["task"]).await;
    let first = broker.receive("jobs", 1).await;
    let nacked = broker
        .engine
        .nack(
            "jobs",
            &receipts(&first),
            NackAction::Requeue {
                delay: Some(Duration::ZERO),
                error: Some("database down".into()),
            },
        )
        .await
        .unwrap();
    assert!(nacked[0].error.is_none());
    let second = broker.receive("jobs", 1).await;
    assert_eq!(second[0].delivery_count, 2);
    // The second lease runs out: the message has had its two deliveries.
    broker.advance(1_000);
    let dead = broker.receive_when_ready("jobs.dlq").await;
    assert_eq!(bodies(&dead), ["task"]);
    let letter = dead[0].message.dead_letter.clone().unwrap();
    assert_eq!(letter.reason, DeadLetterReason::MaxDeliveries);
    assert_eq!(letter.source_queue, "jobs");
    assert_eq!(letter.delivery_count, 2);
    assert_eq!(letter.last_error.as_deref(), Some("database down"));
    assert!(broker.receive("jobs", 1).await.is_empty());
}

#[tokio::test]
async fn nack_to_dead_letter_queue_carries_reason_rejected_and_the_error() {
    let opts = QueueOptions {
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["bad"]).await;
    let got = broker.receive("jobs", 1).await;
    broker
        .engine
        .nack(
            "jobs",
            &receipts(&got),
            NackAction::DeadLetter {
                error: Some("schema mismatch".into()),
            },
        )
        .await
        .unwrap();
    let dead = broker.receive_when_ready("dead").await;
    let letter = dead[0].message.dead_letter.clone().unwrap();
    assert_eq!(letter.reason, DeadLetterReason::Rejected);
    assert_eq!(letter.last_error.as_deref(), Some("schema mismatch"));
}

#[tokio::test]
async fn nack_with_delay_hides_the_message_until_due() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["later"]).await;
    let got = broker.receive("jobs", 1).await;
    let action = NackAction::Requeue {
        delay: Some(Duration::from_secs(5)),
        error: None,
    };
    broker
        .engine
        .nack("jobs", &receipts(&got), action)
        .await
        .unwrap();
    assert!(broker.receive("jobs", 1).await.is_empty());
    assert_eq!(broker.engine.queue_info("jobs").unwrap().stats.delayed, 1);
    broker.advance(5_000);
    assert_eq!(bodies(&broker.receive("jobs", 1).await), ["later"]);
}

#[tokio::test]
async fn delayed_send_is_not_delivered_before_its_time() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let delayed = SendMessage {
        delay: Some(Duration::from_secs(10)),
        ..message("delayed")
    };
    broker.engine.send("jobs", vec![delayed]).await.unwrap();
    assert!(broker.receive("jobs", 1).await.is_empty());
    broker.advance(9_999);
    assert!(broker.receive("jobs", 1).await.is_empty());
    broker.advance(1);
    assert_eq!(bodies(&broker.receive("jobs", 1).await), ["delayed"]);
}

#[tokio::test]
async fn expired_messages_are_never_delivered_and_go_to_the_dead_letter_queue() {
    let opts = QueueOptions {
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    let short = SendMessage {
        ttl: Some(Duration::from_secs(1)),
        ..message("short-lived")
    };
    broker.engine.send("jobs", vec![short]).await.unwrap();
    broker.advance(1_000);
    assert!(broker.receive("jobs", 1).await.is_empty());
    let dead = broker.receive_when_ready("dead").await;
    assert_eq!(
        dead[0].message.dead_letter.as_ref().unwrap().reason,
        DeadLetterReason::Expired
    );
}

#[tokio::test]
async fn duplicate_client_ids_within_the_window_are_stored_once() {
    let (dir, broker) = broker_with("jobs", options()).await;
    let with_id = |body: &str| SendMessage {
        id: Some("order-42".into()),
        ..message(body)
    };
    let sent = broker
        .engine
        .send("jobs", vec![with_id("first")])
        .await
        .unwrap();
    assert!(!sent[0].duplicate);
    let again = broker
        .engine
        .send("jobs", vec![with_id("second")])
        .await
        .unwrap();
    assert!(again[0].duplicate);
    let counters = broker.engine.queue_info("jobs").unwrap().stats.counters;
    assert_eq!((counters.sent, counters.duplicates), (1, 1));
    // The window is rebuilt on restart.
    let broker = broker.restart(dir.path()).await;
    let third = broker
        .engine
        .send("jobs", vec![with_id("third")])
        .await
        .unwrap();
    assert!(third[0].duplicate);
    assert_eq!(bodies(&broker.receive("jobs", 10).await), ["first"]);
}

#[tokio::test]
async fn full_queue_rejects_a_whole_batch() {
    let opts = QueueOptions {
        max_length: Some(3),
        overflow: Overflow::Reject,
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["1", "2"]).await;
    let batch = vec![message("3"), message("4")];
    let error = broker.engine.send("jobs", batch).await.unwrap_err();
    assert!(
        matches!(error, EngineError::QueueFull { max_length: 3, .. }),
        "{error}"
    );
    assert_eq!(bodies(&broker.receive("jobs", 10).await), ["1", "2"]);
}

#[tokio::test]
async fn drop_oldest_moves_the_oldest_to_the_dead_letter_queue() {
    let opts = QueueOptions {
        max_length: Some(2),
        overflow: Overflow::DropOldest,
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["1", "2"]).await;
    broker.send("jobs", &["3"]).await;
    let dead = broker.receive_when_ready("dead").await;
    assert_eq!(bodies(&dead), ["1"]);
    assert_eq!(
        dead[0].message.dead_letter.as_ref().unwrap().reason,
        DeadLetterReason::Overflow
    );
    assert_eq!(bodies(&broker.receive("jobs", 10).await), ["2", "3"]);
}

#[tokio::test]
async fn invalid_message_in_a_batch_stores_nothing() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let batch = vec![
        message("fine"),
        SendMessage {
            priority: Some(10),
            ..message("bad")
        },
    ];
    let error = broker.engine.send("jobs", batch).await.unwrap_err();
    assert!(
        matches!(
            &error,
            EngineError::InvalidField {
                field: Field::Message {
                    index: 1,
                    field: MessageField::Priority,
                },
                problem: FieldProblem::OutOfRange {
                    value: 10,
                    min: 0,
                    max: 9,
                },
            }
        ),
        "{error:?}"
    );
    assert!(broker.receive("jobs", 10).await.is_empty());
}

#[tokio::test]
async fn extend_keeps_a_message_leased_past_its_first_deadline() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["long work"]).await;
    let got = broker.receive_with("jobs", 1, Some(1_000)).await;
    broker.advance(900);
    let results = broker
        .engine
        .extend("jobs", &receipts(&got), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(results[0].error.is_none());
    broker.advance(5_000);
    assert!(broker.receive("jobs", 1).await.is_empty());
    broker.ack("jobs", &got).await;
}

#[tokio::test]
async fn stale_receipts_are_reported_per_receipt() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["a"]).await;
    let got = broker.receive("jobs", 1).await;
    let mut mixed = receipts(&got);
    mixed.push("not-a-receipt".into());
    let results = broker.engine.ack("jobs", &mixed).await.unwrap();
    assert!(results[0].error.is_none());
    assert!(
        matches!(
            &results[1].error,
            Some(ReceiptFailure::Malformed(ReceiptParseError::Malformed { text })) if text == "not-a-receipt"
        ),
        "{results:?}"
    );
    let again = broker.engine.ack("jobs", &receipts(&got)).await.unwrap();
    assert!(
        matches!(
            again[0].error,
            Some(ReceiptFailure::Refused(ReceiptError::Stale { .. }))
        ),
        "a second ack of the same receipt is stale: {again:?}"
    );
}

#[tokio::test]
async fn a_receipt_given_twice_in_one_ack_settles_its_message_once() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    broker.send("jobs", &["a", "b", "c"]).await;
    let got = broker.receive("jobs", 2).await;
    let mut twice = receipts(&got);
    twice.push(twice[0].clone());
    let results = broker.engine.ack("jobs", &twice).await.unwrap();
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let stats = broker.engine.queue_info("jobs").unwrap().stats;
    assert_eq!((stats.counters.acked, stats.ready, stats.leased), (2, 1, 0));
    // Out of delivery order, repeated before and after: each settled once all the same.
    broker.send("jobs", &["d", "e", "f"]).await;
    let got = receipts(&broker.receive("jobs", 4).await);
    let shuffled = [1, 0, 1, 3, 0, 3].map(|index| got[index].clone());
    let results = broker.engine.ack("jobs", &shuffled).await.unwrap();
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let stats = broker.engine.queue_info("jobs").unwrap().stats;
    assert_eq!((stats.counters.acked, stats.ready, stats.leased), (5, 0, 1));
}

/// A durable and a transient queue count sequences in two WALs, so their first leases can
/// share sequence and lease number: the receipt of one still settles nothing in the other,
/// and says so per receipt.
#[tokio::test]
async fn a_receipt_of_another_queue_is_refused_and_settles_nothing() {
    let (_dir, broker) = broker_with("a", options()).await;
    let transient = QueueOptions {
        durable: false,
        ..options()
    };
    broker.engine.put_queue("b", transient).await.unwrap();
    broker.send("a", &["in a"]).await;
    broker.send("b", &["in b"]).await;
    let (got_a, got_b) = (broker.receive("a", 1).await, broker.receive("b", 1).await);
    let of_a = receipts(&got_a);
    let reject = NackAction::DeadLetter { error: None };
    let lease = Duration::from_secs(60);
    for results in [
        broker.engine.ack("b", &of_a).await.unwrap(),
        broker.engine.nack("b", &of_a, reject).await.unwrap(),
        broker.engine.extend("b", &of_a, lease).await.unwrap(),
    ] {
        let refused = results[0].error.as_ref().expect("refused");
        assert!(
            matches!(refused, ReceiptFailure::Refused(ReceiptError::OtherQueue { queue }) if queue == "b"),
            "{results:?}"
        );
    }
    for name in ["a", "b"] {
        assert_eq!(broker.engine.queue_info(name).unwrap().stats.leased, 1);
    }
    broker.ack("a", &got_a).await;
    broker.ack("b", &got_b).await;
}

#[tokio::test]
async fn peek_purge_and_redrive() {
    let opts = QueueOptions {
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["x", "y"]).await;
    let peeked = broker.engine.peek("jobs", 10).await.unwrap();
    assert_eq!(peeked.len(), 2);
    assert_eq!(broker.engine.queue_info("jobs").unwrap().stats.ready, 2);
    let got = broker.receive("jobs", 2).await;
    let reject = NackAction::DeadLetter { error: None };
    broker
        .engine
        .nack("jobs", &receipts(&got), reject)
        .await
        .unwrap();
    guard(async {
        while broker.engine.queue_info("dead").unwrap().stats.ready < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        broker.engine.redrive("dead", Some(1)).await.unwrap().moved,
        1
    );
    assert_eq!(broker.engine.redrive("dead", None).await.unwrap().moved, 1);
    let back = broker.receive("jobs", 10).await;
    let mut back_bodies = bodies(&back);
    back_bodies.sort();
    assert_eq!(back_bodies, ["x", "y"]);
    assert!(back.iter().all(|d| d.message.dead_letter.is_none()));
    broker
        .engine
        .nack(
            "jobs",
            &receipts(&back),
            NackAction::Requeue {
                delay: Some(Duration::ZERO),
                error: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(broker.engine.purge("jobs").await.unwrap(), 2);
    assert!(broker.receive("jobs", 10).await.is_empty());
}

#[tokio::test]
async fn groups_deliver_one_at_a_time_in_send_order() {
    let (_dir, broker) = broker_with("jobs", options()).await;
    let batch = ["g1-a", "g1-b", "g2-a"]
        .iter()
        .map(|body| SendMessage {
            group: Some(body[..2].to_string()),
            ..message(body)
        })
        .collect();
    broker.engine.send("jobs", batch).await.unwrap();
    let first = broker.receive("jobs", 10).await;
    assert_eq!(bodies(&first), ["g1-a", "g2-a"]);
    assert!(broker.receive("jobs", 10).await.is_empty());
    broker.ack("jobs", &first[..1]).await;
    assert_eq!(bodies(&broker.receive("jobs", 10).await), ["g1-b"]);
}

#[tokio::test]
async fn queue_definitions_survive_restart_and_delete_removes_everything() {
    let opts = QueueOptions {
        lease_ms: 5_000,
        ..options()
    };
    let (dir, broker) = broker_with("jobs", opts.clone()).await;
    broker.send("jobs", &["a"]).await;
    let broker = broker.restart(dir.path()).await;
    assert_eq!(broker.engine.queue_info("jobs").unwrap().options, opts);
    assert!(!broker.engine.put_queue("jobs", opts.clone()).await.unwrap());
    broker.engine.delete_queue("jobs").await.unwrap();
    assert!(matches!(
        broker.engine.send("jobs", vec![message("x")]).await,
        Err(EngineError::QueueNotFound { .. })
    ));
    let broker = broker.restart(dir.path()).await;
    assert!(broker.engine.list_queues().is_empty());
    assert!(broker.engine.put_queue("jobs", opts).await.unwrap());
    assert!(
        broker.receive("jobs", 1).await.is_empty(),
        "a recreated queue starts empty"
    );
}

#[tokio::test]
async fn bad_names_and_options_are_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), ManualClock::new(START)).await;
    assert!(matches!(
        broker.engine.put_queue("bad/name", options()).await,
        Err(EngineError::InvalidName {
            kind: ResourceKind::Queue,
            problem: NameProblem::Rules { .. },
            ..
        })
    ));
    let bad = QueueOptions {
        lease_ms: 0,
        ..options()
    };
    let error = broker.engine.put_queue("jobs", bad).await.unwrap_err();
    assert!(
        matches!(
            &error,
            EngineError::InvalidField {
                field: Field::QueueOption(OptionField::LeaseMs),
                problem: FieldProblem::OutOfRange {
                    value: 0,
                    min: 1,
                    ..
                },
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_corrupt_definition_is_reported_and_every_other_queue_opens() {
    // Each definition with the field the open refuses it for (none: it does not decode).
    let corruptions = [
        (serde_json::json!({"lease": 5}), None),
        (
            serde_json::json!({"lease_ms": 0}),
            Some(Field::QueueOption(OptionField::LeaseMs)),
        ),
    ];
    for (definition, refused_for) in corruptions {
        let dir = tempfile::tempdir().unwrap();
        let broker = open(dir.path(), ManualClock::new(START)).await;
        broker.engine.put_queue("jobs", options()).await.unwrap();
        broker.engine.put_queue("other", options()).await.unwrap();
        broker.send("other", &["kept"]).await;
        broker.store.meta().put("queue/jobs", definition).unwrap();
        broker.engine.close();
        broker.store.close().await.unwrap();
        drop(broker);
        let broker = open(dir.path(), ManualClock::new(START)).await;
        let damaged = broker.engine.damaged_definitions();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        let EngineError::CorruptDefinition { key, source } = damaged[0].as_ref() else {
            panic!("not a corrupt definition: {damaged:?}");
        };
        assert_eq!(key, "queue/jobs");
        let refused_field = match source {
            DefinitionError::Decode(_) => None,
            DefinitionError::Refused(refused) => match refused.as_ref() {
                EngineError::InvalidField { field, .. } => Some(field.clone()),
                other => panic!("refused for another reason: {other:?}"),
            },
            lost => panic!("decoded, not lost: {lost}"),
        };
        assert_eq!(refused_field, refused_for, "{}", damaged[0]);
        assert!(broker.engine.queue_info("jobs").is_err(), "it stays closed");
        let got = broker.receive("other", 10).await;
        assert_eq!(got.len(), 1, "the other queue opened with its message");
    }
}

/// Segment files of the durable queues' shared WAL.
fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("logs").join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}

#[tokio::test]
async fn segments_of_settled_messages_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let store = Arc::new(Store::open(dir.path(), segments_of(4096)).unwrap());
    let config = EngineConfig {
        relocate_span_min: 64,
        ..EngineConfig::default()
    };
    let engine = Engine::open(store.clone(), clock.clone(), config)
        .await
        .unwrap();
    engine.put_queue("jobs", options()).await.unwrap();
    let body = "x".repeat(200);
    for _ in 0..10 {
        let batch = (0..10).map(|_| message(&body)).collect();
        engine.send("jobs", batch).await.unwrap();
    }
    assert!(segment_files(dir.path()) > 5);
    // The newest message stays unsettled: segments before it go, its own stays.
    for _ in 0..99 {
        let request = ReceiveRequest {
            max_messages: 1,
            wait: Duration::ZERO,
            lease: None,
        };
        let got = engine.receive("jobs", request).await.unwrap();
        clock.advance(Duration::from_secs(1));
        engine.ack("jobs", &receipts(&got)).await.unwrap();
    }
    // The unsettled message's segment stays, and so do the (up to two, at 4 KiB) segments of
    // delivery and settle records written after it.
    assert!(
        segment_files(dir.path()) <= 3,
        "{} segments left",
        segment_files(dir.path())
    );
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));
    let broker = open(dir.path(), clock).await;
    let left = broker.receive("jobs", 10).await;
    assert_eq!(
        left.len(),
        1,
        "only the unsettled message remains after restart"
    );
}

#[tokio::test]
async fn a_send_whose_caller_goes_away_still_completes_and_releases_its_room() {
    let opts = QueueOptions {
        max_length: Some(1),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    {
        // The caller polls the send once and drops it, as a client hanging up does.
        let send = broker.engine.send("jobs", vec![message("orphan")]);
        tokio::pin!(send);
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(send.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "the send should still be in flight");
    }
    let got = guard(async {
        loop {
            let got = broker.receive("jobs", 1).await;
            if !got.is_empty() {
                break got;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(bodies(&got), ["orphan"]);
    broker.ack("jobs", &got).await;
    // Had the orphaned send kept its reservation, this would be refused as full.
    broker.send("jobs", &["next"]).await;
}

#[tokio::test]
async fn redrive_of_ordinary_messages_ends_and_reports_what_it_skipped() {
    let opts = QueueOptions {
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["failed"]).await;
    let got = broker.receive("jobs", 1).await;
    let reject = NackAction::DeadLetter { error: None };
    broker
        .engine
        .nack("jobs", &receipts(&got), reject)
        .await
        .unwrap();
    guard(async {
        while broker.engine.queue_info("dead").unwrap().stats.ready < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Sent straight to the dead-letter queue: not dead letters. Redrive used to lease and
    // requeue these for ever.
    broker.send("dead", &["plain-1", "plain-2"]).await;
    broker.engine.put_queue("orphans", options()).await.unwrap();
    broker.engine.put_queue("gone", options()).await.unwrap();
    let orphan = SendMessage {
        body: Bytes::from_static(b"orphan"),
        ..SendMessage::default()
    };
    broker.engine.send("gone", vec![orphan]).await.unwrap();
    let got = broker.receive("gone", 1).await;
    broker
        .engine
        .put_queue(
            "gone",
            QueueOptions {
                dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
                ..options()
            },
        )
        .await
        .unwrap();
    let reject = NackAction::DeadLetter { error: None };
    broker
        .engine
        .nack("gone", &receipts(&got), reject)
        .await
        .unwrap();
    guard(async {
        while broker.engine.queue_info("dead").unwrap().stats.ready < 4 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    broker.engine.delete_queue("gone").await.unwrap();

    let report = guard(broker.engine.redrive("dead", None)).await.unwrap();
    assert_eq!(report.moved, 1);
    assert_eq!(report.skipped_not_dead_letter, 2);
    assert_eq!(report.skipped_source_missing, 1);
    assert_eq!(bodies(&broker.receive("jobs", 10).await), ["failed"]);
    let stats = broker.engine.queue_info("dead").unwrap().stats;
    assert_eq!(
        (stats.ready, stats.leased),
        (3, 0),
        "skipped messages stay ready"
    );
    assert_eq!(stats.counters.delivered, 0, "redrive leases nothing");
    // A second redrive finds nothing to move and still ends.
    let again = guard(broker.engine.redrive("dead", Some(5))).await.unwrap();
    assert_eq!(again.moved, 0);
    assert_eq!(
        again.skipped_not_dead_letter + again.skipped_source_missing,
        3
    );
}

#[tokio::test]
async fn a_dedup_id_is_refused_after_its_segment_was_reclaimed_and_the_server_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let store = Arc::new(Store::open(dir.path(), segments_of(4096)).unwrap());
    let config = EngineConfig {
        relocate_span_min: 64,
        ..EngineConfig::default()
    };
    let engine = Engine::open(store.clone(), clock.clone(), config.clone())
        .await
        .unwrap();
    let opts = QueueOptions {
        dedup_window_ms: 3_600_000,
        ..options()
    };
    engine.put_queue("jobs", opts).await.unwrap();
    let with_id = |id: &str| SendMessage {
        id: Some(id.to_string()),
        body: Bytes::from(vec![b'x'; 300]),
        ..SendMessage::default()
    };
    engine.send("jobs", vec![with_id("order-1")]).await.unwrap();
    // Fill several segments and settle everything, so every segment could be reclaimed.
    for round in 0..20 {
        engine
            .send("jobs", vec![with_id(&format!("filler-{round}"))])
            .await
            .unwrap();
    }
    for _ in 0..21 {
        let request = ReceiveRequest {
            max_messages: 1,
            wait: Duration::ZERO,
            lease: None,
        };
        let got = engine.receive("jobs", request).await.unwrap();
        clock.advance(Duration::from_secs(2));
        engine.ack("jobs", &receipts(&got)).await.unwrap();
    }
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let engine = Engine::open(store.clone(), clock.clone(), config)
        .await
        .unwrap();
    let again = engine.send("jobs", vec![with_id("order-1")]).await.unwrap();
    assert!(again[0].duplicate, "the id is still inside its window");
    // Once the window has passed, the records may go and the id is new again.
    clock.advance(Duration::from_secs(3_600));
    let later = engine.send("jobs", vec![with_id("order-1")]).await.unwrap();
    assert!(!later[0].duplicate);
}

#[tokio::test]
async fn nack_error_texts_are_capped() {
    let opts = QueueOptions {
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        ..options()
    };
    let (_dir, broker) = broker_with("jobs", opts).await;
    broker.send("jobs", &["x"]).await;
    let got = broker.receive("jobs", 1).await;
    let huge = "é".repeat(100_000);
    let reject = NackAction::DeadLetter { error: Some(huge) };
    broker
        .engine
        .nack("jobs", &receipts(&got), reject)
        .await
        .unwrap();
    let dead = broker.receive_when_ready("dead").await;
    let last_error = dead[0]
        .message
        .dead_letter
        .as_ref()
        .unwrap()
        .last_error
        .clone();
    let last_error = last_error.unwrap();
    assert!(
        last_error.len() <= wharf_engine::broker::FIELD_BYTES_MAX,
        "{}",
        last_error.len()
    );
    assert!(last_error.starts_with("éé"));
}

/// Senders, receivers, ackers, option changes and purges on one `drop_oldest` queue at once:
/// once, a send racing a receive (or a lowered `max_length`) hit a `panic!` under the queue's
/// lock, and every later call on the queue failed. Every call must answer, and the queue must
/// stay usable and equal to a replay of its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_queue_hammered_from_many_tasks_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let store = Arc::new(Store::open(dir.path(), segments_of(64 << 10)).unwrap());
    // Real fsyncs keep each send between its reservation and its apply for a while, which is
    // the window the races need.
    let config = EngineConfig {
        relocate_span_min: 64,
        ..EngineConfig::default()
    };
    let engine = Engine::open(store.clone(), clock.clone(), config.clone())
        .await
        .unwrap();
    let opts = |max_length| QueueOptions {
        max_length: Some(max_length),
        overflow: Overflow::DropOldest,
        ..options()
    };
    engine.put_queue("hot", opts(8)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..4 {
        let engine = engine.clone();
        tasks.spawn(async move {
            for i in 0..600 {
                let batch = (0..4)
                    .map(|j| message(&format!("{sender}-{i}-{j}")))
                    .collect();
                match engine.send("hot", batch).await {
                    Ok(_) | Err(EngineError::QueueFull { .. }) => {}
                    Err(error) => panic!("send failed: {error}"),
                }
            }
        });
    }
    for _ in 0..4 {
        let engine = engine.clone();
        tasks.spawn(async move {
            for i in 0..1_200 {
                let request = ReceiveRequest {
                    max_messages: 5,
                    wait: Duration::ZERO,
                    lease: None,
                };
                let got = engine.receive("hot", request).await.expect("receive");
                let receipts = receipts(&got);
                if i % 3 == 0 {
                    let requeue = NackAction::Requeue {
                        delay: Some(Duration::ZERO),
                        error: Some("again".into()),
                    };
                    engine.nack("hot", &receipts, requeue).await.expect("nack");
                } else {
                    engine.ack("hot", &receipts).await.expect("ack");
                }
                tokio::task::yield_now().await;
            }
        });
    }
    {
        let engine = engine.clone();
        tasks.spawn(async move {
            for i in 0..800u64 {
                engine
                    .put_queue("hot", opts(1 + i % 10))
                    .await
                    .expect("put");
                if i % 25 == 0 {
                    engine.purge("hot").await.expect("purge");
                }
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(joined) = guard(tasks.join_next()).await {
        joined.expect("no task panicked");
    }
    // Still usable.
    engine.put_queue("hot", opts(1_000)).await.unwrap();
    engine.send("hot", vec![message("after")]).await.unwrap();
    let live = engine.queue_info("hot").unwrap().stats;
    let live_total = live.ready + live.delayed + live.leased;
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let engine = Engine::open(store, clock, config).await.unwrap();
    let replayed = engine.queue_info("hot").unwrap().stats;
    assert_eq!(
        replayed.ready + replayed.delayed + replayed.leased,
        live_total,
        "live state equals a replay of the log"
    );
}

/// One unsettled message must not pin the shared WAL: it is copied forward, and the segments
/// behind it go, however long it stays.
#[tokio::test]
async fn one_old_message_does_not_pin_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let store = Arc::new(Store::open(dir.path(), segments_of(4096)).unwrap());
    let config = EngineConfig {
        relocate_span_min: 64,
        ..EngineConfig::default()
    };
    let engine = Engine::open(store.clone(), clock.clone(), config.clone())
        .await
        .unwrap();
    engine.put_queue("stuck", options()).await.unwrap();
    engine.put_queue("busy", options()).await.unwrap();
    engine.send("stuck", vec![message("old")]).await.unwrap();
    let request = |max| ReceiveRequest {
        max_messages: max,
        wait: Duration::ZERO,
        lease: Some(Duration::from_secs(3_600)),
    };
    let leased = engine.receive("stuck", request(1)).await.unwrap();
    let body = "x".repeat(300);
    for _ in 0..60 {
        engine
            .send("busy", (0..2).map(|_| message(&body)).collect())
            .await
            .unwrap();
        let got = engine.receive("busy", request(2)).await.unwrap();
        clock.advance(Duration::from_secs(1));
        engine.ack("busy", &receipts(&got)).await.unwrap();
    }
    assert!(
        segment_files(dir.path()) <= 4,
        "{} WAL segments kept for one old message",
        segment_files(dir.path())
    );
    // Still leased, and its receipt still works: relocation keeps its seq.
    let results = engine
        .extend("stuck", &receipts(&leased), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(results[0].error.is_none(), "{results:?}");
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));

    let broker = open(dir.path(), clock).await;
    let again = broker.receive("stuck", 10).await;
    assert_eq!(bodies(&again), ["old"]);
    assert_eq!(
        again[0].delivery_count, 2,
        "its delivery history moved with it"
    );
    assert!(
        broker.receive("busy", 10).await.is_empty(),
        "nothing settled came back"
    );
    broker.ack("stuck", &again).await;
    assert!(broker.receive("stuck", 10).await.is_empty());
}

/// Yields until the engine's tasks woken by a clock move have run (a bounded number of
/// times: they need only a few turns).
async fn settle_tasks() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Waits until `queue` is gone.
async fn until_deleted(engine: &Engine, queue: &str) {
    guard(async {
        while engine.queue_info(queue).is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_unused_queue_expires_and_consumers_receives_and_declares_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), ManualClock::new(START)).await;
    let engine = &broker.engine;
    let options = QueueOptions {
        expires_ms: Some(10_000),
        ..QueueOptions::default()
    };
    engine.put_queue("temp", options.clone()).await.unwrap();
    // Sends are no use: only consumers, receives and declares are.
    broker.send("temp", &["a"]).await;
    broker.advance(6_000);
    let request = ReceiveRequest {
        max_messages: 1,
        wait: Duration::ZERO,
        lease: None,
    };
    assert_eq!(engine.receive("temp", request).await.unwrap().len(), 1);
    broker.advance(6_000);
    settle_tasks().await;
    assert!(
        engine.queue_info("temp").is_ok(),
        "used 6 s ago, expires after 10 s"
    );
    engine.put_queue("temp", options).await.unwrap();
    broker.advance(9_000);
    settle_tasks().await;
    assert!(engine.queue_info("temp").is_ok(), "declared 9 s ago");
    let consumer = engine
        .consume(
            "temp",
            wharf_engine::broker::ConsumeRequest {
                credit: 1,
                lease: None,
            },
        )
        .await
        .unwrap();
    for _ in 0..30 {
        broker.advance(1_000);
        settle_tasks().await;
    }
    assert!(engine.queue_info("temp").is_ok(), "a consumer is attached");
    drop(consumer);
    broker.advance(11_000);
    settle_tasks().await;
    broker.advance(1_000);
    until_deleted(engine, "temp").await;
    // Without the option a queue never expires.
    engine
        .put_queue("kept", QueueOptions::default())
        .await
        .unwrap();
    broker.advance(86_400_000);
    settle_tasks().await;
    assert!(engine.queue_info("kept").is_ok());
}

#[tokio::test]
async fn expiry_is_kept_across_a_restart_and_set_by_a_later_declare() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), ManualClock::new(START)).await;
    let expiring = QueueOptions {
        expires_ms: Some(5_000),
        ..QueueOptions::default()
    };
    broker
        .engine
        .put_queue("a", expiring.clone())
        .await
        .unwrap();
    broker
        .engine
        .put_queue("b", QueueOptions::default())
        .await
        .unwrap();
    let broker = broker.restart(dir.path()).await;
    // Declared again with the option: now it expires too.
    broker.engine.put_queue("b", expiring).await.unwrap();
    broker.advance(5_000);
    until_deleted(&broker.engine, "a").await;
    until_deleted(&broker.engine, "b").await;
    let error = broker
        .engine
        .put_queue(
            "c",
            QueueOptions {
                expires_ms: Some(0),
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("expires_ms"), "{error}");
}
