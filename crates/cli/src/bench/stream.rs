//! `wharf bench stream`: streams against the disk's raw sequential write bandwidth, in one run.
//!
//! 1. The raw figure: 4 MiB O_DIRECT writes (as `wharf bench storage`).
//! 2. Through the engine API, in this process (no sockets): durable produce of 1 KiB records
//!    in requests of 1,000 by 1 producer to one partition, by 1 producer whose requests spread
//!    over 8 partitions, and by 8 producers (a partition each), each producer keeping `--window` requests in flight as Kafka producers
//!    do (`--window`); then consume of everything produced, as stored batches (`fetch_batches`, what a
//!    Kafka door serves) and as decoded records (`fetch`), read twice: the first read comes
//!    from the disk (large commits are written with O_DIRECT, which bypasses the page cache),
//!    the second from the page cache.
//! 3. End-to-end latency at a fixed rate: a producer sending every 10 ms, a long-polling
//!    consumer, latency from the produce call to the consumer's receipt.
//! 4. Many partitions: one stream with `--idle-partitions` partitions, one record in each;
//!    disk and memory per partition and the time to open the engine again.
//! 5. Over HTTP (unless `--no-http`): the same produce and consume against a child
//!    `wharf serve`, JSON bodies with base64 values.
//!
//! Figures are payload bytes (the 1 KiB values) per second. The last stdout line is one JSON
//! object for scripts.

use super::{
    http1::{Connection, Endpoint},
    server_process::ServerProcess,
    BenchError,
};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Map, Value};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::runtime::Runtime;
use wharf_engine::{
    broker::{FetchRequest, ProduceRecord, ProduceRequest},
    clock::SystemClock,
    stream::StreamOptions,
    Engine, EngineConfig,
};
use wharf_storage::{Store, StoreConfig};

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Directory on the disk to measure; scratch files go in a subdirectory deleted afterwards.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Length of each produce scenario in seconds (fractions allowed).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Partitions of the many-partitions scenario.
    #[arg(long, default_value_t = 10_000)]
    idle_partitions: u32,
    /// Records a second of the latency scenario.
    #[arg(long, default_value_t = 5_000)]
    latency_rate: u64,
    /// Produce calls each engine producer keeps in flight (Kafka's
    /// `max.in.flight.requests.per.connection`); each call is one batch of 1,000 records.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Skip the HTTP scenarios.
    #[arg(long)]
    no_http: bool,
}

const RECORD_BYTES: usize = 1 << 10;
const BATCH_RECORDS: usize = 1_000;
const PRODUCERS_MANY: u32 = 8;
/// Bytes one consume call asks for.
const FETCH_BYTES: usize = 16 << 20;
/// The latency producer sends a batch this often.
const LATENCY_TICK: Duration = Duration::from_millis(10);
const MB: f64 = 1e6;

pub fn run(args: &StreamArgs) -> Result<(), BenchError> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(BenchError::Usage("--seconds must be in (0, 3600]".into()));
    }
    let summary = super::in_scratch(&args.dir, "stream", |scratch| run_in(args, scratch))?;
    println!("{}", Value::Object(summary));
    Ok(())
}

fn run_in(args: &StreamArgs, scratch: &Path) -> Result<Map<String, Value>, BenchError> {
    let duration = Duration::from_secs_f64(args.seconds);
    let mut summary = Map::new();
    let (raw, direct) = super::storage::raw_sequential_mb_s(&scratch.join("raw"), duration)?;
    println!("raw sequential write (O_DIRECT {direct})      {raw:>10.1} MB/s");
    summary.insert("raw_seq_write_mb_s".into(), json!(raw));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(engine_scenarios(args, scratch, raw, &mut summary))?;
    if !args.no_http {
        http_scenarios(&runtime, duration, raw, &mut summary)?;
    }
    Ok(summary)
}

async fn open_engine(dir: &Path) -> Result<(Engine, Arc<Store>), BenchError> {
    let store = Arc::new(Store::open(dir, StoreConfig::default())?);
    let engine = Engine::open(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    )
    .await
    .map_err(|error| BenchError::Server(error.to_string()))?;
    Ok((engine, store))
}

