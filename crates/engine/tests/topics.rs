//! Topics end to end over a real store with a manual clock: routing to queues, retained
//! messages, live subscriptions, request-reply and restarts.

use bytes::Bytes;
use std::{future::Future, path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{
        json_body, Delivery, Interested, LiveFeed, LiveInterest, PublishMessage, ReceiveRequest,
        RequestTarget, SendMessage, Subscription, ORIGIN_TOPIC_HEADER, REPLY_ADDRESS_PREFIX,
        RETAINED_COPY_HEADER, ROUTING_KEY_HEADER,
    },
    clock::ManualClock,
    error::{Field, FieldProblem, NameProblem, ResourceKind},
    queue::QueueOptions,
    topic::{BindingSpec, Destination, TopicKind, TopicOptions},
    Engine, EngineConfig, EngineError,
};
use wharf_model::{message::Message, pattern::Syntax};
use wharf_storage::{Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

async fn open(dir: &Path, clock: Arc<ManualClock>) -> (Engine, Arc<Store>) {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    let engine = Engine::open(store.clone(), clock, EngineConfig::default())
        .await
        .unwrap();
    (engine, store)
}

async fn guard<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the engine should have answered")
}

fn json(body: &str) -> SendMessage {
    SendMessage {
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: Some("application/json".into()),
        ..SendMessage::default()
    }
}

fn publish(key: &str, body: &str) -> PublishMessage {
    PublishMessage {
        routing_key: key.into(),
        message: json(body),
        retain: false,
    }
}

fn bind_queue(pattern: &str, queue: &str, filter: Option<&str>) -> BindingSpec {
    BindingSpec {
        pattern: pattern.into(),
        syntax: Syntax::Amqp,
        filter: filter.map(Into::into),
        headers: None,
        destination: Destination::Queue(queue.into()),
    }
}

/// A topic that retains the last message of every key.
fn retaining() -> TopicOptions {
    TopicOptions {
        retain: true,
        ..TopicOptions::default()
    }
}

/// Up to 100 messages of `queue` that are ready now, leased.
async fn receive_now(engine: &Engine, queue: &str) -> Vec<Delivery> {
    let request = ReceiveRequest {
        max_messages: 100,
        wait: Duration::ZERO,
        lease: None,
    };
    engine.receive(queue, request).await.unwrap()
}

/// Each delivery's header `name`.
fn header_of<'a>(got: &'a [Delivery], name: &str) -> Vec<Option<&'a str>> {
    (got.iter())
        .map(|d| d.message.headers.get(name).map(String::as_str))
        .collect()
}

async fn drain(engine: &Engine, queue: &str) -> Vec<String> {
    let got = receive_now(engine, queue).await;
    let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
    engine.ack(queue, &receipts).await.unwrap();
    got.iter()
        .map(|d| String::from_utf8(d.message.body.to_vec()).unwrap())
        .collect()
}

/// Every retained message of a subscription, batch by batch.
async fn retained_messages(subscription: &mut Subscription) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(batch) = subscription.next_retained().await.unwrap() {
        out.extend(batch.into_iter().map(|(_, message)| message));
    }
    out
}

async fn setup(dir: &Path) -> (Engine, Arc<Store>) {
    let (engine, store) = open(dir, ManualClock::new(START)).await;
    for queue in ["all", "big", "eu"] {
        engine
            .put_queue(queue, QueueOptions::default())
            .await
            .unwrap();
    }
    engine
        .put_topic("orders", TopicOptions::default())
        .await
        .unwrap();
    engine
        .bind("orders", bind_queue("orders.#", "all", None))
        .await
        .unwrap();
    engine
        .bind(
            "orders",
            bind_queue("orders.*", "big", Some("amount > 1000")),
        )
        .await
        .unwrap();
    engine
        .bind("orders", bind_queue("*.eu", "eu", None))
        .await
        .unwrap();
    (engine, store)
}

