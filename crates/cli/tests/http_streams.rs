//! Streams over real HTTP against the built `wharf` binary: produce and fetch, partitioning by
//! Kafka's murmur2, offsets, errors, idempotent producers and committed offsets across
//! `kill -9`, consumer groups, tails over Server-Sent Events, and topics routing into streams.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;
#[path = "common/sse.rs"]
mod sse;

use queue_client::{Client, Node};
use serde_json::{json, Value};
use sse::EventStream;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::Duration,
};

fn produce(client: &Client, stream: &str, body: Value) -> Vec<(u64, u64)> {
    let reply = client.expect(200, "POST", &format!("/v1/streams/{stream}/records"), &body);
    (reply["records"].as_array().expect("records").iter())
        .map(|r| {
            (
                r["partition"].as_u64().unwrap(),
                r["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn fetch(client: &Client, stream: &str, partition: u64, query: &str) -> Value {
    let path = format!("/v1/streams/{stream}/partitions/{partition}/records?{query}");
    client.expect(200, "GET", &path, &Value::Null)
}

/// Every record of a partition from 0, in order.
fn all_records(client: &Client, stream: &str, partition: u64) -> Vec<Value> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let page = fetch(
            client,
            stream,
            partition,
            &format!("offset={offset}&max_records=1000"),
        );
        let batch = page["records"].as_array().unwrap().clone();
        offset = page["next_offset"].as_u64().unwrap();
        if batch.is_empty() {
            return records;
        }
        records.extend(batch);
    }
}

fn code(reply: &Value) -> &str {
    reply["code"].as_str().unwrap_or("")
}

#[test]
fn records_are_produced_partitioned_fetched_and_sought_over_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let created = client.expect(201, "PUT", "/v1/streams/orders", &json!({"partitions": 5}));
    assert_eq!(created["partitions"], 5);
    assert_eq!(created["cleanup"], "delete");
    client.expect(200, "PUT", "/v1/streams/orders", &json!({"partitions": 5}));

    // Kafka's murmur2: "foobar" hashes to -790332482, "21" to -973932308 (Kafka's UtilsTest);
    // (h & 0x7fffffff) % 5 gives partitions 1 and 0.
    let placed = produce(
        &client,
        "orders",
        json!({"records": [
            {"key": "foobar", "value": {"n": 1}},
            {"key": "21", "value": "text"},
            {"key": "foobar", "value": [1, 2]},
            {"partition": 4, "value_base64": "AAEC", "headers": {"h": "v"}, "timestamp": 1_700_000_000_000_i64},
        ]}),
    );
    assert_eq!(placed, vec![(1, 0), (0, 0), (1, 1), (4, 0)]);

    let page = fetch(&client, "orders", 1, "offset=0");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["key"], "foobar");
    assert_eq!(records[0]["value"], json!({"n": 1}));
    assert_eq!(records[1]["value"], json!([1, 2]));
    assert_eq!(
        (page["next_offset"].as_u64(), page["latest"].as_u64()),
        (Some(2), Some(2))
    );
    let binary = &fetch(&client, "orders", 4, "")["records"][0];
    assert_eq!(binary["value_base64"], "AAEC");
    assert_eq!(binary["value"], Value::Null);
    assert_eq!(binary["headers"], json!({"h": "v"}));
    assert_eq!(binary["timestamp"], 1_700_000_000_000_i64);

    // Bounds: max_records, and the first record whatever max_bytes says.
    let one = fetch(&client, "orders", 1, "offset=0&max_records=1");
    assert_eq!(one["records"].as_array().unwrap().len(), 1);
    assert_eq!(one["next_offset"], 1);
    let small = fetch(&client, "orders", 1, "offset=0&max_bytes=1");
    assert_eq!(small["records"].as_array().unwrap().len(), 1);

    // Offsets: start, end, and by time.
    let offsets = |query: &str| {
        let path = format!("/v1/streams/orders/partitions/4/offsets?{query}");
        client.expect(200, "GET", &path, &Value::Null)["offset"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(offsets("at=earliest"), 0);
    assert_eq!(offsets("at=latest"), 1);
    assert_eq!(offsets("at=1600000000000"), 0);
    assert_eq!(
        offsets("at=1800000000000"),
        1,
        "no record that late: the end"
    );

    let info = client.expect(200, "GET", "/v1/streams/orders", &Value::Null);
    assert_eq!(info["stats"]["records"], 4);
    assert_eq!(info["partition_stats"][1]["latest"], 2);
    let listed = client.expect(200, "GET", "/v1/streams", &Value::Null);
    assert_eq!(listed["streams"][0]["name"], "orders");
}

#[test]
fn bad_stream_requests_get_problems_that_name_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/s", &json!({"partitions": 2}));
    let refused =
        |status: u16, method: &str, path: &str, body: Value, field: &str, expected_code: &str| {
            let reply = client.expect(status, method, path, &body);
            assert_eq!(reply["field"].as_str().unwrap_or(""), field, "{reply}");
            assert_eq!(code(&reply), expected_code, "{reply}");
        };
    refused(
        400,
        "PUT",
        "/v1/streams/bad",
        json!({"partitions": 0}),
        "partitions",
        "invalid_field",
    );
    refused(
        409,
        "PUT",
        "/v1/streams/s",
        json!({"partitions": 1}),
        "partitions",
        "conflict",
    );
    refused(
        400,
        "PUT",
        "/v1/streams/s",
        json!({"partition": 3}),
        "partition",
        "invalid_body",
    );
    refused(
        400,
        "PUT",
        "/v1/streams/bad%20name",
        json!({}),
        "name",
        "invalid_name",
    );
    let records = "/v1/streams/s/records";
    refused(
        400,
        "POST",
        records,
        json!({"records": []}),
        "records",
        "invalid_field",
    );
    refused(
        400,
        "POST",
        records,
        json!({"records": [{"value": 1, "value_base64": "AA=="}]}),
        "records[0].value_base64",
        "invalid_field",
    );
    refused(
        400,
        "POST",
        records,
        json!({"records": [{"value_base64": "not base64!"}]}),
        "records[0].value_base64",
        "invalid_field",
    );
    refused(
        404,
        "POST",
        records,
        json!({"records": [{"value": 1}, {"value": 2, "partition": 7}]}),
        "records[1].partition",
        "partition_not_found",
    );
    refused(
        400,
        "POST",
        records,
        json!({"records": [{"value": 1}], "producer_id": 1}),
        "sequence",
        "invalid_field",
    );
    refused(
        404,
        "POST",
        "/v1/streams/none/records",
        json!({"records": [{"value": 1}]}),
        "",
        "stream_not_found",
    );
    refused(
        404,
        "GET",
        "/v1/streams/s/partitions/9/records",
        Value::Null,
        "",
        "partition_not_found",
    );
    refused(
        409,
        "GET",
        "/v1/streams/s/partitions/0/records?offset=5",
        Value::Null,
        "offset",
        "offset_out_of_range",
    );
    refused(
        400,
        "GET",
        "/v1/streams/s/partitions/0/records?max_records=0",
        Value::Null,
        "max_records",
        "invalid_field",
    );
    refused(
        400,
        "GET",
        "/v1/streams/s/partitions/0/offsets?at=yesterday",
        Value::Null,
        "at",
        "invalid_field",
    );
    refused(
        404,
        "GET",
        "/v1/streams/s/groups/nobody",
        Value::Null,
        "",
        "group_not_found",
    );
    // Nothing of the refused produces was stored.
    let info = client.expect(200, "GET", "/v1/streams/s", &Value::Null);
    assert_eq!(info["stats"]["records"], 0);
    client.expect(
        201,
        "PUT",
        "/v1/streams/compacted",
        &json!({"cleanup": "compact"}),
    );
    refused(
        400,
        "POST",
        "/v1/streams/compacted/records",
        json!({"records": [{"value": 1}]}),
        "records[0].key",
        "invalid_field",
    );
}

#[test]
fn idempotent_retries_and_committed_offsets_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(
        201,
        "PUT",
        "/v1/streams/payments",
        &json!({"partitions": 3}),
    );
    let request = json!({"producer_id": 42, "sequence": 0, "records": [
        {"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "c", "value": 3}, {"value": 4},
    ]});
    let first = produce(&client, "payments", request.clone());
    assert_eq!(
        produce(&client, "payments", request.clone()),
        first,
        "a retry stores nothing new"
    );
    let joined = client.expect(
        200,
        "POST",
        "/v1/streams/payments/groups/billing/members",
        &json!({"auto_offset_reset": "earliest"}),
    );
    let (member, generation) = (
        joined["member_id"].as_str().unwrap().to_string(),
        joined["generation"].as_u64().unwrap(),
    );
    assert_eq!(joined["assignment"], json!([0, 1, 2]));
    let commit = json!({"member_id": member, "generation": generation, "offsets": [{"partition": 0, "offset": 1}, {"partition": 2, "offset": 0}]});
    client.expect(
        204,
        "POST",
        "/v1/streams/payments/groups/billing/commit",
        &commit,
    );

    let node = node.kill_and_restart();
    let client = node.client();
    assert_eq!(
        produce(&client, "payments", request),
        first,
        "the retry is recognised after a restart"
    );
    let gap = client.expect(
        409,
        "POST",
        "/v1/streams/payments/records",
        &json!({"producer_id": 42, "sequence": 2, "records": [{"value": 5}]}),
    );
    assert_eq!(code(&gap), "out_of_order_sequence");
    let next = produce(
        &client,
        "payments",
        json!({"producer_id": 42, "sequence": 1, "records": [{"key": "a", "value": 6}]}),
    );
    assert_eq!(next.len(), 1);
    let stored: usize = (0..3)
        .map(|p| all_records(&client, "payments", p).len())
        .sum();
    assert_eq!(stored, 5, "four records once, and the next request's one");
    let offsets = client.expect(
        200,
        "GET",
        "/v1/streams/payments/groups/billing/offsets",
        &Value::Null,
    );
    assert_eq!(offsets["partitions"][0]["committed"], 1);
    assert_eq!(offsets["partitions"][1]["committed"], Value::Null);
    assert_eq!(offsets["partitions"][2]["committed"], 0);
    // Members are not kept across a restart: the old one must join again.
    let stale = client.expect(
        409,
        "POST",
        "/v1/streams/payments/groups/billing/commit",
        &commit,
    );
    assert_eq!(code(&stale), "unknown_member");
    let rejoined = client.expect(
        200,
        "POST",
        "/v1/streams/payments/groups/billing/members",
        &json!({}),
    );
    assert_eq!(rejoined["positions"]["0"], 1, "the committed offset");
}

#[test]
fn acknowledged_records_and_commits_survive_kill_9_under_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/load", &json!({"partitions": 2}));
    let acknowledged: Arc<Mutex<Vec<(u64, u64, u64)>>> = Arc::default();
    let commits: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (client, acknowledged, stop) = (node.client(), acknowledged.clone(), stop.clone());
        thread::spawn(move || {
            for request in 0u64.. {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let records: Vec<Value> = (0..10)
                    .map(|i| json!({"value": request * 10 + i}))
                    .collect();
                let reply = client.try_call(
                    "POST",
                    "/v1/streams/load/records",
                    &json!({"records": records}),
                );
                let Some(reply) = reply.ok().filter(|reply| reply.status == 200) else {
                    return;
                };
                let mut acknowledged = acknowledged.lock().unwrap();
                for (i, record) in reply.body["records"].as_array().unwrap().iter().enumerate() {
                    let position = (
                        record["partition"].as_u64().unwrap(),
                        record["offset"].as_u64().unwrap(),
                    );
                    acknowledged.push((position.0, position.1, request * 10 + i as u64));
                }
            }
        })
    };
    let committer = {
        let (client, commits, stop) = (node.client(), commits.clone(), stop.clone());
        thread::spawn(move || {
            for offset in 0u64.. {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let body = json!({"offsets": [{"partition": 0, "offset": offset.min(1)}]});
                let reply = client.try_call("POST", "/v1/streams/load/groups/g/commit", &body);
                if reply.map_or(true, |reply| reply.status != 204) {
                    return;
                }
                commits.lock().unwrap().push(offset.min(1));
            }
        })
    };
    // Kill once a few hundred requests went through, with both still running.
    while acknowledged.lock().unwrap().len() < 3_000 {
        thread::sleep(Duration::from_millis(5));
    }
    let node = node.kill_and_restart();
    stop.store(true, Ordering::Release);
    producer.join().unwrap();
    committer.join().unwrap();
    let client = node.client();
    let mut stored = BTreeMap::new();
    for partition in 0..2 {
        for record in all_records(&client, "load", partition) {
            stored.insert(
                (partition, record["offset"].as_u64().unwrap()),
                record["value"].as_u64().unwrap(),
            );
        }
        let offsets: Vec<u64> = stored
            .keys()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as u64).collect::<Vec<_>>(),
            "offsets gap-free"
        );
    }
    for (partition, offset, value) in acknowledged.lock().unwrap().iter() {
        assert_eq!(
            stored.get(&(*partition, *offset)),
            Some(value),
            "acknowledged record lost or moved"
        );
    }
    let values: BTreeSet<u64> = stored.values().copied().collect();
    assert_eq!(values.len(), stored.len(), "no record stored twice");
    if !commits.lock().unwrap().is_empty() {
        let offsets = client.expect(
            200,
            "GET",
            "/v1/streams/load/groups/g/offsets",
            &Value::Null,
        );
        assert!(
            offsets["partitions"][0]["committed"].as_u64().is_some(),
            "{offsets}"
        );
    }
}

