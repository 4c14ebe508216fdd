//! `wharf-peerbench nats-request`: the `wharf bench request` workload against NATS core
//! request-reply, with async-nats.
//!
//! `--concurrency` responders share a queue group on one subject, each on its own connection,
//! and publish every request's payload back to its reply subject; as many requesters, one
//! connection each, send requests one after the other and time each. A second phase with one
//! requester gives the sequential round-trip latency. NATS core keeps nothing on disk, so this
//! is the floor a broker's in-memory request path can be held against, not a like-for-like
//! durable figure (Wharf's request goes through a durable queue).

use crate::{cpu_time_of, own_cpu_time, percentile_ms};
use anyhow::{bail, Context};
use clap::Args;
use futures_lite::StreamExt;
use serde_json::{json, Map, Value};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

const SUBJECT: &str = "bench.rpc";
const QUEUE_GROUP: &str = "responders";

#[derive(Debug, Args, Clone)]
pub struct RequestArgs {
    /// NATS URL of the server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Round trips in the concurrent phase.
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Requesters and responders, one connection each.
    #[arg(long, default_value_t = 4)]
    concurrency: u64,
    /// Round trips in the sequential phase; 0 skips it.
    #[arg(long, default_value_t = 1_000)]
    sequential_requests: u64,
    #[arg(long, default_value_t = 128)]
    body_bytes: usize,
    /// Server process id, to report its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

struct Phase {
    requests: u64,
    concurrency: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
}

pub fn request(args: &RequestArgs) -> anyhow::Result<()> {
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let server_cpu_before = args.server_pid.map(cpu_time_of).transpose()?;
    let bench_cpu_before = own_cpu_time()?;
    let phases = runtime.block_on(drive(args))?;
    let bench_cpu = own_cpu_time()?.saturating_sub(bench_cpu_before);
    let server_cpu = match (args.server_pid, server_cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_time_of(pid)?.saturating_sub(before)),
        _ => None,
    };
    println!(
        "nats core request-reply (async-nats): {} B bodies, {} responders in a queue group",
        args.body_bytes, args.concurrency
    );
    println!(
        "  {:>12} {:>10} {:>14} {:>10} {:>10}",
        "concurrency", "requests", "round trips/s", "p50 ms", "p99 ms"
    );
    let mut summary = Map::new();
    for (index, phase) in phases.into_iter().enumerate() {
        let mut latencies = phase.latencies_us;
        latencies.sort_unstable();
        let per_s = phase.requests as f64 / phase.seconds.max(f64::EPSILON);
        let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
        println!(
            "  {:>12} {:>10} {per_s:>14.0} {p50:>10.2} {p99:>10.2}",
            phase.concurrency, phase.requests
        );
        let prefix = match index {
            0 => "nats_request",
            _ => "nats_request_sequential",
        };
        summary.insert(format!("{prefix}_round_trips_per_s"), json!(per_s.round()));
        summary.insert(format!("{prefix}_p50_ms"), json!(p50));
        summary.insert(format!("{prefix}_p99_ms"), json!(p99));
    }
    let server_cpu_s = server_cpu.map(|cpu| cpu.as_secs_f64());
    let shown = server_cpu_s.map_or("-".to_string(), |cpu| format!("{cpu:.1}"));
    println!(
        "  server CPU s {shown}, bench CPU s {:.1}",
        bench_cpu.as_secs_f64()
    );
    summary.insert("nats_request_server_cpu_s".into(), json!(server_cpu_s));
    summary.insert(
        "nats_request_bench_cpu_s".into(),
        json!(bench_cpu.as_secs_f64()),
    );
    summary.insert("requests".into(), json!(args.requests));
    summary.insert("concurrency".into(), json!(args.concurrency));
    println!("{}", Value::Object(summary));
    Ok(())
}

async fn drive(args: &RequestArgs) -> anyhow::Result<Vec<Phase>> {
    let mut responders = Vec::new();
    for _ in 0..args.concurrency {
        let client = connect(&args.url).await?;
        let mut subscription = client
            .queue_subscribe(SUBJECT, QUEUE_GROUP.to_string())
            .await?;
        // The subscription must reach the server before the first request, or it gets no
        // responders.
        client.flush().await?;
        responders.push(tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                if let Some(reply) = message.reply {
                    client.publish(reply, message.payload).await?;
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let body = vec![b'x'; args.body_bytes];
    let mut phases = vec![measure(&args.url, &body, args.requests, args.concurrency).await?];
    if args.sequential_requests > 0 {
        phases.push(measure(&args.url, &body, args.sequential_requests, 1).await?);
    }
    for responder in responders {
        responder.abort();
    }
    Ok(phases)
}

async fn measure(url: &str, body: &[u8], count: u64, concurrency: u64) -> anyhow::Result<Phase> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = connect(url).await?;
        let (next, body) = (next.clone(), body.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let started = Instant::now();
                client.request(SUBJECT, body.clone().into()).await?;
                latencies_us.push(started.elapsed().as_micros() as u64);
            }
            Ok::<Vec<u64>, anyhow::Error>(latencies_us)
        }));
    }
    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(count as usize);
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    Ok(Phase {
        requests: count,
        concurrency,
        seconds: started.elapsed().as_secs_f64(),
        latencies_us,
    })
}

async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::connect(url)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}
