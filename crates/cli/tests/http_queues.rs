//! The queue API over real HTTP against the built `wharf` binary: every endpoint, its errors,
//! and what survives a SIGKILL.

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

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

fn send(client: &Client, queue: &str, messages: Value) -> Vec<Value> {
    let reply = client.expect(
        201,
        "POST",
        &format!("/v1/queues/{queue}/messages"),
        &json!({ "messages": messages }),
    );
    reply["messages"].as_array().expect("messages").clone()
}

fn receipts(client: &Client, queue: &str, action: &str, body: Value) -> Vec<Value> {
    let reply = client.expect(200, "POST", &format!("/v1/queues/{queue}/{action}"), &body);
    reply["results"].as_array().expect("results").clone()
}

#[test]
fn queues_are_created_updated_listed_and_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();

    let created = client.expect(201, "PUT", "/v1/queues/jobs", &json!({"lease_ms": 5000}));
    assert_eq!(created["name"], "jobs");
    assert_eq!(created["options"]["lease_ms"], 5000);
    assert_eq!(
        created["options"]["dedup_window_ms"], 300_000,
        "defaults filled in"
    );
    assert_eq!(created["stats"]["ready"], 0);
    let updated = client.expect(200, "PUT", "/v1/queues/jobs", &json!({"lease_ms": 7000}));
    assert_eq!(updated["options"]["lease_ms"], 7000);
    client.expect(201, "PUT", "/v1/queues/other", &Value::Null);

    let list = client.expect(200, "GET", "/v1/queues", &Value::Null);
    let names: Vec<&str> = list["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["jobs", "other"]);

    send(
        &client,
        "jobs",
        json!([{"body": 1}, {"body": 2, "delay_ms": 60000}]),
    );
    let info = client.expect(200, "GET", "/v1/queues/jobs", &Value::Null);
    let stats = &info["stats"];
    assert_eq!(stats["ready"], 1, "{info}");
    assert_eq!(stats["delayed"], 1);
    assert_eq!(stats["leased"], 0);
    assert!(stats["oldest_ready_age_ms"].is_u64(), "{info}");
    assert_eq!(stats["counters"]["sent"], 2);

    assert_eq!(
        client
            .call("DELETE", "/v1/queues/other", &Value::Null)
            .status,
        204
    );
    client.expect(404, "GET", "/v1/queues/other", &Value::Null);
}

#[test]
fn bodies_come_back_in_the_shape_they_were_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/shapes", &json!({}));

    let sent = send(
        &client,
        "shapes",
        json!([
            {"id": "json-1", "body": {"order": 7, "lines": [1, 2]}, "headers": {"trace": "t1"},
             "priority": 9, "group": "g", "correlation_id": "c", "reply_to": "replies"},
            {"id": "bytes-1", "body_base64": "aGVsbG8=", "content_type": "text/plain"},
        ]),
    );
    assert_eq!(
        sent,
        [
            json!({"id": "json-1", "duplicate": false}),
            json!({"id": "bytes-1", "duplicate": false})
        ]
    );
    let again = send(&client, "shapes", json!([{"id": "json-1", "body": {}}]));
    assert_eq!(again[0]["duplicate"], true);

    let messages = client.receive("shapes", 10, 30_000);
    assert_eq!(ids(&messages), ["json-1", "bytes-1"], "priority 9 first");
    let json_message = &messages[0];
    assert_eq!(json_message["body"], json!({"order": 7, "lines": [1, 2]}));
    assert!(json_message.get("body_base64").is_none());
    assert_eq!(json_message["content_type"], "application/json");
    assert_eq!(json_message["headers"], json!({"trace": "t1"}));
    assert_eq!(json_message["priority"], 9);
    assert_eq!(json_message["group"], "g");
    assert_eq!(json_message["correlation_id"], "c");
    assert_eq!(json_message["reply_to"], "replies");
    assert_eq!(json_message["delivery_count"], 1);
    for time in ["sent_at", "first_delivered_at", "last_delivered_at"] {
        assert!(
            json_message[time].as_u64().unwrap_or(0) > 1_600_000_000_000,
            "{time}"
        );
    }
    assert!(json_message["receipt"].is_string());
    let bytes_message = &messages[1];
    assert_eq!(bytes_message["body_base64"], "aGVsbG8=");
    assert!(bytes_message.get("body").is_none());
    assert_eq!(bytes_message["content_type"], "text/plain");
}

