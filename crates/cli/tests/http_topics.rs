//! The topic and request-reply API over real HTTP against the built `wharf` binary: routing by
//! every kind, rules, errors, retained messages over Server-Sent Events, request-reply,
//! scatter-gather, and fan-out that survives a SIGKILL.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;
#[allow(dead_code)]
#[path = "common/sse.rs"]
mod sse;

use queue_client::{Client, Node};
use serde_json::{json, Value};
use sse::EventStream;
use std::{
    thread,
    time::{Duration, Instant},
};

use sse::EVENT_DEADLINE;

fn create_queues(client: &Client, names: &[&str]) {
    for name in names {
        client.expect(201, "PUT", &format!("/v1/queues/{name}"), &json!({}));
    }
}

fn bind(client: &Client, topic: &str, binding: Value) -> Value {
    client.expect(
        201,
        "POST",
        &format!("/v1/topics/{topic}/bindings"),
        &binding,
    )
}

fn publish(client: &Client, topic: &str, messages: Value) -> Vec<Value> {
    let reply = client.expect(
        201,
        "POST",
        &format!("/v1/topics/{topic}/publish"),
        &json!({ "messages": messages }),
    );
    reply["messages"].as_array().expect("messages").clone()
}

fn routed(published: &[Value]) -> Vec<u64> {
    published
        .iter()
        .map(|p| p["routed"].as_u64().expect("routed"))
        .collect()
}

/// The bodies waiting in a queue, in delivery order.
fn bodies(client: &Client, queue: &str) -> Vec<Value> {
    client
        .receive(queue, 100, 30_000)
        .iter()
        .map(|m| m["body"].clone())
        .collect()
}

#[test]
fn topic_bindings_route_by_pattern_syntax_and_filter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["all-eu", "mqtt", "big"]);
    let created = client.expect(201, "PUT", "/v1/topics/orders", &json!({}));
    assert_eq!(created["name"], "orders");
    assert_eq!(created["kind"], "topic");
    assert_eq!(created["stats"]["bindings"], 0);

    let amqp = bind(
        &client,
        "orders",
        json!({"pattern": "orders.eu.#", "queue": "all-eu"}),
    );
    assert_eq!(amqp["syntax"], "amqp");
    assert_eq!(amqp["queue"], "all-eu");
    assert!(amqp["id"].is_string(), "{amqp}");
    bind(
        &client,
        "orders",
        json!({"pattern": "orders/+/created", "syntax": "mqtt", "queue": "mqtt"}),
    );
    bind(
        &client,
        "orders",
        json!({"pattern": "#", "filter": "amount > 100", "queue": "big"}),
    );

    let published = publish(
        &client,
        "orders",
        json!([
            {"routing_key": "orders.eu.created", "body": {"n": 1, "amount": 500}},
            {"routing_key": "orders.us.created", "body": {"n": 2, "amount": 5}},
            {"routing_key": "orders.eu.paid.late", "body": {"n": 3, "amount": 5}},
        ]),
    );
    // MQTT splits on `/`, so `orders.us.created` is one word and the MQTT binding never sees
    // three words here.
    assert_eq!(routed(&published), [2, 0, 1]);
    assert_eq!(
        bodies(&client, "all-eu"),
        [json!({"n": 1, "amount": 500}), json!({"n": 3, "amount": 5})]
    );
    assert_eq!(bodies(&client, "big"), [json!({"n": 1, "amount": 500})]);
    assert!(bodies(&client, "mqtt").is_empty());

    let mqtt = publish(
        &client,
        "orders",
        json!([{"routing_key": "orders/uk/created", "body": 4}]),
    );
    assert_eq!(routed(&mqtt), [1]);
    assert_eq!(bodies(&client, "mqtt"), [json!(4)]);

    let info = client.expect(200, "GET", "/v1/topics/orders", &Value::Null);
    assert_eq!(
        info["stats"],
        json!({"published": 4, "routed": 4, "unroutable": 1, "bindings": 3, "filters_stopped": 0,
            "retained": 0, "compactions": 0, "subscribers": 0})
    );
    let list = client.expect(200, "GET", "/v1/topics/orders/bindings", &Value::Null);
    let bindings = list["bindings"].as_array().expect("bindings");
    assert_eq!(bindings.len(), 3);
    let first = bindings
        .iter()
        .find(|b| b["id"] == amqp["id"])
        .expect("the AMQP binding is listed");
    assert_eq!(first["matched"], 2);
    assert_eq!(first["pattern"], "orders.eu.#");

    let id = amqp["id"].as_str().expect("id");
    let path = format!("/v1/topics/orders/bindings/{id}");
    assert_eq!(client.call("DELETE", &path, &Value::Null).status, 204);
    assert_eq!(client.call("DELETE", &path, &Value::Null).status, 404);
    let after = publish(
        &client,
        "orders",
        json!([{"routing_key": "orders.eu.x", "body": 5}]),
    );
    assert_eq!(routed(&after), [0]);

    let topics = client.expect(200, "GET", "/v1/topics", &Value::Null);
    assert_eq!(topics["topics"][0]["name"], "orders");
    assert_eq!(
        client
            .call("DELETE", "/v1/topics/orders", &Value::Null)
            .status,
        204
    );
    client.expect(404, "GET", "/v1/topics/orders", &Value::Null);
}

