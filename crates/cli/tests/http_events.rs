//! The event store over real HTTP against the built `wharf` binary: expected versions under
//! concurrent writers, idempotent retries, multi-event appends across `kill -9` (never seen in
//! part), catch-up subscriptions switching to live without gap or duplicate, snapshots and
//! projections across restarts, and persistent subscriptions with parking.

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

fn append(client: &Client, stream: &str, expected: Value, events: Value) -> (u16, Value) {
    let body = json!({"expected_version": expected, "events": events});
    let reply = client.call("POST", &format!("/v1/events/streams/{stream}"), &body);
    (reply.status, reply.body)
}

fn read_all_of(client: &Client, stream: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from = 0;
    loop {
        let path = format!("/v1/events/streams/{stream}?from={from}&limit=1000");
        let page = client.expect(200, "GET", &path, &Value::Null);
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(next) => from = next,
            None => return events,
        }
    }
}

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

#[test]
fn concurrent_writers_on_one_stream_win_each_version_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    const WRITERS: u64 = 6;
    const WINS_EACH: u64 = 15;
    let wins: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let conflicts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (client, wins, conflicts) = (node.client(), wins.clone(), conflicts.clone());
            thread::spawn(move || {
                let mut won = 0;
                while won < WINS_EACH {
                    // Read the version, then append expecting it, as an aggregate does.
                    let reply = client.call("GET", "/v1/events/streams/counter", &Value::Null);
                    let expected = match reply.status {
                        404 => json!("no_stream"),
                        _ => reply.body["version"].clone(),
                    };
                    let event = json!([{"type": "Incremented", "data": {"writer": writer}}]);
                    let (status, body) = append(&client, "counter", expected, event);
                    match status {
                        200 | 201 => {
                            wins.lock()
                                .unwrap()
                                .push((body["version"].as_u64().unwrap(), writer));
                            won += 1;
                        }
                        409 => {
                            assert_eq!(body["code"], "wrong_expected_version", "{body}");
                            assert!(body["current_version"].is_u64(), "{body}");
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => panic!("append answered {status}: {body}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let client = node.client();
    let events = read_all_of(&client, "counter");
    let total = WRITERS * WINS_EACH;
    assert_eq!(events.len() as u64, total);
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (0..total).collect::<Vec<_>>(),
        "gap-free versions"
    );
    let mut wins = wins.lock().unwrap().clone();
    wins.sort();
    assert_eq!(
        wins.iter().map(|w| w.0).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "each version won exactly once"
    );
    for (event, (version, writer)) in events.iter().zip(&wins) {
        assert_eq!(event["version"].as_u64(), Some(*version));
        assert_eq!(
            event["data"]["writer"].as_u64(),
            Some(*writer),
            "the winner's event"
        );
    }
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions grow with versions"
    );
    println!("{} conflicts refused", conflicts.load(Ordering::Relaxed));
}

#[test]
fn retries_are_idempotent_and_bad_appends_name_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let events = json!([
        {"id": uuid(1), "type": "A", "data": {"n": 1}, "metadata": {"correlation_id": "c"}},
        {"id": uuid(2), "type": "B", "data_base64": "AAEC"},
    ]);
    let (status, first) = append(&client, "s-1", json!("no_stream"), events.clone());
    assert_eq!(status, 201, "{first}");
    let (status, again) = append(&client, "s-1", json!("no_stream"), events.clone());
    assert_eq!(
        (status, &again),
        (200, &first),
        "a retry answers as the first append did"
    );
    let (status, any) = append(&client, "s-1", json!("any"), events.clone());
    assert_eq!((status, &any), (200, &first), "with any too");
    assert_eq!(read_all_of(&client, "s-1").len(), 2, "nothing stored twice");
    let stored = read_all_of(&client, "s-1");
    assert_eq!(stored[0]["metadata"], json!({"correlation_id": "c"}));
    assert_eq!(stored[1]["data_base64"], "AAEC");

    let (status, conflict) = append(
        &client,
        "s-1",
        json!(0),
        json!([{"id": uuid(3), "type": "C"}]),
    );
    assert_eq!(status, 409);
    assert_eq!(conflict["current_version"], 1);
    assert_eq!(conflict["code"], "wrong_expected_version");
    // The largest version there is: refused, not a crash (the retry check must not overflow).
    let (status, conflict) = append(
        &client,
        "s-1",
        json!(u64::MAX),
        json!([{"id": uuid(4), "type": "C"}]),
    );
    assert_eq!(
        (status, &conflict["current_version"]),
        (409, &json!(1)),
        "{conflict}"
    );
    let (status, conflict) = append(
        &client,
        "s-1",
        json!(7.0),
        json!([{"id": uuid(4), "type": "C"}]),
    );
    assert_eq!(
        (status, &conflict["expected_version"]),
        (409, &json!("7")),
        "an integral float is the integer"
    );
    let (status, conflict) = append(&client, "new-1", json!("exists"), json!([{"type": "C"}]));
    assert_eq!(
        (status, &conflict["current_version"]),
        (409, &Value::Null),
        "{conflict}"
    );

    for (body, field) in [
        (json!({"events": []}), "events"),
        (
            json!({"expected_version": -1, "events": [{"type": "A"}]}),
            "expected_version",
        ),
        (
            json!({"expected_version": "none", "events": [{"type": "A"}]}),
            "expected_version",
        ),
        (json!({"events": [{"type": ""}]}), "events[0].type"),
        (
            json!({"events": [{"type": "A", "id": "x"}]}),
            "events[0].id",
        ),
        (
            json!({"events": [{"type": "A", "id": uuid(5)}, {"type": "A"}, {"type": "B", "id": uuid(5)}]}),
            "events[2].id",
        ),
        (
            json!({"events": [{"type": "A", "metadata": [1]}]}),
            "events[0].metadata",
        ),
        (
            json!({"events": [{"type": "A", "data": 1, "data_base64": "AA=="}]}),
            "events[0].data_base64",
        ),
    ] {
        let reply = client.expect(400, "POST", "/v1/events/streams/s-2", &body);
        assert_eq!(reply["field"], field, "{reply}");
    }
    let reply = client.expect(
        400,
        "POST",
        "/v1/events/streams/%24ce-x",
        &json!({"events": [{"type": "A"}]}),
    );
    assert_eq!(reply["field"], "stream", "{reply}");
    client.expect(404, "GET", "/v1/events/streams/s-2", &Value::Null);
}

#[test]
fn a_batch_appends_to_several_streams_each_on_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    let batch = json!({"appends": [
        {"stream": "b-1", "expected_version": "no_stream", "events": [{"id": uuid(1), "type": "A"}]},
        {"stream": "b-2", "expected_version": "no_stream", "events": [{"type": "A"}]},
        {"stream": "b-1", "expected_version": 0, "events": [{"type": "B"}, {"type": "C"}]},
        {"stream": "b-2", "expected_version": 5, "events": [{"type": "B"}]},
    ]});
    let reply = client.expect(200, "POST", "/v1/events/appends", &batch);
    let results = reply["results"].as_array().unwrap();
    let statuses: Vec<&Value> = results.iter().map(|result| &result["status"]).collect();
    assert_eq!(
        statuses,
        [&json!(201), &json!(201), &json!(200), &json!(409)],
        "{reply}"
    );
    assert_eq!(
        (&results[2]["first_version"], &results[2]["version"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(results[2]["stream"], "b-1");
    let refused = &results[3]["error"];
    assert_eq!(refused["code"], "wrong_expected_version", "{reply}");
    assert_eq!(refused["current_version"], 0);
    assert!(results[3].get("version").is_none(), "{reply}");
    let versions = |stream: &str| -> Vec<u64> {
        (read_all_of(&client, stream).iter())
            .map(|event| event["version"].as_u64().unwrap())
            .collect()
    };
    assert_eq!((versions("b-1"), versions("b-2")), (vec![0, 1, 2], vec![0]));
    // A retry of an append with ids is answered as the first was, in a batch too.
    let retry = json!({"appends": [
        {"stream": "b-1", "expected_version": "no_stream", "events": [{"id": uuid(1), "type": "A"}]},
    ]});
    let reply = client.expect(200, "POST", "/v1/events/appends", &retry);
    assert_eq!(reply["results"][0]["status"], 200, "{reply}");
    assert_eq!(reply["results"][0]["version"], 0, "{reply}");

    // One bad append refuses the whole batch, naming it; nothing of it is written.
    for (second, field) in [
        (
            json!({"stream": "b-4", "events": [{"type": "A", "id": "x"}]}),
            "appends[1].events[0].id",
        ),
        (
            json!({"stream": "b-4", "expected_version": -1, "events": [{"type": "A"}]}),
            "appends[1].expected_version",
        ),
        (
            json!({"stream": "b-4", "events": [{"type": "A", "metadata": 1}]}),
            "appends[1].events[0].metadata",
        ),
        (json!({"stream": "b-4", "events": []}), "appends[1].events"),
        (
            json!({"stream": "$ce-b", "events": [{"type": "A"}]}),
            "appends[1].stream",
        ),
    ] {
        let batch = json!({"appends": [{"stream": "b-3", "events": [{"type": "A"}]}, second]});
        let reply = client.expect(400, "POST", "/v1/events/appends", &batch);
        assert_eq!(reply["field"], field, "{reply}");
    }
    let reply = client.expect(400, "POST", "/v1/events/appends", &json!({"appends": []}));
    assert_eq!(reply["field"], "appends", "{reply}");
    let unknown = json!({"appends": [{"stream": "b-3", "events": [{"type": "A"}], "colour": 1}]});
    client.expect(400, "POST", "/v1/events/appends", &unknown);
    client.expect(404, "GET", "/v1/events/streams/b-3", &Value::Null);
}

/// An append the server acknowledged: its stream, first version and event ids.
type Acknowledged = (String, u64, Vec<String>);

/// Appends of several events each, from several writers, while the server is killed: after
/// the restart every stream holds whole appends only, and every acknowledged one is there.
#[test]
fn no_part_of_a_multi_event_append_survives_kill_9_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    // A persistent subscription over the writers' streams, fed while the server is killed.
    let group = json!({"stream_prefix": "w"});
    (node.client()).expect(201, "PUT", "/v1/events/subscriptions/crash", &group);
    const EVENTS_PER_APPEND: u64 = 5;
    // (stream, first version, ids) of every acknowledged append.
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|writer| {
            let (client, acknowledged, stop) = (node.client(), acknowledged.clone(), stop.clone());
            thread::spawn(move || {
                let mut next_id = writer << 32;
                // Odd writers send two appends at a time as one batch.
                let per_request = 1 + writer % 2;
                for append_number in 0u64.. {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let appends: Vec<(String, Vec<String>)> = (0..per_request)
                        .map(|k| {
                            let stream = format!("w{writer}-{}", (append_number + k) % 8);
                            let ids = (0..EVENTS_PER_APPEND)
                                .map(|_| {
                                    next_id += 1;
                                    uuid(next_id)
                                })
                                .collect();
                            (stream, ids)
                        })
                        .collect();
                    let Some(results) = send_appends(&client, &appends) else {
                        return;
                    };
                    for ((stream, ids), result) in appends.into_iter().zip(results) {
                        if !matches!(result["status"].as_u64(), Some(200 | 201)) {
                            return;
                        }
                        let first = result["first_version"].as_u64().unwrap();
                        acknowledged.lock().unwrap().push((stream, first, ids));
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 300 {
        thread::sleep(Duration::from_millis(5));
    }
    let node = node.kill_and_restart();
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.join().unwrap();
    }
    let client = node.client();
    let mut stored: BTreeMap<(String, u64), String> = BTreeMap::new();
    for writer in 0..4 {
        for n in 0..8 {
            let stream = format!("w{writer}-{n}");
            let reply = client.call("GET", &format!("/v1/events/streams/{stream}"), &Value::Null);
            if reply.status == 404 {
                continue;
            }
            let events = read_all_of(&client, &stream);
            assert_eq!(
                events.len() as u64 % EVENTS_PER_APPEND,
                0,
                "{stream}: a partial append"
            );
            for chunk in events.chunks(EVENTS_PER_APPEND as usize) {
                let parts: Vec<u64> = chunk
                    .iter()
                    .map(|e| e["data"]["i"].as_u64().unwrap())
                    .collect();
                assert_eq!(
                    parts,
                    (0..EVENTS_PER_APPEND).collect::<Vec<_>>(),
                    "{stream}: whole appends in order"
                );
            }
            for event in events {
                let key = (stream.clone(), event["version"].as_u64().unwrap());
                stored.insert(key, event["id"].as_str().unwrap().to_string());
            }
        }
    }
    for (stream, first, ids) in acknowledged.lock().unwrap().iter() {
        for (offset, id) in ids.iter().enumerate() {
            let key = (stream.clone(), first + offset as u64);
            assert_eq!(
                stored.get(&key),
                Some(id),
                "acknowledged event lost: {key:?}"
            );
        }
    }
    // $all agrees with the streams: every stored event once, positions increasing.
    let mut from = 0;
    let mut seen = BTreeSet::new();
    let mut last = None;
    loop {
        let page = client.expect(
            200,
            "GET",
            &format!("/v1/events/all?from={from}&limit=1000"),
            &Value::Null,
        );
        for event in page["events"].as_array().unwrap() {
            let position = event["position"].as_u64().unwrap();
            assert!(last.is_none_or(|last| position > last));
            last = Some(position);
            assert!(
                seen.insert(event["id"].as_str().unwrap().to_string()),
                "an event twice in $all"
            );
        }
        let next = page["next"].as_u64().unwrap();
        if next == from {
            break;
        }
        from = next;
    }
    assert_eq!(seen.len(), stored.len());
    let acknowledged = acknowledged.lock().unwrap();
    let wanted = acknowledged
        .iter()
        .flat_map(|(_, _, ids)| ids.iter().cloned());
    subscription_delivers_all(&client, "crash", wanted.collect());
}

/// Sends `appends` (stream, event ids) of parts 0.. each: one alone as
/// `POST /v1/events/streams/{stream}`, more as one batch. Returns each append's result with
/// its `status`; `None` when the server could not be reached or refused the request.
fn send_appends(client: &Client, appends: &[(String, Vec<String>)]) -> Option<Vec<Value>> {
    let events = |ids: &[String]| -> Vec<Value> {
        (ids.iter().enumerate())
            .map(|(i, id)| json!({"id": id, "type": "Part", "data": {"i": i}}))
            .collect()
    };
    if let [(stream, ids)] = appends {
        let path = format!("/v1/events/streams/{stream}");
        let reply = client
            .try_call("POST", &path, &json!({"events": events(ids)}))
            .ok()?;
        let result = json!({"status": reply.status, "first_version": reply.body["first_version"]});
        return Some(vec![result]);
    }
    let batch: Vec<Value> = (appends.iter())
        .map(|(stream, ids)| json!({"stream": stream, "events": events(ids)}))
        .collect();
    let reply = (client.try_call("POST", "/v1/events/appends", &json!({"appends": batch}))).ok()?;
    (reply.status == 200).then(|| reply.body["results"].as_array().unwrap().clone())
}

/// Receives and acks the group's events until every one of `wanted` came (others may come
/// too: appends whose answer the kill cut off), long-polling, for at most a minute.
fn subscription_delivers_all(client: &Client, group: &str, wanted: BTreeSet<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut delivered = BTreeSet::new();
    // The parameters go in the query: a body would be left unread, and the server closes a
    // connection whose request body it did not read, under a client about to reuse it.
    let receive = format!("/v1/events/subscriptions/{group}/receive?max=100&wait_ms=1000");
    let ack = format!("/v1/events/subscriptions/{group}/ack");
    while !wanted.is_subset(&delivered) {
        let missing = wanted.difference(&delivered).count();
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} acknowledged events never delivered to {group}"
        );
        let reply = client.expect(200, "POST", &receive, &Value::Null);
        let events = reply["events"].as_array().unwrap();
        let receipts: Vec<&Value> = events.iter().map(|e| &e["receipt"]).collect();
        delivered.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        if !receipts.is_empty() {
            client.expect(200, "POST", &ack, &json!({ "receipts": receipts }));
        }
    }
}

#[test]
fn a_catch_up_subscription_goes_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    for n in 0..150 {
        let events = json!([{"type": "Before", "data": {"n": n}}]);
        let (status, _) = append(&client, &format!("pre-{}", n % 10), json!("any"), events);
        assert!(matches!(status, 200 | 201));
    }
    let mut subscription = EventStream::open(node.address, "/v1/events/subscribe?from=start", None);
    let writer = {
        let client = node.client();
        thread::spawn(move || {
            for n in 0..150 {
                let events = json!([{"type": "During", "data": {"n": n}}, {"type": "During", "data": {"n": n}}]);
                let (status, _) = append(&client, &format!("live-{}", n % 7), json!("any"), events);
                assert!(matches!(status, 200 | 201));
            }
        })
    };
    let mut positions = Vec::new();
    for _ in 0..450 {
        let event = subscription.next_event();
        assert_eq!(event.name, "event");
        assert_eq!(event.id, event.data["position"].to_string());
        positions.push(event.data["position"].as_u64().unwrap());
    }
    writer.join().unwrap();
    assert_eq!(
        positions,
        (0..450).collect::<Vec<_>>(),
        "every event once, in order"
    );

    // Resuming after an id, filtered to one stream and to a type prefix.
    let mut resumed = EventStream::open(
        node.address,
        "/v1/events/subscribe?stream=live-3",
        Some("400"),
    );
    let event = resumed.next_event();
    assert!(event.data["position"].as_u64().unwrap() > 400);
    assert_eq!(event.data["stream"], "live-3");
    // An empty id (browsers never send one) is no id: the subscription starts at `from`.
    let mut empty = EventStream::open(node.address, "/v1/events/subscribe?stream=live-3", Some(""));
    assert_eq!(empty.next_event().data["version"], 0);
    // An id this server never sent is refused by name, not read as "from the start".
    for id in ["abc", "-1", "18446744073709551615"] {
        let (status, problem) = EventStream::refused(node.address, "/v1/events/subscribe", id);
        assert_eq!(
            (status, &problem["field"]),
            (400, &json!("Last-Event-ID")),
            "{id}"
        );
    }
    let mut typed = EventStream::open(
        node.address,
        "/v1/events/subscribe?type_prefix=Dur&from=end",
        None,
    );
    append(
        &client,
        "late",
        json!("any"),
        json!([{"type": "Other"}, {"type": "During"}]),
    );
    let event = typed.next_event();
    assert_eq!(
        (event.data["type"].as_str(), event.data["stream"].as_str()),
        (Some("During"), Some("late"))
    );
}

#[test]
fn snapshots_projections_and_deletes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    for n in 0..4 {
        append(
            &client,
            "order-1",
            json!("any"),
            json!([{"type": "OrderLine", "data": {"n": n}}]),
        );
        append(
            &client,
            "cart-1",
            json!("any"),
            json!([{"type": "CartLine", "data": {"n": n}}]),
        );
    }
    client.expect(
        200,
        "PUT",
        "/v1/events/streams/order-1/snapshot",
        &json!({"version": 2, "state": {"lines": 3}}),
    );
    client.expect(
        409,
        "PUT",
        "/v1/events/streams/order-1/snapshot",
        &json!({"version": 9, "state": {}}),
    );
    client.expect(
        201,
        "PUT",
        "/v1/events/projections/orders",
        &json!({"stream_prefix": "order-"}),
    );
    let page = client.expect(
        200,
        "GET",
        "/v1/events/projections/orders/events?limit=2",
        &Value::Null,
    );
    let last = page["events"][1]["position"].as_u64().unwrap();
    client.expect(
        200,
        "POST",
        "/v1/events/projections/orders/checkpoint",
        &json!({"position": last}),
    );
    client.expect(
        200,
        "PUT",
        "/v1/events/streams/cart-1/metadata",
        &json!({"max_count": 2}),
    );
    client.expect(
        204,
        "DELETE",
        "/v1/events/streams/order-9?hard=true",
        &Value::Null,
    );

    let node = node.kill_and_restart();
    let client = node.client();
    let snapshot = client.expect(
        200,
        "GET",
        "/v1/events/streams/order-1/snapshot",
        &Value::Null,
    );
    assert_eq!(
        (snapshot["version"].as_u64(), &snapshot["state"]),
        (Some(2), &json!({"lines": 3}))
    );
    let projection = client.expect(200, "GET", "/v1/events/projections/orders", &Value::Null);
    assert_eq!(projection["checkpoint"].as_u64(), Some(last));
    let rest = client.expect(
        200,
        "GET",
        "/v1/events/projections/orders/events",
        &Value::Null,
    );
    let resumed: Vec<u64> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        resumed,
        vec![2, 3],
        "the projection resumes after its checkpoint"
    );
    assert_eq!(read_all_of(&client, "cart-1").len(), 2, "max_count kept");
    let gone = client.expect(
        404,
        "POST",
        "/v1/events/streams/order-9",
        &json!({"events": [{"type": "X"}]}),
    );
    assert_eq!(gone["code"], "stream_deleted");
    let (status, next) = append(&client, "order-1", json!(3), json!([{"type": "OrderLine"}]));
    assert_eq!(
        (status, next["version"].as_u64()),
        (200, Some(4)),
        "versions continue"
    );
    let by_type = client.expect(
        200,
        "GET",
        "/v1/events/streams/%24et-CartLine",
        &Value::Null,
    );
    assert_eq!(by_type["events"].as_array().unwrap().len(), 4);
    let metrics = process::get(node.address, "/metrics")
        .expect("metrics")
        .body;
    let lag = "wharf_event_projection_lag_events{projection=\"orders\"} 8";
    assert!(metrics.contains(lag), "{metrics}");
}

#[test]
fn a_persistent_subscription_shares_events_acks_retries_and_parks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    for n in 0..3 {
        append(
            &client,
            &format!("order-{n}"),
            json!("no_stream"),
            json!([{"type": "OrderPaid", "data": {"n": n}}]),
        );
    }
    append(
        &client,
        "cart-1",
        json!("no_stream"),
        json!([{"type": "CartOpened"}]),
    );
    let created = client.expect(
        201,
        "PUT",
        "/v1/events/subscriptions/billing",
        &json!({"type_prefix": "OrderPaid", "max_deliveries": 2, "lease_ms": 60000}),
    );
    assert_eq!(created["queue"], "events-sub.billing");
    client.expect(201, "PUT", "/v1/topics/owned-test", &Value::Null);
    for queue in ["events-sub.billing", "events-sub.billing.parked"] {
        let path = format!("/v1/queues/{queue}");
        let messages = json!({"messages": [{"body": "not an event"}]});
        let options = json!({"max_deliveries": 1});
        let binding = json!({"pattern": "#", "queue": queue});
        for (method, path, body) in [
            ("DELETE", path.clone(), &Value::Null),
            (
                "POST",
                "/v1/topics/owned-test/bindings".to_string(),
                &binding,
            ),
            ("POST", format!("{path}/messages"), &messages),
            ("PATCH", path.clone(), &options),
            ("PUT", path.clone(), &options),
        ] {
            let refused = client.expect(409, method, &path, body);
            let detail = refused["detail"].as_str().unwrap();
            assert!(
                detail.contains("persistent subscription \"billing\""),
                "{method} {path}: {detail}"
            );
        }
    }
    client.expect(
        200,
        "PUT",
        "/v1/events/subscriptions/billing",
        &json!({"type_prefix": "OrderPaid", "max_deliveries": 2, "lease_ms": 60000}),
    );
    client.expect(
        409,
        "PUT",
        "/v1/events/subscriptions/billing",
        &json!({"type_prefix": "Order"}),
    );
    // Out-of-range receive parameters are refused by name, not clamped.
    for (query, field) in [
        ("max=0", "max"),
        ("max=101", "max"),
        ("wait_ms=20001", "wait_ms"),
    ] {
        let path = format!("/v1/events/subscriptions/billing/receive?{query}");
        let refused = client.expect(400, "POST", &path, &Value::Null);
        assert_eq!(refused["field"], field, "{query}: {refused}");
    }
    // The parameters go in the query; a body with them (as a queue's receive takes) is
    // refused, not ignored, and leases nothing.
    let body = json!({"max_messages": 10, "wait_ms": 1000});
    let path = "/v1/events/subscriptions/billing/receive";
    let refused = client.expect(400, "POST", path, &body);
    assert_eq!(refused["code"], "invalid_body", "{refused}");
    let receive = |max: u64| {
        let path = format!("/v1/events/subscriptions/billing/receive?max={max}&wait_ms=5000");
        client.expect(200, "POST", &path, &Value::Null)["events"]
            .as_array()
            .unwrap()
            .clone()
    };
    let first = receive(2);
    assert_eq!(first.len(), 2);
    let second = receive(10);
    assert_eq!(second.len(), 1, "competing consumers: the third event only");
    let mut ns: Vec<u64> = first
        .iter()
        .chain(&second)
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, vec![0, 1, 2]);
    let receipt = |event: &Value| event["receipt"].as_str().unwrap().to_string();
    let acked = client.expect(
        200,
        "POST",
        "/v1/events/subscriptions/billing/ack",
        &json!({"receipts": [receipt(&first[0]), receipt(&first[1])]}),
    );
    assert!(
        acked["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "{acked}"
    );
    // The poison event: nacked twice, then parked.
    let mut poison = second[0].clone();
    for delivery in 1..=2 {
        assert_eq!(poison["delivery_count"], delivery);
        client.expect(
            200,
            "POST",
            "/v1/events/subscriptions/billing/nack",
            &json!({"receipts": [receipt(&poison)], "delay_ms": 0}),
        );
        if delivery < 2 {
            poison = receive(1)[0].clone();
        }
    }
    let parked = client.expect(
        200,
        "GET",
        "/v1/queues/events-sub.billing.parked",
        &Value::Null,
    );
    assert_eq!(parked["stats"]["ready"], 1, "{parked}");
    // Events appended later reach the group.
    append(
        &client,
        "order-9",
        json!("no_stream"),
        json!([{"type": "OrderPaid", "data": {"n": 9}}]),
    );
    let later = receive(10);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["stream"], "order-9");
    client.expect(
        204,
        "DELETE",
        "/v1/events/subscriptions/billing",
        &Value::Null,
    );
    client.expect(404, "GET", "/v1/queues/events-sub.billing", &Value::Null);
    client.expect(
        404,
        "POST",
        "/v1/events/subscriptions/billing/receive",
        &Value::Null,
    );
}

