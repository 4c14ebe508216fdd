//! Black-box crash test of queues through HTTP: producers and consumers run against the built
//! `wharf` binary, which is killed with SIGKILL at a random moment and restarted on the same data
//! dir, several times. Then the queue is drained and the durability contract checked:
//!
//! - every message confirmed (201) and not acked is still there: none lost;
//! - no message is delivered by a receive that began after its ack was confirmed;
//! - no message appears that was never sent, and each body is the one sent with its id.

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
use std::{
    collections::{BTreeSet, HashMap},
    hash::{BuildHasher, Hasher},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

const QUEUE: &str = "crash";
/// Kill-restart cycles; each runs the workload for a random 200-1,200 ms.
const CYCLES: usize = 5;
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
const BATCH_MESSAGES: usize = 8;
/// Short, so deliveries cut off by a kill come back within the test.
const LEASE_MS: u64 = 1_000;
/// Draining ends when the queue is empty; this only stops a hung test.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// What the workers observed, across all cycles.
#[derive(Default)]
struct Ledger {
    /// Every id put into a send request, confirmed or not.
    attempted: BTreeSet<String>,
    /// Ids whose send was answered 201.
    confirmed: BTreeSet<String>,
    /// Ids whose ack was answered ok:true, with when that answer arrived.
    acked: HashMap<String, Instant>,
    /// Ids in an ack request that got no answer (the kill came first): settled or not, either
    /// is correct, so only these may be missing at the end without being acked.
    ack_unanswered: BTreeSet<String>,
    /// Ack results that were not ok, with their error.
    ack_refused: HashMap<String, String>,
    /// Every delivery: the id, its body, and when its receive request began.
    delivered: Vec<(String, Value, Instant)>,
}

#[test]
fn sigkill_loses_no_confirmed_message_and_revives_no_acked_one() {
    let seed = random_seed();
    eprintln!("queue_crash seed {seed}");
    let mut random = seed;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start(dir.path());
    node.client().expect(
        201,
        "PUT",
        &format!("/v1/queues/{QUEUE}"),
        &json!({"lease_ms": LEASE_MS, "retry_backoff_ms": 0}),
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for cycle in 0..CYCLES {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = spawn_workers(&node.client(), cycle, &ledger, &stop);
        // The point of the test: a kill at an arbitrary moment of the workload.
        thread::sleep(Duration::from_millis(200 + next(&mut random) % 1_000));
        node = node.kill_and_restart();
        stop.store(true, Ordering::Release);
        for worker in workers {
            worker.join().expect("worker panicked");
        }
    }
    drain(&node.client(), &ledger);
    check(&ledger.lock().expect("ledger"), seed);
}

fn spawn_workers(
    client: &Client,
    cycle: usize,
    ledger: &Arc<Mutex<Ledger>>,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    for producer in 0..PRODUCERS {
        let (client, ledger, stop) = (client.clone(), ledger.clone(), stop.clone());
        let prefix = format!("c{cycle}-p{producer}");
        workers.push(thread::spawn(move || {
            produce(&client, &prefix, &ledger, &stop)
        }));
    }
    for _ in 0..CONSUMERS {
        let (client, ledger, stop) = (client.clone(), ledger.clone(), stop.clone());
        workers.push(thread::spawn(move || consume(&client, &ledger, &stop)));
    }
    workers
}

/// Sends batches until the server dies or the cycle ends.
fn produce(client: &Client, prefix: &str, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let mut sequence = 0usize;
    while !stop.load(Ordering::Acquire) {
        let ids: Vec<String> = (0..BATCH_MESSAGES)
            .map(|i| format!("{prefix}-{:06}", sequence + i))
            .collect();
        sequence += BATCH_MESSAGES;
        let messages: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "body": {"id": id}}))
            .collect();
        ledger
            .lock()
            .expect("ledger")
            .attempted
            .extend(ids.iter().cloned());
        let path = format!("/v1/queues/{QUEUE}/messages");
        match client.try_call("POST", &path, &json!({ "messages": messages })) {
            Ok(reply) => {
                assert_eq!(reply.status, 201, "send: {}", reply.body);
                ledger.lock().expect("ledger").confirmed.extend(ids);
            }
            Err(_) => return,
        }
    }
}

/// Receives, records and acks until the server dies or the cycle ends.
fn consume(client: &Client, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        if receive_and_ack(client, ledger, 100).is_err() {
            return;
        }
    }
}