#[test]
fn direct_fanout_and_headers_topics_route_by_their_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["d", "f1", "f2", "h-all", "h-any"]);

    client.expect(201, "PUT", "/v1/topics/direct", &json!({"kind": "direct"}));
    bind(&client, "direct", json!({"pattern": "a.*", "queue": "d"}));
    let direct = publish(
        &client,
        "direct",
        json!([{"routing_key": "a.b", "body": 1}, {"routing_key": "a.*", "body": 2}]),
    );
    assert_eq!(routed(&direct), [0, 1], "direct keys match exactly");

    client.expect(201, "PUT", "/v1/topics/fan", &json!({"kind": "fanout"}));
    bind(&client, "fan", json!({"queue": "f1"}));
    bind(&client, "fan", json!({"queue": "f2"}));
    let fanout = publish(
        &client,
        "fan",
        json!([{"routing_key": "anything", "body": 3}]),
    );
    assert_eq!(routed(&fanout), [2]);
    assert_eq!(bodies(&client, "f1"), [json!(3)]);
    assert_eq!(bodies(&client, "f2"), [json!(3)]);

    client.expect(201, "PUT", "/v1/topics/hdr", &json!({"kind": "headers"}));
    let headers = json!({"match": "all", "values": {"region": "eu", "tier": "gold"}});
    let bound = bind(
        &client,
        "hdr",
        json!({"headers": headers, "queue": "h-all"}),
    );
    assert_eq!(bound["headers"], headers);
    bind(
        &client,
        "hdr",
        json!({"headers": {"match": "any", "values": {"region": "eu", "tier": "gold"}}, "queue": "h-any"}),
    );
    let by_headers = publish(
        &client,
        "hdr",
        json!([
            {"body": 1, "headers": {"region": "eu", "tier": "gold"}},
            {"body": 2, "headers": {"region": "eu"}},
            {"body": 3, "headers": {"region": "us"}},
        ]),
    );
    assert_eq!(routed(&by_headers), [2, 1, 0]);
    assert_eq!(bodies(&client, "h-all"), [json!(1)]);
    assert_eq!(bodies(&client, "h-any"), [json!(1), json!(2)]);
}

