//! Push consumers over a real store with a manual clock: credit, round-robin, single active
//! consumer, leases returned on detach, and long polls woken one message each.

use bytes::Bytes;
use std::{future::Future, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{ConsumeRequest, Consumer, Delivery, NackAction, ReceiveRequest, SendMessage},
    clock::ManualClock,
    error::{Field, FieldProblem},
    queue::QueueOptions,
    Engine, EngineConfig, EngineError,
};
use wharf_storage::{Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

async fn engine_with(
    queue: &str,
    options: QueueOptions,
) -> (tempfile::TempDir, Engine, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let clock = ManualClock::new(START);
    let engine = Engine::open(store, clock.clone(), EngineConfig::default())
        .await
        .unwrap();
    engine.put_queue(queue, options).await.unwrap();
    (dir, engine, clock)
}

async fn guard<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the engine should have delivered")
}

async fn send(engine: &Engine, queue: &str, bodies: &[&str]) {
    let batch = bodies
        .iter()
        .map(|body| SendMessage {
            body: Bytes::copy_from_slice(body.as_bytes()),
            ..SendMessage::default()
        })
        .collect();
    engine.send(queue, batch).await.unwrap();
}

fn body(delivery: &Delivery) -> String {
    String::from_utf8(delivery.message.body.to_vec()).unwrap()
}

async fn consume(engine: &Engine, queue: &str, credit: usize) -> Consumer {
    let request = ConsumeRequest {
        credit,
        lease: None,
    };
    engine.consume(queue, request).await.unwrap()
}

/// Lets spawned work (dispatch after a detach) run; the clock does not move.
async fn settle_tasks() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_consumer_gets_messages_up_to_its_credit_and_acks_restore_it() {
    let (_dir, engine, _clock) = engine_with("jobs", QueueOptions::default()).await;
    let mut consumer = consume(&engine, "jobs", 2).await;
    send(&engine, "jobs", &["a", "b", "c"]).await;
    let first = guard(consumer.next()).await.unwrap();
    let second = guard(consumer.next()).await.unwrap();
    assert_eq!((body(&first), body(&second)), ("a".into(), "b".into()));
    settle_tasks().await;
    assert!(consumer.try_next().is_none(), "no credit left for c");
    engine.ack("jobs", &[first.receipt]).await.unwrap();
    let third = guard(consumer.next()).await.unwrap();
    assert_eq!(body(&third), "c");
}

#[tokio::test]
async fn consumers_of_one_queue_are_served_round_robin() {
    let (_dir, engine, _clock) = engine_with("jobs", QueueOptions::default()).await;
    let mut one = consume(&engine, "jobs", 10).await;
    let mut two = consume(&engine, "jobs", 10).await;
    send(&engine, "jobs", &["1", "2", "3", "4"]).await;
    let mut got_one = Vec::new();
    let mut got_two = Vec::new();
    for _ in 0..2 {
        got_one.push(body(&guard(one.next()).await.unwrap()));
        got_two.push(body(&guard(two.next()).await.unwrap()));
    }
    assert_eq!(got_one.len() + got_two.len(), 4);
    assert_eq!(got_one.len(), got_two.len(), "{got_one:?} {got_two:?}");
}