/// One receive (long-polling up to `wait_ms`) and one ack of what came; returns how many came.
fn receive_and_ack(client: &Client, ledger: &Mutex<Ledger>, wait_ms: u64) -> Result<usize, ()> {
    let began = Instant::now();
    let path = format!("/v1/queues/{QUEUE}/receive");
    let body = json!({"max_messages": 10, "wait_ms": wait_ms, "lease_ms": LEASE_MS});
    let reply = client.try_call("POST", &path, &body).map_err(|_| ())?;
    assert_eq!(reply.status, 200, "receive: {}", reply.body);
    let messages = reply.body["messages"].as_array().expect("messages").clone();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut receipts = Vec::new();
    let mut ids = Vec::new();
    {
        let mut ledger = ledger.lock().expect("ledger");
        for message in &messages {
            let id = message["id"].as_str().expect("id").to_string();
            ledger
                .delivered
                .push((id.clone(), message["body"].clone(), began));
            receipts.push(message["receipt"].clone());
            ids.push(id);
        }
    }
    let path = format!("/v1/queues/{QUEUE}/ack");
    let reply = match client.try_call("POST", &path, &json!({ "receipts": receipts })) {
        Ok(reply) => reply,
        Err(_) => {
            ledger.lock().expect("ledger").ack_unanswered.extend(ids);
            return Err(());
        }
    };
    assert_eq!(reply.status, 200, "ack: {}", reply.body);
    let confirmed_at = Instant::now();
    let results = reply.body["results"].as_array().expect("results");
    let mut ledger = ledger.lock().expect("ledger");
    assert_eq!(results.len(), messages.len(), "one ack result per receipt");
    for (message, result) in messages.iter().zip(results) {
        let id = message["id"].as_str().expect("id").to_string();
        if result["ok"] == true {
            ledger.acked.insert(id, confirmed_at);
        } else {
            ledger.ack_refused.insert(id, result["error"].to_string());
        }
    }
    Ok(messages.len())
}

/// Receives and acks until the queue holds nothing: no ready, delayed or leased message.
fn drain(client: &Client, ledger: &Mutex<Ledger>) {
    let deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        let received = receive_and_ack(client, ledger, 200).expect("server is up");
        if received == 0 {
            let info = client.expect(200, "GET", &format!("/v1/queues/{QUEUE}"), &Value::Null);
            let stats = &info["stats"];
            if stats["ready"] == 0 && stats["delayed"] == 0 && stats["leased"] == 0 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "queue not drained within {DRAIN_DEADLINE:?}"
        );
    }
}

fn check(ledger: &Ledger, seed: u64) {
    assert!(
        !ledger.confirmed.is_empty() && !ledger.acked.is_empty(),
        "the workload did nothing (seed {seed})"
    );
    for (id, body, began) in &ledger.delivered {
        assert!(
            ledger.attempted.contains(id),
            "{id} was delivered but never sent (seed {seed})"
        );
        assert_eq!(
            body,
            &json!({"id": id}),
            "{id} has a foreign body (seed {seed})"
        );
        if let Some(acked_at) = ledger.acked.get(id) {
            assert!(
                began <= acked_at,
                "{id} was delivered by a receive that began after its ack was confirmed (seed {seed})"
            );
        }
    }
    let lost: Vec<&String> = ledger
        .confirmed
        .iter()
        .filter(|id| !ledger.acked.contains_key(*id) && !ledger.ack_unanswered.contains(*id))
        .collect();
    let deliveries_of = |id: &String| ledger.delivered.iter().filter(|d| &d.0 == id).count();
    let sample: Vec<(&String, usize, Option<&String>)> = lost
        .iter()
        .take(10)
        .map(|id| (*id, deliveries_of(id), ledger.ack_refused.get(*id)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} confirmed messages were not there to drain (id, deliveries before): {sample:?} (seed {seed})",
        lost.len(),
    );
    eprintln!(
        "queue_crash: {} sent, {} confirmed, {} acked, {} acks unanswered, {} deliveries",
        ledger.attempted.len(),
        ledger.confirmed.len(),
        ledger.acked.len(),
        ledger.ack_unanswered.len(),
        ledger.delivered.len()
    );
}

/// A seed from the standard library's randomly keyed hasher; no random-number dependency.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish() | 1
}

/// xorshift64: enough to spread kill moments.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