#[test]
fn rules_and_alternate_route_what_bindings_do_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["eu", "vip", "rest"]);
    let topic = json!({
        "rules_mode": "first",
        "rules": [
            {"filter": "headers.region == 'eu'", "queue": "eu"},
            {"filter": "headers.tier == 'gold'", "queue": "vip"},
        ],
        "alternate": {"queue": "rest"},
    });
    let created = client.expect(201, "PUT", "/v1/topics/routed", &topic);
    assert_eq!(created["rules"], topic["rules"]);
    assert_eq!(created["alternate"], json!({"queue": "rest"}));
    assert_eq!(created["rules_mode"], "first");

    let published = publish(
        &client,
        "routed",
        json!([
            {"routing_key": "k", "body": 1, "headers": {"region": "eu", "tier": "gold"}},
            {"routing_key": "k", "body": 2, "headers": {"tier": "gold"}},
            {"routing_key": "k", "body": 3},
        ]),
    );
    assert_eq!(routed(&published), [1, 1, 1]);
    assert_eq!(bodies(&client, "eu"), [json!(1)], "first rule only");
    assert_eq!(bodies(&client, "vip"), [json!(2)]);
    assert_eq!(bodies(&client, "rest"), [json!(3)]);

    let updated = client.expect(200, "PUT", "/v1/topics/routed", &json!({}));
    assert_eq!(updated["alternate"], Value::Null);
    let lost = publish(&client, "routed", json!([{"routing_key": "k", "body": 4}]));
    assert_eq!(routed(&lost), [0]);
    let info = client.expect(200, "GET", "/v1/topics/routed", &Value::Null);
    assert_eq!(info["stats"]["unroutable"], 1);
}

#[test]
fn bad_requests_are_problems_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["q", "r"]);
    client.expect(201, "PUT", "/v1/topics/t", &json!({}));

    let bad_pattern = client.call(
        "POST",
        "/v1/topics/t/bindings",
        &json!({"pattern": "a/#/b", "syntax": "mqtt", "queue": "q"}),
    );
    assert_eq!(bad_pattern.status, 400, "{}", bad_pattern.body);
    assert_eq!(bad_pattern.content_type, "application/problem+json");
    assert_eq!(bad_pattern.body["field"], "pattern");

    let bad_filter = client.call(
        "POST",
        "/v1/topics/t/bindings",
        &json!({"pattern": "#", "filter": "amount >", "queue": "q"}),
    );
    assert_eq!(bad_filter.status, 400, "{}", bad_filter.body);
    assert_eq!(bad_filter.body["field"], "filter");
    let detail = bad_filter.body["detail"].as_str().expect("detail");
    assert!(detail.contains("column"), "{detail}");

    let two = client.call(
        "POST",
        "/v1/topics/t/bindings",
        &json!({"pattern": "#", "queue": "q", "topic": "t"}),
    );
    assert_eq!(two.status, 400, "{}", two.body);
    assert_eq!(two.body["field"], "topic");
    let none = client.call("POST", "/v1/topics/t/bindings", &json!({"pattern": "#"}));
    assert_eq!(none.status, 400, "{}", none.body);
    assert_eq!(none.body["field"], "queue");

    let bad_rule = client.call(
        "PUT",
        "/v1/topics/t",
        &json!({"rules": [{"filter": "a ==", "queue": "q"}]}),
    );
    assert_eq!(bad_rule.status, 400, "{}", bad_rule.body);
    assert_eq!(bad_rule.body["field"], "rules[0].filter");

    let unknown = client.call("GET", "/v1/topics/nope", &Value::Null);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.content_type, "application/problem+json");
    let publish_unknown = client.call(
        "POST",
        "/v1/topics/nope/publish",
        &json!({"messages": [{"routing_key": "k", "body": 1}]}),
    );
    assert_eq!(publish_unknown.status, 404);
    let no_body = client.call(
        "POST",
        "/v1/topics/t/publish",
        &json!({"messages": [{"routing_key": "k"}]}),
    );
    assert_eq!(no_body.status, 400);
    assert_eq!(no_body.body["field"], "messages[0].body");

    let subscribe = client.call(
        "GET",
        "/v1/topics/t/subscribe?pattern=a/%23/b&syntax=mqtt",
        &Value::Null,
    );
    assert_eq!(subscribe.status, 400, "{}", subscribe.body);
    assert_eq!(subscribe.body["field"], "pattern");
    let subscribe = client.call(
        "GET",
        "/v1/topics/t/subscribe?pattern=%23&filter=a%20%3D%3D",
        &Value::Null,
    );
    assert_eq!(subscribe.status, 400, "{}", subscribe.body);
    assert_eq!(subscribe.body["field"], "filter");
    let unknown_field = client.call(
        "POST",
        "/v1/topics/t/publish",
        &json!({"messages": [{"routing_key": "k", "body": 1, "bogus": true}]}),
    );
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.body);
}