#[test]
fn consumer_groups_assign_rebalance_and_refuse_stale_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/clicks", &json!({"partitions": 4}));
    produce(
        &client,
        "clicks",
        json!({"records": (0..20).map(|i| json!({"key": format!("k{i}"), "value": i})).collect::<Vec<_>>()}),
    );
    let members = "/v1/streams/clicks/groups/web/members";
    let a = client.expect(
        200,
        "POST",
        members,
        &json!({"member_id": "a", "strategy": "round_robin", "auto_offset_reset": "earliest"}),
    );
    assert_eq!(
        (a["generation"].as_u64(), a["assignment"].clone()),
        (Some(1), json!([0, 1, 2, 3]))
    );
    assert_eq!(a["positions"], json!({"0": 0, "1": 0, "2": 0, "3": 0}));
    let b = client.expect(200, "POST", members, &json!({"member_id": "b"}));
    assert_eq!(b["generation"], 2);
    assert_eq!(b["assignment"], json!([1, 3]));
    // a's generation-1 commit is refused; its heartbeat tells it the new assignment.
    let commit = |member: &str, generation: u64, partition: u64| {
        let body = json!({"member_id": member, "generation": generation, "offsets": [{"partition": partition, "offset": 1}]});
        client.call("POST", "/v1/streams/clicks/groups/web/commit", &body)
    };
    let stale = commit("a", 1, 0);
    assert_eq!((stale.status, code(&stale.body)), (409, "stale_generation"));
    let heartbeat = client.expect(
        200,
        "POST",
        "/v1/streams/clicks/groups/web/members/a/heartbeat",
        &json!({"generation": 1}),
    );
    assert_eq!(
        (
            heartbeat["generation"].as_u64(),
            heartbeat["assignment"].clone()
        ),
        (Some(2), json!([0, 2]))
    );
    assert_eq!(commit("a", 2, 0).status, 204);
    let not_mine = commit("a", 2, 1);
    assert_eq!(
        (not_mine.status, code(&not_mine.body)),
        (409, "stale_generation")
    );
    let group = client.expect(200, "GET", "/v1/streams/clicks/groups/web", &Value::Null);
    assert_eq!(group["members"].as_array().unwrap().len(), 2);
    assert_eq!(group["partitions"][0]["committed"], 1);
    assert_eq!(group["partitions"][1]["owner"], "b");
    let text = process::get(node.address, "/metrics")
        .expect("metrics")
        .body;
    let lag = group["lag"].as_u64().unwrap();
    for series in [
        format!("wharf_stream_group_lag{{stream=\"clicks\",group=\"web\"}} {lag}"),
        "wharf_stream_records{stream=\"clicks\"} 20".to_string(),
        "wharf_stream_produced_total{stream=\"clicks\"} 20".to_string(),
        "wharf_streams 1".to_string(),
        "wharf_stream_partitions 4".to_string(),
    ] {
        assert!(
            text.contains(&series),
            "{series} missing from /metrics:\n{text}"
        );
    }
    let refused = client.expect(409, "DELETE", "/v1/streams/clicks/groups/web", &Value::Null);
    assert_eq!(code(&refused), "conflict");
    client.expect(
        204,
        "DELETE",
        "/v1/streams/clicks/groups/web/members/b",
        &Value::Null,
    );
    let alone = client.expect(
        200,
        "POST",
        "/v1/streams/clicks/groups/web/members/a/heartbeat",
        &json!({"generation": 2}),
    );
    assert_eq!(
        (alone["generation"].as_u64(), alone["assignment"].clone()),
        (Some(3), json!([0, 1, 2, 3]))
    );
    let lag: u64 = (0..4)
        .map(|p| all_records(&client, "clicks", p).len() as u64)
        .sum::<u64>()
        - 1;
    let group = client.expect(200, "GET", "/v1/streams/clicks/groups/web", &Value::Null);
    assert_eq!(
        group["partitions"][0]["lag"].as_u64(),
        Some(all_records(&client, "clicks", 0).len() as u64 - 1)
    );
    assert!(group["lag"].as_u64().unwrap() <= lag);
    client.expect(
        204,
        "DELETE",
        "/v1/streams/clicks/groups/web/members/a",
        &Value::Null,
    );
    client.expect(204, "DELETE", "/v1/streams/clicks/groups/web", &Value::Null);
    client.expect(404, "GET", "/v1/streams/clicks/groups/web", &Value::Null);
}