/// A receipt names its queue: on another queue's URL it is refused per receipt, and its
/// message stays leased where it is. A receipt with one digit changed is no receipt.
#[test]
fn a_receipt_settles_only_in_the_queue_that_issued_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/a", &json!({}));
    // Transient: its sequences count in the other WAL, so they can equal those of `a`.
    client.expect(201, "PUT", "/v1/queues/b", &json!({"durable": false}));
    send(&client, "a", json!([{"body": "in a"}]));
    send(&client, "b", json!([{"body": "in b"}]));
    let of_a = client.receive("a", 1, 60_000)[0]["receipt"].clone();
    let of_b = client.receive("b", 1, 60_000)[0]["receipt"].clone();
    assert_ne!(of_a, of_b);

    for (action, extra) in [
        ("ack", json!({})),
        ("nack", json!({"dead_letter": true})),
        ("lease", json!({"lease_ms": 1})),
    ] {
        let mut body = extra;
        body["receipts"] = json!([of_a]);
        let refused = receipts(&client, "b", action, body);
        assert_eq!(refused[0]["ok"], false, "{action}: {}", refused[0]);
        assert_eq!(
            refused[0]["code"], "wrong_queue",
            "{action}: {}",
            refused[0]
        );
        let error = refused[0]["error"].as_str().expect("error");
        assert!(error.contains("\"b\""), "{error}");
    }
    for queue in ["a", "b"] {
        let info = client.expect(200, "GET", &format!("/v1/queues/{queue}"), &Value::Null);
        assert_eq!(info["stats"]["leased"], 1, "{info}");
        assert_eq!(info["stats"]["counters"]["acked"], 0, "{info}");
    }

    let text = of_a.as_str().expect("receipt");
    let last = text.chars().last().expect("a digit");
    let edited = format!(
        "{}{}",
        &text[..text.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let forged = receipts(&client, "a", "ack", json!({"receipts": [edited]}));
    assert_eq!(forged[0]["code"], "invalid_receipt", "{}", forged[0]);
    let acked = receipts(&client, "a", "ack", json!({"receipts": [of_a]}));
    assert_eq!(acked[0]["ok"], true, "{}", acked[0]);
    let acked = receipts(&client, "b", "ack", json!({"receipts": [of_b]}));
    assert_eq!(acked[0]["ok"], true, "{}", acked[0]);
}

#[test]
fn ack_nack_lease_and_dead_letters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(
        201,
        "PUT",
        "/v1/queues/work",
        &json!({"dead_letter_queue": "work.dead", "retry_backoff_ms": 0}),
    );
    send(
        &client,
        "work",
        json!([{"id": "a", "body": "a"}, {"id": "b", "body": "b"}, {"id": "c", "body": "c"}]),
    );
    let peeked = client.expect(200, "GET", "/v1/queues/work/messages?max=2", &Value::Null);
    let peeked = peeked["messages"].as_array().expect("messages");
    assert_eq!(ids(peeked), ["a", "b"]);
    assert!(peeked[0].get("receipt").is_none());

    let delivered = client.receive("work", 3, 30_000);
    assert_eq!(ids(&delivered), ["a", "b", "c"]);
    let receipt = |i: usize| {
        delivered[i]["receipt"]
            .as_str()
            .expect("receipt")
            .to_string()
    };

    let extended = receipts(
        &client,
        "work",
        "lease",
        json!({"receipts": [receipt(2)], "lease_ms": 60000}),
    );
    assert_eq!(extended, [json!({"receipt": receipt(2), "ok": true})]);

    let acked = receipts(
        &client,
        "work",
        "ack",
        json!({"receipts": [receipt(0), "stale"]}),
    );
    assert_eq!(acked[0], json!({"receipt": receipt(0), "ok": true}));
    assert_eq!(acked[1]["ok"], false);
    assert!(acked[1]["error"].is_string(), "{}", acked[1]);
    assert_eq!(acked[1]["code"], "invalid_receipt", "{}", acked[1]);
    let twice = receipts(&client, "work", "ack", json!({"receipts": [receipt(0)]}));
    assert_eq!(twice[0]["ok"], false, "a settled receipt is stale");
    assert_eq!(twice[0]["code"], "stale_receipt", "{}", twice[0]);

    let rejected = receipts(
        &client,
        "work",
        "nack",
        json!({"receipts": [receipt(1)], "dead_letter": true, "error": "bad input"}),
    );
    assert_eq!(rejected[0]["ok"], true);
    let requeued = receipts(
        &client,
        "work",
        "nack",
        json!({"receipts": [receipt(2)], "delay_ms": 0}),
    );
    assert_eq!(requeued[0]["ok"], true);

    let again = client.receive("work", 10, 30_000);
    assert_eq!(ids(&again), ["c"], "a is acked and b dead-lettered");
    assert_eq!(again[0]["delivery_count"], 2);

    let dead = client.expect(200, "GET", "/v1/queues/work.dead/messages", &Value::Null);
    let dead = dead["messages"].as_array().expect("messages");
    assert_eq!(ids(dead), ["b"]);
    let details = &dead[0]["dead_letter"];
    assert_eq!(details["reason"], "rejected");
    assert_eq!(details["source_queue"], "work");
    assert_eq!(details["last_error"], "bad input");
    assert_eq!(details["delivery_count"], 1);
    assert!(details["at"].as_u64().unwrap_or(0) > 1_600_000_000_000);

    let redriven = client.expect(200, "POST", "/v1/queues/work.dead/redrive", &json!({}));
    assert_eq!(
        redriven,
        json!({"redriven": 1, "skipped_not_dead_letter": 0, "skipped_source_missing": 0})
    );
    let back = client.receive("work", 10, 30_000);
    assert_eq!(ids(&back), ["b"]);
    assert!(back[0]["body"] == "b");

    send(&client, "work", json!([{"body": 1}, {"body": 2}]));
    let purged = client.expect(200, "POST", "/v1/queues/work/purge", &Value::Null);
    assert_eq!(purged, json!({"purged": 2}));
    let stats = client.expect(200, "GET", "/v1/queues/work", &Value::Null)["stats"].clone();
    assert_eq!(stats["ready"], 0);
    assert_eq!(stats["leased"], 2, "c and b are leased: {stats}");
    assert_eq!(stats["counters"]["acked"], 1);
    assert_eq!(stats["counters"]["purged"], 2);
}

