//! The audit log through the built binary: an audited action whose answer the client saw is
//! in the log after `kill -9` and a restart, and so is a refused request.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use queue_client::Node;
use serde_json::{json, Value};

#[test]
fn audited_actions_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/jobs", &json!({}));
    client.expect(
        201,
        "POST",
        "/v1/queues/jobs/messages",
        &json!({"messages": [{"body": "a"}]}),
    );
    client.expect(200, "POST", "/v1/queues/jobs/purge", &Value::Null);
    client.expect(204, "DELETE", "/v1/queues/jobs", &Value::Null);
    let node = node.kill_and_restart();
    let audit = node.client().expect(200, "GET", "/v1/audit", &Value::Null);
    let entries = audit["entries"].as_array().expect("entries");
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default();
            (text("operation"), text("resource"), text("outcome"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("PUT /v1/queues/{name}", "queue:jobs", "ok"),
            ("POST /v1/queues/{name}/purge", "queue:jobs", "ok"),
            ("DELETE /v1/queues/{name}", "queue:jobs", "ok"),
        ],
        "sending messages is not a management action; the rest is kept"
    );
    assert!(entries.iter().all(|e| e["who"] == "anonymous"), "{audit}");
    assert!(entries[0]["from"]
        .as_str()
        .is_some_and(|from| from.starts_with("127.0.0.1:")));
}
