//! Webhooks against the built `wharf` binary, received by a Python server that verifies every
//! delivery with the `standardwebhooks` package (installed into a virtual environment under
//! the target directory): signatures, retries by the schedule, dead letters and their manual
//! retry, `410 Gone`, the address guard, and deliveries pending across `kill -9`.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;
#[path = "common/venv.rs"]
mod venv;

use queue_client::{Client, Node};
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

/// How long a test waits for deliveries it expects.
const DEADLINE: Duration = Duration::from_secs(30);

/// A Standard Webhooks secret (32 bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

fn python() -> PathBuf {
    venv::python(
        "webhooks-venv",
        &["standardwebhooks==1.0.0"],
        "import standardwebhooks",
    )
}

/// The receiver script, answering as `args` say; killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, args: &[&str]) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
        let port_file = dir.join(format!("receiver-{}.port", rand_suffix()));
        let log = dir.join("receiver.log");
        let child = Command::new(python())
            .arg(script)
            .arg(&port_file)
            .arg(&log)
            .arg(SECRET)
            .args(args)
            .spawn()
            .expect("start the receiver");
        let port = wait_for(
            || std::fs::read_to_string(&port_file).ok(),
            "the receiver's port",
        );
        Receiver {
            child,
            port: port.trim().parse().expect("a port"),
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Every request it got, in order.
    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        (text.lines())
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Polls `probe` until it gives a value; fails the test after [`DEADLINE`].
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no {what} within {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn config(schedule: &str) -> String {
    format!("[webhooks]\nretry_schedule_ms = {schedule}\nbreaker_failures = 1000\n")
}

fn endpoint(client: &Client, id: &str, url: &str) -> Value {
    client.expect(201, "PUT", "/v1/topics/orders", &json!({}));
    let body = json!({
        "url": url,
        "subscriptions": [{"topic": "orders", "pattern": "order.*"}],
        "secret": SECRET,
        "headers": {"x-tenant": "acme"},
    });
    client.expect(201, "PUT", &format!("/v1/webhooks/endpoints/{id}"), &body)
}

fn publish(client: &Client, kinds: &[&str]) -> Vec<String> {
    let messages: Vec<Value> = (kinds.iter().enumerate())
        .map(|(index, kind)| {
            json!({"routing_key": kind, "body": {"n": index}, "headers": {"type": kind}})
        })
        .collect();
    let reply = client.expect(
        201,
        "POST",
        "/v1/topics/orders/publish",
        &json!({ "messages": messages }),
    );
    (reply["messages"].as_array().unwrap().iter())
        .map(|message| message["id"].as_str().unwrap().to_string())
        .collect()
}

fn attempts(client: &Client, id: &str) -> Vec<Value> {
    let reply = client.expect(
        200,
        "GET",
        &format!("/v1/webhooks/endpoints/{id}/attempts"),
        &Value::Null,
    );
    reply["attempts"].as_array().unwrap().clone()
}

#[test]
fn deliveries_are_signed_retried_by_the_schedule_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &["--fail", "2", "--status", "503"]);
    let node = Node::start_with(
        dir.path(),
        &config("[0, 100, 100, 100]"),
        &["--webhooks-allow-private"],
    );
    let client = node.client();
    let created = endpoint(&client, "billing", &receiver.url());
    assert_eq!(created["secret"], SECRET);
    assert_eq!(created["enabled"], true);
    let ids = publish(&client, &["order.paid", "order.shipped", "invoice.sent"]);

    // Two of the three match `order.*`; the first two requests fail, then each succeeds.
    let requests = wait_for(
        || {
            let requests = receiver.requests();
            let delivered = requests.iter().filter(|r| r["answered"] == 204).count();
            (delivered == 2).then_some(requests)
        },
        "two deliveries",
    );
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
        assert_eq!(request["custom"], "acme");
        assert!(ids[..2].contains(&request["webhook_id"].as_str().unwrap().to_string()));
        assert_eq!(request["payload"]["id"], request["webhook_id"]);
    }
    let paid = (requests.iter())
        .find(|r| r["answered"] == 204 && r["webhook_id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(paid["payload"]["type"], "order.paid");
    assert_eq!(paid["payload"]["data"], json!({"n": 0}));

    // The log shows the failures and the successes, newest first, by message (an attempt is
    // logged once settled, just after the receiver answered).
    let log = wait_for(
        || Some(attempts(&client, "billing")).filter(|log| log.len() == requests.len()),
        "every attempt logged",
    );
    assert_eq!(
        log.iter()
            .filter(|a| a["outcome"] == "retry_scheduled")
            .count(),
        2
    );
    assert!(log
        .iter()
        .filter(|a| a["outcome"] == "delivered")
        .all(|a| a["status"] == 204));
    let first = log
        .iter()
        .find(|a| a["outcome"] == "retry_scheduled")
        .unwrap();
    assert_eq!(first["status"], 503);
    assert_eq!(first["response"], "no");
    let path = format!("/v1/webhooks/messages/{}/attempts", ids[0]);
    let across = client.expect(200, "GET", &path, &Value::Null);
    let across = across["attempts"].as_array().unwrap();
    assert!(!across.is_empty() && across.iter().all(|a| a["endpoint"] == "billing"));
    let path = format!("/v1/webhooks/endpoints/billing/attempts?message={}", ids[0]);
    let only = client.expect(200, "GET", &path, &Value::Null);
    assert!(only["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["message_id"] == ids[0].as_str()));
    let metrics = process::get(node.address, "/metrics")
        .expect("metrics")
        .body;
    for series in [
        "wharf_webhook_attempts_total{outcome=\"retry_scheduled\"} 2",
        "wharf_webhook_attempts_total{outcome=\"delivered\"} 2",
        "wharf_webhook_attempt_duration_seconds_count 4",
    ] {
        assert!(metrics.contains(series), "{series} not in:\n{metrics}");
    }
    let info = client.expect(200, "GET", "/v1/webhooks/endpoints/billing", &Value::Null);
    assert_eq!(
        (info["pending"].as_u64(), info["dead_lettered"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_spent_schedule_dead_letters_and_a_retry_sends_again() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &["--fail", "-1", "--status", "500"]);
    let settings = format!("{}allow_private = true\n", config("[0, 100]"));
    let node = Node::start_configured(dir.path(), &settings);
    let client = node.client();
    endpoint(&client, "e", &receiver.url());
    let ids = publish(&client, &["order.paid"]);
    wait_for(
        || {
            let info = client.expect(200, "GET", "/v1/webhooks/endpoints/e", &Value::Null);
            let logged = attempts(&client, "e").len() == 2;
            (info["dead_lettered"] == 1 && info["pending"] == 0 && logged).then_some(())
        },
        "a dead letter",
    );
    let log = attempts(&client, "e");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["outcome"], "dead_lettered");
    assert_eq!(log[0]["attempt"], 2);

    let retried = client.expect(
        200,
        "POST",
        &format!("/v1/webhooks/messages/{}/retry", ids[0]),
        &Value::Null,
    );
    assert_eq!(retried["endpoints"], json!(["e"]));
    wait_for(
        || (attempts(&client, "e").len() == 4).then_some(()),
        "two more attempts",
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests
        .iter()
        .all(|r| r["webhook_id"] == ids[0].as_str() && r["verified"] == true));
    // Failing again, it is dead-lettered again.
    let info = client.expect(200, "GET", "/v1/webhooks/endpoints/e", &Value::Null);
    assert_eq!(info["dead_lettered"], 1);
    let missing = client.call("POST", "/v1/webhooks/messages/nope/retry", &Value::Null);
    assert_eq!(missing.status, 404);
}

#[test]
fn a_replay_sends_a_time_range_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &["--fail", "0"]);
    let node = Node::start_with(
        dir.path(),
        &config("[0, 100]"),
        &["--webhooks-allow-private"],
    );
    let client = node.client();
    endpoint(&client, "e", &receiver.url());
    let ids = publish(&client, &["order.paid", "order.shipped", "invoice.sent"]);
    wait_for(
        || {
            let info = client.expect(200, "GET", "/v1/webhooks/endpoints/e", &Value::Null);
            (receiver.requests().len() == 2 && info["pending"] == 0).then_some(())
        },
        "two deliveries, acknowledged",
    );
    // The receiver lost them; the server is killed and comes back; the range is replayed.
    let node = node.kill_and_restart();
    let client = node.client();
    let replay = |body: Value| client.call("POST", "/v1/webhooks/endpoints/e/replay", &body);
    let replayed = replay(json!({"since": 0}));
    assert_eq!(
        (replayed.status, replayed.body.clone()),
        (200, json!({"replayed": 2}))
    );
    wait_for(
        || (receiver.requests().len() == 4).then_some(()),
        "two replayed deliveries",
    );
    let requests = receiver.requests();
    let mut again: Vec<&str> = (requests[2..].iter())
        .map(|r| r["webhook_id"].as_str().unwrap())
        .collect();
    again.sort_unstable();
    let mut sent = [ids[0].as_str(), ids[1].as_str()];
    sent.sort_unstable();
    // Deliveries run side by side (webhooks.concurrency), so in any order.
    assert_eq!(again, sent, "the same webhook-ids");
    assert!(requests.iter().all(|r| r["verified"] == true));
    // Empty ranges hold nothing; a range without a start and unknown endpoints are refused.
    let later = replay(json!({"since": 0, "until": 1_000}));
    assert_eq!(later.body, json!({"replayed": 0}));
    let backwards = replay(json!({"since": 10, "until": 5}));
    assert_eq!(
        (backwards.status, backwards.body),
        (200, json!({"replayed": 0}))
    );
    let bad = replay(json!({"until": 5}));
    assert_eq!(bad.status, 400, "since is required");
    let missing = client.call(
        "POST",
        "/v1/webhooks/endpoints/nope/replay",
        &json!({"since": 0}),
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn gone_disables_the_endpoint_and_keeps_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &["--fail", "-1", "--status", "410"]);
    let node = Node::start_with(
        dir.path(),
        &config("[0, 100]"),
        &["--webhooks-allow-private"],
    );
    let client = node.client();
    endpoint(&client, "e", &receiver.url());
    publish(&client, &["order.paid"]);
    let info = wait_for(
        || {
            let info = client.expect(200, "GET", "/v1/webhooks/endpoints/e", &Value::Null);
            (info["enabled"] == false).then_some(info)
        },
        "the endpoint disabled",
    );
    assert!(
        info["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410 Gone"),
        "{info}"
    );
    // Leased or returned, the message is the endpoint's still.
    let queue = client.expect(200, "GET", "/v1/queues/wharf.webhook.e", &Value::Null);
    // Its queue, its history, its bindings and the topic it subscribes to go with the
    // endpoint only.
    let bindings = client.expect(200, "GET", "/v1/topics/orders/bindings", &Value::Null);
    let binding = bindings["bindings"][0]["id"].as_str().unwrap();
    let binding = format!("/v1/topics/orders/bindings/{binding}");
    // Its history is its own to write too: a replay re-sends what it holds.
    let forged = json!({"records": [{"value": {"forged": true}}]});
    for (method, path, body) in [
        ("DELETE", "/v1/queues/wharf.webhook.e", &Value::Null),
        (
            "DELETE",
            "/v1/streams/wharf.webhook.e.history",
            &Value::Null,
        ),
        (
            "POST",
            "/v1/streams/wharf.webhook.e.history/records",
            &forged,
        ),
        ("DELETE", &binding, &Value::Null),
        ("DELETE", "/v1/topics/orders", &Value::Null),
    ] {
        let refused = client.expect(409, method, path, body);
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("webhook endpoint \"e\""),
            "{refused}"
        );
    }
    assert_eq!(info["pending"], 1, "{info} {queue}");
    let log = wait_for(
        || Some(attempts(&client, "e")).filter(|log| !log.is_empty()),
        "the attempt logged",
    );
    assert_eq!(log[0]["outcome"], "endpoint_disabled");
    // No second attempt: the worker stopped before taking the message again.
    let info = client.expect(200, "GET", "/v1/webhooks/endpoints/e", &Value::Null);
    assert_eq!(
        (info["pending"].as_u64(), info["dead_lettered"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[test]
fn private_and_metadata_addresses_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[]);
    let node = Node::start_configured(dir.path(), &config("[0, 60000]"));
    let client = node.client();
    endpoint(&client, "local", &receiver.url());
    let body = json!({
        "url": "http://169.254.169.254/latest/meta-data/",
        "subscriptions": [{"topic": "orders"}],
    });
    client.expect(201, "PUT", "/v1/webhooks/endpoints/metadata", &body);
    publish(&client, &["order.paid"]);
    for (id, words) in [
        ("local", "a loopback address; refused"),
        ("metadata", "link-local"),
    ] {
        let log = wait_for(
            || Some(attempts(&client, id)).filter(|log| !log.is_empty()),
            "an attempt",
        );
        let error = log[0]["error"].as_str().unwrap();
        assert!(error.contains(words), "{id}: {error}");
        assert_eq!(log[0]["status"], Value::Null);
    }
    assert!(receiver.requests().is_empty());
}

#[test]
fn bad_endpoints_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/topics/orders", &json!({}));
    let cases = [
        (
            json!({"url": "ftp://x/", "subscriptions": [{"topic": "orders"}]}),
            400,
            "url",
        ),
        (
            json!({"url": "https://x/", "subscriptions": []}),
            400,
            "subscriptions",
        ),
        (
            json!({"url": "https://x/", "subscriptions": [{"topic": "nope"}]}),
            404,
            "subscriptions[0].topic",
        ),
        (
            json!({"url": "https://x/", "subscriptions": [{"topic": "orders"}], "secret": "abc"}),
            400,
            "secret",
        ),
        (
            json!({"url": "https://x/", "subscriptions": [{"topic": "orders"}], "headers": {"webhook-id": "x"}}),
            400,
            "headers",
        ),
        (
            json!({"url": "https://x/", "subscriptions": [{"topic": "orders"}], "rate_limit_per_s": 0}),
            400,
            "rate_limit_per_s",
        ),
    ];
    for (body, status, field) in cases {
        let reply = client.call("PUT", "/v1/webhooks/endpoints/e", &body);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    let listed = client.expect(200, "GET", "/v1/webhooks/endpoints", &Value::Null);
    assert_eq!(listed["endpoints"], json!([]));
    assert_eq!(
        client
            .call("GET", "/v1/webhooks/endpoints/e", &Value::Null)
            .status,
        404
    );
    assert_eq!(
        client
            .call("DELETE", "/v1/webhooks/endpoints/e", &Value::Null)
            .status,
        404
    );
}

#[test]
fn pending_deliveries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = process::free_addresses(1)[0].port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let node = Node::start_with(
        dir.path(),
        &config("[0, 1000, 1000, 1000, 1000, 1000]"),
        &["--webhooks-allow-private"],
    );
    let client = node.client();
    endpoint(&client, "e", &url);
    let kinds = ["order.paid"; 20];
    let ids = publish(&client, &kinds);
    // Each failed once against the closed port; then the server dies.
    wait_for(
        || (attempts(&client, "e").len() >= 20).then_some(()),
        "first attempts",
    );
    let node = node.kill_and_restart();
    let port_arg = port.to_string();
    let receiver = Receiver::start(dir.path(), &["--port", &port_arg]);
    let delivered = wait_for(
        || {
            let requests = receiver.requests();
            let mut seen: Vec<String> = (requests.iter())
                .filter(|r| r["answered"] == 204 && r["verified"] == true)
                .map(|r| r["webhook_id"].as_str().unwrap().to_string())
                .collect();
            seen.sort();
            seen.dedup();
            (seen.len() == ids.len()).then_some(seen)
        },
        "every pending delivery after the restart",
    );
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected);
    let info = node
        .client()
        .expect(200, "GET", "/v1/webhooks/endpoints/e", &Value::Null);
    assert_eq!(info["pending"], 0);
}

#[test]
fn the_circuit_opens_after_failures_in_a_row_and_probes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &["--fail", "-1", "--status", "500"]);
    let settings =
        "[webhooks]\nallow_private = true\nretry_schedule_ms = [0, 50, 50, 50, 50, 50]\n\
                    breaker_failures = 2\nbreaker_open_ms = 1500\nbreaker_open_max_ms = 1500\n";
    let node = Node::start_configured(dir.path(), settings);
    let client = node.client();
    endpoint(&client, "e", &receiver.url());
    publish(&client, &["order.paid"]);
    // Two failures open the circuit: the third attempt, the probe, waits out the 1.5 s.
    let log = wait_for(
        || Some(attempts(&client, "e")).filter(|log| log.len() >= 4),
        "four attempts",
    );
    let at = |index: usize| log[log.len() - 1 - index]["at_ms"].as_u64().unwrap();
    assert!(
        at(1) - at(0) < 1_000,
        "the second attempt follows the schedule: {log:?}"
    );
    assert!(
        at(2) - at(1) >= 1_400,
        "the probe waited for the circuit: {log:?}"
    );
    assert!(
        at(3) - at(2) >= 1_400,
        "a failed probe opens it again: {log:?}"
    );
}