#[test]
fn errors_are_problems_that_name_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/small", &json!({"max_length": 2}));

    let broken = client
        .try_raw(
            "POST",
            "/v1/queues/small/messages",
            "application/json",
            b"{\"messages\": [",
        )
        .expect("reply");
    assert_eq!(broken.status, 400);
    assert_eq!(broken.content_type, "application/problem+json");
    let detail = broken.body["detail"].as_str().expect("detail");
    assert!(detail.contains("line 1 column"), "{detail}");

    let untyped = client
        .try_raw("POST", "/v1/queues/small/messages", "text/plain", b"{}")
        .expect("reply");
    assert_eq!(untyped.status, 415);

    let missing = client.call("GET", "/v1/queues/nope", &Value::Null);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type, "application/problem+json");
    let bad_name = client.call("PUT", "/v1/queues/bad!name", &json!({}));
    assert_eq!(bad_name.status, 400);
    assert_eq!(bad_name.body["field"], "name");

    let priority = client.call(
        "POST",
        "/v1/queues/small/messages",
        &json!({"messages": [{"body": 1, "priority": 12}]}),
    );
    assert_eq!(priority.status, 400);
    assert_eq!(priority.body["field"], "messages[0].priority");

    let unknown_option = client.call("PUT", "/v1/queues/small", &json!({"lease": 5}));
    assert_eq!(unknown_option.status, 400);
    assert_eq!(unknown_option.body["field"], "lease");
    let zero_lease = client.call("PUT", "/v1/queues/small", &json!({"lease_ms": 0}));
    assert_eq!(zero_lease.status, 400);
    assert_eq!(zero_lease.body["field"], "lease_ms");

    send(&client, "small", json!([{"body": 1}, {"body": 2}]));
    let full = client.call(
        "POST",
        "/v1/queues/small/messages",
        &json!({"messages": [{"body": 3}]}),
    );
    assert_eq!(full.status, 409);
    assert_eq!(full.content_type, "application/problem+json");

    let too_long_poll = client.call(
        "POST",
        "/v1/queues/small/receive",
        &json!({"wait_ms": 20001}),
    );
    assert_eq!(too_long_poll.status, 400);
    assert_eq!(too_long_poll.body["field"], "wait_ms");
}