async fn close_engine(engine: Engine, store: Arc<Store>) -> Result<(), BenchError> {
    engine.close();
    drop(engine);
    store.close().await?;
    Ok(())
}

fn engine_error(error: wharf_engine::EngineError) -> BenchError {
    BenchError::Server(error.to_string())
}

async fn engine_scenarios(
    args: &StreamArgs,
    scratch: &Path,
    raw: f64,
    summary: &mut Map<String, Value>,
) -> Result<(), BenchError> {
    // First, while the heap is fresh: its memory figure is the growth of this process.
    many_partitions(&scratch.join("many"), args.idle_partitions, summary).await?;
    let duration = Duration::from_secs_f64(args.seconds);
    let (engine, store) = open_engine(&scratch.join("engine")).await?;
    // (name, partitions, producers, whether each request spreads over the partitions)
    let scenarios = [
        ("produce_1", 1, 1, false),
        ("produce_1_spread", PRODUCERS_MANY, 1, true),
        ("produce_8", PRODUCERS_MANY, PRODUCERS_MANY, false),
    ];
    for (name, partitions, producers, spread) in scenarios {
        let options = StreamOptions {
            partitions,
            ..StreamOptions::default()
        };
        engine
            .put_stream(name, options)
            .await
            .map_err(engine_error)?;
        let load = Load {
            producers,
            spread,
            duration,
            window: args.window,
        };
        let (bytes, elapsed) = produce_engine(&engine, name, load).await?;
        let rate = bytes as f64 / MB / elapsed.as_secs_f64();
        println!(
            "engine {name} (1 KiB x 1,000)           {rate:>10.1} MB/s  {:>5.0}% of raw",
            100.0 * rate / raw
        );
        summary.insert(format!("engine_{name}_mb_s"), json!(rate));
        summary.insert(format!("engine_{name}_of_raw"), json!(rate / raw));
        summary.insert("engine_produce_window".into(), json!(args.window));
    }
    for (pass, temperature) in ["cold", "warm"].iter().enumerate() {
        let (bytes, elapsed) = consume_engine(&engine, "produce_8", PRODUCERS_MANY, true).await?;
        let rate = bytes as f64 / MB / elapsed.as_secs_f64();
        println!(
            "engine consume batches, {temperature} ({:>6.0} MB)    {rate:>10.1} MB/s",
            bytes as f64 / MB
        );
        summary.insert(
            format!("engine_consume_batches_{temperature}_mb_s"),
            json!(rate),
        );
        if pass == 1 {
            let (bytes, elapsed) =
                consume_engine(&engine, "produce_8", PRODUCERS_MANY, false).await?;
            let rate = bytes as f64 / MB / elapsed.as_secs_f64();
            println!("engine consume records, warm                {rate:>10.1} MB/s");
            summary.insert("engine_consume_records_warm_mb_s".into(), json!(rate));
        }
    }
    let (p50, p99, count) = latency_engine(&engine, duration, args.latency_rate).await?;
    println!(
        "engine end-to-end at {} records/s: p50 {p50:.2} ms, p99 {p99:.2} ms ({count} records)",
        args.latency_rate
    );
    summary.insert("engine_latency_rate".into(), json!(args.latency_rate));
    summary.insert("engine_latency_p50_ms".into(), json!(p50));
    summary.insert("engine_latency_p99_ms".into(), json!(p99));
    close_engine(engine, store).await
}

/// How `produce_engine` loads a stream.
#[derive(Debug, Clone, Copy)]
struct Load {
    producers: u32,
    /// Each request's records take the partitions in turn (1,000 records over 8 partitions
    /// is 8 batches of 125, as a Kafka producer's request carries a batch per partition),
    /// instead of producer `p` writing partition `p`.
    spread: bool,
    duration: Duration,
    window: usize,
}