#[test]
fn a_tail_streams_new_records_and_resumes_after_last_event_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/live", &json!({}));
    produce(&client, "live", json!({"records": [{"value": "old"}]}));
    let mut tail = EventStream::open(node.address, "/v1/streams/live/partitions/0/tail", None);
    produce(
        &client,
        "live",
        json!({"records": [{"value": "a"}, {"value": "b"}]}),
    );
    assert_eq!(
        next_record(&mut tail),
        ("1".to_string(), json!("a")),
        "from the end: new records only"
    );
    assert_eq!(next_record(&mut tail), ("2".to_string(), json!("b")));
    drop(tail);
    produce(&client, "live", json!({"records": [{"value": "c"}]}));
    let mut resumed = EventStream::open(
        node.address,
        "/v1/streams/live/partitions/0/tail",
        Some("1"),
    );
    assert_eq!(
        next_record(&mut resumed),
        ("2".to_string(), json!("b")),
        "resumes after the last id"
    );
    assert_eq!(next_record(&mut resumed), ("3".to_string(), json!("c")));
    for id in ["x", "18446744073709551615"] {
        let path = "/v1/streams/live/partitions/0/tail";
        let (status, problem) = EventStream::refused(node.address, path, id);
        assert_eq!(
            (status, &problem["field"]),
            (400, &json!("Last-Event-ID")),
            "{id}"
        );
    }
    let mut replay = EventStream::open(
        node.address,
        "/v1/streams/live/partitions/0/tail?offset=0",
        None,
    );
    assert_eq!(next_record(&mut replay), ("0".to_string(), json!("old")));
}

