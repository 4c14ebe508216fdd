//! The hub over a real engine on a memory store, with a manual clock and paused tokio time.

use super::*;
use bytes::Bytes;
use std::time::Duration;
use wharf_engine::{
    broker::{PublishMessage, SendMessage},
    clock::ManualClock,
    topic::TopicOptions,
    EngineConfig,
};
use wharf_storage::MemoryStore;

const START: u64 = 1_800_000_000_000;

async fn hub(settings: Settings) -> (Arc<Hub>, Arc<ManualClock>) {
    let clock = ManualClock::new(START);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::open(store, clock.clone(), EngineConfig::default())
        .await
        .unwrap();
    for topic in ["chat", "news"] {
        engine
            .put_topic(topic, TopicOptions::default())
            .await
            .unwrap();
    }
    (Hub::new(engine, settings), clock)
}

async fn publish(hub: &Hub, topic: &str, key: &str, body: &str) -> String {
    let message = PublishMessage {
        routing_key: key.into(),
        message: SendMessage {
            body: Bytes::copy_from_slice(body.as_bytes()),
            content_type: Some("application/json".into()),
            ..SendMessage::default()
        },
        retain: false,
    };
    let published = hub.engine().publish(topic, vec![message]).await.unwrap();
    published[0].id.clone()
}

fn every<'a>(topic: &'a str, sub: &'a str, last_id: Option<&'a str>) -> Subscribe<'a> {
    Subscribe {
        topic,
        sub,
        interested: Interested {
            pattern: "#",
            syntax: Syntax::Amqp,
            filter: None,
        },
        last_id,
        since_ms: None,
    }
}

/// The next item of `outgoing` as JSON, within 5 s.
async fn next(outgoing: &mut mpsc::Receiver<Outgoing>) -> serde_json::Value {
    let item = tokio::time::timeout(Duration::from_secs(5), outgoing.recv())
        .await
        .expect("a frame in time")
        .expect("the outbox is open");
    let text = match item {
        Outgoing::Message(entry) => entry.frame().to_string(),
        Outgoing::Frame(text) => text.to_string(),
    };
    serde_json::from_str(&text).unwrap()
}

fn ids(catch_up: CatchUp) -> Option<Vec<String>> {
    match catch_up {
        CatchUp::After(entries) => Some(entries.iter().map(|e| e.message.id.clone()).collect()),
        CatchUp::Gap => None,
        CatchUp::None => Some(Vec::new()),
    }
}