/// Producers sending requests of [`BATCH_RECORDS`] 1 KiB records for `load.duration`, each
/// keeping `load.window` in flight; payload bytes stored and the time taken.
async fn produce_engine(
    engine: &Engine,
    stream: &str,
    load: Load,
) -> Result<(u64, Duration), BenchError> {
    let (duration, window) = (load.duration, load.window);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for partition in 0..load.producers {
        let (engine, stream) = (engine.clone(), stream.to_string());
        tasks.spawn(async move {
            let value = Bytes::from(vec![b'x'; RECORD_BYTES]);
            let record = ProduceRecord {
                value: Some(value),
                partition: (!load.spread).then_some(partition),
                ..ProduceRecord::default()
            };
            let request = ProduceRequest {
                records: vec![record; BATCH_RECORDS],
                producer: None,
            };
            let mut in_flight = tokio::task::JoinSet::new();
            let mut stored = 0u64;
            while start.elapsed() < duration {
                while in_flight.len() < window.max(1) {
                    let (engine, stream, request) =
                        (engine.clone(), stream.clone(), request.clone());
                    in_flight.spawn(async move { engine.produce(&stream, request).await });
                }
                if let Some(done) = in_flight.join_next().await {
                    done.map_err(|error| BenchError::Server(error.to_string()))?
                        .map_err(engine_error)?;
                    stored += (BATCH_RECORDS * RECORD_BYTES) as u64;
                }
            }
            while let Some(done) = in_flight.join_next().await {
                done.map_err(|error| BenchError::Server(error.to_string()))?
                    .map_err(engine_error)?;
                stored += (BATCH_RECORDS * RECORD_BYTES) as u64;
            }
            Ok::<u64, BenchError>(stored)
        });
    }
    let mut bytes = 0;
    while let Some(done) = tasks.join_next().await {
        bytes += done.map_err(|error| BenchError::Server(error.to_string()))??;
    }
    Ok((bytes, start.elapsed()))
}

/// Reads every partition from its start: stored batches (`batches`) or decoded records.
/// Returns value bytes read (for batches, the stored bytes) and the time taken.
async fn consume_engine(
    engine: &Engine,
    stream: &str,
    partitions: u32,
    batches: bool,
) -> Result<(u64, Duration), BenchError> {
    let start = Instant::now();
    let mut bytes = 0u64;
    for partition in 0..partitions {
        let mut offset = 0;
        loop {
            if batches {
                let read = engine
                    .fetch_batches(stream, partition, offset, FETCH_BYTES)
                    .await
                    .map_err(engine_error)?;
                let Some(last) = read.last() else { break };
                offset = last.header().next_offset();
                bytes += read
                    .iter()
                    .map(|batch| batch.bytes().len() as u64)
                    .sum::<u64>();
            } else {
                let request = FetchRequest {
                    offset,
                    max_records: 100_000,
                    max_bytes: FETCH_BYTES,
                    wait: Duration::ZERO,
                };
                let fetched = engine
                    .fetch(stream, partition, request)
                    .await
                    .map_err(engine_error)?;
                if fetched.records.is_empty() {
                    break;
                }
                offset = fetched.next_offset;
                bytes += fetched
                    .records
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
                    .sum::<u64>();
            }
        }
    }
    Ok((bytes, start.elapsed()))
}