/// What a binding, a rule or an alternate names must exist: refused like a binding's, with the
/// field named, and the topic is left as it was. A reply address is no destination.
#[test]
fn rules_and_alternates_naming_what_does_not_exist_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["q"]);
    client.expect(
        201,
        "PUT",
        "/v1/topics/t",
        &json!({"alternate": {"queue": "q"}}),
    );
    let cases = [
        (
            json!({"pattern": "#", "queue": "missing"}),
            "queue",
            "queue_not_found",
        ),
        (
            json!({"pattern": "#", "topic": "missing"}),
            "topic",
            "topic_not_found",
        ),
    ];
    for (binding, field, code) in cases {
        let reply = client.call("POST", "/v1/topics/t/bindings", &binding);
        assert_eq!(reply.status, 404, "{}", reply.body);
        assert_eq!(reply.body["field"], field, "{}", reply.body);
        assert_eq!(reply.body["code"], code, "{}", reply.body);
    }
    let cases = [
        (
            json!({"alternate": {"queue": "missing"}}),
            "alternate.queue",
            "queue_not_found",
        ),
        (
            json!({"alternate": {"topic": "missing"}}),
            "alternate.topic",
            "topic_not_found",
        ),
        (
            json!({"rules": [{"filter": "a == 1", "queue": "q"}, {"filter": "a == 2", "topic": "missing"}]}),
            "rules[1].topic",
            "topic_not_found",
        ),
    ];
    for (options, field, code) in cases {
        for path in ["/v1/topics/t", "/v1/topics/new"] {
            let reply = client.call("PUT", path, &options);
            assert_eq!(reply.status, 404, "{path}: {}", reply.body);
            assert_eq!(reply.body["field"], field, "{}", reply.body);
            assert_eq!(reply.body["code"], code, "{}", reply.body);
            let detail = reply.body["detail"].as_str().expect("detail");
            assert!(detail.contains("\"missing\""), "{detail}");
        }
    }
    client.expect(404, "GET", "/v1/topics/new", &Value::Null);
    let kept = client.expect(200, "GET", "/v1/topics/t", &Value::Null);
    assert_eq!(
        kept["alternate"],
        json!({"queue": "q"}),
        "the refused updates changed nothing"
    );

    let reply_address = json!({"alternate": {"queue": "_reply.x"}});
    let reply = client.call("PUT", "/v1/topics/t", &reply_address);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["field"], "alternate.queue", "{}", reply.body);
    let binding = json!({"pattern": "#", "queue": "_reply.x", "create_queue": true});
    let reply = client.call("POST", "/v1/topics/t/bindings", &binding);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["field"], "queue", "{}", reply.body);

    let dead_letter = json!({"dead_letter_queue": "_reply.dead"});
    let reply = client.call("PUT", "/v1/queues/jobs", &dead_letter);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["field"], "dead_letter_queue", "{}", reply.body);
    client.expect(404, "GET", "/v1/queues/jobs", &Value::Null);
    client.expect(404, "GET", "/v1/queues/_reply.dead", &Value::Null);
}

/// The next `message` event of a subscription: its id and data.
fn next_message(events: &mut EventStream) -> (String, Value) {
    let event = events.next_event();
    assert_eq!(event.name, "message");
    (event.id, event.data)
}

