//! The MQTT door driven by rumqttc (MQTT 3.1.1) against the built `wharf` binary: QoS 0, 1 and
//! 2 round trips with wildcards, MQTT and HTTP clients meeting on the same routing keys, and
//! QoS 1 and 2 publishes confirmed to the publisher surviving `kill -9` in a persistent
//! session. The protocol's finer points (properties, wills, retained messages, sessions,
//! shared subscriptions, MQTT 5.0) are checked with paho-mqtt in tests/mqtt_paho.rs.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use queue_client::Node;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::{net::SocketAddr, time::Duration};

/// How long a test waits for a packet that should come at once.
const DEADLINE: Duration = Duration::from_secs(10);

fn start(dir: &std::path::Path, mqtt: SocketAddr) -> Node {
    Node::start_with(dir, "", &["--mqtt-addr", &mqtt.to_string()])
}

fn client(mqtt: SocketAddr, id: &str, clean: bool) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, mqtt.ip().to_string(), mqtt.port());
    options.set_clean_session(clean);
    options.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(options, 1_000)
}

/// Polls until `wanted` picks something out of an incoming packet.
async fn until<T>(events: &mut EventLoop, mut wanted: impl FnMut(&Packet) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.poll())
            .await
            .expect("a packet in time")
            .expect("the connection is up");
        if let Event::Incoming(packet) = event {
            if let Some(found) = wanted(&packet) {
                return found;
            }
        }
    }
}

async fn connected(events: &mut EventLoop) -> bool {
    until(events, |packet| match packet {
        Packet::ConnAck(ack) => Some(ack.session_present),
        _ => None,
    })
    .await
}

async fn subscribed(client: &AsyncClient, events: &mut EventLoop, filter: &str) {
    client.subscribe(filter, QoS::ExactlyOnce).await.unwrap();
    until(events, |packet| {
        matches!(packet, Packet::SubAck(_)).then_some(())
    })
    .await;
}

/// The next `count` messages as (topic, payload, qos).
async fn messages(events: &mut EventLoop, count: usize) -> Vec<(String, Vec<u8>, QoS)> {
    let mut got = Vec::new();
    while got.len() < count {
        let message = until(events, |packet| match packet {
            Packet::Publish(publish) => {
                Some((publish.topic.clone(), publish.payload.to_vec(), publish.qos))
            }
            _ => None,
        })
        .await;
        got.push(message);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_round_trips_at_every_qos_and_meets_http_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = process::free_address();
    let node = start(dir.path(), mqtt);
    let http = node.client();
    http.expect(201, "PUT", "/v1/queues/audit", &json!({}));
    let binding = json!({"pattern": "sensors.#", "queue": "audit"});
    http.expect(201, "POST", "/v1/topics/mqtt/bindings", &binding);

    let (subscriber, mut sub_events) = client(mqtt, "sub", true);
    assert!(!connected(&mut sub_events).await);
    subscribed(&subscriber, &mut sub_events, "sensors/+/temp").await;
    let (publisher, mut pub_events) = client(mqtt, "pub", true);
    connected(&mut pub_events).await;
    for (qos, payload) in [
        (QoS::AtMostOnce, &b"zero"[..]),
        (QoS::AtLeastOnce, &b"one\xff"[..]),
        (QoS::ExactlyOnce, &b"two"[..]),
    ] {
        publisher
            .publish("sensors/kitchen/temp", qos, false, payload.to_vec())
            .await
            .unwrap();
    }
    until(&mut pub_events, |packet| {
        matches!(packet, Packet::PubComp(_)).then_some(())
    })
    .await;
    let got = messages(&mut sub_events, 3).await;
    let expected = [
        ("sensors/kitchen/temp", &b"zero"[..], QoS::AtMostOnce),
        ("sensors/kitchen/temp", &b"one\xff"[..], QoS::AtLeastOnce),
        ("sensors/kitchen/temp", &b"two"[..], QoS::ExactlyOnce),
    ];
    for (got, expected) in got.iter().zip(expected) {
        assert_eq!(
            (got.0.as_str(), got.1.as_slice(), got.2),
            expected,
            "{got:?}"
        );
    }

    // HTTP publishes on the same topic, with `.` for MQTT's `/`; HTTP consumers receive
    // what MQTT clients publish.
    let body = json!({"messages": [{"routing_key": "sensors.hall.temp", "body": {"c": 19}}]});
    http.expect(201, "POST", "/v1/topics/mqtt/publish", &body);
    let got = messages(&mut sub_events, 1).await;
    assert_eq!(got[0].0, "sensors/hall/temp");
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].1).unwrap(),
        json!({"c": 19})
    );
    // MQTT payloads are bytes (application/octet-stream): base64 over HTTP.
    let received = http.receive("audit", 10, 30_000);
    let bodies: Vec<&str> = received
        .iter()
        .filter_map(|message| message["body_base64"].as_str())
        .collect();
    assert_eq!(bodies, ["emVybw==", "b25l/w==", "dHdv"], "{received:?}");
    assert_eq!(received[0]["headers"]["mqtt-topic"], "sensors/kitchen/temp");

    // The door's topic stays: deleting it would take every subscription's binding with it.
    let refused = http.expect(409, "DELETE", "/v1/topics/mqtt", &Value::Null);
    assert!(
        refused["detail"].as_str().unwrap().contains("MQTT door"),
        "{refused}"
    );
    http.expect(201, "POST", "/v1/topics/mqtt/publish", &body);
    let got = messages(&mut sub_events, 1).await;
    assert_eq!(got[0].0, "sensors/hall/temp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_qos1_and_qos2_publishes_survive_kill_9_in_a_persistent_session() {
    const EACH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let mqtt = process::free_address();
    let node = start(dir.path(), mqtt);
    let (subscriber, mut sub_events) = client(mqtt, "durable", false);
    connected(&mut sub_events).await;
    subscribed(&subscriber, &mut sub_events, "orders/#").await;
    subscriber.disconnect().await.unwrap();
    drop(sub_events);

    let (publisher, mut pub_events) = client(mqtt, "orders-app", true);
    connected(&mut pub_events).await;
    for n in 0..EACH {
        let qos1 = format!("q1-{n}").into_bytes();
        let qos2 = format!("q2-{n}").into_bytes();
        publisher
            .publish("orders/eu", QoS::AtLeastOnce, false, qos1)
            .await
            .unwrap();
        publisher
            .publish("orders/us", QoS::ExactlyOnce, false, qos2)
            .await
            .unwrap();
    }
    let mut confirmed = (0, 0);
    while confirmed != (EACH, EACH) {
        let qos = until(&mut pub_events, |packet| match packet {
            Packet::PubAck(_) => Some(1),
            Packet::PubComp(_) => Some(2),
            _ => None,
        })
        .await;
        match qos {
            1 => confirmed.0 += 1,
            _ => confirmed.1 += 1,
        }
    }

    let node = tokio::task::spawn_blocking(move || node.kill_and_restart())
        .await
        .unwrap();
    let (_subscriber, mut sub_events) = client(mqtt, "durable", false);
    assert!(connected(&mut sub_events).await, "the session is present");
    let got = messages(&mut sub_events, 2 * EACH).await;
    let mut payloads: Vec<String> = got
        .iter()
        .map(|(_, payload, _)| String::from_utf8(payload.clone()).unwrap())
        .collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * EACH, "every confirmed publish, once");
    let qos2 = got.iter().filter(|(_, _, qos)| *qos == QoS::ExactlyOnce);
    assert_eq!(qos2.count(), EACH);
    drop(node);
}