#[test]
fn oversize_batches_are_refused_with_413() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/big", &json!({}));
    // Just over the engine's 8 MiB of bodies, yet under the 12 MiB request limit as base64.
    let encoded = "A".repeat(((8 << 20) + 3) / 3 * 4);
    let over_batch = client.call(
        "POST",
        "/v1/queues/big/messages",
        &json!({"messages": [{"body_base64": encoded}]}),
    );
    assert_eq!(over_batch.status, 413, "{}", over_batch.body);
    assert_eq!(over_batch.content_type, "application/problem+json");

    // Over the request body limit: refused before it is parsed. The server may close the
    // connection while the client still writes; a reply, when one arrives, is 413.
    let huge = format!(
        "{{\"messages\": [{{\"body_base64\": \"{}\"}}]}}",
        "A".repeat(13 << 20)
    );
    if let Ok(reply) = client.try_raw(
        "POST",
        "/v1/queues/big/messages",
        "application/json",
        huge.as_bytes(),
    ) {
        assert_eq!(reply.status, 413, "{}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json");
    }
    // The server closes a connection whose oversized body it refused mid-stream; a new client
    // does not pick that connection from its pool.
    let client = node.client();
    let stats = client.expect(200, "GET", "/v1/queues/big", &Value::Null)["stats"].clone();
    assert_eq!(stats["ready"], 0);
}

#[test]
fn peek_browses_ready_delayed_and_leased_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/browse", &json!({}));
    send(
        &client,
        "browse",
        json!([
            {"id": "first", "body": 1},
            {"id": "second", "body": 2},
            {"id": "later", "body": 3, "delay_ms": 60_000},
        ]),
    );
    let leased = client.receive("browse", 1, 30_000);
    assert_eq!(ids(&leased), ["first"]);
    let browse = |state: &str| {
        let path = format!("/v1/queues/browse/messages?state={state}");
        let reply = client.expect(200, "GET", &path, &Value::Null);
        reply["messages"].as_array().expect("messages").clone()
    };
    let ready = browse("ready");
    assert_eq!(ids(&ready), ["second"]);
    assert_eq!(ready[0]["state"], "ready");
    assert!(ready[0].get("state_until").is_none(), "{ready:?}");
    let delayed = browse("delayed");
    assert_eq!(ids(&delayed), ["later"]);
    assert_eq!(delayed[0]["state"], "delayed");
    let due = delayed[0]["state_until"].as_u64().expect("due");
    let sent = delayed[0]["sent_at"].as_u64().expect("sent_at");
    assert_eq!(due, sent + 60_000);
    let held = browse("leased");
    assert_eq!(ids(&held), ["first"]);
    assert_eq!(held[0]["state"], "leased");
    assert!(held[0]["state_until"].as_u64() > Some(sent), "{held:?}");
    assert!(
        held[0].get("receipt").is_none(),
        "a browse hands out no receipt"
    );
    // Browsing changed nothing.
    let stats = client.expect(200, "GET", "/v1/queues/browse", &Value::Null)["stats"].clone();
    assert_eq!(
        (
            stats["ready"].as_u64(),
            stats["delayed"].as_u64(),
            stats["leased"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let refused = client.call("GET", "/v1/queues/browse/messages?state=gone", &Value::Null);
    assert_eq!(refused.status, 400, "{}", refused.body);
}

#[test]
fn patch_changes_only_the_options_it_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let options = json!({"max_length": 5, "dead_letter_queue": "p.dead", "lease_ms": 1000});
    client.expect(201, "PUT", "/v1/queues/p", &options);
    let patched = client.expect(200, "PATCH", "/v1/queues/p", &json!({"lease_ms": 9000}));
    let kept = &patched["options"];
    assert_eq!(kept["lease_ms"], 9000);
    assert_eq!(kept["max_length"], 5, "untouched: {kept}");
    assert_eq!(kept["dead_letter_queue"], "p.dead");
    let reset = client.expect(200, "PATCH", "/v1/queues/p", &json!({"max_length": null}));
    assert_eq!(reset["options"]["max_length"], Value::Null);
    assert_eq!(reset["options"]["lease_ms"], 9000);

    let unknown = client.call("PATCH", "/v1/queues/p", &json!({"bogus": 1}));
    assert_eq!(
        (unknown.status, unknown.body["field"].as_str()),
        (400, Some("bogus"))
    );
    let fixed = client.call("PATCH", "/v1/queues/p", &json!({"durable": false}));
    assert_eq!(fixed.status, 409, "{}", fixed.body);
    let missing = client.call("PATCH", "/v1/queues/nowhere", &json!({"lease_ms": 5}));
    assert_eq!(missing.status, 404, "{}", missing.body);
    let gone = client.call("GET", "/v1/queues/nowhere", &Value::Null);
    assert_eq!(gone.status, 404, "a PATCH creates nothing");
}

#[test]
fn lists_page_by_name_and_filter_by_prefix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    for name in ["a", "orders.eu", "orders.us", "orders.asia", "ordersx", "z"] {
        client.expect(201, "PUT", &format!("/v1/queues/{name}"), &json!({}));
    }
    let names = |reply: &Value| -> Vec<String> {
        (reply["queues"].as_array().expect("queues").iter())
            .map(|queue| queue["name"].as_str().expect("name").to_string())
            .collect()
    };
    let first = client.expect(
        200,
        "GET",
        "/v1/queues?prefix=orders.&limit=2",
        &Value::Null,
    );
    assert_eq!(names(&first), ["orders.asia", "orders.eu"]);
    assert_eq!(first["next"], "orders.eu");
    let second = client.expect(
        200,
        "GET",
        "/v1/queues?prefix=orders.&limit=2&after=orders.eu",
        &Value::Null,
    );
    assert_eq!(names(&second), ["orders.us"]);
    assert!(second.get("next").is_none(), "last page: {second}");
    let all = client.expect(200, "GET", "/v1/queues", &Value::Null);
    assert_eq!(names(&all).len(), 6);
    let refused = client.call("GET", "/v1/queues?limit=0", &Value::Null);
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["field"], "limit");

    // The CLI walks every page.
    for index in 0..1_005 {
        client.expect(
            201,
            "PUT",
            &format!("/v1/queues/bulk.{index:04}"),
            &json!({}),
        );
    }
    let mut list = common::wharf();
    list.args([
        "--server",
        &format!("http://{}", node.address),
        "queue",
        "list",
    ]);
    let (status, stdout, stderr) = common::run_to_end(list, std::time::Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    let listed = stdout
        .lines()
        .filter(|line| line.starts_with("bulk."))
        .count();
    assert_eq!(listed, 1_005, "{stderr}");
}