/// A producer at `rate` records a second (a batch every [`LATENCY_TICK`]) and a long-polling
/// consumer, for `duration`; the p50 and p99 of produce-to-receipt in ms, and the count.
async fn latency_engine(
    engine: &Engine,
    duration: Duration,
    rate: u64,
) -> Result<(f64, f64, usize), BenchError> {
    engine
        .put_stream("latency", StreamOptions::default())
        .await
        .map_err(engine_error)?;
    let base = Instant::now();
    let per_tick = (rate as f64 * LATENCY_TICK.as_secs_f64()).ceil().max(1.0) as usize;
    let producer = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LATENCY_TICK);
            while base.elapsed() < duration {
                tick.tick().await;
                let sent = (base.elapsed().as_nanos() as u64).to_le_bytes();
                let mut value = vec![0u8; RECORD_BYTES];
                value[..8].copy_from_slice(&sent);
                let record = ProduceRecord {
                    value: Some(Bytes::from(value)),
                    ..ProduceRecord::default()
                };
                let request = ProduceRequest {
                    records: vec![record; per_tick],
                    producer: None,
                };
                engine
                    .produce("latency", request)
                    .await
                    .map_err(engine_error)?;
            }
            Ok::<(), BenchError>(())
        })
    };
    let mut latencies = Vec::new();
    let mut offset = 0;
    while base.elapsed() < duration + Duration::from_millis(500) {
        let request = FetchRequest {
            offset,
            max_records: 10_000,
            max_bytes: FETCH_BYTES,
            wait: Duration::from_millis(200),
        };
        let fetched = engine
            .fetch("latency", 0, request)
            .await
            .map_err(engine_error)?;
        let now = base.elapsed().as_nanos() as u64;
        for record in &fetched.records {
            let value = record.value.as_ref().expect("a value");
            let sent = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
            latencies.push(now.saturating_sub(sent));
        }
        offset = fetched.next_offset;
    }
    producer
        .await
        .map_err(|error| BenchError::Server(error.to_string()))??;
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(index).map_or(0.0, |ns| *ns as f64 / 1e6)
    };
    Ok((percentile(0.50), percentile(0.99), latencies.len()))
}

/// One stream of `partitions` partitions with one record each: create time, disk and memory
/// per partition, and the time to open the engine again.
async fn many_partitions(
    dir: &Path,
    partitions: u32,
    summary: &mut Map<String, Value>,
) -> Result<(), BenchError> {
    let rss_before = resident_kib();
    let (engine, store) = open_engine(dir).await?;
    let start = Instant::now();
    let options = StreamOptions {
        partitions,
        ..StreamOptions::default()
    };
    engine
        .put_stream("many", options)
        .await
        .map_err(engine_error)?;
    let created = start.elapsed();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..partitions).collect::<Vec<_>>().chunks(256) {
        let (engine, chunk) = (engine.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for partition in chunk {
                let record = ProduceRecord {
                    value: Some(Bytes::from_static(b"{\"idle\":true}")),
                    partition: Some(partition),
                    ..ProduceRecord::default()
                };
                engine
                    .produce(
                        "many",
                        ProduceRequest {
                            records: vec![record],
                            producer: None,
                        },
                    )
                    .await
                    .map_err(engine_error)?;
            }
            Ok::<(), BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|error| BenchError::Server(error.to_string()))??;
    }
    let rss_after = resident_kib();
    let disk = partition_disk_bytes(&dir.join("logs"));
    close_engine(engine, store).await?;
    let start = Instant::now();
    let (engine, store) = open_engine(dir).await?;
    let reopened = start.elapsed();
    let info = engine.stream_info("many").map_err(engine_error)?;
    let records: u64 = info.partitions.iter().map(|p| p.records).sum();
    close_engine(engine, store).await?;
    let memory_per = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / f64::from(partitions);
    let disk_per = disk as f64 / f64::from(partitions);
    println!("{partitions} partitions: created in {:.2} s; {disk_per:.0} B of disk and {memory_per:.0} B of memory each; reopened in {:.2} s ({records} records)", created.as_secs_f64(), reopened.as_secs_f64());
    summary.insert("partitions".into(), json!(partitions));
    summary.insert("partitions_create_s".into(), json!(created.as_secs_f64()));
    summary.insert("partition_disk_bytes".into(), json!(disk_per));
    summary.insert("partition_memory_bytes".into(), json!(memory_per));
    summary.insert("partitions_reopen_s".into(), json!(reopened.as_secs_f64()));
    Ok(())
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes allocated on disk by the partitions' logs under `logs` (`stream-ID-N`; not the
/// queues' WAL or the committed offsets).
fn partition_disk_bytes(logs: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return 0;
    };
    (entries.flatten())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            name.starts_with("stream-") && name != "stream-offsets"
        })
        .map(|entry| 4096 + disk_bytes(&entry.path()))
        .sum()
}