#[tokio::test]
async fn a_resumed_subscription_gets_what_it_missed_then_live_messages() {
    let (hub, _clock) = hub(Settings::default()).await;
    let (first, outbox, mut outgoing) = hub.connect(SlowPolicy::Disconnect);
    hub.subscribe(first, &outbox, every("chat", "chat", None))
        .unwrap();
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(publish(&hub, "chat", "room.1", &format!(r#"{{"n":{n}}}"#)).await);
        assert_eq!(next(&mut outgoing).await["id"], sent[n]);
    }
    // A client that saw only the first message comes back.
    let (second, outbox_2, mut outgoing_2) = hub.connect(SlowPolicy::Disconnect);
    let caught = hub
        .subscribe(second, &outbox_2, every("chat", "chat", Some(&sent[0])))
        .unwrap();
    assert_eq!(ids(caught), Some(sent[1..].to_vec()));
    let live = publish(&hub, "chat", "room.1", "{}").await;
    assert_eq!(next(&mut outgoing_2).await["id"], live);
    assert!(outgoing_2.try_recv().is_err(), "nothing twice");
    let unknown = hub.subscribe(
        second,
        &outbox_2,
        every("chat", "again", Some("no-such-id")),
    );
    assert!(ids(unknown.unwrap()).is_none(), "an unknown id is a gap");
}

#[tokio::test]
async fn a_resume_from_past_the_history_age_is_a_gap_though_no_keeper_tick_trimmed_it() {
    let (hub, clock) = hub(Settings::default()).await;
    let (first, outbox, mut outgoing) = hub.connect(SlowPolicy::Disconnect);
    hub.subscribe(first, &outbox, every("chat", "chat", None))
        .unwrap();
    let old = publish(&hub, "chat", "k", "{}").await;
    assert_eq!(next(&mut outgoing).await["id"], old);
    // Within the age, it resumes; past it, it is a gap, at once.
    let (second, outbox_2, _outgoing_2) = hub.connect(SlowPolicy::Disconnect);
    let within = hub.subscribe(second, &outbox_2, every("chat", "a", Some(&old)));
    assert_eq!(ids(within.unwrap()), Some(Vec::new()));
    clock.advance(Duration::from_millis(hub.settings.history.age_ms + 1));
    let past = hub.subscribe(second, &outbox_2, every("chat", "b", Some(&old)));
    assert!(ids(past.unwrap()).is_none(), "older than the history's age");
}

#[tokio::test]
async fn a_slow_client_is_cut_off_or_counted_while_a_fast_one_gets_everything() {
    let settings = Settings {
        buffer_messages: 2,
        ..Settings::default()
    };
    let (hub, _clock) = hub(settings).await;
    let (slow, slow_outbox, _slow_outgoing) = hub.connect(SlowPolicy::Disconnect);
    let (counted, counted_outbox, _counted_outgoing) = hub.connect(SlowPolicy::Drop);
    hub.subscribe(slow, &slow_outbox, every("chat", "chat", None))
        .unwrap();
    hub.subscribe(counted, &counted_outbox, every("chat", "chat", None))
        .unwrap();
    // A fast client with room for all.
    let fast_hub = Hub::new(hub.engine().clone(), Settings::default());
    let (fast, fast_outbox, mut fast_outgoing) = fast_hub.connect(SlowPolicy::Disconnect);
    fast_hub
        .subscribe(fast, &fast_outbox, every("chat", "chat", None))
        .unwrap();
    for n in 0..5 {
        publish(&hub, "chat", "k", &format!("{n}")).await;
    }
    for _ in 0..5 {
        assert_eq!(next(&mut fast_outgoing).await["op"], "message");
    }
    tokio::time::timeout(Duration::from_secs(5), slow_outbox.overflow())
        .await
        .expect("the slow client's outbox overflowed");
    assert!(!counted_outbox.overflowed());
    assert_eq!(counted_outbox.dropped(), 3, "2 fit, 3 dropped");
}

#[tokio::test]
async fn rooms_announce_joins_and_leaves_and_list_their_members() {
    let (hub, _clock) = hub(Settings::default()).await;
    let (alice, alice_outbox, mut alice_out) = hub.connect(SlowPolicy::Disconnect);
    let (bob, bob_outbox, mut bob_out) = hub.connect(SlowPolicy::Disconnect);
    hub.subscribe(alice, &alice_outbox, every("chat", "room:chat", None))
        .unwrap();
    assert_eq!(hub.join("chat", alice, "alice"), ["alice"]);
    assert_eq!(next(&mut alice_out).await["event"], "join");
    hub.subscribe(bob, &bob_outbox, every("chat", "room:chat", None))
        .unwrap();
    assert_eq!(hub.join("chat", bob, "bob"), ["alice", "bob"]);
    let seen = next(&mut alice_out).await;
    assert_eq!(
        (seen["op"].as_str(), seen["member"].as_str()),
        (Some("presence"), Some("bob"))
    );
    assert_eq!(next(&mut bob_out).await["member"], "bob");
    // Bob's connection goes away without leaving.
    hub.unsubscribe("chat", bob, None);
    let left = next(&mut alice_out).await;
    assert_eq!(
        (left["event"].as_str(), left["member"].as_str()),
        (Some("leave"), Some("bob"))
    );
    assert_eq!(hub.members("chat"), ["alice"]);
}

#[tokio::test(start_paused = true)]
async fn a_channel_ends_with_its_topic_or_after_staying_idle_for_the_history_age() {
    let (hub, clock) = hub(Settings::default()).await;
    let (id, outbox, mut outgoing) = hub.connect(SlowPolicy::Disconnect);
    hub.subscribe(id, &outbox, every("news", "headlines", None))
        .unwrap();
    hub.subscribe(id, &outbox, every("chat", "chat", None))
        .unwrap();
    assert_eq!(hub.channel_count(), 2);
    hub.engine().delete_topic("news").await.unwrap();
    let ended = next(&mut outgoing).await;
    assert_eq!(
        (ended["op"].as_str(), ended["sub"].as_str()),
        (Some("unsubscribed"), Some("headlines"))
    );
    assert_eq!(hub.channel_count(), 1);
    // The last subscriber of chat leaves: its history stays for the age, then goes.
    hub.unsubscribe("chat", id, None);
    let tick = keeper_tick(hub.settings.history.age_ms);
    clock.advance(Duration::from_millis(hub.settings.history.age_ms - 1_000));
    tokio::time::sleep(tick * 3).await;
    assert_eq!(hub.channel_count(), 1, "kept for clients that come back");
    clock.advance(Duration::from_secs(2));
    tokio::time::sleep(tick * 3).await;
    assert_eq!(hub.channel_count(), 0);
    hub.close();
    let refused = hub.subscribe(id, &outbox, every("chat", "chat", None));
    assert!(matches!(refused, Err(EngineError::ShuttingDown)));
}
