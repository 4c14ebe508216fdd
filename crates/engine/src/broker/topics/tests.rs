//! Retained messages on disk and compaction of the topic log, tested from inside the engine:
//! the index's size, the compaction passes and their interruption are not visible from outside.

use super::{compaction, Engine, PublishMessage, SendMessage, TopicRuntime};
use crate::{
    clock::ManualClock,
    topic::{BindingSpec, Destination, TopicOptions},
    EngineConfig,
};
use bytes::Bytes;
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};
use wharf_model::pattern::Syntax;
use wharf_storage::{Offset, Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

async fn open(dir: &Path) -> (Engine, Arc<Store>) {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    let engine = Engine::open(
        store.clone(),
        ManualClock::new(START),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    (engine, store)
}

async fn close(engine: Engine, store: Arc<Store>) {
    engine.close();
    store.close().await.unwrap();
}

async fn retaining_topic(engine: &Engine, name: &str) -> Arc<TopicRuntime> {
    let options = TopicOptions {
        retain: true,
        ..TopicOptions::default()
    };
    engine.put_topic(name, options).await.unwrap();
    engine.find_topic(name).unwrap()
}

/// A message whose body names its key and round, padded to `size` bytes.
fn message(key: &str, round: usize, size: usize) -> PublishMessage {
    let mut body = format!("{key}@{round}").into_bytes();
    body.resize(size.max(body.len()), b'.');
    PublishMessage {
        routing_key: key.to_string(),
        message: SendMessage {
            body: Bytes::from(body),
            ..SendMessage::default()
        },
        retain: false,
    }
}

/// The `key@round` a body starts with.
fn label(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.trim_end_matches('.').to_string()
}

/// Every retained message, as key → `key@round`, read from the log.
async fn retained(runtime: &TopicRuntime) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let step =
            (runtime.retained_step(after.as_deref(), Offset(u64::MAX), |_| true, |_, _| true))
                .await
                .unwrap();
        let Some(last) = step.last else {
            return out;
        };
        after = Some(last);
        for (key, message) in step.messages {
            out.insert(key, label(&message.body));
        }
    }
}

fn queue_binding(pattern: &str, queue: &str) -> BindingSpec {
    BindingSpec {
        pattern: pattern.into(),
        syntax: Syntax::Amqp,
        filter: None,
        headers: None,
        destination: Destination::Queue(queue.into()),
    }
}

fn segment_files(dir: &Path, topic: &str) -> usize {
    let logs = dir.join("logs").join(format!("topic-{topic}"));
    std::fs::read_dir(logs)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
        .count()
}

/// Polls until no compaction pass runs and none is due.
async fn compaction_settles(runtime: &Arc<TopicRuntime>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.compacting.load(Ordering::Acquire) || runtime.compaction_due() {
        assert!(Instant::now() < deadline, "compaction did not settle");
        runtime.maybe_compact();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The figure: 100,000 retained 1 KiB messages under 64 MiB of heap. The index holds
/// offsets only, and 40 subscriptions each walk it without a copy of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_bodies_stay_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path()).await;
    let runtime = retaining_topic(&engine, "sensors").await;
    for batch in 0..100 {
        let messages = (0..1_000)
            .map(|n| message(&format!("sensors/{:06}", batch * 1_000 + n), 0, 1_024))
            .collect();
        engine.publish("sensors", messages).await.unwrap();
    }
    let heap = runtime.state.lock().unwrap().retained.heap_bytes();
    assert!(heap < 16 << 20, "the retained index takes {heap} bytes");
    assert_eq!(
        engine.topic_info("sensors").unwrap().stats.retained,
        100_000
    );

    let mut subscriptions: Vec<_> = (0..40)
        .map(|_| {
            engine
                .subscribe("sensors", "#", Syntax::Mqtt, None)
                .unwrap()
        })
        .collect();
    let mut first_keys = Vec::new();
    for subscription in &mut subscriptions {
        let batch = subscription.next_retained().await.unwrap().unwrap();
        assert_eq!(batch.len(), 256, "a batch stops at 256 messages or 256 KiB");
        first_keys.push(label(&batch[0].1.body));
    }
    assert!(first_keys.iter().all(|k| k == "sensors/000000@0"));
    let after_subscribing = runtime.state.lock().unwrap().retained.heap_bytes();
    assert_eq!(after_subscribing, heap, "subscriptions copy nothing");
}

/// A message matched by many live subscribers is held once: each gets the same shared copy,
/// and only the subscribers whose pattern matches get it at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscribers_share_one_copy_of_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path()).await;
    engine
        .put_topic("fan", TopicOptions::default())
        .await
        .unwrap();
    let mut matching: Vec<_> = (0..3)
        .map(|_| engine.subscribe("fan", "a/#", Syntax::Mqtt, None).unwrap())
        .collect();
    let mut other = engine.subscribe("fan", "b/#", Syntax::Mqtt, None).unwrap();
    engine
        .publish("fan", vec![message("a/1", 0, 64)])
        .await
        .unwrap();
    let mut received = Vec::new();
    for subscription in &mut matching {
        let live = subscription.messages.recv().await.unwrap();
        assert_eq!(&*live.routing_key, "a/1");
        assert_eq!(label(&live.message.body), "a/1@0");
        received.push(live.message);
    }
    assert!(received.iter().all(|m| Arc::ptr_eq(m, &received[0])));
    assert_eq!(Arc::strong_count(&received[0]), 3, "no other copy is kept");
    assert!(other.messages.try_recv().is_err());
}

