//! lapin, the Rust AMQP 0-9-1 client, against the AMQP door of the built `wharf serve`: 1,000
//! persistent publishes confirmed in a window, the server killed with SIGKILL and restarted,
//! then every message consumed once, in publish order, with manual acks under a prefetch.

#[allow(dead_code)]
mod common;
#[path = "serve/process.rs"]
#[allow(dead_code)]
mod process;
#[path = "common/queue_client.rs"]
#[allow(dead_code)]
mod queue_client;

use futures_lite::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
    BasicProperties, Connection, ConnectionProperties,
};
use queue_client::Node;
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};

const MESSAGES: u32 = 1_000;
/// Publishes in flight before the oldest confirm is awaited.
const WINDOW: usize = 256;
/// A delivery of a local server arrives in milliseconds; this only stops a hung test.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(amqp: SocketAddr) -> Connection {
    let url = format!("amqp://guest:guest@{amqp}/%2f");
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("lapin connects")
}

/// Publishes `MESSAGES` persistent messages (`0`, `1`, ...) with confirms; every one acked.
async fn publish_confirmed(amqp: SocketAddr) {
    let connection = connect(amqp).await;
    let channel = connection.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare("ordered".into(), durable, FieldTable::default())
        .await
        .expect("declare");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut in_flight = std::collections::VecDeque::new();
    let mut acked = 0;
    for n in 0..MESSAGES {
        if in_flight.len() >= WINDOW {
            let confirm: lapin::PublisherConfirm = in_flight.pop_front().expect("in flight");
            assert!(confirm.await.expect("confirm").is_ack(), "publish nacked");
            acked += 1;
        }
        let confirm = channel
            .basic_publish(
                "".into(),
                "ordered".into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                persistent.clone(),
            )
            .await
            .expect("publish");
        in_flight.push_back(confirm);
    }
    for confirm in in_flight {
        assert!(confirm.await.expect("confirm").is_ack(), "publish nacked");
        acked += 1;
    }
    assert_eq!(acked, MESSAGES);
    connection.close(200, "done".into()).await.expect("close");
}

/// Consumes every message with prefetch 100 and manual acks; returns the bodies in order.
async fn consume_all(amqp: SocketAddr) -> Vec<String> {
    let connection = connect(amqp).await;
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            "ordered".into(),
            "in-order".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut bodies = Vec::new();
    while bodies.len() < MESSAGES as usize {
        let delivery = tokio::time::timeout(DELIVERY_TIMEOUT, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("no delivery after {} messages", bodies.len()))
            .expect("the consumer ended")
            .expect("delivery");
        assert!(!delivery.redelivered, "first delivery marked redelivered");
        bodies.push(String::from_utf8(delivery.data.clone()).expect("text"));
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    connection.close(200, "done".into()).await.expect("close");
    bodies
}

#[test]
fn lapin_confirmed_persistent_publishes_survive_kill_9_and_arrive_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let node = Node::start_with(dir.path(), "", &["--amqp-addr", &amqp.to_string()]);
    runtime().block_on(publish_confirmed(amqp));
    let node = node.kill_and_restart();
    let info = node
        .client()
        .expect(200, "GET", "/v1/queues/ordered", &Value::Null);
    assert_eq!(info["stats"]["ready"], MESSAGES, "{info}");
    let bodies = runtime().block_on(consume_all(amqp));
    let expected: Vec<String> = (0..MESSAGES).map(|n| n.to_string()).collect();
    assert_eq!(bodies, expected, "consumed out of order");
    let info = node
        .client()
        .expect(200, "GET", "/v1/queues/ordered", &Value::Null);
    assert_eq!(info["stats"]["ready"], 0, "{info}");
    assert_eq!(info["stats"]["leased"], 0, "{info}");
}
