//! Names at their documented limits over real HTTP against the built `wharf` binary: every kind
//! of name works at its longest (queues, dead-letter queues, topics, binding, rule and alternate
//! destinations: 255 bytes; users and tokens: 64), through a restart where it is stored, and
//! one byte more is a 400 naming the field. No answer shows a file path.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use queue_client::{Client, Node};
use serde_json::{json, Value};

/// A name of `len` bytes starting with `first` (so names of one length can differ).
fn name(first: char, len: usize) -> String {
    let mut name = first.to_string();
    name.push_str(&"n".repeat(len - 1));
    name
}

/// Asserts a 400 whose `field` is `field`, and that its detail shows no path of the server.
fn assert_refused(client: &Client, method: &str, path: &str, body: &Value, field: &str) {
    let reply = client.call(method, path, body);
    assert_eq!(reply.status, 400, "{method} {path}: {}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["field"], field, "{}", reply.body);
    assert_no_path(&reply.body);
}

fn assert_no_path(body: &Value) {
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.contains('/') && !detail.contains("os error"),
        "a detail shows server internals: {detail}"
    );
}

#[test]
fn queue_and_dead_letter_queue_names_of_255_bytes_work_and_256_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let (queue, dead) = (name('q', 255), name('d', 255));
    let options = json!({"dead_letter_queue": dead, "max_deliveries": 1});
    let created = client.expect(201, "PUT", &format!("/v1/queues/{queue}"), &options);
    assert_eq!(created["name"], queue.as_str());
    let body = json!({"messages": [{"body": 1}, {"body": 2}]});
    client.expect(201, "POST", &format!("/v1/queues/{queue}/messages"), &body);
    let received = client.receive(&queue, 2, 60_000);
    let receipts: Vec<&Value> = received.iter().map(|m| &m["receipt"]).collect();
    let acked = client.expect(
        200,
        "POST",
        &format!("/v1/queues/{queue}/ack"),
        &json!({"receipts": [receipts[0]]}),
    );
    assert_eq!(acked["results"][0]["ok"], true, "{acked}");
    let nacked = client.expect(
        200,
        "POST",
        &format!("/v1/queues/{queue}/nack"),
        &json!({"receipts": [receipts[1]], "dead_letter": true}),
    );
    assert_eq!(nacked["results"][0]["ok"], true, "{nacked}");

    let node = node.kill_and_restart();
    let client = node.client();
    let info = client.expect(200, "GET", &format!("/v1/queues/{dead}"), &Value::Null);
    assert_eq!(info["stats"]["ready"], 1, "{info}");
    let redriven = client.expect(
        200,
        "POST",
        &format!("/v1/queues/{dead}/redrive"),
        &json!({}),
    );
    assert_eq!(redriven["redriven"], 1, "{redriven}");
    client.expect(204, "DELETE", &format!("/v1/queues/{queue}"), &Value::Null);

    let too_long = name('q', 256);
    assert_refused(
        &client,
        "PUT",
        &format!("/v1/queues/{too_long}"),
        &json!({}),
        "name",
    );
    assert_refused(
        &client,
        "PUT",
        "/v1/queues/jobs",
        &json!({"dead_letter_queue": name('d', 256)}),
        "dead_letter_queue",
    );
}

#[test]
fn topic_and_destination_names_of_255_bytes_work_and_256_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let (topic, other_topic) = (name('t', 255), name('u', 255));
    let (bound, ruled, alternate, created) = (
        name('b', 255),
        name('r', 255),
        name('a', 255),
        name('c', 255),
    );
    for queue in [&bound, &ruled, &alternate] {
        client.expect(201, "PUT", &format!("/v1/queues/{queue}"), &json!({}));
    }
    client.expect(201, "PUT", &format!("/v1/topics/{other_topic}"), &json!({}));
    let options = json!({
        "retain": true,
        "rules": [{"filter": "headers.rule == 'yes'", "queue": ruled}],
        "alternate": {"queue": alternate},
    });
    client.expect(201, "PUT", &format!("/v1/topics/{topic}"), &options);
    let bindings = format!("/v1/topics/{topic}/bindings");
    client.expect(
        201,
        "POST",
        &bindings,
        &json!({"pattern": "k.*", "queue": bound}),
    );
    client.expect(
        201,
        "POST",
        &bindings,
        &json!({"pattern": "t.#", "topic": other_topic}),
    );
    let subscription = json!({"pattern": "c.#", "queue": created, "create_queue": true});
    client.expect(201, "POST", &bindings, &subscription);
    let messages = json!({"messages": [
        {"routing_key": "k.1", "body": 1},
        {"routing_key": "x", "body": 2, "headers": {"rule": "yes"}},
        {"routing_key": "x", "body": 3},
        {"routing_key": "c.1", "body": 4},
    ]});
    let published = client.expect(
        201,
        "POST",
        &format!("/v1/topics/{topic}/publish"),
        &messages,
    );
    let routed: Vec<&Value> = (published["messages"].as_array().expect("messages").iter())
        .map(|m| &m["routed"])
        .collect();
    assert_eq!(
        routed,
        [&json!(1), &json!(1), &json!(1), &json!(1)],
        "{published}"
    );

    // The topic's log, named after it, opens again.
    let node = node.kill_and_restart();
    let client = node.client();
    let info = client.expect(200, "GET", &format!("/v1/topics/{topic}"), &Value::Null);
    assert_eq!(info["stats"]["retained"], 3, "{info}");
    assert_eq!(info["stats"]["bindings"], 3, "{info}");
    for queue in [&bound, &ruled, &alternate, &created] {
        assert_eq!(client.receive(queue, 10, 60_000).len(), 1, "queue {queue}");
    }
    client.expect(204, "DELETE", &format!("/v1/topics/{topic}"), &Value::Null);

    let too_long = name('t', 256);
    assert_refused(
        &client,
        "PUT",
        &format!("/v1/topics/{too_long}"),
        &json!({}),
        "name",
    );
    let long_queue = name('q', 256);
    let bindings = format!("/v1/topics/{other_topic}/bindings");
    let binding = json!({"pattern": "#", "queue": long_queue});
    assert_refused(&client, "POST", &bindings, &binding, "queue");
    let binding = json!({"pattern": "#", "queue": long_queue, "create_queue": true});
    assert_refused(&client, "POST", &bindings, &binding, "queue");
    let binding = json!({"pattern": "#", "topic": too_long});
    assert_refused(&client, "POST", &bindings, &binding, "topic");
    let path = format!("/v1/topics/{other_topic}");
    let options = json!({"alternate": {"queue": long_queue}});
    assert_refused(&client, "PUT", &path, &options, "alternate.queue");
    let options = json!({"rules": [{"filter": "a == 1", "topic": too_long}]});
    assert_refused(&client, "PUT", &path, &options, "rules[0].topic");
}

/// Each on a server of its own: the first account switches authentication on.
#[test]
fn user_and_token_names_of_64_bytes_work_and_65_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let token = |name: &str| json!({"name": name, "grants": []});
    assert_refused(
        &client,
        "POST",
        "/v1/tokens",
        &token(&name('k', 65)),
        "name",
    );
    let created = client.expect(201, "POST", "/v1/tokens", &token(&name('k', 64)));
    assert_eq!(created["name"], name('k', 64));

    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let user = json!({"password": "correct horse battery", "grants": []});
    let path = format!("/v1/users/{}", name('u', 65));
    assert_refused(&client, "PUT", &path, &user, "name");
    let created = client.expect(201, "PUT", &format!("/v1/users/{}", name('u', 64)), &user);
    assert_eq!(created["name"], name('u', 64));
}
