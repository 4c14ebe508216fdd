//! `wharf-peerbench postgres-queue`: the `wharf bench queue` workload against PostgreSQL used as
//! a job queue, the way pgmq and River use it, so `bench/queue-vs-postgres.sh` can print both
//! side by side.
//!
//! A `jobs` table (`id bigserial primary key, body bytea, sent_us bigint`). Each producer
//! inserts its batches as one multi-row `INSERT` each (one commit, durable once it returns with
//! `synchronous_commit` on); each consumer takes up to a batch with
//! `DELETE ... WHERE id IN (SELECT id ... ORDER BY id FOR UPDATE SKIP LOCKED LIMIT n)
//! RETURNING id, body, sent_us`, which leases and settles in one commit. The table is analysed
//! before the run so that the consumers' plan uses the primary key; the plan is printed. The
//! server's CPU is measured by the calling script (the postmaster and all its children).

use crate::{own_cpu_time, percentile_ms, unix_micros, QueueShape};
use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use std::{
    collections::{hash_map::Entry, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio_postgres::{types::ToSql, Client, NoTls};

/// An idle consumer's pause before it asks again, so an empty table is not polled flat out.
const IDLE_PAUSE: Duration = Duration::from_millis(1);
/// No message consumed for this long means something is wrong: fail instead of hanging.
const STALL_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Args, Clone)]
pub struct PostgresQueueArgs {
    /// Connection string, e.g. `host=127.0.0.1 port=5432 user=postgres dbname=postgres`.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    shape: QueueShape,
    /// Accepted for the same command line as `wharf bench queue`; each producer has one
    /// INSERT in flight.
    #[arg(long, default_value_t = 100)]
    window: u64,
    /// Accepted for the same command line as `wharf bench queue`; bodies are bytea.
    #[arg(long)]
    format: Option<String>,
}

struct Progress {
    total: u64,
    consumed: AtomicU64,
    started: Instant,
}

pub fn postgres_queue(args: &PostgresQueueArgs) -> anyhow::Result<()> {
    args.shape.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(prepare(args))?;
    let bench_cpu_before = own_cpu_time()?;
    let (sends_seconds, end_to_end_seconds, mut latencies_us) = runtime.block_on(drive(args))?;
    let bench_cpu = own_cpu_time()?.saturating_sub(bench_cpu_before);
    latencies_us.sort_unstable();
    let messages = args.shape.messages as f64;
    let sends_per_s = messages / sends_seconds.max(f64::EPSILON);
    let end_to_end_per_s = messages / end_to_end_seconds.max(f64::EPSILON);
    let p50 = percentile_ms(&latencies_us, 50);
    let p99 = percentile_ms(&latencies_us, 99);
    let load = match args.shape.rate {
        0 => "flat out".to_string(),
        rate => format!("offered {rate} msg/s"),
    };
    println!(
        "postgres (jobs table, tokio-postgres): {} messages of {} B, {} producers x INSERT of {}, {} consumers x DELETE ... SKIP LOCKED LIMIT {}, {load}",
        args.shape.messages, args.shape.body_bytes, args.shape.producers, args.shape.batch, args.shape.consumers, args.shape.batch
    );
    println!("  sends/s (committed)          {sends_per_s:>12.0}");
    println!("  end-to-end msg/s (deleted)   {end_to_end_per_s:>12.0}");
    println!("  latency p50 ms               {p50:>12.2}");
    println!("  latency p99 ms               {p99:>12.2}");
    println!(
        "  bench CPU s                  {:>12.1}",
        bench_cpu.as_secs_f64()
    );
    println!("  wall s                       {end_to_end_seconds:>12.1}");
    let summary = json!({
        "postgres_sends_per_s": sends_per_s.round(),
        "postgres_end_to_end_per_s": end_to_end_per_s.round(),
        "postgres_p50_ms": p50,
        "postgres_p99_ms": p99,
        "postgres_bench_cpu_s": bench_cpu.as_secs_f64(),
        "postgres_seconds": end_to_end_seconds,
        "messages": args.shape.messages,
        "producers": args.shape.producers,
        "consumers": args.shape.consumers,
        "batch": args.shape.batch,
        "body_bytes": args.shape.body_bytes,
        "rate": args.shape.rate,
    });
    println!("{summary}");
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("postgres connection ended: {error}");
        }
    });
    Ok(client)
}

/// The consumers' statement. The limit is a literal, not a parameter: with `LIMIT $1` a
/// prepared statement's generic plan may sort the whole table on every call.
fn consume_statement(batch: u64) -> String {
    format!(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED \
         LIMIT {batch}) RETURNING id, body, sent_us"
    )
}