/// Many overwrites of few keys: passes keep the segment count bounded, and a restart restores
/// exactly the last value of every key and the bindings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_are_compacted_and_a_restart_restores_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path()).await;
    let runtime = retaining_topic(&engine, "state").await;
    for queue in ["a", "b"] {
        engine.put_queue(queue, Default::default()).await.unwrap();
    }
    let kept = engine
        .bind("state", queue_binding("x.#", "a"))
        .await
        .unwrap();
    let removed = engine.bind("state", queue_binding("#", "b")).await.unwrap();
    engine.unbind("state", &removed).await.unwrap();
    // 20 MiB of 2 KiB records over 50 keys: 20 segments of 1 MiB without compaction.
    let keys: Vec<String> = (0..50).map(|n| format!("k.{n:02}")).collect();
    for round in 0..200 {
        let batch = keys.iter().map(|k| message(k, round, 2_048)).collect();
        engine.publish("state", batch).await.unwrap();
        if round == 100 {
            // Cleared keys stay cleared.
            let clear = |k: &String| PublishMessage {
                routing_key: k.clone(),
                message: SendMessage::default(),
                retain: false,
            };
            engine
                .publish("state", keys[..5].iter().map(clear).collect())
                .await
                .unwrap();
        }
    }
    compaction_settles(&runtime).await;
    let segments = segment_files(dir.path(), "state");
    assert!(runtime.compactions.load(Ordering::Relaxed) >= 5);
    assert!(segments <= 4, "{segments} segments after compaction");
    let expected: BTreeMap<String, String> = keys
        .iter()
        .map(|k| (k.clone(), format!("{k}@199")))
        .collect();
    assert_eq!(retained(&runtime).await, expected);

    drop(runtime);
    close(engine, store).await;
    let (engine, _store) = open(dir.path()).await;
    let runtime = engine.find_topic("state").unwrap();
    assert_eq!(retained(&runtime).await, expected);
    let bindings = engine.list_bindings("state").unwrap();
    let ids: Vec<_> = bindings.iter().map(|b| b.id.clone()).collect();
    assert_eq!(ids, [kept]);
}

/// Copies appended but no segment dropped (a crash between the two): the log replays to the
/// same state, with each binding once.
#[tokio::test]
async fn an_interrupted_compaction_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path()).await;
    let runtime = retaining_topic(&engine, "state").await;
    engine.put_queue("a", Default::default()).await.unwrap();
    let first = engine
        .bind("state", queue_binding("k.*", "a"))
        .await
        .unwrap();
    let second = engine
        .bind("state", queue_binding("k.1", "a"))
        .await
        .unwrap();
    for round in 0..3 {
        let batch = (0..10)
            .map(|n| message(&format!("k.{n}"), round, 100))
            .collect();
        engine.publish("state", batch).await.unwrap();
    }
    let before_copies = runtime.log.end_offset();
    let copied_below = compaction::copy_live(&Arc::downgrade(&runtime))
        .await
        .unwrap();
    assert_eq!(copied_below, Some(before_copies));
    assert_eq!(runtime.log.end_offset().0, before_copies.0 + 2 + 10);
    let expected = retained(&runtime).await;
    assert_eq!(expected.get("k.3").map(String::as_str), Some("k.3@2"));

    drop(runtime);
    close(engine, store).await;
    let (engine, _store) = open(dir.path()).await;
    let runtime = engine.find_topic("state").unwrap();
    assert_eq!(retained(&runtime).await, expected);
    let bindings = engine.list_bindings("state").unwrap();
    let ids: Vec<_> = bindings.iter().map(|b| b.id.clone()).collect();
    assert_eq!(ids, [first, second]);
    let router = runtime.router.read().unwrap();
    let route = router.route("k.1", &BTreeMap::new(), None);
    assert_eq!(route.bindings.len(), 2, "each binding matches once");
}