#[test]
fn size_limits_are_configured_and_named_when_reached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_configured(
        dir.path(),
        "[limits]\nrequest_body_bytes_max = 4096\nbatch_messages_max = 2\nbatch_bytes_max = 10\n",
    );
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/small", &json!({}));
    let messages = |bodies: &[&str]| {
        let messages: Vec<Value> = bodies.iter().map(|body| json!({"body": body})).collect();
        json!({ "messages": messages })
    };

    let three = client.call(
        "POST",
        "/v1/queues/small/messages",
        &messages(&["a", "b", "c"]),
    );
    assert_eq!(three.status, 413, "{}", three.body);
    assert_eq!(three.body["code"], "too_large");
    let detail = three.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("batch_messages_max"), "{detail}");
    let fifteen_bytes = client.call(
        "POST",
        "/v1/queues/small/messages",
        &messages(&["abcdef", "ghijk"]),
    );
    assert_eq!(fifteen_bytes.status, 413, "{}", fifteen_bytes.body);
    let detail = fifteen_bytes.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("batch_bytes_max"), "{detail}");
    let long = format!("{{\"messages\": [{{\"body\": \"{}\"}}]}}", "x".repeat(5000));
    let reply = client
        .try_raw(
            "POST",
            "/v1/queues/small/messages",
            "application/json",
            long.as_bytes(),
        )
        .expect("a reply to a body just over the limit");
    assert_eq!(reply.status, 413, "{}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("4096") && detail.contains("request_body_bytes_max"),
        "{detail}"
    );

    // Within every limit the same queue takes the batch; the refused ones stored nothing. A
    // JSON `body` is stored as its JSON text: `"ab"` is 4 bytes.
    let client = node.client();
    send(&client, "small", json!([{"body": "ab"}, {"body": "cd"}]));
    let stats = client.expect(200, "GET", "/v1/queues/small", &Value::Null)["stats"].clone();
    assert_eq!(stats["ready"], 2);
    let metrics = process::get(node.address, "/metrics")
        .expect("metrics")
        .body;
    for limit in [
        "batch_messages_max",
        "batch_bytes_max",
        "request_body_bytes_max",
    ] {
        let line = format!("wharf_limit_refusals_total{{limit=\"{limit}\"}} 1");
        assert!(metrics.contains(&line), "no {line:?} in:\n{metrics}");
    }
}