/// A fresh `jobs` table, filled and emptied once and analysed, so the consumers' DELETE uses
/// the primary key; prints the plan.
async fn prepare(args: &PostgresQueueArgs) -> anyhow::Result<()> {
    let client = connect(&args.url).await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS jobs; \
             CREATE TABLE jobs (id bigserial PRIMARY KEY, body bytea NOT NULL, sent_us bigint NOT NULL); \
             INSERT INTO jobs (body, sent_us) SELECT '\\x00'::bytea, 0 FROM generate_series(1, 10000); \
             ANALYZE jobs; DELETE FROM jobs;",
        )
        .await
        .context("cannot create the jobs table")?;
    let plan = client
        .query(
            &format!("EXPLAIN {}", consume_statement(args.shape.batch)),
            &[],
        )
        .await
        .context("cannot explain the consumers' DELETE")?;
    let plan: Vec<String> = plan.iter().map(|row| row.get(0)).collect();
    let index = plan.iter().any(|line| line.contains("Index"));
    println!(
        "consumers' plan: {}",
        if index {
            "index scan on jobs_pkey"
        } else {
            "no index scan"
        }
    );
    for line in plan {
        println!("    {line}");
    }
    Ok(())
}

type Measured = (f64, f64, Vec<u64>);

async fn drive(args: &PostgresQueueArgs) -> anyhow::Result<Measured> {
    let progress = Arc::new(Progress {
        total: args.shape.messages,
        consumed: AtomicU64::new(0),
        started: Instant::now(),
    });
    let mut consumers = Vec::new();
    for _ in 0..args.shape.consumers {
        let client = connect(&args.url).await?;
        consumers.push(tokio::spawn(consume(
            client,
            args.shape.batch,
            progress.clone(),
        )));
    }
    let mut producers = Vec::new();
    for index in 0..args.shape.producers {
        let count = args.shape.messages / args.shape.producers
            + u64::from(index < args.shape.messages % args.shape.producers);
        let client = connect(&args.url).await?;
        let pace = (args.shape.rate > 0)
            .then(|| Duration::from_secs_f64(args.shape.producers as f64 / args.shape.rate as f64));
        let task = produce(client, count, args.clone(), pace, progress.started);
        producers.push(tokio::spawn(task));
    }
    let mut sends_end = progress.started;
    for producer in producers {
        sends_end = sends_end.max(producer.await.context("a producer failed")??);
    }
    let mut latencies_us = Vec::new();
    let mut finished = progress.started;
    for consumer in consumers {
        let (latencies, ended) = consumer.await.context("a consumer failed")??;
        latencies_us.extend(latencies);
        finished = finished.max(ended);
    }
    Ok((
        sends_end.duration_since(progress.started).as_secs_f64(),
        finished.duration_since(progress.started).as_secs_f64(),
        latencies_us,
    ))
}

/// Inserts `count` rows in batches, each one statement and one commit; returns when the last
/// committed.
async fn produce(
    client: Client,
    count: u64,
    args: PostgresQueueArgs,
    pace: Option<Duration>,
    started: Instant,
) -> anyhow::Result<Instant> {
    let body = vec![b'x'; args.shape.body_bytes];
    let mut statements = HashMap::new();
    let mut sent = 0;
    while sent < count {
        if let Some(pace) = pace {
            let due = started + pace * u32::try_from(sent).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due.into()).await;
        }
        let size = (count - sent).min(args.shape.batch) as usize;
        if let Entry::Vacant(slot) = statements.entry(size) {
            let values: Vec<String> = (0..size)
                .map(|row| format!("(${}, ${})", 2 * row + 1, 2 * row + 2))
                .collect();
            let text = format!(
                "INSERT INTO jobs (body, sent_us) VALUES {}",
                values.join(",")
            );
            slot.insert(client.prepare(&text).await?);
        }
        let now = i64::try_from(unix_micros()).unwrap_or(i64::MAX);
        let stamps = vec![now; size];
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 * size);
        for stamp in &stamps {
            params.push(&body);
            params.push(stamp);
        }
        let inserted = client.execute(&statements[&size], &params).await?;
        if inserted != size as u64 {
            bail!("inserted {inserted} rows of {size}");
        }
        sent += size as u64;
    }
    Ok(Instant::now())
}

/// Deletes batches until every message of the run is consumed; returns latencies and when the
/// last batch was deleted.
async fn consume(
    client: Client,
    batch: u64,
    progress: Arc<Progress>,
) -> anyhow::Result<(Vec<u64>, Instant)> {
    let statement = client.prepare(&consume_statement(batch)).await?;
    let mut latencies_us = Vec::new();
    let mut last = Instant::now();
    let mut ended = progress.started;
    while progress.consumed.load(Ordering::Relaxed) < progress.total {
        let rows = client.query(&statement, &[]).await?;
        if rows.is_empty() {
            if last.elapsed() > STALL_DEADLINE {
                bail!("no job consumed for {STALL_DEADLINE:?}");
            }
            tokio::time::sleep(IDLE_PAUSE).await;
            continue;
        }
        let received_us = unix_micros();
        for row in &rows {
            let body: &[u8] = row.get(1);
            let sent_us: i64 = row.get(2);
            std::hint::black_box(body);
            latencies_us.push(received_us.saturating_sub(u64::try_from(sent_us).unwrap_or(0)));
        }
        progress
            .consumed
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        last = Instant::now();
        ended = last;
    }
    Ok((latencies_us, ended))
}
