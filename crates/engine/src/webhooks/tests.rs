//! Endpoints against a real engine on a real store: routing, rotation, restart.

use super::*;
use crate::{
    broker::PublishMessage, broker::SendMessage, clock::ManualClock, stream::StreamError,
    EngineConfig,
};
use bytes::Bytes;
use std::{path::Path, sync::Arc};
use wharf_storage::{Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

async fn open(dir: &Path) -> (Engine, Arc<Store>, Arc<ManualClock>) {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    let clock = ManualClock::new(START);
    let engine = Engine::open(store.clone(), clock.clone(), EngineConfig::default())
        .await
        .unwrap();
    (engine, store, clock)
}

async fn close(engine: Engine, store: Arc<Store>) {
    engine.close();
    store.close().await.unwrap();
}

fn spec(pattern: &str) -> EndpointSpec {
    EndpointSpec {
        url: "https://example.com/hook".into(),
        subscriptions: vec![EndpointSubscription {
            topic: "orders".into(),
            pattern: pattern.into(),
            filter: None,
        }],
        secret: None,
        headers: BTreeMap::new(),
        rate_limit_per_s: None,
        enabled: true,
    }
}

async fn publish(engine: &Engine, key: &str) {
    let message = PublishMessage {
        routing_key: key.into(),
        message: SendMessage {
            body: Bytes::from_static(b"{}"),
            ..SendMessage::default()
        },
        retain: false,
    };
    engine.publish("orders", vec![message]).await.unwrap();
}

fn pending(engine: &Engine, id: &str) -> u64 {
    engine.queue_info(&endpoint_queue(id)).unwrap().stats.ready
}

#[tokio::test]
async fn an_endpoint_receives_what_its_subscriptions_match_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, _clock) = open(dir.path()).await;
    engine
        .put_topic("orders", Default::default())
        .await
        .unwrap();
    let (endpoint, created) = engine
        .put_webhook_endpoint("billing", spec("order.paid"))
        .await
        .unwrap();
    assert!(created);
    assert!(endpoint.secret.starts_with(SECRET_PREFIX));
    publish(&engine, "order.paid").await;
    publish(&engine, "order.shipped").await;
    assert_eq!(pending(&engine, "billing"), 1);

    // Replacing the pattern moves the binding; the secret stays.
    let (replaced, created) = engine
        .put_webhook_endpoint("billing", spec("order.*"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(replaced.secret, endpoint.secret);
    // One binding to the queue, one to the history stream.
    assert_eq!(engine.list_bindings("orders").unwrap().len(), 2);
    publish(&engine, "order.shipped").await;
    assert_eq!(pending(&engine, "billing"), 2);
    close(engine, store).await;

    let (engine, store, _clock) = open(dir.path()).await;
    assert_eq!(engine.webhook_endpoint("billing").unwrap(), replaced);
    // Its queues go with the endpoint only.
    for queue in [endpoint_queue("billing"), endpoint_dead_queue("billing")] {
        let refused = engine.delete_queue(&queue).await.unwrap_err();
        assert!(
            matches!(&refused, EngineError::WebhookQueue { endpoint, .. } if endpoint == "billing"),
            "{refused}"
        );
    }
    // So does its history: a replay needs it.
    let history = endpoint_history_stream("billing");
    let refused = engine.delete_stream(&history).await.unwrap_err();
    assert!(
        matches!(&refused, EngineError::Stream(StreamError::WebhookHistory { endpoint, .. }) if endpoint == "billing"),
        "{refused}"
    );
    assert!(engine.stream_info(&history).is_ok());
    history_is_the_endpoints_to_write(&engine, &history).await;
    // Its bindings change with it, and the topics it subscribes to stay while it does; a
    // binding someone else made to its queue is theirs to remove.
    let extra = BindingSpec {
        pattern: "refund.#".to_string(),
        syntax: Default::default(),
        filter: None,
        headers: None,
        destination: Destination::Queue(endpoint_queue("billing")),
    };
    let extra = engine.bind("orders", extra).await.unwrap();
    engine.unbind("orders", &extra).await.unwrap();
    for binding in engine.list_bindings("orders").unwrap() {
        let refused = engine.unbind("orders", &binding.id).await.unwrap_err();
        assert!(
            matches!(&refused, EngineError::WebhookBinding { endpoint, .. } if endpoint == "billing"),
            "{refused}"
        );
    }
    let refused = engine.delete_topic("orders").await.unwrap_err();
    assert!(
        matches!(&refused, EngineError::WebhookTopic { endpoint, .. } if endpoint == "billing"),
        "{refused}"
    );
    assert_eq!(pending(&engine, "billing"), 2);
    assert_eq!(engine.list_bindings("orders").unwrap().len(), 2);
    engine.delete_webhook_endpoint("billing").await.unwrap();
    assert!(engine.list_bindings("orders").unwrap().is_empty());
    engine.delete_topic("orders").await.unwrap();
    assert!(engine
        .stream_info(&endpoint_history_stream("billing"))
        .is_err());
    assert!(engine.queue_info(&endpoint_queue("billing")).is_err());
    assert!(matches!(
        engine.webhook_endpoint("billing"),
        Err(EngineError::WebhookNotFound { .. })
    ));
    close(engine, store).await;
}

#[tokio::test]
async fn a_new_secret_leaves_the_old_one_signing_for_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, clock) = open(dir.path()).await;
    engine
        .put_topic("orders", Default::default())
        .await
        .unwrap();
    let (first, _) = engine.put_webhook_endpoint("e", spec("#")).await.unwrap();
    let mut rotated = spec("#");
    rotated.secret = Some(generate_secret());
    let (second, _) = engine
        .put_webhook_endpoint("e", rotated.clone())
        .await
        .unwrap();
    assert_eq!(
        second.signing_secrets(crate::clock::Clock::now(clock.as_ref())),
        vec![rotated.secret.as_deref().unwrap(), first.secret.as_str()]
    );
    clock.advance(SECRET_GRACE);
    assert_eq!(
        second
            .signing_secrets(crate::clock::Clock::now(clock.as_ref()))
            .len(),
        1
    );
    close(engine, store).await;
}

