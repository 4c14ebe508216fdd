//! The binary batch content type of the queue door (`application/vnd.wharf.batch`) over real
//! HTTP against the built `wharf` binary: bodies cross as they are both ways, the meta carries
//! every other field, and a bad batch is refused whole, naming the frame and field at fault.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use bytes::Bytes;
use queue_client::{Client, Node};
use serde_json::{json, Value};
use wharf_model::frames::{decode_frames, encode_frame, BATCH_CONTENT_TYPE};

fn batch(frames: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (meta, body) in frames {
        encode_frame(&mut out, meta.as_bytes(), body);
    }
    out
}

fn send_batch(client: &Client, queue: &str, body: &[u8]) -> (u16, Value) {
    let path = format!("/v1/queues/{queue}/messages");
    let reply = (client.try_raw("POST", &path, BATCH_CONTENT_TYPE, body))
        .unwrap_or_else(|error| panic!("POST {path} failed: {error}"));
    (reply.status, reply.body)
}

fn ready(client: &Client, queue: &str) -> u64 {
    let info = client.expect(200, "GET", &format!("/v1/queues/{queue}"), &Value::Null);
    info["stats"]["ready"].as_u64().expect("ready")
}

#[test]
fn bodies_cross_a_binary_batch_as_they_are_and_the_meta_carries_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/frames", &json!({}));

    let every_byte: Vec<u8> = (0..=255).collect();
    let text_meta = r#"{"id":"b-1","headers":{"k":"v"},"content_type":"text/plain","priority":5}"#;
    let sent = batch(&[(text_meta, b"hello\n\"raw\"\0"), ("", &every_byte)]);
    let (status, reply) = send_batch(&client, "frames", &sent);
    assert_eq!(status, 201, "{reply}");
    let ids: Vec<&str> = (reply["messages"].as_array().expect("messages").iter())
        .map(|message| message["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], "b-1");

    let receive = json!({"max_messages": 10, "lease_ms": 30000});
    let (status, content_type, bytes) =
        client.post_accepting("/v1/queues/frames/receive", &receive, BATCH_CONTENT_TYPE);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(content_type, BATCH_CONTENT_TYPE);
    let frames = decode_frames(&Bytes::from(bytes), 100).expect("a batch comes back");
    assert_eq!(frames.len(), 2);
    assert_eq!(&frames[0].body[..], b"hello\n\"raw\"\0", "priority 5 first");
    assert_eq!(&frames[1].body[..], &every_byte[..]);
    let metas: Vec<Value> = (frames.iter())
        .map(|frame| serde_json::from_slice(&frame.meta).expect("a JSON meta"))
        .collect();
    assert_eq!(metas[0]["id"], "b-1");
    assert_eq!(metas[0]["headers"], json!({"k": "v"}));
    assert_eq!(metas[0]["content_type"], "text/plain");
    assert_eq!(metas[0]["priority"], 5);
    assert_eq!(metas[1]["id"], ids[1]);
    assert_eq!(metas[1]["content_type"], "application/octet-stream");
    for meta in &metas {
        assert_eq!(meta["delivery_count"], 1, "{meta}");
        assert!(meta["receipt"].is_string(), "{meta}");
        assert!(
            meta.get("body").is_none() && meta.get("body_base64").is_none(),
            "{meta}"
        );
    }

    let receipts: Vec<&Value> = metas.iter().map(|meta| &meta["receipt"]).collect();
    let acked = client.expect(
        200,
        "POST",
        "/v1/queues/frames/ack",
        &json!({"receipts": receipts}),
    );
    assert!(
        (acked["results"].as_array().expect("results").iter()).all(|result| result["ok"] == true),
        "{acked}"
    );

    // Sent as frames, read as JSON: the body comes back byte for byte, as base64.
    let (status, _) = send_batch(&client, "frames", &batch(&[("", b"\xff\x00x")]));
    assert_eq!(status, 201);
    let messages = client.receive("frames", 10, 30_000);
    assert_eq!(messages[0]["body_base64"], "/wB4");
}

#[test]
fn a_bad_batch_is_refused_whole_naming_the_frame_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let client = node.client();
    client.expect(201, "PUT", "/v1/queues/frames", &json!({}));

    let good = batch(&[("", b"one"), ("", b"two")]);
    let (status, problem) = send_batch(&client, "frames", &good[..good.len() - 1]);
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "invalid_body");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("frame 1 is cut short"), "{detail}");

    let cases = [
        (
            batch(&[("", b"one"), (r#"{"priority":"high"}"#, b"two")]),
            "messages[1].priority",
        ),
        (
            batch(&[(r#"{"body_base64":"eA=="}"#, b"x")]),
            "messages[0].body_base64",
        ),
        (batch(&[("[]", b"x")]), "messages[0]"),
        (
            batch(&[("", b"x"), (r#"{"colour":"red"}"#, b"y")]),
            "messages[1].colour",
        ),
        (
            batch(&[(r#"{"priority":10}"#, b"x")]),
            "messages[0].priority",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = send_batch(&client, "frames", &body);
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_eq!(
        ready(&client, "frames"),
        0,
        "no message of a refused batch is stored"
    );

    let too_many: Vec<(&str, &[u8])> = vec![("", b"x"); 1001];
    let (status, problem) = send_batch(&client, "frames", &batch(&too_many));
    assert_eq!(status, 413, "{problem}");
    assert!(
        (problem["detail"].as_str())
            .is_some_and(|detail| detail.contains("more than 1000 messages (batch_messages_max)")),
        "{problem}"
    );
    let (status, reply) = send_batch(&client, "frames", &batch(&[("", b"")]));
    assert_eq!(status, 201, "an empty body is a body: {reply}");
    assert_eq!(ready(&client, "frames"), 1);
}