#[tokio::test]
async fn publish_routes_by_pattern_and_filter_and_reports_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = setup(dir.path()).await;
    let published = engine
        .publish(
            "orders",
            vec![
                publish("orders.eu", r#"{"amount": 5000}"#),
                publish("orders.us", r#"{"amount": 5}"#),
                publish("shipping.us", r#"{}"#),
            ],
        )
        .await
        .unwrap();
    let routed: Vec<_> = published.iter().map(|p| p.routed).collect();
    assert_eq!(routed, [3, 1, 0]);
    assert_eq!(drain(&engine, "all").await.len(), 2);
    assert_eq!(drain(&engine, "big").await, [r#"{"amount": 5000}"#]);
    assert_eq!(drain(&engine, "eu").await.len(), 1);
    let stats = engine.topic_info("orders").unwrap().stats;
    assert_eq!((stats.published, stats.routed, stats.unroutable), (3, 4, 1));
    let bindings = engine.list_bindings("orders").unwrap();
    let matched: u64 = bindings.iter().map(|b| b.matched).sum();
    assert_eq!(matched, 4);
}

#[tokio::test]
async fn bindings_survive_restart_and_unbind_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = setup(dir.path()).await;
    let first = engine.list_bindings("orders").unwrap()[0].id.clone();
    engine.unbind("orders", &first).await.unwrap();
    assert!(matches!(
        engine.unbind("orders", &first).await,
        Err(EngineError::BindingNotFound { .. })
    ));
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    assert_eq!(engine.list_bindings("orders").unwrap().len(), 2);
    let published = engine
        .publish("orders", vec![publish("orders.eu", r#"{"amount": 5000}"#)])
        .await
        .unwrap();
    assert_eq!(published[0].routed, 3 - 1 + 1 - 1, "two bindings left");
}

#[tokio::test]
async fn a_publish_reaches_only_the_live_subscribers_whose_pattern_matches() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    engine
        .put_topic("devices", TopicOptions::default())
        .await
        .unwrap();
    let (feed, mut messages) = LiveFeed::new(100);
    let mut subscriptions = Vec::new();
    // One subscriber per device, and wildcard ones of each syntax; tag = its index.
    let patterns: Vec<(String, Syntax)> = (0..2_000)
        .map(|n| (format!("dev.{n}.cmd"), Syntax::Amqp))
        .chain([
            ("dev.*.cmd".to_string(), Syntax::Amqp),
            ("dev/#".to_string(), Syntax::Mqtt),
            ("dev.>".to_string(), Syntax::Nats),
            ("other.#".to_string(), Syntax::Amqp),
        ])
        .collect();
    for (tag, (pattern, syntax)) in patterns.iter().enumerate() {
        let interested = Interested {
            pattern,
            syntax: *syntax,
            filter: None,
        };
        let subscription = engine
            .subscribe_feed("devices", interested, feed.clone(), tag as u64)
            .unwrap();
        subscriptions.push(subscription);
    }
    let publish_to = |key: &str| publish(key, "{}");
    engine
        .publish(
            "devices",
            vec![publish_to("dev.7.cmd"), publish_to("dev/7")],
        )
        .await
        .unwrap();
    let mut tags = Vec::new();
    while let Ok(message) = messages.try_recv() {
        tags.push((message.tag, message.routing_key.to_string()));
    }
    let key = |key: &str| key.to_string();
    assert_eq!(
        tags,
        [
            (7, key("dev.7.cmd")),
            (2_000, key("dev.7.cmd")),
            (2_002, key("dev.7.cmd")),
            (2_001, key("dev/7")),
        ]
    );
    // A subscription that ends leaves the index.
    subscriptions.swap_remove(7);
    engine
        .publish("devices", vec![publish_to("dev.7.cmd")])
        .await
        .unwrap();
    let tags: Vec<u64> = std::iter::from_fn(|| messages.try_recv().ok())
        .map(|message| message.tag)
        .collect();
    assert_eq!(tags, [2_000, 2_002]);
}

#[tokio::test]
async fn a_topic_that_does_not_retain_keeps_only_messages_flagged_to_be_retained() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path(), ManualClock::new(START)).await;
    engine
        .put_topic("mqtt", TopicOptions::default())
        .await
        .unwrap();
    let flagged = |key: &str, body: &str| PublishMessage {
        retain: true,
        ..publish(key, body)
    };
    let batch = vec![
        flagged("room.1", "kept"),
        publish("room.1", "live only"),
        publish("room.2", "never kept"),
        flagged("room.3", "kept too"),
    ];
    engine.publish("mqtt", batch).await.unwrap();
    let retained_bodies = |engine: Engine| async move {
        let mut subscription = engine
            .subscribe("mqtt", "room.*", Syntax::Amqp, None)
            .unwrap();
        let mut bodies: Vec<_> = retained_messages(&mut subscription)
            .await
            .iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect();
        bodies.sort();
        bodies
    };
    assert_eq!(retained_bodies(engine.clone()).await, ["kept", "kept too"]);
    // A flagged empty body clears its key; the rest survives a restart.
    engine
        .publish("mqtt", vec![flagged("room.3", "")])
        .await
        .unwrap();
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    assert_eq!(retained_bodies(engine).await, ["kept"]);
}

#[tokio::test]
async fn retained_messages_reach_new_subscriptions_and_new_bindings_first() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    engine.put_topic("sensors", retaining()).await.unwrap();
    engine
        .publish(
            "sensors",
            vec![
                publish("room.1", r#"{"t": 20}"#),
                publish("room.1", r#"{"t": 21}"#),
                publish("room.2", r#"{"t": 18}"#),
                publish("hall.1", r#"{"t": 15}"#),
            ],
        )
        .await
        .unwrap();
    let mut subscription = engine
        .subscribe("sensors", "room.*", Syntax::Amqp, None)
        .unwrap();
    let mut retained: Vec<_> = retained_messages(&mut subscription)
        .await
        .iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect();
    retained.sort();
    assert_eq!(retained, [r#"{"t": 18}"#, r#"{"t": 21}"#]);
    // An empty body clears the key.
    engine
        .publish("sensors", vec![publish("room.2", "")])
        .await
        .unwrap();
    engine
        .put_queue("rooms", QueueOptions::default())
        .await
        .unwrap();
    engine
        .bind("sensors", bind_queue("room.#", "rooms", None))
        .await
        .unwrap();
    // The copy of the retained message is marked as one; a live publish is not, whatever its
    // publisher claims.
    let mut live = publish("room.3", r#"{"t": 19}"#);
    (live.message.headers).insert(RETAINED_COPY_HEADER.into(), "1".into());
    engine.publish("sensors", vec![live]).await.unwrap();
    let got = receive_now(&engine, "rooms").await;
    assert_eq!(header_of(&got, RETAINED_COPY_HEADER), [Some("1"), None]);
    assert_eq!(&got[0].message.body[..], br#"{"t": 21}"#);
}

#[tokio::test]
async fn retained_copies_keep_their_mark_through_a_topic_to_topic_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    engine.put_topic("sensors", retaining()).await.unwrap();
    (engine.put_topic("rooms", TopicOptions::default()))
        .await
        .unwrap();
    engine
        .put_queue("room-log", QueueOptions::default())
        .await
        .unwrap();
    engine
        .bind("rooms", bind_queue("#", "room-log", None))
        .await
        .unwrap();
    engine
        .publish("sensors", vec![publish("room.1", r#"{"t": 20}"#)])
        .await
        .unwrap();
    let to_rooms = BindingSpec {
        destination: Destination::Topic("rooms".into()),
        ..bind_queue("room.*", "unused", None)
    };
    engine.bind("sensors", to_rooms).await.unwrap();
    engine
        .publish("sensors", vec![publish("room.2", r#"{"t": 18}"#)])
        .await
        .unwrap();
    let got = receive_now(&engine, "room-log").await;
    let bodies: Vec<&[u8]> = got.iter().map(|d| &d.message.body[..]).collect();
    assert_eq!(bodies, [&br#"{"t": 20}"#[..], &br#"{"t": 18}"#[..]]);
    assert_eq!(header_of(&got, RETAINED_COPY_HEADER), [Some("1"), None]);
    let origins = header_of(&got, ORIGIN_TOPIC_HEADER);
    assert_eq!(origins, [Some("sensors"), Some("sensors")]);
}

#[tokio::test]
async fn live_subscriptions_get_matching_messages_as_published() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = setup(dir.path()).await;
    let mut subscription = engine
        .subscribe("orders", "orders.*", Syntax::Amqp, Some("amount > 10"))
        .unwrap();
    engine
        .publish(
            "orders",
            vec![
                publish("orders.eu", r#"{"amount": 5}"#),
                publish("orders.eu", r#"{"amount": 50}"#),
            ],
        )
        .await
        .unwrap();
    let got = guard(subscription.messages.recv()).await.unwrap();
    assert_eq!(got.message.body.as_ref(), br#"{"amount": 50}"#);
    assert_eq!(&*got.routing_key, "orders.eu");
    assert!(subscription.messages.try_recv().is_err());
}

/// A body with a text too long for the filters to judge is refused by every filter that meets
/// it, and each refusal is counted; bindings without a filter still take it.
#[tokio::test]
async fn filters_stopped_by_a_cost_limit_do_not_match_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = setup(dir.path()).await;
    engine
        .bind(
            "orders",
            bind_queue("orders.#", "eu", Some("not text matches '(a|aa)*x'")),
        )
        .await
        .unwrap();
    let mut subscription = engine
        .subscribe(
            "orders",
            "orders.*",
            Syntax::Amqp,
            Some("text contains 'b'"),
        )
        .unwrap();
    let text = "a".repeat(1 << 20);
    let published = engine
        .publish(
            "orders",
            vec![
                publish(
                    "orders.us",
                    &format!(r#"{{"amount": 5000, "text": "{text}b"}}"#),
                ),
                publish("orders.us", r#"{"amount": 5, "text": "ab"}"#),
            ],
        )
        .await
        .unwrap();
    // `all` takes both and `big` judges by `amount` alone. `eu` and the subscriber take the
    // short text and are stopped on the long one: even `not` does not let it through.
    let routed: Vec<_> = published.iter().map(|p| p.routed).collect();
    assert_eq!(routed, [2, 2]);
    assert_eq!(
        drain(&engine, "eu").await,
        [r#"{"amount": 5, "text": "ab"}"#]
    );
    let got = guard(subscription.messages.recv()).await.unwrap();
    assert_eq!(got.message.body.as_ref(), br#"{"amount": 5, "text": "ab"}"#);
    assert!(subscription.messages.try_recv().is_err());
    let stats = engine.topic_info("orders").unwrap().stats;
    assert_eq!(stats.filters_stopped, 2);
}

#[tokio::test]
async fn fanout_topic_to_topic_and_alternate_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = setup(dir.path()).await;
    engine
        .put_queue("lost", QueueOptions::default())
        .await
        .unwrap();
    let fanout = TopicOptions {
        kind: TopicKind::Fanout,
        alternate: Some(Destination::Queue("lost".into())),
        ..TopicOptions::default()
    };
    engine.put_topic("events", fanout).await.unwrap();
    let published = engine
        .publish("events", vec![publish("x", "{}")])
        .await
        .unwrap();
    assert_eq!(
        published[0].routed, 1,
        "alternate destination takes the unroutable"
    );
    assert_eq!(drain(&engine, "lost").await.len(), 1);
    let to_orders = BindingSpec {
        destination: Destination::Topic("orders".into()),
        ..bind_queue("", "unused", None)
    };
    engine.bind("events", to_orders).await.unwrap();
    engine
        .publish("events", vec![publish("orders.eu", r#"{"amount": 1}"#)])
        .await
        .unwrap();
    assert_eq!(drain(&engine, "all").await.len(), 1);
    assert_eq!(drain(&engine, "eu").await.len(), 1);
}

#[tokio::test]
async fn request_reply_round_trip_and_timeout_leave_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), clock.clone()).await;
    engine
        .put_queue("rpc", QueueOptions::default())
        .await
        .unwrap();
    let responder = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for _ in 0..4 {
                let request = ReceiveRequest {
                    max_messages: 1,
                    wait: Duration::from_secs(20),
                    lease: None,
                };
                let got = engine.receive("rpc", request).await.unwrap();
                let asked = &got[0].message;
                let answer = format!("echo {}", String::from_utf8_lossy(&asked.body));
                engine
                    .reply(
                        asked.reply_to.as_deref().unwrap(),
                        asked.correlation_id.as_deref().unwrap(),
                        json(&format!("\"{answer}\"")),
                    )
                    .await
                    .unwrap();
                engine.ack("rpc", &[got[0].receipt.clone()]).await.unwrap();
            }
        })
    };
    let mut requests = Vec::new();
    for i in 0..4 {
        let engine = engine.clone();
        requests.push(tokio::spawn(async move {
            engine
                .request(
                    RequestTarget::Queue("rpc".into()),
                    json(&i.to_string()),
                    Duration::from_secs(30),
                )
                .await
                .unwrap()
        }));
    }
    for (i, request) in requests.into_iter().enumerate() {
        let reply = guard(request).await.unwrap();
        assert_eq!(reply.body.as_ref(), format!("\"echo {i}\"").as_bytes());
    }
    guard(responder).await.unwrap();

    // Nobody answers: the request times out when the clock passes its deadline.
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .request(
                    RequestTarget::Queue("rpc".into()),
                    json("1"),
                    Duration::from_secs(5),
                )
                .await
        })
    };
    let request = ReceiveRequest {
        max_messages: 1,
        wait: Duration::from_secs(20),
        lease: None,
    };
    let asked = guard(engine.receive("rpc", request)).await.unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(matches!(
        guard(waiting).await.unwrap(),
        Err(EngineError::Timeout { .. })
    ));
    let late = engine
        .reply(
            asked[0].message.reply_to.as_deref().unwrap(),
            asked[0].message.correlation_id.as_deref().unwrap(),
            json("\"late\""),
        )
        .await;
    assert!(
        matches!(late, Err(EngineError::ReplyNotFound { .. })),
        "{late:?}"
    );
}

#[tokio::test]
async fn scatter_collects_replies_until_expected_or_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), clock.clone()).await;
    engine
        .put_topic("quotes", TopicOptions::default())
        .await
        .unwrap();
    for supplier in ["a", "b", "c"] {
        engine
            .put_queue(supplier, QueueOptions::default())
            .await
            .unwrap();
        engine
            .bind("quotes", bind_queue("quote.#", supplier, None))
            .await
            .unwrap();
    }
    let gathering = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .scatter("quotes", "quote.eu", json("{}"), 3, Duration::from_secs(5))
                .await
                .unwrap()
        })
    };
    for supplier in ["a", "b"] {
        let request = ReceiveRequest {
            max_messages: 1,
            wait: Duration::from_secs(20),
            lease: None,
        };
        let got = guard(engine.receive(supplier, request)).await.unwrap();
        let asked = &got[0].message;
        engine
            .reply(
                asked.reply_to.as_deref().unwrap(),
                asked.correlation_id.as_deref().unwrap(),
                json(&format!("\"{supplier}\"")),
            )
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(5));
    let result = guard(gathering).await.unwrap();
    assert_eq!((result.expected, result.received), (3, 2));
}

#[tokio::test]
async fn bad_bindings_are_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = setup(dir.path()).await;
    let bad_pattern = BindingSpec {
        syntax: Syntax::Mqtt,
        ..bind_queue("a/#/b", "all", None)
    };
    assert!(matches!(
        engine.bind("orders", bad_pattern).await,
        Err(EngineError::InvalidField {
            field: Field::Pattern,
            problem: FieldProblem::InvalidPattern { .. },
        })
    ));
    let bad_filter = bind_queue("a", "all", Some("amount >>"));
    assert!(matches!(
        engine.bind("orders", bad_filter).await,
        Err(EngineError::InvalidField {
            field: Field::Filter,
            problem: FieldProblem::InvalidFilter { .. },
        })
    ));
    assert!(matches!(
        engine
            .bind("orders", bind_queue("a", "nowhere", None))
            .await,
        Err(EngineError::DestinationNotFound { ref name, .. }) if name == "nowhere"
    ));
    assert!(matches!(
        engine.bind("missing", bind_queue("a", "all", None)).await,
        Err(EngineError::TopicNotFound { .. })
    ));
    assert!(matches!(
        engine.put_queue("_reply.x", QueueOptions::default()).await,
        Err(EngineError::InvalidName {
            kind: ResourceKind::Queue,
            problem: NameProblem::ReplyAddress,
            ..
        })
    ));
}

#[tokio::test]
async fn a_reply_inbox_takes_replies_of_any_correlation_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), clock).await;
    let mut inbox = engine.open_reply_inbox(8).unwrap();
    let address = inbox.address().to_string();
    assert!(address.starts_with(REPLY_ADDRESS_PREFIX), "{address}");
    for correlation in ["a", "b"] {
        let reply = SendMessage {
            correlation_id: Some(correlation.to_string()),
            ..json("\"answer\"")
        };
        engine.send(&address, vec![reply]).await.unwrap();
    }
    // No correlation id at all is taken too: the inbox is not one request's.
    engine.send(&address, vec![json("3")]).await.unwrap();
    let got: Vec<Option<String>> = vec![
        guard(inbox.next()).await.unwrap().correlation_id,
        guard(inbox.next()).await.unwrap().correlation_id,
        guard(inbox.next()).await.unwrap().correlation_id,
    ];
    assert_eq!(got, vec![Some("a".into()), Some("b".into()), None]);
    drop(inbox);
    assert!(matches!(
        engine.send(&address, vec![json("4")]).await,
        Err(EngineError::ReplyNotFound { .. })
    ));
}

#[tokio::test]
async fn an_abandoned_request_expires_with_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), clock.clone()).await;
    engine
        .put_queue("rpc", QueueOptions::default())
        .await
        .unwrap();
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let target = RequestTarget::Queue("rpc".into());
            engine
                .request(target, json("1"), Duration::from_secs(5))
                .await
        })
    };
    guard(async {
        while engine.queue_info("rpc").unwrap().stats.ready == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    clock.advance(Duration::from_secs(5));
    assert!(matches!(
        guard(waiting).await.unwrap(),
        Err(EngineError::Timeout { .. })
    ));
    // No responder ever took it: the message left with its request instead of piling up.
    assert!(drain(&engine, "rpc").await.is_empty());
    assert_eq!(engine.queue_info("rpc").unwrap().stats.ready, 0);
}

/// A queue keeps messages, not the keys they were routed by: the copy a topic routes to a
/// queue carries its routing key in a header (a publisher's own value replaced), while a live
/// subscriber gets the key beside the message.
#[tokio::test]
async fn a_queued_copy_carries_its_routing_key_and_a_live_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    engine
        .put_topic("orders", TopicOptions::default())
        .await
        .unwrap();
    engine
        .put_queue("eu", QueueOptions::default())
        .await
        .unwrap();
    engine
        .bind("orders", bind_queue("orders.#", "eu", None))
        .await
        .unwrap();
    let mut live = engine
        .subscribe("orders", "orders.#", Syntax::Amqp, None)
        .unwrap();
    let mut forged = publish("orders.eu.paris", "1");
    (forged.message.headers).insert(ROUTING_KEY_HEADER.into(), "elsewhere".into());
    (forged.message.headers).insert(ORIGIN_TOPIC_HEADER.into(), "fake".into());
    engine.publish("orders", vec![forged]).await.unwrap();
    let request = ReceiveRequest {
        max_messages: 1,
        wait: Duration::ZERO,
        lease: None,
    };
    let got = engine.receive("eu", request.clone()).await.unwrap();
    assert_eq!(
        got[0].message.headers[ROUTING_KEY_HEADER],
        "orders.eu.paris"
    );
    assert_eq!(got[0].message.headers[ORIGIN_TOPIC_HEADER], "orders");
    // Through a topic-to-topic binding: the topic it was published to, as AMQP names the
    // exchange of a delivery.
    let fanout = TopicOptions {
        kind: TopicKind::Fanout,
        ..TopicOptions::default()
    };
    engine.put_topic("all-orders", fanout).await.unwrap();
    let to_orders = BindingSpec {
        destination: Destination::Topic("orders".into()),
        ..bind_queue("", "unused", None)
    };
    engine.bind("all-orders", to_orders).await.unwrap();
    (engine.publish("all-orders", vec![publish("orders.eu.lyon", "2")]))
        .await
        .unwrap();
    let got = engine.receive("eu", request).await.unwrap();
    assert_eq!(got[0].message.headers[ROUTING_KEY_HEADER], "orders.eu.lyon");
    assert_eq!(got[0].message.headers[ORIGIN_TOPIC_HEADER], "all-orders");
    let live = live.messages.recv().await.unwrap();
    assert_eq!(&*live.routing_key, "orders.eu.paris");
    assert_eq!(
        live.message.headers[ROUTING_KEY_HEADER], "elsewhere",
        "left as published"
    );
}

