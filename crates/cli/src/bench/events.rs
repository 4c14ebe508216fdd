//! `wharf bench events`: the event store against the disk's raw fsync rate, in one run.
//!
//! 1. The raw figure: 4 KiB writes + fdatasync per second, overwriting a zero-filled file (as
//!    the event log's preallocated segments are), as `wharf bench storage` measures it.
//! 2. Many streams (`--streams`, default 1,000,000) of 3 events each, through the engine API:
//!    memory and disk per stream, and the time to open the engine again (the index is rebuilt
//!    from the log).
//! 3. Appends through the engine API, in this process: 1 event of 512 bytes of JSON per
//!    append, each expecting the version its writer last saw, by 1 and by 64 writers, each
//!    on a stream of its own; then `$all` read from the start.
//! 4. Over HTTP (unless `--no-http`): the same appends against a child `wharf serve`, one
//!    keep-alive connection per writer; then the `--writers` writers' appends carried in
//!    batches (`POST /v1/events/appends`) over [`BATCH_CONNECTIONS`] connections, as a client
//!    library coalesces the appends its writers have in flight: each request holds one append
//!    per writer of its connection, each with that writer's expected version; and `$all` read
//!    in pages of 1,000; server CPU per append.
//!
//! The last stdout line is one JSON object for scripts (bench/events-vs-postgres.sh puts it
//! beside PostgreSQL's figures).

use super::{
    http1::{Connection, Endpoint},
    server_process::{process_memory, ServerProcess},
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
use wharf_engine::{
    broker::eventstore::{EventFilter, NewEvent},
    clock::SystemClock,
    eventstore::{ExpectedVersion, ReadDirection},
    Engine, EngineConfig,
};
use wharf_storage::{Store, StoreConfig};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Directory on the disk to measure; scratch files go in a subdirectory deleted afterwards.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Length of each append scenario in seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Streams of the many-streams scenario (3 events each); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    streams: u64,
    /// Writers of the concurrent scenarios.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Skip the HTTP scenarios.
    #[arg(long)]
    no_http: bool,
}

const EVENT_DATA_BYTES: usize = 512;
/// Connections that carry the writers' appends in batches.
const BATCH_CONNECTIONS: usize = 4;
/// Writers of the many-streams scenario.
const LOAD_WRITERS: u64 = 64;
const MB: f64 = 1e6;

pub fn run(args: &EventsArgs) -> Result<(), BenchError> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(BenchError::Usage("--seconds must be in (0, 3600]".into()));
    }
    if args.writers == 0 || args.writers > 10_000 {
        return Err(BenchError::Usage("--writers must be 1 to 10000".into()));
    }
    let summary = super::in_scratch(&args.dir, "events", |scratch| run_in(args, scratch))?;
    println!("{}", Value::Object(summary));
    Ok(())
}

fn run_in(args: &EventsArgs, scratch: &Path) -> Result<Map<String, Value>, BenchError> {
    let duration = Duration::from_secs_f64(args.seconds);
    let mut summary = Map::new();
    let raw =
        super::storage::raw_fsync_rate(&scratch.join("raw"), duration.min(Duration::from_secs(3)))?;
    println!("raw 4 KiB write + fdatasync (overwrite)     {raw:>10.0} /s");
    summary.insert("raw_fsync_per_s".into(), json!(raw));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(async {
        // First, while the heap is fresh: its memory figure is the growth of this process.
        if args.streams > 0 {
            many_streams(&scratch.join("many"), args.streams, &mut summary).await?;
        }
        engine_scenarios(args, &scratch.join("engine"), raw, &mut summary).await
    })?;
    if !args.no_http {
        runtime.block_on(http_scenarios(args, raw, &mut summary))?;
    }
    Ok(summary)
}

/// The writer counts of the append scenarios: 1, then `--writers` (once, when that is 1 too:
/// a second round would find its streams already written).
fn writer_counts(args: &EventsArgs) -> Vec<usize> {
    let mut counts = vec![1, args.writers];
    counts.dedup();
    counts
}

