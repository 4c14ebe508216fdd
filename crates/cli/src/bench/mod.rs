//! `wharf bench`: measurements of this machine's raw limits and of Wharf against them.
//!
//! Each benchmark reports ratios to the raw figure it cannot beat (fsync rate, sequential write
//! bandwidth), so results from different machines compare. This module owns the subcommand
//! list, the error type and process-wide measurements (CPU time); each benchmark has its file.

mod events;
mod http1;
mod mqtt;
mod queue;
mod realtime;
mod request;
mod secure;
mod security_cost;
mod server_process;
mod storage;
mod stream;
mod topic;
mod webhooks;

use crate::{client::credentials::Authorization, progress::Progress};
use clap::Subcommand;
use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use wharf_storage::StorageError;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Raw disk limits (fsync rate, sequential bandwidth) and log appends on the same disk.
    Storage(storage::StorageArgs),
    /// A durable queue under producers and consumers over HTTP: throughput, latency, memory.
    /// Starts its own `wharf serve` unless --server or WHARF_SERVER names one.
    Queue(queue::QueueArgs),
    /// Publishing through a topic's routing table (1 to 100,000 bindings) and a fanout to 100
    /// durable queues over HTTP. Starts its own `wharf serve` unless --server names one.
    Topic(topic::TopicArgs),
    /// Request-reply round trips through a durable queue over HTTP, concurrent and sequential.
    /// Starts its own `wharf serve` unless --server names one.
    Request(request::RequestArgs),
    /// Streams through the engine API and over HTTP beside the disk's raw sequential write
    /// bandwidth: produce and consume MB/s, end-to-end latency, many partitions.
    Stream(stream::StreamArgs),
    /// The event store through the engine API and over HTTP beside the disk's raw fsync rate:
    /// appends/s with 1 and 64 writers, `$all` read MB/s, a million streams.
    Events(events::EventsArgs),
    /// Webhook deliveries from topic publishes to a local receiver beside plain POSTs to the
    /// same receiver: deliveries/s, server CPU per delivery, latency p50/p99. Starts its own
    /// `wharf serve --webhooks-allow-private`.
    Webhooks(webhooks::WebhooksArgs),
    /// WebSocket and event-stream connections: resident memory per idle connection, fan-out
    /// latency of one publish to many subscribers, request-reply over a WebSocket beside the
    /// same round trip over HTTP. Starts its own `wharf serve`.
    Realtime(realtime::RealtimeArgs),
    /// MQTT pub/sub (QoS 0, 1, 2) and fan-out to many subscribers with rumqttc: msg/s, latency,
    /// broker CPU and memory. Starts its own `wharf serve` with the MQTT door unless --port
    /// names a broker (Mosquitto, for bench/mqtt-vs-mosquitto.sh).
    Mqtt(mqtt::MqttArgs),
}

/// A benchmark could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("cannot read the process CPU time: {0}")]
    CpuTime(#[source] io::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{request} failed: {detail}")]
    Http { request: String, detail: String },
    #[error("the server failed: {0}")]
    Server(String),
    #[error("cannot make the benchmark's certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot set up the benchmark's TLS client: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no random bytes for the benchmark's token")]
    Random,
}

/// Runs `work` in a fresh directory `DIR/wharf-bench-NAME-PID`, removed afterwards whatever
/// `work` returned.
fn in_scratch<T>(
    dir: &Path,
    name: &str,
    work: impl FnOnce(&Path) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    let scratch = dir.join(format!("wharf-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|source| BenchError::Io {
        action: "create",
        path: scratch.clone(),
        source,
    })?;
    let result = work(&scratch);
    if let Err(error) = std::fs::remove_dir_all(&scratch) {
        eprintln!("warning: could not remove {}: {error}", scratch.display());
    }
    result
}

/// A server the user named (`--server` or `WHARF_SERVER`) and the credentials for it.
pub struct Remote<'a> {
    pub url: &'a str,
    pub authorization: Option<&'a Authorization>,
}

/// `server`: the server when the user named one; `None` starts a child server.
pub fn run(command: BenchCommand, server: Option<Remote<'_>>) -> Result<(), BenchError> {
    match command {
        BenchCommand::Storage(args) => storage::run(&args),
        BenchCommand::Queue(args) => queue::run(&args, server.as_ref()),
        BenchCommand::Topic(args) => topic::run(&args, server.as_ref()),
        BenchCommand::Request(args) => request::run(&args, server.as_ref()),
        BenchCommand::Stream(args) => stream::run(&args),
        BenchCommand::Events(args) => events::run(&args),
        BenchCommand::Webhooks(args) => webhooks::run(&args),
        BenchCommand::Realtime(args) => realtime::run(&args),
        BenchCommand::Mqtt(args) => mqtt::run(&args),
    }
}

/// How often a progress bar reads its counter: smooth to the eye, free next to the load.
const BAR_REDRAW: Duration = Duration::from_millis(100);

/// A progress bar following a counter of a running benchmark, drawn on stderr by a task of its
/// own, and only when stderr is a terminal. Dropping it stops the task, which clears the bar.
struct CounterBar(Option<tokio::task::JoinHandle<()>>);

impl CounterBar {
    /// Must be called inside the benchmark's runtime.
    fn spawn(label: &str, total: u64, unit: &str, counter: Arc<AtomicU64>) -> CounterBar {
        if !crate::progress::shown() {
            return CounterBar(None);
        }
        let bar = Progress::bar(label, total, unit);
        CounterBar(Some(tokio::spawn(async move {
            loop {
                let done = counter.load(Ordering::Relaxed);
                bar.set(done.min(total));
                if done >= total {
                    return;
                }
                tokio::time::sleep(BAR_REDRAW).await;
            }
        })))
    }
}

impl Drop for CounterBar {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// User plus system CPU time of the whole process (every thread) so far.
pub(super) fn process_cpu_time() -> Result<Duration, BenchError> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; getrusage fills it or fails without writing.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if status != 0 {
        return Err(BenchError::CpuTime(io::Error::last_os_error()));
    }
    // SAFETY: getrusage succeeded, so it initialised the struct (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    Ok(timeval_duration(usage.ru_utime) + timeval_duration(usage.ru_stime))
}

fn timeval_duration(time: libc::timeval) -> Duration {
    Duration::from_secs(time.tv_sec.max(0) as u64)
        + Duration::from_micros(time.tv_usec.max(0) as u64)
}