#[test]
fn topics_route_published_messages_into_streams() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/history", &json!({"partitions": 3}));
    client.expect(201, "PUT", "/v1/topics/events", &json!({}));
    client.expect(
        201,
        "POST",
        "/v1/topics/events/bindings",
        &json!({"pattern": "orders.#", "stream": "history"}),
    );
    let missing = client.expect(
        404,
        "POST",
        "/v1/topics/events/bindings",
        &json!({"pattern": "x", "stream": "none"}),
    );
    assert_eq!(code(&missing), "stream_not_found");
    let published = client.expect(
        201,
        "POST",
        "/v1/topics/events/publish",
        &json!({"messages": [
            {"routing_key": "orders.eu", "body": {"id": 1}},
            {"routing_key": "orders.eu", "body": {"id": 2}},
            {"routing_key": "users.new", "body": {"id": 3}},
        ]}),
    );
    let routed: Vec<u64> = (published["messages"].as_array().unwrap().iter())
        .map(|m| m["routed"].as_u64().unwrap())
        .collect();
    assert_eq!(routed, vec![1, 1, 0]);
    let records: Vec<Value> = (0..3)
        .flat_map(|p| all_records(&client, "history", p))
        .collect();
    assert_eq!(records.len(), 2, "one key, one partition, in order");
    assert_eq!(
        (records[0]["key"].clone(), records[0]["value"].clone()),
        (json!("orders.eu"), json!({"id": 1}))
    );
    assert_eq!(records[1]["value"], json!({"id": 2}));
    assert_eq!(records[0]["headers"]["content-type"], "application/json");
}

