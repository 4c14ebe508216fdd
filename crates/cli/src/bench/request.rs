//! `wharf bench request`: request-reply round trips over HTTP through a queue, the shape
//! `bench/topic-vs-peers.sh` also drives NATS core request-reply with (crates/peerbench). The
//! queue is transient by default, like NATS core subjects (nothing is written to disk before
//! a request reaches its responder); `--durable` measures a durable queue instead.
//!
//! `--concurrency` responder tasks long-poll the queue, answer each request with
//! `POST /v1/reply` and ack it; as many requester tasks send `POST /v1/request` one after the
//! other, each on its own kept-alive connection, and time each call. A second, sequential phase
//! (one requester) gives the latency of a single round trip on an otherwise idle server.

use super::{
    http1::{Connection, Endpoint},
    queue::{parse, unix_micros},
    topic::{percentile_ms, Target, Usage},
    BenchError, Remote,
};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

/// A responder's long poll: long enough not to spin on an empty queue, short enough that
/// responders notice the end of the run quickly.
const RECEIVE_WAIT_MS: u64 = 200;
/// Most requests a responder takes per receive: several under load, one when idle.
const RECEIVE_MESSAGES_MAX: u64 = 16;

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Round trips in the concurrent phase.
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Requester tasks and responder tasks, one connection each.
    #[arg(long, default_value_t = 4)]
    concurrency: u64,
    /// Round trips in the sequential (one requester) phase; 0 skips it.
    #[arg(long, default_value_t = 1_000)]
    sequential_requests: u64,
    /// Size of each request and reply body.
    #[arg(long, default_value_t = 128)]
    body_bytes: usize,
    /// How long the server waits for a reply before failing a request.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Route requests through a durable queue (each request then waits for an fsync).
    #[arg(long)]
    durable: bool,
}

/// One phase's figures.
#[derive(Debug)]
struct Phase {
    requests: u64,
    concurrency: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
}

/// `server`: the URL given with `--server` or `WHARF_SERVER`; `None` starts a child server.
pub fn run(args: &RequestArgs, server: Option<&Remote<'_>>) -> Result<(), BenchError> {
    if args.requests == 0 || args.concurrency == 0 {
        return Err(BenchError::Usage(
            "--requests and --concurrency must be positive".into(),
        ));
    }
    let target = Target::start(server)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let usage = target.usage_start()?;
    let result = runtime.block_on(drive(args, &target.endpoint));
    let usage = target.usage_end(usage)?;
    let phases = result.map_err(|error| target.explain(error))?;
    target.stop();
    report(args, &phases, &usage);
    Ok(())
}

async fn drive(args: &RequestArgs, endpoint: &Endpoint) -> Result<Vec<Phase>, BenchError> {
    let queue = format!("rpc-{}-{}", std::process::id(), unix_micros());
    let queue_path = format!("/v1/queues/{queue}");
    let mut admin = Connection::open(endpoint).await?;
    admin
        .request_ok(
            Method::PUT,
            &queue_path,
            Bytes::from(json!({ "durable": args.durable }).to_string()),
        )
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut responders = Vec::new();
    for _ in 0..args.concurrency {
        let connection = Connection::open(endpoint).await?;
        let task = respond(connection, queue_path.clone(), stop.clone());
        responders.push(tokio::spawn(task));
    }
    let body = Value::String("x".repeat(args.body_bytes));
    let request = Bytes::from(
        json!({"queue": queue, "body": body, "timeout_ms": args.timeout_ms}).to_string(),
    );
    let mut phases = Vec::new();
    let mut result = measure(endpoint, &request, args.requests, args.concurrency).await;
    if let Ok(phase) = result {
        phases.push(phase);
        result = match args.sequential_requests {
            0 => Ok(Phase::empty()),
            count => measure(endpoint, &request, count, 1).await,
        };
    }
    stop.store(true, Ordering::Relaxed);
    let mut responder_error = None;
    for responder in responders {
        if let Err(error) = responder.await.map_err(task_failed).and_then(|r| r) {
            responder_error.get_or_insert(error);
        }
    }
    // A requester's error (a timeout) usually has its cause in a responder's.
    let last = result.map_err(|error| responder_error.unwrap_or(error))?;
    if last.requests > 0 {
        phases.push(last);
    }
    let _ = admin
        .request(Method::DELETE, &queue_path, Bytes::new())
        .await;
    Ok(phases)
}

impl Phase {
    fn empty() -> Phase {
        Phase {
            requests: 0,
            concurrency: 1,
            seconds: 0.0,
            latencies_us: Vec::new(),
        }
    }
}

