//! Upgrades: a data directory written by the released binary (`tests/fixtures/datadir-v0`, see
//! its README) opens with every queue, message, dead letter, binding and retained message
//! intact; new records written next to the old ones survive a restart, and so do the old ones.

use bytes::Bytes;
use std::{collections::BTreeMap, fs, path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{Delivery, NackAction, PublishMessage, ReceiveRequest, SendMessage},
    clock::ManualClock,
    queue::{Overflow, QueueOptions},
    topic::{
        BindingSpec, Destination, HeadersMatch, HeadersMode, RuleSpec, RulesMode, TopicKind,
        TopicOptions,
    },
    Engine, EngineConfig,
};
use wharf_model::{
    message::{DeadLetter, DeadLetterReason, Message},
    pattern::Syntax,
    QueueName,
};
use wharf_storage::{Store, StoreConfig};

/// Half a minute after the fixture was written (its last record is from 1_796_161_670_648):
/// inside every dedup window and time to live it holds.
const START: u64 = 1_796_161_700_000;
/// `order-later` waits until 2100-01-01.
const ORDER_LATER_DELIVER_AT: u64 = 4_102_444_800_000;
/// The send batch of `order-1` .. `order-leased`.
const BATCH_SENT_AT: u64 = 1_796_161_670_285;
const GENERATED_ID: &str = "01a23394-0c8d-7000-8c05-b339fe364665";
const BINDING_ORDERS_EU: &str = "01a23394-0cbf-7000-8070-86aeffe84a56";
const BINDING_ORDERS_MQTT: &str = "01a23394-0ccb-7000-b5c8-06c3d0eb8742";
const BINDING_AUDIT: &str = "01a23394-0d9e-7000-ae3e-e8db63e6d213";
const BINDING_BILLING: &str = "01a23394-0dc5-7000-9955-363ff9f25214";

struct Broker {
    engine: Engine,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
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

    async fn receive(&self, queue: &str, max_messages: usize) -> Vec<Delivery> {
        let request = ReceiveRequest {
            max_messages,
            wait: Duration::ZERO,
            lease: None,
        };
        self.engine.receive(queue, request).await.unwrap()
    }

    async fn peek(&self, queue: &str) -> Vec<Message> {
        let peeked = self.engine.peek(queue, 100).await.unwrap();
        peeked.into_iter().map(|p| p.message).collect()
    }

    async fn retained(&self, topic: &str) -> Vec<Message> {
        let mut subscription = self
            .engine
            .subscribe(topic, "#", Syntax::Mqtt, None)
            .unwrap();
        let mut out = Vec::new();
        while let Some(batch) = subscription.next_retained().await.unwrap() {
            out.extend(batch.into_iter().map(|(_, message)| message));
        }
        out
    }

    fn bindings(&self, topic: &str) -> BTreeMap<String, BindingSpec> {
        let bindings = self.engine.list_bindings(topic).unwrap();
        bindings.into_iter().map(|b| (b.id, b.spec)).collect()
    }

    /// (ready, delayed, leased)
    fn counts(&self, queue: &str) -> (u64, u64, u64) {
        let stats = self.engine.queue_info(queue).unwrap().stats;
        (stats.ready, stats.delayed, stats.leased)
    }
}

