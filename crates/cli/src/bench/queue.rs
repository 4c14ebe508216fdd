//! `wharf bench queue`: a durable queue under P producers and C consumers over HTTP, the shape
//! `bench/queue-vs-rabbitmq.sh` also drives RabbitMQ with (crates/peerbench).
//!
//! Producers send batches of `--batch` messages per request and count what the server confirmed.
//! Like an AMQP publisher with a confirm window, each producer keeps up to `--window` messages
//! unconfirmed: `window / batch` requests in flight (at least one), each on its own connection;
//! consumers receive up to `--batch` with a long poll, then ack the batch. Each message carries
//! its send time (unix microseconds) in the `bench_sent_us` header, so a consumer measures send
//! to receive latency. Without `--server` the benchmark starts `wharf serve` as a child process
//! on a temporary data directory, so the server's peak RSS and CPU time can be read from /proc.
//!
//! `--secure` prices security by running this load against plain and secured servers
//! (`security_cost.rs`).

use super::{
    http1::{Connection, Endpoint, Media},
    process_cpu_time, security_cost,
    server_process::{Memory, ServerProcess},
    BenchError, Remote,
};
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};
use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use wharf_model::frames::{decode_frames, encode_frame, BATCH_CONTENT_TYPE};

/// A consumer's long poll: long enough not to spin on an empty queue, short enough that
/// consumers notice the end of the run quickly.
const RECEIVE_WAIT_MS: u64 = 200;
/// No ack for this long means the server stopped delivering: fail instead of hanging.
const STALL_DEADLINE: Duration = Duration::from_secs(30);
const SENT_HEADER: &str = "bench_sent_us";

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Messages to send and receive in total.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Producer tasks, one connection each.
    #[arg(long, default_value_t = 4)]
    producers: u64,
    /// Consumer tasks, one connection each.
    #[arg(long, default_value_t = 4)]
    consumers: u64,
    /// Messages per send request, and most messages per receive.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Size of each message body.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Offered load in messages/s over all producers; 0 sends as fast as confirms come back.
    /// Latency means most at a rate both brokers sustain: flat out, it measures the backlog.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Most unconfirmed messages per producer, like a publisher-confirm window: `window /
    /// batch` send requests in flight per producer, at least one. The default keeps one batch
    /// in flight, fewer unconfirmed messages than `wharf-peerbench`'s RabbitMQ window (256):
    /// more only grows the backlog once consumers are the limit.
    #[arg(long, default_value_t = 100)]
    window: u64,
    /// How messages cross HTTP: `json` (bodies base64 in JSON, as most clients send them) or
    /// `binary` (the `application/vnd.wharf.batch` frames: bodies as they are, each message's
    /// other fields as a small JSON object).
    #[arg(long, value_enum, default_value_t = BodyFormat::Json)]
    pub format: BodyFormat,
    /// Run against servers the benchmark starts: plain HTTP with no authentication, HTTPS (a
    /// certificate made for the run) with a bearer token on every request, and HTTPS with Basic
    /// auth for a user; then print what security cost in end-to-end throughput. Not with
    /// --server.
    #[arg(long)]
    pub secure: bool,
    /// With --secure: how many rounds of the three runs, each round in the reverse order of
    /// the one before so that a drift in the machine's speed weighs on all three alike; the
    /// cost is the median of the rounds' costs.
    #[arg(long, default_value_t = 3, requires = "secure")]
    pub rounds: u64,
}

/// How messages cross HTTP in the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyFormat {
    Json,
    Binary,
}

impl BodyFormat {
    fn media(self) -> Media {
        match self {
            BodyFormat::Json => Media::JSON,
            BodyFormat::Binary => Media {
                content_type: BATCH_CONTENT_TYPE,
                accept: BATCH_CONTENT_TYPE,
            },
        }
    }
}

impl QueueArgs {
    /// Send requests each producer keeps in flight.
    fn lanes(&self) -> u64 {
        (self.window / self.batch).max(1)
    }
}

/// One producer's share of the run.
#[derive(Debug, Clone, Copy)]
struct ProducerPlan {
    count: u64,
    batch: u64,
    /// Time per message at the offered rate; `None` is flat out.
    pace: Option<Duration>,
    format: BodyFormat,
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    sends_seconds: f64,
    end_to_end_seconds: f64,
    latencies_us: Vec<u64>,
    redelivered: u64,
    bench_cpu: Duration,
    server_cpu: Option<Duration>,
    server_memory: Option<Memory>,
}

