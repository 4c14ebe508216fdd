//! Retained messages on disk, tested from inside the engine: the index's size is not visible
//! from outside.

use super::{Engine, PublishMessage, SendMessage, TopicRuntime};
use crate::{clock::ManualClock, topic::TopicOptions, EngineConfig};
use bytes::Bytes;
use std::{path::Path, sync::Arc};
use wharf_model::pattern::Syntax;
use wharf_storage::{Store, StoreConfig};

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
    }
}

/// The `key@round` a body starts with.
fn label(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.trim_end_matches('.').to_string()
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
        let batch = subscription.next_retained().unwrap().unwrap();
        assert_eq!(batch.len(), 256, "a batch stops at 256 messages or 256 KiB");
        first_keys.push(label(&batch[0].body));
    }
    assert!(first_keys.iter().all(|k| k == "sensors/000000@0"));
    let after_subscribing = runtime.state.lock().unwrap().retained.heap_bytes();
    assert_eq!(after_subscribing, heap, "subscriptions copy nothing");
}