async fn open_engine(dir: &Path) -> Result<(Engine, Arc<Store>), BenchError> {
    let store = Arc::new(Store::open(dir, StoreConfig::default())?);
    let engine = Engine::open(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    )
    .await
    .map_err(engine_error)?;
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

/// 512 bytes of JSON.
fn event_data() -> Bytes {
    let pad = "x".repeat(EVENT_DATA_BYTES - 10);
    let data = format!("{{\"pad\":\"{pad}\"}}");
    Bytes::from(data)
}

fn new_event(data: &Bytes, event_type: &str) -> NewEvent {
    NewEvent {
        id: None,
        event_type: event_type.to_string(),
        data: data.clone(),
        data_is_json: true,
        metadata: Bytes::new(),
    }
}

async fn many_streams(
    dir: &Path,
    streams: u64,
    summary: &mut Map<String, Value>,
) -> Result<(), BenchError> {
    let pid = std::process::id();
    let before = process_memory(pid)?.resident_kib;
    let (engine, store) = open_engine(dir).await?;
    let started = Instant::now();
    load_streams(&engine, streams).await?;
    let loaded = started.elapsed();
    let after = process_memory(pid)?.resident_kib;
    close_engine(engine, store).await?;
    let disk = directory_bytes(dir)?;
    let started = Instant::now();
    let (engine, store) = open_engine(dir).await?;
    let reopen = started.elapsed();
    let probe = format!("order-{}", streams / 2);
    let read = (engine
        .read_event_stream(&probe, None, ReadDirection::Forward, 10)
        .await)
        .map_err(engine_error)?;
    if read.events.len() != 3 {
        return Err(BenchError::Server(format!(
            "{probe} has {} events after the restart, not 3",
            read.events.len()
        )));
    }
    close_engine(engine, store).await?;
    let memory_per_stream = (after.saturating_sub(before) * 1024) as f64 / streams as f64;
    let disk_per_stream = disk as f64 / streams as f64;
    println!(
        "{streams} streams x 3 events: loaded in {:.1} s ({:.0} appends/s), {memory_per_stream:.0} B memory and {disk_per_stream:.0} B disk per stream, reopened in {:.2} s",
        loaded.as_secs_f64(),
        streams as f64 / loaded.as_secs_f64(),
        reopen.as_secs_f64()
    );
    summary.insert("many_streams".into(), json!(streams));
    summary.insert("many_streams_load_s".into(), json!(loaded.as_secs_f64()));
    summary.insert(
        "many_streams_memory_bytes_per_stream".into(),
        json!(memory_per_stream),
    );
    summary.insert(
        "many_streams_disk_bytes_per_stream".into(),
        json!(disk_per_stream),
    );
    summary.insert("many_streams_reopen_s".into(), json!(reopen.as_secs_f64()));
    Ok(())
}

/// Appends 3 events to each of `streams` streams, from [`LOAD_WRITERS`] writers.
async fn load_streams(engine: &Engine, streams: u64) -> Result<(), BenchError> {
    let data = Bytes::from_static(br#"{"sku":"A-1","quantity":2,"price":1250}"#);
    let mut tasks = Vec::new();
    for writer in 0..LOAD_WRITERS {
        let (engine, data) = (engine.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = writer;
            while stream < streams {
                let events = ["OrderCreated", "ItemAdded", "OrderPaid"]
                    .map(|event_type| new_event(&data, event_type))
                    .to_vec();
                let name = format!("order-{stream}");
                engine
                    .append_events(&name, ExpectedVersion::NoStream, events)
                    .await?;
                stream += LOAD_WRITERS;
            }
            Ok::<(), wharf_engine::EngineError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|error| BenchError::Server(error.to_string()))?
            .map_err(engine_error)?;
    }
    Ok(())
}

fn directory_bytes(dir: &Path) -> Result<u64, BenchError> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|source| BenchError::Io {
        action: "list",
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += directory_bytes(&path)?;
        } else if let Ok(metadata) = entry.metadata() {
            // Blocks in use, not the preallocated length.
            use std::os::unix::fs::MetadataExt;
            total += metadata.blocks() * 512;
        }
    }
    Ok(total)
}

async fn engine_scenarios(
    args: &EventsArgs,
    dir: &Path,
    raw: f64,
    summary: &mut Map<String, Value>,
) -> Result<(), BenchError> {
    let duration = Duration::from_secs_f64(args.seconds);
    let (engine, store) = open_engine(dir).await?;
    for writers in writer_counts(args) {
        let started = Instant::now();
        let cpu = super::server_process::process_cpu_time_of(std::process::id())?;
        let appends = append_engine(&engine, writers, duration).await?;
        let elapsed = started.elapsed();
        let cpu = super::server_process::process_cpu_time_of(std::process::id())? - cpu;
        let rate = appends as f64 / elapsed.as_secs_f64();
        let cpu_us = cpu.as_secs_f64() * 1e6 / appends.max(1) as f64;
        println!(
            "engine appends, {writers:>3} writers             {rate:>10.0} /s  {:>5.1}x raw fsync  {cpu_us:.1} us CPU/append",
            rate / raw
        );
        summary.insert(format!("engine_appends_{writers}_per_s"), json!(rate));
        summary.insert(format!("engine_appends_{writers}_cpu_us"), json!(cpu_us));
    }
    let (bytes, events, elapsed) = read_all_engine(&engine).await?;
    let rate = bytes as f64 / MB / elapsed.as_secs_f64();
    println!(
        "engine $all read ({events} events)        {rate:>10.1} MB/s of data  {:.0} events/s",
        events as f64 / elapsed.as_secs_f64()
    );
    summary.insert("engine_all_read_mb_s".into(), json!(rate));
    summary.insert(
        "engine_all_read_events_per_s".into(),
        json!(events as f64 / elapsed.as_secs_f64()),
    );
    close_engine(engine, store).await
}