/// Copies the fixture, so the test never changes the committed files.
fn fixture_copy() -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v0");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&source, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn json_message(id: &str, body: &str, sent_at: u64) -> Message {
    Message {
        id: id.into(),
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: "application/json".into(),
        headers: BTreeMap::new(),
        priority: 0,
        group: None,
        correlation_id: None,
        reply_to: None,
        sent_at,
        deliver_at: None,
        expires_at: None,
        dead_letter: None,
    }
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn order_1() -> Message {
    Message {
        headers: headers(&[("region", "eu"), ("tenant", "acme")]),
        priority: 5,
        group: Some("customer-7".into()),
        correlation_id: Some("corr-1".into()),
        reply_to: Some("replies".into()),
        ..json_message("order-1", r#"{"amount":250,"order":1}"#, BATCH_SENT_AT)
    }
}

fn generated() -> Message {
    Message {
        headers: headers(&[("k", "v")]),
        priority: 1,
        ..json_message(GENERATED_ID, r#""no client id""#, BATCH_SENT_AT)
    }
}

fn order_2() -> Message {
    Message {
        content_type: "text/plain".into(),
        ..json_message("order-2", "hello wharf", BATCH_SENT_AT)
    }
}

fn order_later() -> Message {
    Message {
        deliver_at: Some(ORDER_LATER_DELIVER_AT),
        ..json_message("order-later", r#"{"order":3}"#, BATCH_SENT_AT)
    }
}

fn order_leased() -> Message {
    Message {
        priority: 7,
        expires_at: Some(1_827_697_670_285),
        ..json_message("order-leased", r#"{"order":4}"#, BATCH_SENT_AT)
    }
}

fn pub_1() -> Message {
    json_message("pub-1", r#"{"amount":50}"#, 1_796_161_670_648)
}

fn order_bad_dead_letter() -> Message {
    Message {
        priority: 8,
        dead_letter: Some(DeadLetter {
            reason: DeadLetterReason::Rejected,
            source_queue: "orders".into(),
            at: 1_796_161_670_272,
            delivery_count: 1,
            last_error: Some("cannot parse amount: oops".into()),
        }),
        ..json_message("order-bad", r#"{"order":"oops"}"#, 1_796_161_670_165)
    }
}

fn job_1() -> Message {
    Message {
        content_type: "application/octet-stream".into(),
        body: Bytes::from_static(&[0, 1, 2, 3, 4, 0xff]),
        ..json_message("job-1", "", 1_796_161_670_308)
    }
}

fn retained_a() -> Message {
    Message {
        headers: headers(&[("unit", "C")]),
        ..json_message(
            "01a23394-0dee-7000-9170-c974467779fe",
            r#"{"c":22.0}"#,
            1_796_161_670_638,
        )
    }
}

fn retained_b() -> Message {
    Message {
        content_type: "text/plain".into(),
        priority: 3,
        ..json_message(
            "01a23394-0de2-7001-917e-c5a132e0fce7",
            "19.0",
            1_796_161_670_626,
        )
    }
}

fn binding(pattern: &str, syntax: Syntax, filter: Option<&str>, to: Destination) -> BindingSpec {
    BindingSpec {
        pattern: pattern.into(),
        syntax,
        filter: filter.map(Into::into),
        headers: None,
        destination: to,
    }
}

fn queue(name: &str) -> Destination {
    Destination::Queue(name.into())
}

fn v0_bindings_of_events() -> BTreeMap<String, BindingSpec> {
    [
        (
            BINDING_ORDERS_EU,
            binding(
                "orders.eu.*",
                Syntax::Amqp,
                Some("amount >= 10"),
                queue("orders"),
            ),
        ),
        (
            BINDING_ORDERS_MQTT,
            binding("orders/#", Syntax::Mqtt, None, queue("jobs")),
        ),
        (
            BINDING_AUDIT,
            binding(
                "audit.#",
                Syntax::Amqp,
                None,
                Destination::Topic("billing".into()),
            ),
        ),
    ]
    .into_iter()
    .map(|(id, spec)| (id.to_string(), spec))
    .collect()
}

fn v0_bindings_of_billing() -> BTreeMap<String, BindingSpec> {
    let spec = BindingSpec {
        headers: Some(HeadersMatch {
            mode: HeadersMode::Any,
            values: headers(&[("region", "eu"), ("tier", "gold")]),
        }),
        ..binding("", Syntax::Amqp, None, queue("jobs"))
    };
    [(BINDING_BILLING.to_string(), spec)].into()
}

fn v0_queue_options() -> BTreeMap<String, QueueOptions> {
    let orders = QueueOptions {
        max_deliveries: Some(5),
        dead_letter_queue: Some(QueueName::try_from("orders.dead".to_string()).unwrap()),
        dedup_window_ms: 600_000,
        lease_ms: 60_000,
        retry_backoff_ms: 500,
        ..QueueOptions::default()
    };
    let jobs = QueueOptions {
        max_length: Some(100),
        overflow: Overflow::DropOldest,
        message_ttl_ms: Some(86_400_000),
        retry_backoff_max_ms: 120_000,
        ..QueueOptions::default()
    };
    let scratch = QueueOptions {
        durable: false,
        ..QueueOptions::default()
    };
    [
        ("jobs", jobs),
        ("orders", orders),
        ("orders.dead", QueueOptions::default()),
        ("scratch", scratch),
    ]
    .into_iter()
    .map(|(name, options)| (name.to_string(), options))
    .collect()
}

fn v0_topic_options() -> BTreeMap<String, TopicOptions> {
    let events = TopicOptions {
        alternate: Some(queue("jobs")),
        rules_mode: RulesMode::All,
        rules: vec![RuleSpec {
            filter: "amount > 1000".into(),
            destination: queue("jobs"),
        }],
        ..TopicOptions::default()
    };
    let billing = TopicOptions {
        kind: TopicKind::Headers,
        ..TopicOptions::default()
    };
    let sensors = TopicOptions {
        retain: true,
        ..TopicOptions::default()
    };
    [
        ("billing", billing),
        ("events", events),
        ("sensors", sensors),
    ]
    .into_iter()
    .map(|(name, options)| (name.to_string(), options))
    .collect()
}

fn assert_v0_definitions(broker: &Broker) {
    let queues: BTreeMap<_, _> = broker
        .engine
        .list_queues()
        .into_iter()
        .map(|q| (q.name, q.options))
        .collect();
    assert_eq!(queues, v0_queue_options());
    let topics: BTreeMap<_, _> = broker
        .engine
        .list_topics()
        .into_iter()
        .map(|t| (t.name, t.options))
        .collect();
    assert_eq!(topics, v0_topic_options());
}

/// The first payload byte (the record tag) of every frame in a log's segments, in order.
fn record_tags(dir: &Path, log: &str) -> Vec<u8> {
    payload_bytes_at(dir, log, 0)
}

/// The payload byte at `position` of every frame in a log's segments, in order.
fn payload_bytes_at(dir: &Path, log: &str, position: usize) -> Vec<u8> {
    let mut segments: Vec<_> = fs::read_dir(dir.join("logs").join(log))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut tags = Vec::new();
    for segment in segments {
        let bytes = fs::read(segment).unwrap();
        let mut at = 0;
        while let Some(length) = bytes.get(at..at + 4) {
            let length = u32::from_le_bytes(length.try_into().unwrap()) as usize;
            if length == 0 {
                break;
            }
            // A frame: 16-byte header (length, checksum, offset), then the payload.
            tags.push(bytes[at + 16 + position]);
            at += length;
        }
    }
    tags
}

/// The tag of the queue record inside every WAL envelope (tag, version, resource u64), in
/// order.
fn wal_inner_tags(dir: &Path) -> Vec<u8> {
    payload_bytes_at(dir, "wal", 10)
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

#[tokio::test]
async fn a_data_directory_of_the_released_format_opens_intact() {
    let dir = fixture_copy();
    let broker = open(dir.path(), ManualClock::new(START)).await;
    assert_v0_definitions(&broker);

    // `order-leased` was leased at shutdown: leases do not survive, so it is ready again.
    assert_eq!(broker.counts("orders"), (5, 1, 0));
    assert_eq!(
        broker.peek("orders").await,
        [order_leased(), order_1(), generated(), order_2(), pub_1()]
    );
    let peeked = broker.engine.peek("orders", 1).await.unwrap();
    assert_eq!(peeked[0].delivery_count, 1, "delivery counts survive");
    assert_eq!(broker.peek("orders.dead").await, [order_bad_dead_letter()]);
    assert_eq!(broker.peek("jobs").await, [job_1()]);
    assert_eq!(broker.counts("scratch"), (0, 0, 0));

    assert_eq!(broker.bindings("events"), v0_bindings_of_events());
    assert_eq!(broker.bindings("billing"), v0_bindings_of_billing());
    assert!(broker.bindings("sensors").is_empty());
    // `sensors/c/temp` was cleared by an empty retained body.
    assert_eq!(
        broker.retained("sensors").await,
        [retained_a(), retained_b()]
    );

    // The delayed message keeps its time.
    broker
        .clock
        .advance(Duration::from_millis(ORDER_LATER_DELIVER_AT - START));
    let all = broker.receive("orders", 10).await;
    let messages: Vec<Message> = all.into_iter().map(|d| d.message).collect();
    assert!(messages.contains(&order_later()), "{:?}", ids(&messages));
}

#[tokio::test]
async fn dedup_ids_of_the_released_format_still_deduplicate() {
    let dir = fixture_copy();
    let broker = open(dir.path(), ManualClock::new(START)).await;
    let again = SendMessage {
        id: Some("order-1".into()),
        body: Bytes::from_static(b"{}"),
        ..SendMessage::default()
    };
    let sent = broker.engine.send("orders", vec![again]).await.unwrap();
    assert!(sent[0].duplicate, "order-1 is inside its 10 min window");
}

#[tokio::test]
async fn new_records_beside_old_ones_survive_a_restart() {
    let dir = fixture_copy();
    let broker = open(dir.path(), ManualClock::new(START)).await;

    // Queue records of the current format in logs that hold the released one: an enqueue, a
    // delivery, an ack of an old message, a dead letter of a new one.
    let order_new = SendMessage {
        id: Some("order-new".into()),
        body: Bytes::from_static(br#"{"order":5}"#),
        content_type: Some("application/json".into()),
        headers: headers(&[("tenant", "globex")]),
        priority: Some(6),
        group: Some("customer-8".into()),
        correlation_id: Some("corr-5".into()),
        ..SendMessage::default()
    };
    broker.engine.send("orders", vec![order_new]).await.unwrap();
    let leased = broker.receive("orders", 1).await;
    assert_eq!(leased[0].message, order_leased());
    assert_eq!(leased[0].delivery_count, 2);
    let results = broker
        .engine
        .ack("orders", &[leased[0].receipt.clone()])
        .await
        .unwrap();
    assert!(results[0].error.is_none());
    let new = broker.receive("orders", 1).await;
    assert_eq!(new[0].message.id, "order-new");
    let nack = NackAction::DeadLetter {
        error: Some("written by the new format".into()),
    };
    broker
        .engine
        .nack("orders", &[new[0].receipt.clone()], nack)
        .await
        .unwrap();

    // Topic records of the current format: a binding added, an old one removed, retained
    // messages replacing an old key and adding a new one.
    let us = binding(
        "orders.us.#",
        Syntax::Amqp,
        Some("amount > 5"),
        queue("jobs"),
    );
    let us_id = broker.engine.bind("events", us.clone()).await.unwrap();
    broker
        .engine
        .unbind("events", BINDING_ORDERS_MQTT)
        .await
        .unwrap();
    let publish = |key: &str, body: &'static [u8], content_type: &str| PublishMessage {
        routing_key: key.into(),
        message: SendMessage {
            body: Bytes::from_static(body),
            content_type: Some(content_type.into()),
            ..SendMessage::default()
        },
        retain: false,
    };
    let retained = vec![
        publish("sensors/b/temp", b"18.5", "text/plain"),
        publish("sensors/d/temp", br#"{"c":-3}"#, "application/json"),
    ];
    broker.engine.publish("sensors", retained).await.unwrap();
    let routed = vec![PublishMessage {
        message: SendMessage {
            id: Some("pub-2".into()),
            ..publish("", br#"{"amount":9}"#, "application/json").message
        },
        routing_key: "orders.us.created".into(),
        retain: false,
    }];
    let published = broker.engine.publish("events", routed).await.unwrap();
    assert_eq!(published[0].routed, 1, "the new binding routes");

    let broker = broker.restart(dir.path()).await;
    assert_v0_definitions(&broker);

    // Queue logs moved into the shared WAL at the first open: the released records still
    // needed were copied as they were (tags 1-3 inside WAL envelopes, tag 0x20), and new
    // records are written in the versioned layout beside them.
    assert!(!dir.path().join("logs").join("queue-orders").exists());
    let wal_tags = record_tags(dir.path(), "wal");
    assert!(wal_tags.iter().all(|tag| *tag == 0x20), "{wal_tags:?}");
    let inner = wal_inner_tags(dir.path());
    assert!(inner.contains(&1) && inner.contains(&0x11), "{inner:?}");
    // Topic logs mix both layouts: released tags 1-3 first, versioned tags 0x11-0x13 after.
    let tags = record_tags(dir.path(), "topic-events");
    assert_eq!(tags, [1, 1, 1, 2, 1, 0x11, 0x12]);

    assert_eq!(broker.counts("orders"), (4, 1, 0));
    assert_eq!(
        broker.peek("orders").await,
        [order_1(), generated(), order_2(), pub_1()]
    );
    let new_dead_letter = Message {
        headers: headers(&[("tenant", "globex")]),
        priority: 6,
        group: Some("customer-8".into()),
        correlation_id: Some("corr-5".into()),
        dead_letter: Some(DeadLetter {
            reason: DeadLetterReason::Rejected,
            source_queue: "orders".into(),
            at: START,
            delivery_count: 1,
            last_error: Some("written by the new format".into()),
        }),
        ..json_message("order-new", r#"{"order":5}"#, START)
    };
    assert_eq!(
        broker.peek("orders.dead").await,
        [order_bad_dead_letter(), new_dead_letter]
    );
    let jobs = broker.peek("jobs").await;
    assert_eq!(ids(&jobs), ["job-1", "pub-2"]);
    assert_eq!(jobs[0], job_1());
    assert_eq!(jobs[1].body.as_ref(), br#"{"amount":9}"#);

    let mut events = v0_bindings_of_events();
    events.remove(BINDING_ORDERS_MQTT);
    // Bindings made now keep their filter in canonical form; older ones as they were given.
    let us = BindingSpec {
        filter: Some("body.amount > 5".to_string()),
        ..us
    };
    events.insert(us_id, us);
    assert_eq!(broker.bindings("events"), events);
    assert_eq!(broker.bindings("billing"), v0_bindings_of_billing());
    let retained = broker.retained("sensors").await;
    assert_eq!(retained[0], retained_a());
    let bodies: Vec<&[u8]> = retained.iter().map(|m| m.body.as_ref()).collect();
    assert_eq!(bodies, [&br#"{"c":22.0}"#[..], b"18.5", br#"{"c":-3}"#]);

    // The old messages still deliver, with their delivery counts.
    let deliveries = broker.receive("orders", 10).await;
    let counts: Vec<(&str, u32)> = deliveries
        .iter()
        .map(|d| (d.message.id.as_str(), d.delivery_count))
        .collect();
    assert_eq!(
        counts,
        [
            ("order-1", 1),
            (GENERATED_ID, 1),
            ("order-2", 1),
            ("pub-1", 1)
        ]
    );
}

/// Definitions live in `meta/meta.json` as JSON objects. A field added to a definition later
/// is missing from every older file, so each definition type must take defaults for missing
/// fields: checked here by dropping each field of each released definition in turn.
#[test]
fn released_definitions_read_with_any_field_missing() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v0/meta/meta.json");
    let text = fs::read_to_string(path).unwrap();
    // The first line is the checksum of the rest.
    let (_, json) = text.split_once('\n').unwrap();
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(json).unwrap();
    assert_eq!(entries.len(), 7);
    for (key, value) in entries {
        let fields = value.as_object().unwrap();
        for field in fields.keys() {
            let mut without = fields.clone();
            without.remove(field);
            let without = serde_json::Value::Object(without);
            let parsed = if key.starts_with("queue/") {
                serde_json::from_value::<QueueOptions>(without).map(|_| ())
            } else {
                serde_json::from_value::<TopicOptions>(without).map(|_| ())
            };
            assert!(parsed.is_ok(), "{key} without {field}: {parsed:?}");
        }
    }
}

#[tokio::test]
async fn a_record_version_newer_than_the_build_is_refused_by_name() {
    let dir = fixture_copy();
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let log = store
        .log("queue-jobs", wharf_storage::LogConfig::default())
        .unwrap();
    // A `delivered` record of version 3, as a later build may write.
    log.append_one(b"\x12\x03\x03\x00\x01\x01").await.unwrap();
    store.close().await.unwrap();
    drop((log, store));

    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let clock = ManualClock::new(START);
    let Err(error) = Engine::open(store, clock, EngineConfig::default()).await else {
        panic!("an unknown record version must not be guessed at");
    };
    let error = error.to_string();
    assert!(
        error.contains("offset 1") && error.contains("tag 18 has version 3"),
        "{error}"
    );
}