/// The next `record` event of a tail: its id and the record's value.
fn next_record(tail: &mut EventStream) -> (String, Value) {
    let event = tail.next_event();
    assert_eq!(event.name, "record");
    (event.id, event.data["value"].clone())
}

#[test]
fn the_nodes_partition_limit_refuses_creating_and_growing_past_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_configured(dir.path(), "[limits]\nstream_partitions_max = 4\n");
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/a", &json!({"partitions": 3}));
    let refused = client.expect(429, "PUT", "/v1/streams/b", &json!({"partitions": 2}));
    assert_eq!(code(&refused), "limit_reached");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("limits.stream_partitions_max"),
        "{refused}"
    );
    client.expect(404, "GET", "/v1/streams/b", &Value::Null);
    client.expect(429, "PUT", "/v1/streams/a", &json!({"partitions": 5}));
    client.expect(201, "PUT", "/v1/streams/b", &json!({}));
    client.expect(204, "DELETE", "/v1/streams/a", &Value::Null);
    client.expect(200, "PUT", "/v1/streams/b", &json!({"partitions": 4}));
}

#[test]
fn a_long_polling_fetch_does_not_hold_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/streams/quiet", &json!({}));
    let poll = thread::spawn(move || {
        let path = "/v1/streams/quiet/partitions/0/records?offset=0&wait_ms=30000";
        client.call("GET", path, &Value::Null)
    });
    // The long poll is waiting once the server counts it among the requests in flight; a
    // SIGTERM then makes it answer what is there (nothing) rather than hold the drain.
    thread::sleep(Duration::from_secs(1));
    node.server.signal(libc::SIGTERM);
    let reply = poll.join().expect("the long poll");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["records"], json!([]));
    node.server.wait_exit(Duration::from_secs(15));
}