#[test]
fn openapi_documents_the_queue_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let document = node
        .client()
        .expect(200, "GET", "/openapi.json", &Value::Null);
    let paths = &document["paths"];
    assert!(
        paths["/v1/queues/{name}/receive"]["post"].is_object(),
        "{paths}"
    );
    assert!(paths["/v1/queues/{name}"]["put"].is_object());
    assert!(paths["/v1/queues/{name}/messages"]["get"].is_object());
    assert!(document["components"]["schemas"]["MessageBody"].is_object());
}

#[test]
fn confirmed_messages_survive_sigkill_and_acked_ones_stay_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(
        201,
        "PUT",
        "/v1/queues/durable",
        &json!({"lease_ms": 60000}),
    );
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("m{i:02}"), "body": {"n": i}}))
        .collect();
    send(&client, "durable", Value::Array(batch));
    let first = client.receive("durable", 5, 60_000);
    let acked: Vec<&str> = first
        .iter()
        .map(|m| m["receipt"].as_str().expect("receipt"))
        .collect();
    let results = receipts(&client, "durable", "ack", json!({"receipts": acked}));
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");

    let node = node.kill_and_restart();
    let client = node.client();
    let mut seen = Vec::new();
    loop {
        let batch = client.receive("durable", 100, 60_000);
        if batch.is_empty() {
            break;
        }
        seen.extend(ids(&batch));
    }
    seen.sort();
    let expected: Vec<String> = (5..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(
        seen, expected,
        "m00-m04 were acked; the rest must all be back"
    );
}

/// No problem shows the server's insides: Rust type names from serde, axum's wording, file
/// paths or OS errors. Bodies, query strings and messages that do not parse, each one answered
/// in the API's own words.
#[test]
fn error_details_show_no_type_names_or_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/jobs", &json!({}));
    client.expect(201, "PUT", "/v1/topics/t", &json!({}));
    let cases = [
        ("PUT", "/v1/queues/jobs", json!("x")),
        ("PUT", "/v1/queues/jobs", json!({"lease_ms": "x"})),
        (
            "PUT",
            "/v1/queues/jobs",
            json!({"max_deliveries": 99_999_999_999u64}),
        ),
        ("PUT", "/v1/topics/t", json!({"alternate": "x"})),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({"messages": [{"body": 1, "priority": "x"}]}),
        ),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({"messages": [{"body_base64": "!!"}]}),
        ),
        (
            "POST",
            "/v1/queues/jobs/receive",
            json!({"max_messages": "x"}),
        ),
        (
            "POST",
            "/v1/request",
            json!({"queue": "jobs", "body": 1, "timeout_ms": "x"}),
        ),
        ("GET", "/v1/queues/jobs/messages?max=x", Value::Null),
        (
            "GET",
            "/v1/topics/t/subscribe?pattern=%23&syntax=zz",
            Value::Null,
        ),
        ("GET", "/v1/audit?limit=x", Value::Null),
        ("PUT", "/v1/queues/%ff", json!({})),
        ("GET", "/v1/topics/%ff/bindings", Value::Null),
    ];
    let internal = [
        "u8",
        "u32",
        "u64",
        "usize",
        "struct ",
        "enum ",
        "Error",
        "Failed to",
        "os error",
        "/tmp",
    ];
    for (method, path, body) in cases {
        let reply = client.call(method, path, &body);
        assert_eq!(reply.status, 400, "{method} {path}: {}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json");
        let detail = reply.body["detail"].as_str().expect("detail");
        for word in internal {
            assert!(!detail.contains(word), "{method} {path}: {detail}");
        }
    }
    let query = client.call(
        "GET",
        "/v1/topics/t/subscribe?pattern=%23&syntax=zz",
        &Value::Null,
    );
    assert_eq!(query.body["field"], "syntax", "{}", query.body);
    let not_utf8 = client.call("PUT", "/v1/queues/%ff", &json!({}));
    assert_eq!(not_utf8.body["field"], "name", "{}", not_utf8.body);
}