/// `count` round trips over `concurrency` requesters, each one call at a time.
async fn measure(
    endpoint: &Endpoint,
    request: &Bytes,
    count: u64,
    concurrency: u64,
) -> Result<Phase, BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let _bar = super::CounterBar::spawn("bench request", count, "requests", next.clone());
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut connection = Connection::open(endpoint).await?;
        let (next, request) = (next.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let started = Instant::now();
                let reply = connection
                    .request_ok(Method::POST, "/v1/request", request.clone())
                    .await?;
                latencies_us.push(started.elapsed().as_micros() as u64);
                if parse(&reply, "/v1/request")?["reply"].is_null() {
                    return Err(BenchError::Http {
                        request: "POST /v1/request".into(),
                        detail: format!("no reply in {}", String::from_utf8_lossy(&reply)),
                    });
                }
            }
            Ok::<Vec<u64>, BenchError>(latencies_us)
        }));
    }
    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(count as usize);
    for task in tasks {
        latencies_us.extend(task.await.map_err(task_failed)??);
    }
    Ok(Phase {
        requests: count,
        concurrency,
        seconds: started.elapsed().as_secs_f64(),
        latencies_us,
    })
}

/// Receives requests, answers each with its own body, acks them; until `stop`.
async fn respond(
    mut connection: Connection,
    queue_path: String,
    stop: Arc<AtomicBool>,
) -> Result<(), BenchError> {
    let receive_path = format!("{queue_path}/receive");
    let ack_path = format!("{queue_path}/ack");
    let receive = Bytes::from(
        json!({"max_messages": RECEIVE_MESSAGES_MAX, "wait_ms": RECEIVE_WAIT_MS}).to_string(),
    );
    while !stop.load(Ordering::Relaxed) {
        let reply = connection
            .request_ok(Method::POST, &receive_path, receive.clone())
            .await?;
        let reply = parse(&reply, &receive_path)?;
        let messages = reply["messages"].as_array().map_or(&[][..], Vec::as_slice);
        if messages.is_empty() {
            continue;
        }
        let mut receipts = Vec::with_capacity(messages.len());
        for message in messages {
            let answer = json!({
                "reply_to": message["reply_to"],
                "correlation_id": message["correlation_id"],
                "body": message["body"],
            });
            // The requester may have timed out already; that shows on its side.
            let _ = connection
                .request(Method::POST, "/v1/reply", Bytes::from(answer.to_string()))
                .await?;
            receipts.push(message["receipt"].clone());
        }
        let ack = Bytes::from(json!({ "receipts": receipts }).to_string());
        connection.request_ok(Method::POST, &ack_path, ack).await?;
    }
    Ok(())
}

fn task_failed(error: tokio::task::JoinError) -> BenchError {
    BenchError::Server(format!("a load task failed: {error}"))
}

fn report(args: &RequestArgs, phases: &[Phase], usage: &Usage) {
    println!(
        "wharf bench request: {} queue, {} B bodies, {} responders (receive, reply, ack)",
        if args.durable { "durable" } else { "transient" },
        args.body_bytes,
        args.concurrency
    );
    println!(
        "  {:>12} {:>10} {:>14} {:>10} {:>10}",
        "concurrency", "requests", "round trips/s", "p50 ms", "p99 ms"
    );
    let mut summary = serde_json::Map::new();
    for (index, phase) in phases.iter().enumerate() {
        let mut latencies = phase.latencies_us.clone();
        latencies.sort_unstable();
        let per_s = phase.requests as f64 / phase.seconds.max(f64::EPSILON);
        let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
        println!(
            "  {:>12} {:>10} {per_s:>14.0} {p50:>10.2} {p99:>10.2}",
            phase.concurrency, phase.requests
        );
        // The concurrent phase comes first and gives the throughput; the sequential one, the
        // latency of a lone round trip.
        let prefix = match index {
            0 => "wharf_request",
            _ => "wharf_request_sequential",
        };
        summary.insert(format!("{prefix}_round_trips_per_s"), json!(per_s.round()));
        summary.insert(format!("{prefix}_p50_ms"), json!(p50));
        summary.insert(format!("{prefix}_p99_ms"), json!(p99));
    }
    let server_cpu_s = usage.server_cpu.map(|cpu| cpu.as_secs_f64());
    let shown = server_cpu_s.map_or("-".to_string(), |cpu| format!("{cpu:.1}"));
    println!(
        "  server CPU s {shown}, bench CPU s {:.1}",
        usage.bench_cpu.as_secs_f64()
    );
    summary.insert("wharf_request_server_cpu_s".into(), json!(server_cpu_s));
    summary.insert(
        "wharf_request_bench_cpu_s".into(),
        json!(usage.bench_cpu.as_secs_f64()),
    );
    summary.insert("requests".into(), json!(args.requests));
    summary.insert("concurrency".into(), json!(args.concurrency));
    summary.insert(
        "sequential_requests".into(),
        json!(args.sequential_requests),
    );
    summary.insert("body_bytes".into(), json!(args.body_bytes));
    println!("{}", Value::Object(summary));
}
