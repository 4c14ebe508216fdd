//! Alert rules against a real engine on a real store, with the engine's clock moved by hand.

use super::*;
use crate::{
    clock::ManualClock,
    queue::QueueOptions,
    topic::{BindingSpec, Destination},
    EngineConfig,
};
use std::{path::Path, sync::Arc, time::Duration};
use wharf_storage::{Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

async fn open(dir: &Path, config: EngineConfig) -> (Engine, Arc<Store>, Arc<ManualClock>) {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    let clock = ManualClock::new(START);
    let engine = Engine::open(store.clone(), clock.clone(), config)
        .await
        .unwrap();
    (engine, store, clock)
}

async fn close(engine: Engine, store: Arc<Store>) {
    engine.close();
    store.close().await.unwrap();
}

fn backlog(queue: &str, threshold: f64, for_ms: u64) -> AlertRule {
    AlertRule {
        queue: Some(queue.to_string()),
        topic: None,
        metric: AlertMetric::Ready,
        rate: false,
        op: AlertOp::Above,
        threshold,
        for_ms,
        readiness: true,
    }
}

async fn send(engine: &Engine, queue: &str, count: usize) {
    let batch = (0..count)
        .map(|_| SendMessage {
            body: Bytes::from_static(b"x"),
            ..SendMessage::default()
        })
        .collect();
    engine.send(queue, batch).await.unwrap();
}

/// The alert events a queue bound to the alerts topic holds, as JSON.
async fn events(engine: &Engine, queue: &str) -> Vec<serde_json::Value> {
    (engine.peek(queue, 100).await.unwrap().into_iter())
        .map(|peeked| serde_json::from_slice(&peeked.message.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_backlog_fires_after_its_duration_and_resolves_with_events_on_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, clock) = open(dir.path(), EngineConfig::default()).await;
    engine
        .put_queue("orders", QueueOptions::default())
        .await
        .unwrap();
    engine
        .put_queue("ops", QueueOptions::default())
        .await
        .unwrap();
    engine
        .put_topic(ALERTS_TOPIC_DEFAULT, TopicOptions::default())
        .await
        .unwrap();
    let spec = BindingSpec {
        pattern: "alert.#".to_string(),
        syntax: Default::default(),
        filter: None,
        headers: None,
        destination: Destination::Queue("ops".to_string()),
    };
    engine.bind(ALERTS_TOPIC_DEFAULT, spec).await.unwrap();
    let created = engine
        .put_alert_rule("backlog", backlog("orders", 2.0, 60_000))
        .await;
    assert!(created.unwrap());

    send(&engine, "orders", 3).await;
    assert!(engine
        .evaluate_alerts(NodeSample::default())
        .await
        .is_empty());
    let status = engine.alert("backlog").unwrap().status;
    assert_eq!(
        (status.state, status.value),
        (AlertState::Pending, Some(3.0))
    );
    assert!(
        engine.alerts_failing_readiness().is_empty(),
        "pending holds no readiness"
    );

    clock.advance(Duration::from_secs(60));
    let fired = engine.evaluate_alerts(NodeSample::default()).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].transition, Transition::Fired);
    assert_eq!(engine.alerts_failing_readiness(), ["backlog"]);
    let seen = events(&engine, "ops").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["alert"], "backlog");
    assert_eq!(seen[0]["state"], "firing");
    assert_eq!(seen[0]["value"], 3.0);
    assert_eq!(seen[0]["rule"]["queue"], "orders");
    assert_eq!(seen[0]["at_ms"], START + 60_000);

    // Still firing: nothing new is published.
    assert!(engine
        .evaluate_alerts(NodeSample::default())
        .await
        .is_empty());
    engine.purge("orders").await.unwrap();
    let resolved = engine.evaluate_alerts(NodeSample::default()).await;
    assert_eq!(resolved[0].transition, Transition::Resolved);
    assert!(engine.alerts_failing_readiness().is_empty());
    let seen = events(&engine, "ops").await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["state"], "resolved");
    close(engine, store).await;
}

#[tokio::test]
async fn the_alerts_topic_is_created_when_first_needed() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        alerts_topic: "ops.alerts".to_string(),
        ..EngineConfig::default()
    };
    let (engine, store, _clock) = open(dir.path(), config).await;
    let rule = AlertRule {
        queue: None,
        metric: AlertMetric::DiskFreeBytes,
        op: AlertOp::Below,
        threshold: 1e9,
        ..backlog("", 0.0, 0)
    };
    engine.put_alert_rule("disk", rule).await.unwrap();
    let node = NodeSample {
        disk_free_bytes: Some(5),
        resident_memory_bytes: None,
    };
    assert_eq!(engine.evaluate_alerts(node).await.len(), 1);
    assert_eq!(engine.topic_info("ops.alerts").unwrap().stats.published, 1);
    close(engine, store).await;
}

#[tokio::test]
async fn api_rules_survive_a_restart_and_configured_ones_cannot_be_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, _clock) = open(dir.path(), EngineConfig::default()).await;
    engine
        .put_queue("orders", QueueOptions::default())
        .await
        .unwrap();
    engine
        .put_alert_rule("kept", backlog("orders", 1.0, 0))
        .await
        .unwrap();
    engine
        .put_alert_rule("gone", backlog("orders", 1.0, 0))
        .await
        .unwrap();
    engine.delete_alert_rule("gone").await.unwrap();
    let missing = engine.put_alert_rule("x", backlog("nowhere", 1.0, 0)).await;
    assert!(matches!(missing, Err(EngineError::QueueNotFound { .. })));
    let bad_name = engine
        .put_alert_rule("no spaces", backlog("orders", 1.0, 0))
        .await;
    assert!(matches!(bad_name, Err(EngineError::InvalidName { .. })));
    close(engine, store).await;

    let config = EngineConfig {
        alert_rules: vec![("fixed".to_string(), backlog("orders", 5.0, 0))],
        ..EngineConfig::default()
    };
    let (engine, store, _clock) = open(dir.path(), config).await;
    let names: Vec<_> = engine
        .alerts()
        .into_iter()
        .map(|a| (a.name, a.source))
        .collect();
    assert_eq!(
        names,
        [
            ("fixed".to_string(), RuleSource::Config),
            ("kept".to_string(), RuleSource::Api)
        ]
    );
    let replace = engine
        .put_alert_rule("fixed", backlog("orders", 1.0, 0))
        .await;
    assert!(matches!(replace, Err(EngineError::AlertConfigured { .. })));
    let delete = engine.delete_alert_rule("fixed").await;
    assert!(matches!(delete, Err(EngineError::AlertConfigured { .. })));
    let delete = engine.delete_alert_rule("never").await;
    assert!(matches!(delete, Err(EngineError::AlertNotFound { .. })));
    close(engine, store).await;
}