#[tokio::test]
async fn a_missing_topic_is_refused_by_its_member_and_nothing_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, _clock) = open(dir.path()).await;
    let error = engine
        .put_webhook_endpoint("e", spec("#"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EngineError::DestinationNotFound { name, .. } if name == "orders"),
        "{error}"
    );
    assert!(engine.webhook_endpoints().is_empty());
    assert!(engine.queue_info(&endpoint_queue("e")).is_err());
    close(engine, store).await;
}

#[tokio::test]
async fn disabling_keeps_the_reason_until_a_client_enables_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, _clock) = open(dir.path()).await;
    engine
        .put_topic("orders", Default::default())
        .await
        .unwrap();
    engine.put_webhook_endpoint("e", spec("#")).await.unwrap();
    let changes = engine.webhook_changes();
    engine
        .disable_webhook_endpoint("e", "410 Gone")
        .await
        .unwrap();
    assert!(changes.has_changed().unwrap());
    let endpoint = engine.webhook_endpoint("e").unwrap();
    assert!(!endpoint.enabled);
    assert_eq!(endpoint.disabled_reason.as_deref(), Some("410 Gone"));
    let (enabled, _) = engine.put_webhook_endpoint("e", spec("#")).await.unwrap();
    assert!(enabled.enabled && enabled.disabled_reason.is_none());
    close(engine, store).await;
}