#[test]
fn subscribers_get_retained_messages_then_live_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/topics/sensors", &json!({"retain": true}));
    publish(
        &client,
        "sensors",
        json!([
            {"routing_key": "sensors/kitchen/temp", "body": {"c": 20}},
            {"routing_key": "sensors/garage/temp", "body": {"c": 5}},
        ]),
    );

    let mut events = EventStream::open(
        node.address,
        "/v1/topics/sensors/subscribe?pattern=sensors/%2B/temp&syntax=mqtt&filter=c%20%3E%2010",
        None,
    );
    let (id, retained) = next_message(&mut events);
    assert_eq!(retained["body"], json!({"c": 20}));
    assert_eq!(retained["id"], id);
    assert!(retained.get("receipt").is_none(), "{retained}");

    let live = publish(
        &client,
        "sensors",
        json!([
            {"routing_key": "sensors/garage/temp", "body": {"c": 1}},
            {"routing_key": "sensors/hall/temp", "body": {"c": 21}, "headers": {"unit": "C"}},
        ]),
    );
    let (id, message) = next_message(&mut events);
    assert_eq!(
        id,
        live[1]["id"].as_str().expect("id"),
        "the filter skipped c=1"
    );
    assert_eq!(message["body"], json!({"c": 21}));
    assert_eq!(message["headers"], json!({"unit": "C"}));

    // A new binding gets the retained matches too.
    client.expect(201, "PUT", "/v1/queues/late", &json!({}));
    bind(
        &client,
        "sensors",
        json!({"pattern": "sensors/kitchen/#", "syntax": "mqtt", "queue": "late"}),
    );
    assert_eq!(bodies(&client, "late"), [json!({"c": 20})]);
}

/// More retained messages than one batch: the stream sends them all, in key order, read from
/// the log batch by batch, then live messages.
#[test]
fn subscribers_get_many_retained_messages_batch_by_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/topics/rooms", &json!({"retain": true}));
    for batch in 0..3 {
        let messages: Vec<Value> = (batch * 300..(batch + 1) * 300)
            .map(|n| json!({"routing_key": format!("room.{n:04}"), "body": {"n": n}}))
            .collect();
        publish(&client, "rooms", Value::Array(messages));
    }
    let mut events = EventStream::open(
        node.address,
        "/v1/topics/rooms/subscribe?pattern=room.*",
        None,
    );
    for n in 0..900 {
        let (_, message) = next_message(&mut events);
        assert_eq!(message["body"], json!({"n": n}));
    }
    publish(
        &client,
        "rooms",
        json!([{"routing_key": "room.0001", "body": {"n": -1}}]),
    );
    let (_, message) = next_message(&mut events);
    assert_eq!(message["body"], json!({"n": -1}));
}

/// Receives one request from `queue` and answers it with `answer`, in a thread.
fn responder(client: Client, queue: &'static str, answer: Value) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let until = Instant::now() + EVENT_DEADLINE;
        let request = loop {
            let body = json!({"max_messages": 1, "wait_ms": 1000});
            let reply = client.expect(200, "POST", &format!("/v1/queues/{queue}/receive"), &body);
            if let Some(message) = reply["messages"].as_array().and_then(|m| m.first()) {
                break message.clone();
            }
            assert!(Instant::now() < until, "no request reached {queue}");
        };
        let reply = json!({
            "reply_to": request["reply_to"],
            "correlation_id": request["correlation_id"],
            "body": {"answer": answer, "question": request["body"]},
        });
        let sent = client.expect(201, "POST", "/v1/reply", &reply);
        assert!(sent["id"].is_string(), "{sent}");
    })
}

#[test]
fn a_request_gets_its_reply_or_times_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["rpc"]);

    let answering = responder(client.clone(), "rpc", json!(42));
    let reply = client.expect(
        200,
        "POST",
        "/v1/request",
        &json!({"queue": "rpc", "body": "what?", "timeout_ms": 10_000}),
    );
    answering.join().expect("responder");
    assert_eq!(
        reply["reply"]["body"],
        json!({"answer": 42, "question": "what?"})
    );
    assert!(reply["reply"]["correlation_id"].is_string(), "{reply}");

    // A responder takes the request but answers too late.
    let slow = {
        let client = client.clone();
        std::thread::spawn(move || {
            let body = json!({"max_messages": 1, "wait_ms": 10_000});
            let reply = client.expect(200, "POST", "/v1/queues/rpc/receive", &body);
            reply["messages"].as_array().expect("messages").clone()
        })
    };
    let started = Instant::now();
    let timed_out = client.call(
        "POST",
        "/v1/request",
        &json!({"queue": "rpc", "body": 1, "timeout_ms": 300}),
    );
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    assert_eq!(timed_out.content_type, "application/problem+json");
    assert_eq!(timed_out.body["code"], "timeout");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The reply address is gone with the request.
    let stale = slow.join().expect("slow responder");
    let late = client.call(
        "POST",
        "/v1/reply",
        &json!({"reply_to": stale[0]["reply_to"], "correlation_id": stale[0]["correlation_id"], "body": 1}),
    );
    assert_eq!(late.status, 404, "{}", late.body);

    let no_target = client.call("POST", "/v1/request", &json!({"body": 1}));
    assert_eq!(no_target.status, 400);
    assert_eq!(no_target.body["field"], "queue");
    let too_long = client.call(
        "POST",
        "/v1/request",
        &json!({"queue": "rpc", "body": 1, "timeout_ms": 300_001}),
    );
    assert_eq!(too_long.body["field"], "timeout_ms");
    // The request's message is the body itself, so its fields are named at the top.
    let bad_priority = client.call(
        "POST",
        "/v1/request",
        &json!({"queue": "rpc", "body": 1, "priority": 12, "timeout_ms": 300}),
    );
    assert_eq!(bad_priority.status, 400, "{}", bad_priority.body);
    assert_eq!(bad_priority.body["code"], "invalid_field");
    assert_eq!(bad_priority.body["field"], "priority");
}