#[tokio::test]
async fn a_single_active_consumer_takes_everything_until_it_goes_away() {
    let options = QueueOptions {
        single_active_consumer: true,
        ..QueueOptions::default()
    };
    let (_dir, engine, _clock) = engine_with("jobs", options).await;
    let mut active = consume(&engine, "jobs", 10).await;
    let mut standby = consume(&engine, "jobs", 10).await;
    send(&engine, "jobs", &["1", "2", "3"]).await;
    let mut bodies = Vec::new();
    for _ in 0..3 {
        bodies.push(body(&guard(active.next()).await.unwrap()));
    }
    assert_eq!(bodies, ["1", "2", "3"]);
    settle_tasks().await;
    assert!(standby.try_next().is_none());
    // The active consumer leaves with its three leases unsettled: they go to the standby, in order.
    drop(active);
    let mut taken_over = Vec::new();
    for _ in 0..3 {
        taken_over.push(guard(standby.next()).await.unwrap());
    }
    assert_eq!(
        taken_over.iter().map(body).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(taken_over.iter().all(|d| d.delivery_count == 2));
}

#[tokio::test]
async fn a_consumer_that_goes_away_returns_its_leases_at_once() {
    let (_dir, engine, _clock) = engine_with("jobs", QueueOptions::default()).await;
    let mut consumer = consume(&engine, "jobs", 5).await;
    send(&engine, "jobs", &["x", "y"]).await;
    guard(consumer.next()).await.unwrap();
    guard(consumer.next()).await.unwrap();
    assert_eq!(engine.queue_info("jobs").unwrap().stats.leased, 2);
    drop(consumer);
    let stats = engine.queue_info("jobs").unwrap().stats;
    assert_eq!(
        (stats.ready, stats.leased),
        (2, 0),
        "no lease waits for its deadline"
    );
}

#[tokio::test]
async fn an_expired_lease_gives_the_credit_back() {
    let options = QueueOptions {
        lease_ms: 1_000,
        retry_backoff_ms: 0,
        ..QueueOptions::default()
    };
    let (_dir, engine, clock) = engine_with("jobs", options).await;
    let mut consumer = consume(&engine, "jobs", 1).await;
    send(&engine, "jobs", &["only"]).await;
    let first = guard(consumer.next()).await.unwrap();
    clock.advance(Duration::from_millis(1_000));
    let again = guard(consumer.next()).await.unwrap();
    assert_eq!(body(&again), "only");
    assert_ne!(again.receipt, first.receipt);
    engine
        .nack(
            "jobs",
            &[again.receipt],
            NackAction::Requeue {
                delay: Some(Duration::ZERO),
                error: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(guard(consumer.next()).await.unwrap().delivery_count, 3);
}

#[tokio::test]
async fn a_send_wakes_only_as_many_waiting_receives_as_it_has_messages() {
    let (_dir, engine, clock) = engine_with("jobs", QueueOptions::default()).await;
    let mut waiting = Vec::new();
    for _ in 0..5 {
        let engine = engine.clone();
        waiting.push(tokio::spawn(async move {
            let request = ReceiveRequest {
                max_messages: 10,
                wait: Duration::from_secs(20),
                lease: None,
            };
            engine.receive("jobs", request).await.unwrap()
        }));
    }
    settle_tasks().await;
    send(&engine, "jobs", &["1", "2"]).await;
    settle_tasks().await;
    let finished: Vec<_> = waiting.iter().filter(|w| w.is_finished()).collect();
    assert_eq!(finished.len(), 2, "one waiter per message");
    clock.advance(Duration::from_secs(20));
    let mut received = 0;
    for waiter in waiting {
        received += guard(waiter).await.unwrap().len();
    }
    assert_eq!(received, 2);
    assert_eq!(engine.queue_info("jobs").unwrap().stats.leased, 2);
}

#[tokio::test]
async fn credit_out_of_range_is_refused() {
    let (_dir, engine, _clock) = engine_with("jobs", QueueOptions::default()).await;
    use wharf_engine::broker::CONSUMER_CREDIT_MAX;
    for credit in [0, CONSUMER_CREDIT_MAX + 1] {
        let request = ConsumeRequest {
            credit,
            lease: None,
        };
        let error = engine.consume("jobs", request).await.unwrap_err();
        assert!(
            matches!(
                error,
                EngineError::InvalidField {
                    field: Field::Credit,
                    problem: FieldProblem::OutOfRange { value, min: 1, max },
                } if value == credit as u64 && max == CONSUMER_CREDIT_MAX as u64
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("credit"), "{error}");
    }
}