#[test]
fn metrics_show_each_queue_and_topic_within_the_series_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = "[metrics]\nresource_series_max = 2\nqueues = [\"quiet\"]\n";
    let node = Node::start_configured(dir.path(), config);
    let client = node.client();
    for queue in ["busy", "quiet", "idle"] {
        client.expect(201, "PUT", &format!("/v1/queues/{queue}"), &json!({}));
    }
    send(
        &client,
        "busy",
        json!([{"body": 1}, {"body": 2}, {"body": 3}]),
    );
    send(&client, "idle", json!([{"body": 1}]));
    client.expect(201, "PUT", "/v1/topics/events", &json!({}));
    let publish = json!({"messages": [{"routing_key": "a", "body": 1}]});
    client.expect(201, "POST", "/v1/topics/events/publish", &publish);

    let metrics = process::get(node.address, "/metrics")
        .expect("metrics")
        .body;
    // `quiet` is listed, `busy` holds the most messages; `idle` is left out and counted.
    for line in [
        "wharf_queues 3",
        "wharf_topics 1",
        "wharf_messages{state=\"ready\"} 4",
        "wharf_queue_ready{queue=\"busy\"} 3",
        "wharf_queue_ready{queue=\"quiet\"} 0",
        "wharf_queue_sent_total{queue=\"busy\"} 3",
        "wharf_queue_consumers{queue=\"busy\"} 0",
        "wharf_metrics_resources_omitted{kind=\"queue\"} 1",
        // The node's totals count the queue left out too.
        "wharf_node_events_total{event=\"sent\"} 4",
        "wharf_node_topic_events_total{event=\"published\"} 1",
        "wharf_metrics_resources_omitted{kind=\"topic\"} 0",
        "wharf_topic_published_total{topic=\"events\"} 1",
        "wharf_topic_unroutable_total{topic=\"events\"} 1",
        "wharf_topic_subscribers{topic=\"events\"} 0",
        "wharf_http_requests_total{method=\"PUT\",route=\"/v1/queues/{name}\",status=\"201\"} 3",
        "wharf_http_requests_total{method=\"POST\",route=\"/v1/queues/{name}/messages\",status=\"201\"} 2",
    ] {
        assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
    }
    assert!(!metrics.contains("queue=\"idle\""), "{metrics}");
    assert!(
        metrics.contains("wharf_http_request_duration_seconds_count{method=\"PUT\",route=\"/v1/queues/{name}\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wharf_process_resident_memory_bytes "),
        "{metrics}"
    );
}

