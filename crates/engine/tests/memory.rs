//! The engine over the in-memory storage: it needs nothing of the seam but the seam. Queues,
//! topics with retained messages, and a crash that loses only what was never confirmed.

use bytes::Bytes;
use std::{sync::Arc, time::Duration};
use wharf_engine::{
    broker::{PublishMessage, ReceiveRequest, SendMessage},
    clock::ManualClock,
    queue::QueueOptions,
    topic::TopicOptions,
    Engine, EngineConfig,
};
use wharf_model::pattern::Syntax;
use wharf_storage::MemoryStore;

const START: u64 = 1_800_000_000_000;

async fn open(store: &MemoryStore, clock: &Arc<ManualClock>) -> Engine {
    let storage = Arc::new(store.clone());
    Engine::open(storage, clock.clone(), EngineConfig::default())
        .await
        .unwrap()
}

fn message(body: &str) -> SendMessage {
    SendMessage {
        body: Bytes::copy_from_slice(body.as_bytes()),
        ..SendMessage::default()
    }
}

fn receive(max_messages: usize) -> ReceiveRequest {
    ReceiveRequest {
        max_messages,
        wait: Duration::ZERO,
        lease: Some(Duration::from_secs(60)),
    }
}

fn ready(engine: &Engine, queue: &str) -> u64 {
    engine.queue_info(queue).unwrap().stats.ready
}

#[tokio::test]
async fn confirmed_messages_and_acks_survive_a_crash_of_the_memory_store() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(START);
    let engine = open(&store, &clock).await;
    engine
        .put_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    let batch = ["a", "b", "c"].map(message).to_vec();
    engine.send("jobs", batch).await.unwrap();
    let got = engine.receive("jobs", receive(1)).await.unwrap();
    assert_eq!(got[0].message.body.as_ref(), b"a");
    engine.ack("jobs", &[got[0].receipt.clone()]).await.unwrap();
    // Leased, not acked: a crash returns it.
    let leased = engine.receive("jobs", receive(1)).await.unwrap();
    assert_eq!(leased[0].message.body.as_ref(), b"b");

    store.crash();
    drop(engine);
    let engine = open(&store, &clock).await;
    assert_eq!(
        ready(&engine, "jobs"),
        2,
        "b and c came back, a stayed acked"
    );
    let got = engine.receive("jobs", receive(10)).await.unwrap();
    let bodies: Vec<&[u8]> = got.iter().map(|d| d.message.body.as_ref()).collect();
    assert_eq!(bodies, [b"b", b"c"]);
    // b's delivery record was lazy and no commit followed it: the crash lost it, as promised
    // (a message gets at most one extra attempt), so this is its first counted delivery.
    assert_eq!(got[0].delivery_count, 1);
}

#[tokio::test]
async fn a_failed_commit_stores_nothing_and_the_next_one_succeeds() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(START);
    let engine = open(&store, &clock).await;
    engine
        .put_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    store.fail_appends(1);
    assert!(engine.send("jobs", vec![message("lost")]).await.is_err());
    engine.send("jobs", vec![message("kept")]).await.unwrap();
    assert_eq!(ready(&engine, "jobs"), 1);
    store.crash();
    drop(engine);
    let engine = open(&store, &clock).await;
    let got = engine.receive("jobs", receive(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.body.as_ref(), b"kept");
}

#[tokio::test]
async fn retained_messages_come_back_from_the_memory_store() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(START);
    let engine = open(&store, &clock).await;
    let options = TopicOptions {
        retain: true,
        ..TopicOptions::default()
    };
    engine.put_topic("sensors", options).await.unwrap();
    let publish = |key: &str, body: &str| PublishMessage {
        routing_key: key.to_string(),
        message: message(body),
        retain: false,
    };
    let batch = vec![publish("a", "1"), publish("b", "2"), publish("a", "3")];
    engine.publish("sensors", batch).await.unwrap();
    store.reopen();
    drop(engine);
    let engine = open(&store, &clock).await;
    let mut subscription = engine
        .subscribe("sensors", "#", Syntax::Mqtt, None)
        .unwrap();
    let mut bodies = Vec::new();
    while let Some(batch) = subscription.next_retained().await.unwrap() {
        bodies.extend(batch.into_iter().map(|(_, m)| m.body));
    }
    assert_eq!(bodies, [&b"3"[..], b"2"]);
}

/// A nack call whose receipts partly requeue and partly dead-letter writes the dead letters
/// first: when that write fails, the whole call fails and every lease it named still holds.
#[tokio::test]
async fn a_nack_whose_settlement_fails_leaves_every_lease_it_named() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(START);
    let engine = open(&store, &clock).await;
    let options = QueueOptions {
        max_deliveries: Some(2),
        retry_backoff_ms: 0,
        dead_letter_queue: Some("dead".to_string().try_into().unwrap()),
        ..QueueOptions::default()
    };
    engine.put_queue("jobs", options).await.unwrap();
    engine.send("jobs", vec![message("once")]).await.unwrap();
    let first = engine.receive("jobs", receive(1)).await.unwrap();
    let requeue = wharf_engine::broker::NackAction::Requeue {
        delay: None,
        error: None,
    };
    let first = [first[0].receipt.clone()];
    let nacked = engine.nack("jobs", &first, requeue.clone()).await.unwrap();
    assert!(nacked[0].error.is_none());
    engine.send("jobs", vec![message("fresh")]).await.unwrap();
    // "once" on its last delivery (a requeue nack dead-letters it), "fresh" on its first.
    let leased = engine.receive("jobs", receive(2)).await.unwrap();
    assert_eq!(leased.len(), 2);
    let receipts: Vec<String> = leased.iter().map(|d| d.receipt.clone()).collect();

    store.fail_appends(1);
    assert!(engine
        .nack("jobs", &receipts, requeue.clone())
        .await
        .is_err());
    let stats = engine.queue_info("jobs").unwrap().stats;
    assert_eq!(
        (stats.leased, stats.ready, stats.counters.dead_lettered),
        (2, 0, 0),
        "nothing of the failed call took"
    );

    let results = engine.nack("jobs", &receipts, requeue).await.unwrap();
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let stats = engine.queue_info("jobs").unwrap().stats;
    assert_eq!((stats.ready, stats.counters.dead_lettered), (1, 1));
    assert_eq!(ready(&engine, "dead"), 1);
}