#[test]
fn projections_and_persistent_subscriptions_are_listed_a_page_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    append(
        &client,
        "order-1",
        json!("no_stream"),
        json!([{"type": "A"}]),
    );
    for name in ["p-a", "p-b", "p-c", "other"] {
        let path = format!("/v1/events/projections/{name}");
        client.expect(201, "PUT", &path, &json!({"stream_prefix": "order-"}));
        let path = format!("/v1/events/subscriptions/{name}");
        client.expect(201, "PUT", &path, &json!({"stream_prefix": "order-"}));
    }
    for (list, items) in [("projections", "name"), ("subscriptions", "group")] {
        let names = |page: &Value| -> Vec<String> {
            (page[list].as_array().unwrap().iter())
                .map(|item| item[items].as_str().unwrap().to_string())
                .collect()
        };
        let path = format!("/v1/events/{list}?prefix=p-&limit=2");
        let first = client.expect(200, "GET", &path, &Value::Null);
        assert_eq!(names(&first), ["p-a", "p-b"], "{first}");
        assert_eq!(first["next"], "p-b", "{first}");
        let path = format!("/v1/events/{list}?prefix=p-&limit=2&after=p-b");
        let last = client.expect(200, "GET", &path, &Value::Null);
        assert_eq!(names(&last), ["p-c"], "{last}");
        assert!(last.get("next").is_none(), "{last}");
        let all = client.expect(200, "GET", &format!("/v1/events/{list}"), &Value::Null);
        assert_eq!(names(&all), ["other", "p-a", "p-b", "p-c"], "{all}");
        let refused = client.expect(
            400,
            "GET",
            &format!("/v1/events/{list}?limit=0"),
            &Value::Null,
        );
        assert_eq!(refused["field"], "limit", "{refused}");
    }
    // A listed projection's time lag is measured: one event after no checkpoint.
    let page = client.expect(200, "GET", "/v1/events/projections?limit=1", &Value::Null);
    assert_eq!(page["projections"][0]["lag_events"], 1, "{page}");
}

#[test]
fn persistent_subscriptions_past_the_nodes_limit_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_configured(dir.path(), "[limits]\nevent_subscriptions_max = 1\n");
    let client = node.client();
    let group = json!({"stream_prefix": "order-"});
    client.expect(201, "PUT", "/v1/events/subscriptions/first", &group);
    let refused = client.expect(429, "PUT", "/v1/events/subscriptions/second", &group);
    assert_eq!(refused["code"], "limit_reached", "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("limits.event_subscriptions_max"),
        "{detail}"
    );
    client.expect(404, "GET", "/v1/events/subscriptions/second", &Value::Null);
    client.expect(200, "PUT", "/v1/events/subscriptions/first", &group);
    client.expect(
        204,
        "DELETE",
        "/v1/events/subscriptions/first",
        &Value::Null,
    );
    client.expect(201, "PUT", "/v1/events/subscriptions/second", &group);
}