/// Progress shared by the load tasks.
struct Progress {
    total: u64,
    acked: AtomicU64,
    redelivered: AtomicU64,
    failed: AtomicBool,
    started: Instant,
    finished: Mutex<Option<Instant>>,
}

/// `server`: the URL given with `--server` or `WHARF_SERVER`; `None` starts a child server.
pub fn run(args: &QueueArgs, server: Option<&Remote<'_>>) -> Result<(), BenchError> {
    if args.messages == 0 || args.producers == 0 || args.consumers == 0 || args.batch == 0 {
        return Err(BenchError::Usage(
            "--messages, --producers, --consumers and --batch must be positive".into(),
        ));
    }
    if args.secure {
        return security_cost::run(args, server);
    }
    let outcome = match server {
        Some(remote) => measure(args, None, &remote_endpoint(remote)?)?,
        None => {
            let child = ServerProcess::start()?;
            let endpoint = Endpoint::new(child.address, None)?;
            measure(args, Some(child), &endpoint)?
        }
    };
    report(args, outcome);
    Ok(())
}

/// One run against `child`, which the benchmark started and this run stops, reported as
/// [`run`] reports it; the figures a comparison needs come back.
pub(super) fn run_reported(
    args: &QueueArgs,
    child: ServerProcess,
    endpoint: &Endpoint,
) -> Result<Headline, BenchError> {
    Ok(report(args, measure(args, Some(child), endpoint)?))
}

/// Runs the load against `endpoint`, which is `child` when the benchmark started the server;
/// `child` is stopped at the end.
fn measure(
    args: &QueueArgs,
    child: Option<ServerProcess>,
    endpoint: &Endpoint,
) -> Result<Outcome, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let server_cpu_before = child.as_ref().map(ServerProcess::cpu_time).transpose()?;
    let bench_cpu_before = process_cpu_time()?;
    let result = runtime.block_on(drive(args, endpoint));
    let bench_cpu = process_cpu_time()?.saturating_sub(bench_cpu_before);
    let server_cpu = match (&child, server_cpu_before) {
        (Some(child), Some(before)) => Some(child.cpu_time()?.saturating_sub(before)),
        _ => None,
    };
    let server_memory = child.as_ref().map(ServerProcess::memory).transpose()?;
    let (sends_seconds, end_to_end_seconds, latencies_us, redelivered) = match result {
        Ok(measured) => measured,
        Err(error) => return Err(with_server_log(error, child.as_ref())),
    };
    if let Some(child) = child {
        child.stop();
    }
    Ok(Outcome {
        sends_seconds,
        end_to_end_seconds,
        latencies_us,
        redelivered,
        bench_cpu,
        server_cpu,
        server_memory,
    })
}

/// The figures of one run that the secure comparison puts side by side.
pub(super) struct Headline {
    pub end_to_end_per_s: f64,
    pub p99_ms: f64,
    pub server_cpu_s: Option<f64>,
    pub bench_cpu_s: f64,
}

type Measured = (f64, f64, Vec<u64>, u64);