/// Bytes allocated on disk under `dir` (blocks, not lengths: what the files cost).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        total += metadata.blocks() * 512;
        if metadata.is_dir() {
            total += disk_bytes(&entry.path());
        }
    }
    total
}

fn http_scenarios(
    runtime: &Runtime,
    duration: Duration,
    raw: f64,
    summary: &mut Map<String, Value>,
) -> Result<(), BenchError> {
    let server = ServerProcess::start()?;
    let endpoint = Endpoint::new(server.address, None)?;
    let result = runtime.block_on(async {
        let mut connection = Connection::open(&endpoint).await?;
        for (name, partitions) in [("produce_1", 1u32), ("produce_8", PRODUCERS_MANY)] {
            let body = Bytes::from(json!({ "partitions": partitions }).to_string());
            connection
                .request_ok(Method::PUT, &format!("/v1/streams/{name}"), body)
                .await?;
            let (bytes, elapsed) = produce_http(&endpoint, name, partitions, duration).await?;
            let rate = bytes as f64 / MB / elapsed.as_secs_f64();
            println!(
                "http {name} (1 KiB x 1,000)             {rate:>10.1} MB/s  {:>5.0}% of raw",
                100.0 * rate / raw
            );
            summary.insert(format!("http_{name}_mb_s"), json!(rate));
        }
        for temperature in ["cold", "warm"] {
            let (bytes, elapsed) =
                consume_http(&mut connection, "produce_8", PRODUCERS_MANY).await?;
            let rate = bytes as f64 / MB / elapsed.as_secs_f64();
            println!("http consume records, {temperature}                {rate:>10.1} MB/s");
            summary.insert(format!("http_consume_{temperature}_mb_s"), json!(rate));
        }
        Ok::<(), BenchError>(())
    });
    server.stop();
    result
}

async fn produce_http(
    endpoint: &Endpoint,
    stream: &str,
    producers: u32,
    duration: Duration,
) -> Result<(u64, Duration), BenchError> {
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; RECORD_BYTES]);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for partition in 0..producers {
        let records: Vec<Value> = (0..BATCH_RECORDS)
            .map(|_| json!({ "partition": partition, "value_base64": value }))
            .collect();
        let body = Bytes::from(json!({ "records": records }).to_string());
        let (endpoint, path) = (endpoint.clone(), format!("/v1/streams/{stream}/records"));
        tasks.spawn(async move {
            let mut connection = Connection::open(&endpoint).await?;
            let mut stored = 0u64;
            while start.elapsed() < duration {
                connection
                    .request_ok(Method::POST, &path, body.clone())
                    .await?;
                stored += (BATCH_RECORDS * RECORD_BYTES) as u64;
            }
            Ok::<u64, BenchError>(stored)
        });
    }
    let mut bytes = 0;
    while let Some(done) = tasks.join_next().await {
        bytes += done.map_err(|error| BenchError::Server(error.to_string()))??;
    }
    Ok((bytes, start.elapsed()))
}

async fn consume_http(
    connection: &mut Connection,
    stream: &str,
    partitions: u32,
) -> Result<(u64, Duration), BenchError> {
    let start = Instant::now();
    let mut bytes = 0u64;
    for partition in 0..partitions {
        let mut offset = 0;
        loop {
            let path = format!("/v1/streams/{stream}/partitions/{partition}/records?offset={offset}&max_records=10000&max_bytes={FETCH_BYTES}");
            let reply = connection
                .request_ok(Method::GET, &path, Bytes::new())
                .await?;
            let page: Value = serde_json::from_slice(&reply)
                .map_err(|error| BenchError::Server(error.to_string()))?;
            let records = page["records"].as_array().map_or(0, Vec::len) as u64;
            if records == 0 {
                break;
            }
            bytes += records * RECORD_BYTES as u64;
            offset = page["next_offset"].as_u64().unwrap_or(offset + records);
        }
    }
    Ok((bytes, start.elapsed()))
}