/// A reader that stops holds at most its feed's byte budget, however large the messages:
/// past it messages are missed (and counted); what the reader takes and drops frees room.
#[tokio::test]
async fn a_feed_holds_at_most_its_byte_budget_and_reading_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    engine
        .put_topic("big", TopicOptions::default())
        .await
        .unwrap();
    let (feed, mut messages) = LiveFeed::with_bytes(1_000, 10_000);
    let all = Interested {
        pattern: "#",
        syntax: Syntax::Amqp,
        filter: None,
    };
    let _subscription = engine.subscribe_feed("big", all, feed.clone(), 1).unwrap();
    let kilobyte = |n: usize| publish(&format!("k.{n}"), &format!("\"{}\"", "x".repeat(998)));
    for n in 0..25 {
        engine.publish("big", vec![kilobyte(n)]).await.unwrap();
    }
    assert_eq!(feed.bytes_held(), 10_000, "ten 1,000-byte bodies fill it");
    assert_eq!(feed.missed(), 15);
    let mut keys = Vec::new();
    while let Ok(live) = messages.try_recv() {
        keys.push(live.routing_key.to_string());
    }
    assert_eq!(keys, (0..10).map(|n| format!("k.{n}")).collect::<Vec<_>>());
    assert_eq!(
        feed.bytes_held(),
        0,
        "messages read and dropped give their bytes back"
    );

    // A message moved out of its envelope gives the bytes back as the envelope drops.
    engine.publish("big", vec![kilobyte(25)]).await.unwrap();
    let kept = messages.try_recv().unwrap().message;
    assert_eq!(feed.bytes_held(), 0);
    assert_eq!(kept.body.len(), 1_000);
    // One message larger than the whole budget still passes when nothing else is held.
    let huge = publish("k.huge", &format!("\"{}\"", "y".repeat(20_000)));
    engine.publish("big", vec![huge]).await.unwrap();
    assert_eq!(&*messages.try_recv().unwrap().routing_key, "k.huge");
    assert_eq!(feed.missed(), 15);
}