#[tokio::test]
async fn a_replay_sends_a_time_range_of_the_endpoints_history_again_under_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, clock) = open(dir.path()).await;
    engine
        .put_topic("orders", Default::default())
        .await
        .unwrap();
    engine
        .put_webhook_endpoint("billing", spec("order.*"))
        .await
        .unwrap();
    let queue = endpoint_queue("billing");
    let mut ids = Vec::new();
    for key in [
        "order.paid",
        "order.shipped",
        "invoice.sent",
        "order.closed",
    ] {
        publish(&engine, key).await;
        clock.advance(Duration::from_secs(60));
    }
    // Delivered: the queue is empty.
    let request = crate::broker::ReceiveRequest {
        max_messages: 10,
        wait: Duration::ZERO,
        lease: None,
    };
    let delivered = engine.receive(&queue, request.clone()).await.unwrap();
    for delivery in &delivered {
        ids.push(delivery.message.id.clone());
    }
    let receipts: Vec<_> = delivered.iter().map(|d| d.receipt.clone()).collect();
    engine.ack(&queue, &receipts).await.unwrap();
    assert_eq!((ids.len(), pending(&engine, "billing")), (3, 0));
    close(engine, store).await;

    // After a restart, the second and third minutes again: what the endpoint got then.
    let (engine, store, _clock) = open(dir.path()).await;
    let replayed = engine
        .replay_webhook("billing", START + 60_000, START + 180_000)
        .await
        .unwrap();
    // order.shipped and order.closed; invoice.sent, between them, never matched.
    assert_eq!(
        replayed,
        Replayed {
            messages: 2,
            next_since: None
        }
    );
    let again = engine.receive(&queue, request.clone()).await.unwrap();
    let again: Vec<_> = again.iter().map(|d| d.message.id.clone()).collect();
    assert_eq!(again, [ids[1].clone(), ids[2].clone()]);
    let everything = engine.replay_webhook("billing", 0, u64::MAX).await.unwrap();
    assert_eq!(everything.messages, 3);
    let none = engine
        .replay_webhook("billing", START + 600_000, u64::MAX)
        .await
        .unwrap();
    assert_eq!(none.messages, 0);
    let unknown = engine
        .replay_webhook("nobody", 0, u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(unknown, EngineError::WebhookNotFound { .. }));
    close(engine, store).await;
}

/// Only the endpoint writes its history: a replay re-sends what it holds, signed.
async fn history_is_the_endpoints_to_write(engine: &Engine, history: &str) {
    fn refused<T>(result: Result<T, EngineError>) -> bool {
        matches!(&result, Err(EngineError::Stream(StreamError::WebhookHistory { endpoint, .. })) if endpoint == "billing")
    }
    let records = vec![crate::broker::ProduceRecord {
        value: Some(Bytes::from_static(b"forged")),
        ..Default::default()
    }];
    let request = crate::broker::ProduceRequest {
        records,
        producer: None,
    };
    assert!(refused(engine.produce(history, request).await));
    let spec = BindingSpec {
        pattern: "#".to_string(),
        syntax: Default::default(),
        filter: None,
        headers: None,
        destination: Destination::Stream(history.to_string()),
    };
    assert!(refused(engine.bind("orders", spec).await));
    let options = crate::topic::TopicOptions {
        alternate: Some(Destination::Stream(history.to_string())),
        ..Default::default()
    };
    assert!(refused(engine.put_topic("forger", options).await));
    assert!(engine.topic_info("forger").is_err());
}

/// A new endpoint does not take over a queue or history stream someone made under its names:
/// what they hold would be delivered, or replayed, signed with its secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_endpoint_takes_over_no_existing_queue_or_history() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, _clock) = open(dir.path()).await;
    engine
        .put_topic("orders", Default::default())
        .await
        .unwrap();
    let made = [
        (endpoint_queue("a"), true),
        (endpoint_dead_queue("b"), true),
        (endpoint_history_stream("c"), false),
    ];
    for (name, queue) in &made {
        match queue {
            true => engine
                .put_queue(name, QueueOptions::default())
                .await
                .map(drop),
            false => (engine.put_stream(name, Default::default()).await).map(drop),
        }
        .unwrap();
    }
    for (id, (name, queue)) in ["a", "b", "c"].into_iter().zip(&made) {
        let refused = engine.put_webhook_endpoint(id, spec("order.*")).await;
        assert!(
            matches!(&refused, Err(EngineError::WebhookResourceExists { endpoint, resource }) if endpoint == id && resource.contains(name.as_str())),
            "{refused:?}"
        );
        assert!(engine.webhook_endpoint(id).is_err());
        match queue {
            true => engine.delete_queue(name).await.unwrap(),
            false => engine.delete_stream(name).await.unwrap(),
        }
        let (_, created) = engine
            .put_webhook_endpoint(id, spec("order.*"))
            .await
            .unwrap();
        assert!(created);
        // Its own queues and history do not stop it being replaced.
        let (_, created) = engine
            .put_webhook_endpoint(id, spec("order.#"))
            .await
            .unwrap();
        assert!(!created);
    }
    close(engine, store).await;
}
