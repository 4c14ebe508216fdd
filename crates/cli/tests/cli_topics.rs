//! The topic client commands (`wharf topic ...`, `bind`, `publish`, `subscribe`, `request`,
//! `scatter`, `reply`), run as a user would: the built binary against a real `wharf serve`.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use common::{run_to_end, wharf};
use queue_client::Node;
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    process::{Child, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// One client command against a local server: milliseconds normally; this stops a hung one.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// How long a test waits for a subscriber's line or a responder's request.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

fn run(node: &Node, args: &[&str]) -> (ExitStatus, String, String) {
    let mut command = wharf();
    command
        .arg("--server")
        .arg(format!("http://{}", node.address))
        .args(args);
    run_to_end(command, COMMAND_DEADLINE)
}

fn ok(node: &Node, args: &[&str]) -> String {
    let (status, stdout, stderr) = run(node, args);
    assert!(
        status.success(),
        "wharf {args:?} failed with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn json_line(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// A spawned command whose stdout lines arrive on a channel, killed when dropped.
struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Spawned {
    fn start(node: &Node, args: &[&str]) -> Spawned {
        let mut child = wharf()
            .arg("--server")
            .arg(format!("http://{}", node.address))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wharf");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned { child, lines }
    }

    fn next_line(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(EVENT_DEADLINE)
            .expect("a line in time");
        json_line(&line)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn topics_are_created_bound_published_and_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    ok(&node, &["queue", "create", "eu"]);
    ok(&node, &["queue", "create", "rest"]);

    let created = json_line(&ok(
        &node,
        &["topic", "create", "orders", "--alternate", "queue:rest"],
    ));
    assert_eq!(created["kind"], "topic");
    assert_eq!(created["alternate"], json!({"queue": "rest"}));
    let bound = json_line(&ok(
        &node,
        &[
            "bind",
            "orders",
            "orders/eu/#",
            "--syntax",
            "mqtt",
            "--queue",
            "eu",
            "--filter",
            "amount > 10",
        ],
    ));
    assert_eq!(bound["pattern"], "orders/eu/#");
    assert_eq!(
        bound["filter"], "body.amount > 10",
        "shown in canonical form"
    );

    let published = json_line(&ok(
        &node,
        &[
            "publish",
            "orders",
            "orders/eu/created",
            r#"{"amount": 50}"#,
        ],
    ));
    assert_eq!(published["routed"], 1);
    ok(
        &node,
        &["publish", "orders", "orders/eu/created", r#"{"amount": 5}"#],
    );
    let client = node.client();
    assert_eq!(client.receive("eu", 10, 30_000).len(), 1);
    assert_eq!(client.receive("rest", 10, 30_000).len(), 1, "the alternate");

    let list = ok(&node, &["topic", "list"]);
    let row: Vec<&str> = list
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(row, ["orders", "topic", "2", "2", "0", "1"], "{list}");
    let stats = json_line(&ok(&node, &["topic", "stats", "orders"]));
    assert_eq!(stats["stats"]["published"], 2);
    let bindings = ok(&node, &["topic", "bindings", "orders"]);
    assert_eq!(json_line(&bindings)["matched"], 1);
    let id = bound["id"].as_str().expect("id");
    ok(&node, &["topic", "unbind", "orders", id]);
    assert!(ok(&node, &["topic", "bindings", "orders"]).is_empty());
    ok(&node, &["topic", "delete", "orders"]);

    let (status, _, stderr) = run(&node, &["topic", "stats", "orders"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("orders"), "{stderr}");
    ok(&node, &["topic", "create", "t"]);
    let (status, _, stderr) = run(
        &node,
        &["bind", "t", "#", "--queue", "eu", "--filter", "a =="],
    );
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("field `filter`"), "{stderr}");
}

#[test]
fn subscribe_prints_messages_as_they_arrive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    ok(&node, &["topic", "create", "news", "--retain"]);
    ok(
        &node,
        &[
            "publish",
            "news",
            "news.sport",
            r#""old""#,
            "--header",
            "lang=en",
        ],
    );

    let subscriber = Spawned::start(
        &node,
        &[
            "subscribe",
            "news",
            "news.*",
            "--filter",
            "headers.lang == 'en'",
        ],
    );
    // The retained line also shows the subscription is open before the live publishes.
    let retained = subscriber.next_line();
    assert_eq!(retained["body"], "old", "retained first");
    ok(
        &node,
        &[
            "publish",
            "news",
            "news.sport",
            r#""skipped""#,
            "--header",
            "lang=fr",
        ],
    );
    ok(
        &node,
        &[
            "publish",
            "news",
            "news.tech",
            r#""new""#,
            "--header",
            "lang=en",
        ],
    );
    let live = subscriber.next_line();
    assert_eq!(live["body"], "new");
    assert_eq!(live["headers"], json!({"lang": "en"}));
}

#[test]
fn request_and_reply_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    ok(&node, &["queue", "create", "rpc"]);

    let requester = Spawned::start(
        &node,
        &["request", "queue:rpc", r#"{"q": 1}"#, "--timeout", "10"],
    );
    let client = node.client();
    let until = Instant::now() + EVENT_DEADLINE;
    let request = loop {
        if let Some(message) = client.receive("rpc", 1, 30_000).pop() {
            break message;
        }
        assert!(
            Instant::now() < until,
            "the request never reached the queue"
        );
        thread::sleep(common::POLL_INTERVAL);
    };
    let reply_to = request["reply_to"].as_str().expect("reply_to");
    let correlation_id = request["correlation_id"].as_str().expect("correlation_id");
    let sent = json_line(&ok(
        &node,
        &["reply", reply_to, correlation_id, r#"{"a": 2}"#],
    ));
    assert!(sent["id"].is_string(), "{sent}");
    let reply = requester.next_line();
    assert_eq!(reply["body"], json!({"a": 2}));

    let (status, _, stderr) = run(&node, &["request", "queue:rpc", "1", "--timeout", "0.2"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("error:"), "{stderr}");
    let (status, _, _) = run(&node, &["request", "rpc", "1"]);
    assert_eq!(status.code(), Some(2), "a bad TARGET is a usage error");
}