#[tokio::test]
async fn feed_subscriptions_share_one_buffer_tag_their_messages_and_count_what_they_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = setup(dir.path()).await;
    let (feed, mut messages) = LiveFeed::new(2);
    let eu = Interested {
        pattern: "orders.eu",
        syntax: Syntax::Amqp,
        filter: None,
    };
    let big_interest = Interested {
        pattern: "#",
        syntax: Syntax::Amqp,
        filter: Some("amount > 10"),
    };
    let _eu = engine
        .subscribe_feed("orders", eu, feed.clone(), 1)
        .unwrap();
    let big = engine
        .subscribe_feed("orders", big_interest, feed.clone(), 2)
        .unwrap();
    let published = vec![
        publish("orders.eu", r#"{"amount": 5}"#),
        publish("orders.us", r#"{"amount": 50}"#),
        publish("orders.eu", r#"{"amount": 70}"#),
    ];
    engine.publish("orders", published).await.unwrap();
    let first = guard(messages.recv()).await.unwrap();
    let second = guard(messages.recv()).await.unwrap();
    assert_eq!((first.tag, &*first.routing_key), (1, "orders.eu"));
    assert_eq!((second.tag, &*second.routing_key), (2, "orders.us"));
    // The third message matched both subscriptions and found the buffer of 2 full twice.
    assert!(messages.try_recv().is_err());
    assert_eq!(feed.missed(), 2);
    let interest = LiveInterest::parse(big_interest).unwrap();
    let body = |message: &Message| json_body(message);
    let small = &first.message;
    assert!(
        !interest.wants("orders.eu", small, body(small).as_ref()),
        "5 is not above 10"
    );
    assert!(interest.wants("orders.us", &second.message, body(&second.message).as_ref()));
    assert!(
        !interest.wants("invoices", &second.message, None),
        "a filter without a body"
    );
    // Feed subscriptions are bounded by their feed, not by `subscriptions_max`.
    let many: Vec<_> = (0..1_500)
        .map(|tag| {
            engine
                .subscribe_feed("orders", eu, feed.clone(), tag)
                .unwrap()
        })
        .collect();
    assert_eq!(
        engine.topic_info("orders").unwrap().stats.subscribers,
        1_502
    );
    drop(many);
    drop(big);
    assert_eq!(engine.topic_info("orders").unwrap().stats.subscribers, 1);
}

#[tokio::test]
async fn subscriptions_and_pending_requests_stop_at_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let config = EngineConfig {
        subscriptions_max: 2,
        requests_pending_max: 1,
        ..EngineConfig::default()
    };
    let engine = Engine::open(store, ManualClock::new(START), config)
        .await
        .unwrap();
    engine
        .put_topic("events", TopicOptions::default())
        .await
        .unwrap();
    let first = engine.subscribe("events", "#", Syntax::Amqp, None).unwrap();
    let _second = engine.subscribe("events", "#", Syntax::Amqp, None).unwrap();
    let refused = engine.subscribe("events", "#", Syntax::Amqp, None);
    assert!(matches!(
        refused,
        Err(EngineError::LimitReached {
            limit: "subscriptions_max",
            max: 2
        })
    ));
    drop(first);
    engine
        .subscribe("events", "#", Syntax::Amqp, None)
        .expect("a slot came free");

    engine
        .put_queue("rpc", QueueOptions::default())
        .await
        .unwrap();
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let target = RequestTarget::Queue("rpc".into());
            engine
                .request(target, json("1"), Duration::from_secs(60))
                .await
        })
    };
    guard(async {
        while engine.queue_info("rpc").unwrap().stats.ready == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let target = RequestTarget::Queue("rpc".into());
    let refused = engine
        .request(target, json("2"), Duration::from_secs(60))
        .await;
    assert!(matches!(
        refused,
        Err(EngineError::LimitReached {
            limit: "requests_pending_max",
            ..
        })
    ));
    waiting.abort();
}

/// 12,000 retained keys reach a new subscription from the topic's log in key order, a bounded
/// batch at a time; a key published again during the walk arrives once, live, with its new
/// message. Filters read the bodies back from the log.
#[tokio::test]
async fn a_subscription_streams_ten_thousand_retained_keys_from_disk_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), ManualClock::new(START)).await;
    engine.put_topic("rooms", retaining()).await.unwrap();
    for batch in 0..12 {
        let messages = (batch * 1_000..(batch + 1) * 1_000)
            .map(|n| publish(&format!("room.{n:05}"), &format!(r#"{{"n": {n}}}"#)))
            .collect();
        engine.publish("rooms", messages).await.unwrap();
    }
    let mut subscription = engine
        .subscribe("rooms", "room.*", Syntax::Amqp, None)
        .unwrap();
    let mut filtered = engine
        .subscribe("rooms", "room.*", Syntax::Amqp, Some("n >= 11900"))
        .unwrap();
    let first = subscription.next_retained().await.unwrap().unwrap();
    assert_eq!(first.len(), 256);
    engine
        .publish(
            "rooms",
            vec![
                publish("room.00000", r#"{"n": -1}"#),
                publish("room.11999", r#"{"n": -2}"#),
                publish("room.99999", r#"{"n": -3}"#),
            ],
        )
        .await
        .unwrap();
    let mut bodies: Vec<_> = first.iter().map(|(_, m)| m.body.clone()).collect();
    let mut batches = 1;
    while let Some(batch) = subscription.next_retained().await.unwrap() {
        assert!(batch.len() <= 256);
        bodies.extend(batch.into_iter().map(|(_, m)| m.body));
        batches += 1;
    }
    assert!(subscription.retained_done());
    assert!(batches >= 12_000 / 256, "{batches} batches");
    let expected: Vec<_> = (0..11_999).map(|n| format!(r#"{{"n": {n}}}"#)).collect();
    let bodies: Vec<_> = bodies
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    assert_eq!(
        bodies, expected,
        "all keys but the one published again, in order"
    );
    let mut live = Vec::new();
    while let Ok(message) = subscription.messages.try_recv() {
        live.push(String::from_utf8(message.message.body.to_vec()).unwrap());
    }
    assert_eq!(live, [r#"{"n": -1}"#, r#"{"n": -2}"#, r#"{"n": -3}"#]);

    let retained = retained_messages(&mut filtered).await;
    assert_eq!(retained.len(), 99, "11900..=11998 match; 11999 comes live");
    assert_eq!(engine.topic_info("rooms").unwrap().stats.retained, 12_001);

    // A new binding gets its matches from the log too, in key order.
    engine
        .put_queue("low", QueueOptions::default())
        .await
        .unwrap();
    engine
        .bind("rooms", bind_queue("room.*", "low", Some("n < 50")))
        .await
        .unwrap();
    let expected: Vec<_> = [-1]
        .into_iter()
        .chain(1..50)
        .chain([-2, -3])
        .map(|n| format!(r#"{{"n": {n}}}"#))
        .collect();
    assert_eq!(drain(&engine, "low").await, expected);
}