async fn append_engine(
    engine: &Engine,
    writers: usize,
    duration: Duration,
) -> Result<u64, BenchError> {
    let deadline = Instant::now() + duration;
    let data = event_data();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (engine, data) = (engine.clone(), data.clone());
        let stream = format!("bench{writers}-{writer}");
        tasks.push(tokio::spawn(async move {
            let (mut version, mut appends) = (None, 0u64);
            while Instant::now() < deadline {
                let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                let events = vec![new_event(&data, "Measured")];
                let appended = engine.append_events(&stream, expected, events).await?;
                version = Some(appended.version);
                appends += 1;
            }
            Ok::<u64, wharf_engine::EngineError>(appends)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|error| BenchError::Server(error.to_string()))?
            .map_err(engine_error)?;
    }
    Ok(total)
}

async fn read_all_engine(engine: &Engine) -> Result<(u64, u64, Duration), BenchError> {
    let started = Instant::now();
    let (mut from, mut bytes, mut events) = (0, 0u64, 0u64);
    let filter = EventFilter::default();
    loop {
        let page = (engine.read_all_events(from, 1000, &filter).await).map_err(engine_error)?;
        if page.next == from {
            break;
        }
        from = page.next;
        events += page.events.len() as u64;
        bytes += page.events.iter().map(|e| e.data.len() as u64).sum::<u64>();
    }
    Ok((bytes, events, started.elapsed()))
}

async fn http_scenarios(
    args: &EventsArgs,
    raw: f64,
    summary: &mut Map<String, Value>,
) -> Result<(), BenchError> {
    let duration = Duration::from_secs_f64(args.seconds);
    let server = ServerProcess::start()?;
    let endpoint = Endpoint::new(server.address, None)?;
    let result = async {
        let mut runs: Vec<(usize, bool)> = (writer_counts(args).into_iter())
            .map(|writers| (writers, false))
            .collect();
        runs.push((args.writers, true));
        for (writers, batched) in runs {
            let cpu = server.cpu_time()?;
            let started = Instant::now();
            let appends = match batched {
                false => append_http(&endpoint, writers, duration).await?,
                true => append_http_batched(&endpoint, writers, duration).await?,
            };
            let elapsed = started.elapsed();
            let cpu = server.cpu_time()? - cpu;
            let rate = appends as f64 / elapsed.as_secs_f64();
            let cpu_us = cpu.as_secs_f64() * 1e6 / appends.max(1) as f64;
            let (how, key) = match batched {
                false => ("         ", "http_appends"),
                true => (", batched", "http_batched_appends"),
            };
            println!(
                "http appends, {writers:>3} writers{how}      {rate:>10.0} /s  {:>5.1}x raw fsync  {cpu_us:.1} us server CPU/append",
                rate / raw
            );
            summary.insert(format!("{key}_{writers}_per_s"), json!(rate));
            summary.insert(format!("{key}_{writers}_server_cpu_us"), json!(cpu_us));
        }
        let mut connection = Connection::open(&endpoint).await?;
        let started = Instant::now();
        let (mut from, mut bytes, mut events) = (0u64, 0u64, 0u64);
        loop {
            let path = format!("/v1/events/all?from={from}&limit=1000");
            let reply = connection.request_ok(Method::GET, &path, Bytes::new()).await?;
            bytes += reply.len() as u64;
            let page: Value = serde_json::from_slice(&reply)
                .map_err(|error| BenchError::Server(format!("GET {path}: {error}")))?;
            let next = page["next"].as_u64().unwrap_or(from);
            events += page["events"].as_array().map_or(0, Vec::len) as u64;
            if next == from {
                break;
            }
            from = next;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let rate = bytes as f64 / MB / elapsed;
        println!(
            "http $all read ({events} events)          {rate:>10.1} MB/s of JSON  {:.0} events/s",
            events as f64 / elapsed
        );
        summary.insert("http_all_read_mb_s".into(), json!(rate));
        summary.insert("http_all_read_events_per_s".into(), json!(events as f64 / elapsed));
        Ok::<(), BenchError>(())
    }
    .await;
    if result.is_err() {
        eprintln!("{}", server.log_tail());
    }
    server.stop();
    result
}

/// The part of an append's reply the load generator reads.
#[derive(serde::Deserialize)]
struct Appended {
    version: u64,
}

async fn append_http(
    endpoint: &Endpoint,
    writers: usize,
    duration: Duration,
) -> Result<u64, BenchError> {
    let deadline = Instant::now() + duration;
    // The body is formatted around the data's JSON text, as a client with its events already
    // serialized would: the load generator shares the two cores with the server, and what it
    // spends per request is taken from the server's rate.
    let data = String::from_utf8(event_data().to_vec()).expect("the event data is UTF-8");
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let mut connection = Connection::open(endpoint).await?;
        let data = data.clone();
        let path = format!("/v1/events/streams/bench{writers}-{writer}");
        tasks.push(tokio::spawn(async move {
            let (mut expected, mut appends) = (String::from("\"no_stream\""), 0u64);
            while Instant::now() < deadline {
                let body = format!(
                    r#"{{"expected_version":{expected},"events":[{{"type":"Measured","data":{data}}}]}}"#
                );
                let reply =
                    (connection.request_ok(Method::POST, &path, Bytes::from(body))).await?;
                let reply: Appended = serde_json::from_slice(&reply)
                    .map_err(|error| BenchError::Server(format!("POST {path}: {error}")))?;
                expected = reply.version.to_string();
                appends += 1;
            }
            Ok::<u64, BenchError>(appends)
        }));
    }
    appends_of(tasks).await
}

/// What the load generator reads of a batch reply: each append's status and version.
#[derive(serde::Deserialize)]
struct BatchAppended {
    results: Vec<BatchResult>,
}

#[derive(serde::Deserialize)]
struct BatchResult {
    status: u16,
    version: Option<u64>,
}

/// `writers` writers, each appending to a stream of its own expecting the version it last saw,
/// their appends carried over [`BATCH_CONNECTIONS`] connections: each request holds the next
/// append of every writer of its connection.
async fn append_http_batched(
    endpoint: &Endpoint,
    writers: usize,
    duration: Duration,
) -> Result<u64, BenchError> {
    let deadline = Instant::now() + duration;
    let data = String::from_utf8(event_data().to_vec()).expect("the event data is UTF-8");
    let mut tasks = Vec::new();
    for connection_number in 0..BATCH_CONNECTIONS.min(writers) {
        let mut connection = Connection::open(endpoint).await?;
        let data = data.clone();
        let streams: Vec<String> = (connection_number..writers)
            .step_by(BATCH_CONNECTIONS)
            .map(|writer| format!("batched{writers}-{writer}"))
            .collect();
        tasks.push(tokio::spawn(async move {
            let path = "/v1/events/appends";
            let mut expected = vec![String::from("\"no_stream\""); streams.len()];
            let mut appends = 0u64;
            while Instant::now() < deadline {
                let mut body = String::from(r#"{"appends":["#);
                for (at, (stream, expected)) in streams.iter().zip(&expected).enumerate() {
                    if at > 0 {
                        body.push(',');
                    }
                    body.push_str(&format!(
                        r#"{{"stream":"{stream}","expected_version":{expected},"events":[{{"type":"Measured","data":{data}}}]}}"#
                    ));
                }
                body.push_str("]}");
                let reply = (connection.request_ok(Method::POST, path, Bytes::from(body))).await?;
                let reply: BatchAppended = serde_json::from_slice(&reply)
                    .map_err(|error| BenchError::Server(format!("POST {path}: {error}")))?;
                if reply.results.len() != streams.len() {
                    return Err(BenchError::Server(format!(
                        "POST {path}: {} results for {} appends",
                        reply.results.len(),
                        streams.len()
                    )));
                }
                for (result, expected) in reply.results.iter().zip(&mut expected) {
                    match (result.status, result.version) {
                        (200 | 201, Some(version)) => *expected = version.to_string(),
                        (status, _) => {
                            return Err(BenchError::Server(format!(
                                "POST {path}: an append was refused with {status}"
                            )))
                        }
                    }
                }
                appends += streams.len() as u64;
            }
            Ok::<u64, BenchError>(appends)
        }));
    }
    appends_of(tasks).await
}

/// The appends the writer tasks made, in all.
async fn appends_of(
    tasks: Vec<tokio::task::JoinHandle<Result<u64, BenchError>>>,
) -> Result<u64, BenchError> {
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|error| BenchError::Server(error.to_string()))??;
    }
    Ok(total)
}