async fn drive(args: &QueueArgs, endpoint: &Endpoint) -> Result<Measured, BenchError> {
    let queue = format!("bench-{}-{}", std::process::id(), unix_micros());
    let queue_path = format!("/v1/queues/{queue}");
    let mut admin = Connection::open(endpoint).await?;
    admin
        .request_ok(
            Method::PUT,
            &queue_path,
            Bytes::from(json!({"durable": true}).to_string()),
        )
        .await?;
    let progress = Arc::new(Progress {
        total: args.messages,
        acked: AtomicU64::new(0),
        redelivered: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        started: Instant::now(),
        finished: Mutex::new(None),
    });
    let mut consumers = Vec::new();
    for _ in 0..args.consumers {
        let connection = Connection::open(endpoint).await?;
        let ack_connection = Connection::open(endpoint).await?;
        let task = consume(
            connection,
            ack_connection,
            queue_path.clone(),
            (args.batch, args.format),
            progress.clone(),
        );
        consumers.push(tokio::spawn(task));
    }
    let producers = spawn_producers(args, endpoint, &queue_path, progress.clone()).await?;
    let watchdog = tokio::spawn(watch_for_stall(progress.clone()));
    let bar = crate::progress::shown().then(|| tokio::spawn(show_acks(progress.clone())));
    let mut sends_end = progress.started;
    for producer in producers {
        sends_end = sends_end.max(join(producer, &progress).await?);
    }
    let mut latencies_us = Vec::with_capacity(args.messages as usize);
    for consumer in consumers {
        latencies_us.extend(join(consumer, &progress).await?);
    }
    watchdog.abort();
    if let Some(bar) = bar {
        bar.abort();
    }
    let acked = progress.acked.load(Ordering::Relaxed);
    if acked < progress.total {
        return Err(BenchError::Server(format!(
            "no message acked for {STALL_DEADLINE:?}; {acked} of {} acked",
            progress.total
        )));
    }
    let finished = progress
        .finished
        .lock()
        .map(|finished| finished.unwrap_or_else(Instant::now))
        .unwrap_or_else(|_| Instant::now());
    admin
        .request_ok(Method::DELETE, &queue_path, Bytes::new())
        .await?;
    Ok((
        sends_end.duration_since(progress.started).as_secs_f64(),
        finished.duration_since(progress.started).as_secs_f64(),
        latencies_us,
        progress.redelivered.load(Ordering::Relaxed),
    ))
}

async fn spawn_producers(
    args: &QueueArgs,
    endpoint: &Endpoint,
    queue_path: &str,
    progress: Arc<Progress>,
) -> Result<Vec<tokio::task::JoinHandle<Result<Instant, BenchError>>>, BenchError> {
    let body: Arc<[u8]> = match args.format {
        BodyFormat::Json => base64::engine::general_purpose::STANDARD
            .encode(vec![b'x'; args.body_bytes])
            .into_bytes()
            .into(),
        BodyFormat::Binary => vec![b'x'; args.body_bytes].into(),
    };
    let path = format!("{queue_path}/messages");
    let mut producers = Vec::new();
    // One task per request in flight: `lanes` per producer.
    let tasks = args.producers * args.lanes();
    for index in 0..tasks {
        // Spread the remainder so the counts add up to --messages exactly.
        let count = args.messages / tasks + u64::from(index < args.messages % tasks);
        let connection = Connection::open(endpoint).await?;
        let plan = ProducerPlan {
            count,
            batch: args.batch,
            pace: (args.rate > 0).then(|| Duration::from_secs_f64(tasks as f64 / args.rate as f64)),
            format: args.format,
        };
        let task = produce(
            connection,
            path.clone(),
            plan,
            body.clone(),
            progress.clone(),
        );
        producers.push(tokio::spawn(task));
    }
    Ok(producers)
}

/// Sends `count` messages in batches; returns when the last batch was confirmed.
async fn produce(
    mut connection: Connection,
    path: String,
    plan: ProducerPlan,
    body: Arc<[u8]>,
    progress: Arc<Progress>,
) -> Result<Instant, BenchError> {
    let mut remaining = plan.count;
    while remaining > 0 && !progress.failed.load(Ordering::Relaxed) {
        if let Some(pace) = plan.pace {
            let sent = u32::try_from(plan.count - remaining).unwrap_or(u32::MAX);
            tokio::time::sleep_until((progress.started + pace * sent).into()).await;
        }
        let size = remaining.min(plan.batch);
        let request = match plan.format {
            BodyFormat::Json => json_batch(&body, size),
            BodyFormat::Binary => binary_batch(&body, size),
        };
        let media = plan.format.media();
        let reply = connection
            .request_ok_as(Method::POST, &path, request, media)
            .await?;
        let confirmed = parse_as::<SendReply>(&reply, &path)?.messages.len() as u64;
        if confirmed != size {
            return Err(BenchError::Http {
                request: format!("POST {path}"),
                detail: format!("sent {size} messages, {confirmed} confirmed"),
            });
        }
        remaining -= size;
    }
    Ok(Instant::now())
}