/// Polls `GET path` until `done` holds of its body, for at most 10 s (the server evaluates
/// alerts every 100 ms here).
fn wait_for(client: &Client, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = client.expect(200, "GET", path, &Value::Null);
        if done(&body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{path} stayed {body}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_alert_rule_fires_and_resolves_as_events_and_holds_readiness() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = "[alerts]\ninterval_ms = 100\n\
        [alerts.rules.memory]\nmetric = \"resident_memory_bytes\"\nop = \"<\"\nthreshold = 1\n";
    let node = Node::start_configured(dir.path(), config);
    let client = node.client();
    for queue in ["orders", "ops"] {
        client.expect(201, "PUT", &format!("/v1/queues/{queue}"), &json!({}));
    }
    client.expect(201, "PUT", "/v1/topics/wharf.alerts", &json!({}));
    let binding = json!({"pattern": "alert.#", "queue": "ops"});
    client.expect(201, "POST", "/v1/topics/wharf.alerts/bindings", &binding);

    let rule = json!({"queue": "orders", "metric": "ready", "op": ">", "threshold": 0,
        "readiness": true});
    let created = client.expect(201, "PUT", "/v1/alerts/backlog", &rule);
    assert_eq!(created["source"], "api");
    assert_eq!(created["metric"], "ready");
    // Refusals name the field or the cause, and change nothing.
    let node_metric_on_queue = json!({"queue": "orders", "metric": "queues", "op": ">",
        "threshold": 1});
    let refused = client.expect(400, "PUT", "/v1/alerts/bad", &node_metric_on_queue);
    assert_eq!(refused["field"], "metric", "{refused}");
    let missing = json!({"queue": "nowhere", "metric": "ready", "op": ">", "threshold": 1});
    let refused = client.expect(404, "PUT", "/v1/alerts/bad", &missing);
    assert_eq!(refused["code"], "queue_not_found");
    let refused = client.expect(409, "DELETE", "/v1/alerts/memory", &Value::Null);
    assert!(refused["detail"]
        .as_str()
        .unwrap_or("")
        .contains("configuration file"));
    let listed = client.expect(200, "GET", "/v1/alerts", &Value::Null);
    let names: Vec<&str> = (listed["alerts"].as_array().expect("alerts").iter())
        .map(|alert| alert["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["backlog", "memory"]);

    send(&client, "orders", json!([{"body": "late"}]));
    let firing = wait_for(&client, "/v1/alerts/backlog", |a| a["state"] == "firing");
    assert_eq!(firing["value"], 1.0);
    let ready = client.call("GET", "/readyz", &Value::Null);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("backlog"));
    let events = client.receive("ops", 10, 30_000);
    let event = &events[0]["body"];
    assert_eq!(
        (&event["alert"], &event["state"]),
        (&json!("backlog"), &json!("firing"))
    );
    assert_eq!(event["rule"]["queue"], "orders", "{event}");

    client.expect(200, "POST", "/v1/queues/orders/purge", &Value::Null);
    wait_for(&client, "/v1/alerts/backlog", |a| a["state"] == "ok");
    client.expect(200, "GET", "/readyz", &Value::Null);
    let events = client.receive("ops", 10, 30_000);
    assert_eq!(events[0]["body"]["state"], "resolved", "{}", events[0]);

    client.expect(204, "DELETE", "/v1/alerts/backlog", &Value::Null);
    let gone = client.expect(404, "GET", "/v1/alerts/backlog", &Value::Null);
    assert_eq!(gone["code"], "alert_not_found");
}

#[test]
fn one_message_is_read_and_deleted_by_its_id_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/jobs", &json!({}));
    let sent = send(
        &client,
        "jobs",
        json!([{"id": "job-1", "body": {"n": 1}}, {"body": {"n": 2, "a": [1.0, 2]}}, {"id": "job-3", "body": 3}]),
    );
    let generated = sent[1]["id"].as_str().expect("an id").to_string();
    let node = node.kill_and_restart();
    let client = node.client();

    // The index is rebuilt from the log: client-given and generated ids are found.
    let found = client.expect(
        200,
        "GET",
        &format!("/v1/queues/jobs/messages/{generated}"),
        &Value::Null,
    );
    assert_eq!(
        (&found["body"], &found["state"]),
        (&json!({"n": 2, "a": [1.0, 2]}), &json!("ready"))
    );
    // A JSON body comes back as it was sent: members in their order, floats as floats.
    let members: Vec<&String> = found["body"]
        .as_object()
        .expect("an object")
        .keys()
        .collect();
    assert_eq!(members, ["n", "a"]);
    assert_eq!(found["body"].to_string(), r#"{"n":2,"a":[1.0,2]}"#);
    let leased = client.receive("jobs", 1, 30_000);
    assert_eq!(leased[0]["id"], "job-1");
    let found = client.expect(200, "GET", "/v1/queues/jobs/messages/job-1", &Value::Null);
    assert_eq!(found["state"], "leased", "{found}");

    let refused = client.expect(
        409,
        "DELETE",
        "/v1/queues/jobs/messages/job-1",
        &Value::Null,
    );
    assert_eq!(refused["code"], "message_leased");
    client.expect(
        204,
        "DELETE",
        "/v1/queues/jobs/messages/job-3",
        &Value::Null,
    );
    let gone = client.expect(404, "GET", "/v1/queues/jobs/messages/job-3", &Value::Null);
    assert_eq!(gone["code"], "message_not_found");
    let gone = client.expect(
        404,
        "DELETE",
        "/v1/queues/jobs/messages/job-3",
        &Value::Null,
    );
    assert_eq!(gone["code"], "message_not_found");
    let stats = client.expect(200, "GET", "/v1/queues/jobs", &Value::Null)["stats"].clone();
    assert_eq!(
        (&stats["ready"], &stats["leased"]),
        (&json!(1), &json!(1)),
        "{stats}"
    );
    assert_eq!(stats["counters"]["purged"], 1);

    // Deleted stays deleted; an acked message is gone too.
    let receipt = leased[0]["receipt"].clone();
    client.expect(
        200,
        "POST",
        "/v1/queues/jobs/ack",
        &json!({"receipts": [receipt]}),
    );
    let node = node.kill_and_restart();
    let client = node.client();
    for id in ["job-1", "job-3"] {
        client.expect(
            404,
            "GET",
            &format!("/v1/queues/jobs/messages/{id}"),
            &Value::Null,
        );
    }
    client.expect(
        200,
        "GET",
        &format!("/v1/queues/jobs/messages/{generated}"),
        &Value::Null,
    );
    let missing = client.expect(404, "GET", "/v1/queues/nowhere/messages/x", &Value::Null);
    assert_eq!(missing["code"], "queue_not_found");
}