#[test]
fn scatter_collects_the_replies_that_come_in_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["svc-a", "svc-b"]);
    client.expect(201, "PUT", "/v1/topics/quotes", &json!({"kind": "fanout"}));
    bind(&client, "quotes", json!({"queue": "svc-a"}));
    bind(&client, "quotes", json!({"queue": "svc-b"}));

    let a = responder(client.clone(), "svc-a", json!("a"));
    let b = responder(client.clone(), "svc-b", json!("b"));
    let result = client.expect(
        200,
        "POST",
        "/v1/scatter",
        &json!({"topic": "quotes", "routing_key": "price", "body": 1, "expect": 3, "timeout_ms": 1500}),
    );
    a.join().expect("responder a");
    b.join().expect("responder b");
    assert_eq!(result["expected"], 3);
    assert_eq!(result["received"], 2);
    let mut answers: Vec<String> = result["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|r| r["body"]["answer"].as_str().expect("answer").to_string())
        .collect();
    answers.sort();
    assert_eq!(answers, ["a", "b"]);
}

#[test]
fn fanout_survives_a_sigkill_in_every_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    create_queues(&client, &["copy-1", "copy-2", "copy-3"]);
    client.expect(201, "PUT", "/v1/topics/events", &json!({}));
    for queue in ["copy-1", "copy-2", "copy-3"] {
        bind(
            &client,
            "events",
            json!({"pattern": "events.#", "queue": queue}),
        );
    }
    let published = publish(
        &client,
        "events",
        json!([{"routing_key": "events.user.created", "body": {"user": 7}}]),
    );
    assert_eq!(routed(&published), [3]);

    let node = node.kill_and_restart();
    let client = node.client();
    for queue in ["copy-1", "copy-2", "copy-3"] {
        assert_eq!(bodies(&client, queue), [json!({"user": 7})], "{queue}");
    }
    let bindings = client.expect(200, "GET", "/v1/topics/events/bindings", &Value::Null);
    assert_eq!(bindings["bindings"].as_array().expect("bindings").len(), 3);
}

#[test]
fn a_durable_subscription_is_one_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/topics/news", &json!({}));
    // A refused binding creates no queue.
    let refused = client.call(
        "POST",
        "/v1/topics/news/bindings",
        &json!({"pattern": "sport.#", "filter": "score >", "queue": "mine", "create_queue": true}),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    let missing = client.call("GET", "/v1/queues/mine", &Value::Null);
    assert_eq!(missing.status, 404, "{}", missing.body);

    bind(
        &client,
        "news",
        json!({"pattern": "sport.#", "queue": "mine", "create_queue": true}),
    );
    client.expect(200, "GET", "/v1/queues/mine", &Value::Null);
    let published = publish(
        &client,
        "news",
        json!([{"routing_key": "sport.tennis", "body": {"score": 3}}]),
    );
    assert_eq!(routed(&published), [1]);
    assert_eq!(bodies(&client, "mine"), [json!({"score": 3})]);
}