/// A JSON send body of `size` messages whose bodies are `body_base64`, stamped now.
fn json_batch(body_base64: &[u8], size: u64) -> Bytes {
    let body_base64 = String::from_utf8_lossy(body_base64);
    let mut request = String::from("{\"messages\":[");
    for index in 0..size {
        if index > 0 {
            request.push(',');
        }
        request.push_str(&format!(
            "{{\"body_base64\":\"{body_base64}\",\"headers\":{{\"{SENT_HEADER}\":\"{}\"}}}}",
            unix_micros()
        ));
    }
    request.push_str("]}");
    Bytes::from(request)
}

/// A binary batch of `size` frames of `body`, stamped now.
fn binary_batch(body: &[u8], size: u64) -> Bytes {
    let mut request = Vec::with_capacity(size as usize * (body.len() + 64));
    for _ in 0..size {
        let meta = format!(
            "{{\"headers\":{{\"{SENT_HEADER}\":\"{}\"}}}}",
            unix_micros()
        );
        encode_frame(&mut request, meta.as_bytes(), body);
    }
    Bytes::from(request)
}

/// Receives and acks until every message of the run was acked; returns latencies.
///
/// Acks go out on a second connection while the next receive runs, as an AMQP consumer's acks
/// go out without waiting for a reply; at most one ack batch is in flight.
async fn consume(
    mut connection: Connection,
    ack_connection: Connection,
    queue_path: String,
    (batch, format): (u64, BodyFormat),
    progress: Arc<Progress>,
) -> Result<Vec<u64>, BenchError> {
    let receive_path = format!("{queue_path}/receive");
    let receive =
        Bytes::from(json!({"max_messages": batch, "wait_ms": RECEIVE_WAIT_MS}).to_string());
    let (acks, pending_acks) = tokio::sync::mpsc::channel::<Bytes>(1);
    let acker = tokio::spawn(ack_loop(
        ack_connection,
        format!("{queue_path}/ack"),
        pending_acks,
        progress.clone(),
    ));
    // The receive's own body is JSON; the reply comes in the run's format.
    let receive_media = Media {
        accept: format.media().accept,
        ..Media::JSON
    };
    let mut latencies_us = Vec::new();
    while !progress.done() {
        let reply = connection
            .request_ok_as(Method::POST, &receive_path, receive.clone(), receive_media)
            .await?;
        let received_us = unix_micros();
        let mut receipts = Vec::new();
        read_reply(&reply, format, |message| {
            if message.delivery_count > 1 {
                progress.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            let sent_us =
                (message.headers.get(SENT_HEADER)).and_then(|text| text.parse::<u64>().ok());
            if let Some(sent_us) = sent_us {
                latencies_us.push(received_us.saturating_sub(sent_us));
            }
            receipts.push(message.receipt.to_string());
        })
        .map_err(|detail| BenchError::Http {
            request: format!("POST {receive_path}"),
            detail: format!("unexpected reply: {detail}"),
        })?;
        if receipts.is_empty() {
            continue;
        }
        let ack = Bytes::from(
            serde_json::to_vec(&AckBody { receipts }).expect("a list of strings serializes"),
        );
        if acks.send(ack).await.is_err() {
            break;
        }
    }
    drop(acks);
    acker.await.map_err(|e| BenchError::Http {
        request: "ack task".into(),
        detail: e.to_string(),
    })??;
    Ok(latencies_us)
}

/// Calls `visit` with each message of a receive reply in `format`, reading only the fields
/// the benchmark uses, borrowed: bodies are skipped, not copied, as a consumer that acks
/// without looking at them would.
fn read_reply(
    reply: &Bytes,
    format: BodyFormat,
    mut visit: impl FnMut(&ReceivedMessage<'_>),
) -> Result<(), String> {
    match format {
        BodyFormat::Json => {
            let reply: ReceiveReply<'_> =
                serde_json::from_slice(reply).map_err(|error| error.to_string())?;
            reply.messages.iter().for_each(visit);
        }
        BodyFormat::Binary => {
            let frames = decode_frames(reply, usize::MAX).map_err(|error| error.to_string())?;
            for frame in &frames {
                let message: ReceivedMessage<'_> =
                    serde_json::from_slice(&frame.meta).map_err(|error| error.to_string())?;
                visit(&message);
            }
        }
    }
    Ok(())
}

/// What a consumer reads of a receive reply.
#[derive(serde::Deserialize)]
struct ReceiveReply<'a> {
    #[serde(borrow)]
    messages: Vec<ReceivedMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct ReceivedMessage<'a> {
    receipt: &'a str,
    delivery_count: u64,
    #[serde(borrow, default)]
    headers: std::collections::HashMap<&'a str, &'a str>,
}

/// What a producer reads of a send reply: one entry per message stored. Typed, not a
/// `serde_json::Value`: a tree of maps per reply was a fifth of the load generator's CPU.
#[derive(serde::Deserialize)]
struct SendReply {
    messages: Vec<serde::de::IgnoredAny>,
}

/// An ack request, written without a `serde_json::Value` in between.
#[derive(serde::Serialize)]
struct AckBody {
    receipts: Vec<String>,
}

/// What the acker reads of an ack reply: whether each receipt settled.
#[derive(serde::Deserialize)]
struct AckReply {
    results: Vec<AckResult>,
}

#[derive(serde::Deserialize)]
struct AckResult {
    ok: bool,
}

/// Sends each ack batch and counts the receipts the server confirmed.
async fn ack_loop(
    mut connection: Connection,
    ack_path: String,
    mut pending: tokio::sync::mpsc::Receiver<Bytes>,
    progress: Arc<Progress>,
) -> Result<(), BenchError> {
    while let Some(ack) = pending.recv().await {
        let reply = connection.request_ok(Method::POST, &ack_path, ack).await?;
        let results = parse_as::<AckReply>(&reply, &ack_path)?.results;
        let acked = results.iter().filter(|result| result.ok).count() as u64;
        progress.record_acks(acked);
    }
    Ok(())
}

impl Progress {
    fn done(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || self.acked.load(Ordering::Relaxed) >= self.total
    }

    fn record_acks(&self, acked: u64) {
        let before = self.acked.fetch_add(acked, Ordering::Relaxed);
        if before < self.total && before + acked >= self.total {
            if let Ok(mut finished) = self.finished.lock() {
                *finished = Some(Instant::now());
            }
        }
    }
}

/// Draws the acked count on stderr while the run goes; only spawned when stderr is a terminal.
async fn show_acks(progress: Arc<Progress>) {
    let bar = crate::progress::Progress::bar("bench queue", progress.total, "acked");
    while !progress.done() {
        bar.set(progress.acked.load(Ordering::Relaxed));
        tokio::time::sleep(super::BAR_REDRAW).await;
    }
}

async fn watch_for_stall(progress: Arc<Progress>) {
    let mut last = (progress.acked.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let acked = progress.acked.load(Ordering::Relaxed);
        if acked != last.0 {
            last = (acked, Instant::now());
        } else if last.1.elapsed() > STALL_DEADLINE {
            progress.failed.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Awaits a load task; the first failure stops the others.
async fn join<T>(
    task: tokio::task::JoinHandle<Result<T, BenchError>>,
    progress: &Progress,
) -> Result<T, BenchError> {
    let result = match task.await {
        Ok(result) => result,
        Err(error) => Err(BenchError::Server(format!("a load task failed: {error}"))),
    };
    if result.is_err() {
        progress.failed.store(true, Ordering::Relaxed);
    }
    result
}

/// Prints one run's figures: a table, then a JSON line; returns those a comparison needs.
fn report(args: &QueueArgs, mut outcome: Outcome) -> Headline {
    outcome.latencies_us.sort_unstable();
    let percentile_ms = |percent: usize| -> f64 {
        let latencies = &outcome.latencies_us;
        if latencies.is_empty() {
            return 0.0;
        }
        let index = (latencies.len() * percent / 100).min(latencies.len() - 1);
        latencies[index] as f64 / 1000.0
    };
    let messages = args.messages as f64;
    let sends_per_s = messages / outcome.sends_seconds.max(f64::EPSILON);
    let end_to_end_per_s = messages / outcome.end_to_end_seconds.max(f64::EPSILON);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rss_mib = outcome.server_memory.map(|memory| mib(memory.peak_kib));
    let rss_end_mib = outcome.server_memory.map(|memory| mib(memory.resident_kib));
    let server_cpu_s = outcome.server_cpu.map(|cpu| cpu.as_secs_f64());
    report_title(args);
    println!("  sends/s (confirmed)          {sends_per_s:>12.0}");
    println!("  end-to-end msg/s (acked)     {end_to_end_per_s:>12.0}");
    println!("  latency p50 ms               {:>12.2}", percentile_ms(50));
    println!("  latency p99 ms               {:>12.2}", percentile_ms(99));
    println!("  server peak RSS MiB          {:>12}", shown(rss_mib));
    println!("  server RSS at end MiB        {:>12}", shown(rss_end_mib));
    println!("  server CPU s                 {:>12}", shown(server_cpu_s));
    println!(
        "  bench CPU s                  {:>12.1}",
        outcome.bench_cpu.as_secs_f64()
    );
    println!(
        "  wall s                       {:>12.1}",
        outcome.end_to_end_seconds
    );
    println!("  redelivered                  {:>12}", outcome.redelivered);
    let summary = json!({
        "wharf_sends_per_s": sends_per_s.round(),
        "wharf_end_to_end_per_s": end_to_end_per_s.round(),
        "wharf_p50_ms": percentile_ms(50),
        "wharf_p99_ms": percentile_ms(99),
        "wharf_rss_mib": rss_mib,
        "wharf_rss_end_mib": rss_end_mib,
        "wharf_server_cpu_s": server_cpu_s,
        "wharf_bench_cpu_s": outcome.bench_cpu.as_secs_f64(),
        "wharf_seconds": outcome.end_to_end_seconds,
        "wharf_redelivered": outcome.redelivered,
        "messages": args.messages,
        "producers": args.producers,
        "consumers": args.consumers,
        "batch": args.batch,
        "window": args.window,
        "body_bytes": args.body_bytes,
        "rate": args.rate,
        "format": format!("{:?}", args.format).to_lowercase(),
    });
    println!("{summary}");
    Headline {
        end_to_end_per_s,
        p99_ms: percentile_ms(99),
        server_cpu_s,
        bench_cpu_s: outcome.bench_cpu.as_secs_f64(),
    }
}

fn report_title(args: &QueueArgs) {
    println!(
        "wharf bench queue: {} messages of {} B as {:?}, {} producers x batch {} x {} in flight, {} consumers x max {}, {}",
        args.messages,
        args.body_bytes,
        args.format,
        args.producers,
        args.batch,
        args.lanes(),
        args.consumers,
        args.batch,
        offered_load(args.rate)
    );
}

/// A figure the run may not have (server figures against a --server), to one decimal.
pub(super) fn shown(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |value| format!("{value:.1}"))
}

fn offered_load(rate: u64) -> String {
    match rate {
        0 => "flat out".to_string(),
        rate => format!("offered {rate} msg/s"),
    }
}

pub(super) fn parse(reply: &[u8], path: &str) -> Result<Value, BenchError> {
    parse_as(reply, path)
}

/// A JSON reply read as `T`; a reply that is not one is the server's fault, named by path.
fn parse_as<T: serde::de::DeserializeOwned>(reply: &[u8], path: &str) -> Result<T, BenchError> {
    serde_json::from_slice(reply).map_err(|error| BenchError::Http {
        request: path.to_string(),
        detail: format!("reply is not what the API documents: {error}"),
    })
}

/// `http://host:port` (path ignored) to a socket address.
pub(super) fn resolve(url: &str) -> Result<SocketAddr, BenchError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        BenchError::Usage(format!("--server {url}: only http:// URLs are supported"))
    })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| BenchError::Usage(format!("--server {url}: cannot resolve {authority}")))
}

/// The endpoint of a server the user named, with the command line's credentials.
pub(super) fn remote_endpoint(remote: &Remote<'_>) -> Result<Endpoint, BenchError> {
    Endpoint::new(resolve(remote.url)?, remote.authorization)
}

pub(super) fn with_server_log(error: BenchError, child: Option<&ServerProcess>) -> BenchError {
    match child {
        Some(child) => BenchError::Server(format!("{error}; server log: {}", child.log_tail())),
        None => error,
    }
}

pub(super) fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_resolve_to_their_socket_address() {
        let address = resolve("http://127.0.0.1:7700/").expect("resolves");
        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], 7700)));
        assert_eq!(resolve("http://127.0.0.1").expect("resolves").port(), 80);
        assert!(matches!(
            resolve("https://127.0.0.1:7700"),
            Err(BenchError::Usage(_))
        ));
    }
}