/// A walk that listed a key before a pass moved its record follows the copy.
#[tokio::test]
async fn a_read_follows_a_record_that_compaction_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path()).await;
    let runtime = retaining_topic(&engine, "state").await;
    // 3 MiB of records: the first segments lie wholly below the pass's copies.
    for batch in 0..3 {
        let messages = (0..1_000)
            .map(|n| message(&format!("k.{:04}", batch * 1_000 + n), 0, 1_024))
            .collect();
        engine.publish("state", messages).await.unwrap();
    }
    let listed = runtime
        .state
        .lock()
        .unwrap()
        .retained
        .get("k.0000")
        .unwrap();
    let before = compaction::copy_live(&Arc::downgrade(&runtime))
        .await
        .unwrap()
        .unwrap();
    let start = runtime.log.truncate_before(before).await.unwrap();
    assert!(
        start.0 >= 1_500,
        "at least two 1 MiB segments freed: {start}"
    );
    assert!(listed.stored_at < runtime.log.start_offset());
    let message = runtime
        .read_retained("k.0000", listed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(label(&message.body), "k.0000@0");
    // Published again since it was listed: the walk leaves it to the live feed.
    engine
        .publish("state", vec![message_of("k.0000", 1)])
        .await
        .unwrap();
    assert!(runtime
        .read_retained("k.0000", listed)
        .await
        .unwrap()
        .is_none());
}

fn message_of(key: &str, round: usize) -> PublishMessage {
    message(key, round, 10)
}

/// Publishers keep writing while passes run: no write is lost or overtaken by a stale copy,
/// in memory or after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_never_overtakes_concurrent_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path()).await;
    let runtime = retaining_topic(&engine, "state").await;
    let publishers: Vec<_> = (0..4)
        .map(|publisher| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for round in 0..150 {
                    let batch = (0..20)
                        .map(|n| message(&format!("p{publisher}.{n:02}"), round, 512))
                        .collect();
                    engine.publish("state", batch).await.unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    compaction_settles(&runtime).await;
    assert!(runtime.compactions.load(Ordering::Relaxed) >= 2);
    let expected: BTreeMap<String, String> = (0..4)
        .flat_map(|p| (0..20).map(move |n| format!("p{p}.{n:02}")))
        .map(|k| (k.clone(), format!("{k}@149")))
        .collect();
    assert_eq!(retained(&runtime).await, expected);
    drop(runtime);
    close(engine, store).await;
    let (engine, _store) = open(dir.path()).await;
    assert_eq!(
        retained(&engine.find_topic("state").unwrap()).await,
        expected
    );
}

/// Names up to the 255-byte limit have a log of their own: the name of a log is one file name,
/// so names whose `topic-NAME` would not fit are shortened with a digest, and two long names
/// that share their first bytes still get two logs.
#[tokio::test]
async fn topics_with_names_of_255_bytes_keep_their_retained_messages_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let long = |last: char| format!("{}{last}", "t".repeat(254));
    let (first, second) = (long('a'), long('b'));
    for name in [&first, &second] {
        assert!(super::topic_log_name(name).len() <= wharf_storage::LOG_NAME_BYTES_MAX);
    }
    assert_ne!(
        super::topic_log_name(&first),
        super::topic_log_name(&second)
    );
    let short = "t".repeat(249);
    assert_eq!(super::topic_log_name(&short), format!("topic-{short}"));

    let (engine, store) = open(dir.path()).await;
    for name in [&first, &second, &short] {
        retaining_topic(&engine, name).await;
        engine
            .publish(name, vec![message(name, 1, 8)])
            .await
            .unwrap();
    }
    close(engine, store).await;
    let (engine, store) = open(dir.path()).await;
    for name in [&first, &second, &short] {
        let runtime = engine.find_topic(name).expect("reopened");
        let expected = BTreeMap::from([(name.clone(), format!("{name}@1"))]);
        assert_eq!(retained(&runtime).await, expected);
    }
    engine.delete_topic(&first).await.unwrap();
    assert!(!store.has_log(&super::topic_log_name(&first)));
    assert!(store.has_log(&super::topic_log_name(&second)));
    close(engine, store).await;
}
