//! `wharf-peerbench rabbitmq`: the `wharf bench queue` workload against RabbitMQ over AMQP 0-9-1,
//! so `bench/queue-vs-rabbitmq.sh` can print both side by side. A benchmark tool, kept out of
//! the `wharf` binary so the product does not link an AMQP, PostgreSQL or NATS client. The
//! topic, fanout and request-reply peers of `bench/topic-vs-peers.sh` and the many idle MQTT
//! sessions of `bench/mqtt-idle-sessions.sh` live in their own modules. MQTT pub/sub and
//! fan-out are `wharf bench mqtt` (the issue asks `wharf bench` to drive the MQTT door and
//! Mosquitto with one client; it takes `--port` to point at Mosquitto).
//!
//! Same shape as Wharf's run: a durable queue, persistent messages (delivery_mode 2) of
//! `--body-bytes`, P producers and C consumers with one connection each. Producers keep a
//! window of unconfirmed publishes in flight (publisher confirms); waiting for each confirm in
//! turn would measure the round trip, not the broker (shared/PEERS.md). Consumers use manual
//! acks with a prefetch of two batches and ack with `multiple` once per batch. The first 8 bytes
//! of each body hold the send time (unix microseconds, little endian) for the latency figure.
//! Prints a table and, last, one JSON line with `<label>_`-prefixed keys matching Wharf's.

mod mqtt;
mod mqtt_idle;
mod nats_request;
mod postgres_queue;
mod rabbitmq_topic;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use futures_lite::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
    BasicProperties, Connection, ConnectionProperties, PublisherConfirm,
};
use serde_json::json;
use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// A consumer with unacked deliveries flushes its ack after this much quiet, so the tail of the
/// run does not wait for a full batch that will never come.
const ACK_IDLE: Duration = Duration::from_millis(20);
/// AMQP delivery_mode 2: the broker writes the message to disk before confirming it.
const PERSISTENT: u8 = 2;
/// AMQP delivery_mode 1: the broker may keep the message in memory only.
const TRANSIENT: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "wharf-peerbench",
    about = "Peer broker benchmarks (not part of Wharf)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Durable queue, publisher confirms, manual acks against RabbitMQ.
    Rabbitmq(RabbitArgs),
    /// `wharf bench topic`'s routing scenario against a RabbitMQ topic exchange.
    RabbitmqTopic(rabbitmq_topic::TopicArgs),
    /// `wharf bench topic`'s fanout scenario against a RabbitMQ fanout exchange.
    RabbitmqFanout(rabbitmq_topic::FanoutArgs),
    /// `wharf bench request` against NATS core request-reply.
    NatsRequest(nats_request::RequestArgs),
    /// `wharf bench queue`'s workload against PostgreSQL as a job queue (SKIP LOCKED).
    PostgresQueue(postgres_queue::PostgresQueueArgs),
    /// Many idle MQTT persistent sessions (`mqtt idle`), against Wharf's MQTT door or
    /// Mosquitto.
    Mqtt(mqtt::MqttArgs),
}

/// The queue workload's shape: the arguments `wharf bench queue` takes too, so one command
/// line drives Wharf and each peer alike.
#[derive(Debug, Args, Clone)]
pub(crate) struct QueueShape {
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 4)]
    pub producers: u64,
    #[arg(long, default_value_t = 4)]
    pub consumers: u64,
    /// Messages per producer batch and per consumer batch (a RabbitMQ consumer's ack, half its
    /// prefetch).
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    #[arg(long, default_value_t = 1024)]
    pub body_bytes: usize,
    /// Offered load in messages/s over all producers, paced per batch like `wharf bench
    /// queue --rate`; 0 sends as fast as confirmations come back.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

impl QueueShape {
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.messages == 0 || self.producers == 0 || self.consumers == 0 || self.batch == 0 {
            bail!("--messages, --producers, --consumers and --batch must be positive");
        }
        Ok(())
    }
}

#[derive(Debug, Args, Clone)]
struct RabbitArgs {
    /// AMQP URL of the broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    #[command(flatten)]
    shape: QueueShape,
    /// Unconfirmed publishes in flight per producer.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Broker process id, to report its peak RSS and CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Prefix of the JSON keys.
    #[arg(long, default_value = "rabbitmq")]
    label: String,
    /// A transient queue and messages (delivery_mode 1) instead of durable and persistent.
    #[arg(long)]
    transient: bool,
}

struct Progress {
    total: u64,
    acked: AtomicU64,
    redelivered: AtomicU64,
    started: Instant,
    finished: Mutex<Option<Instant>>,
}

/// The `wharf` binary's allocator (mimalloc), so that the peers' load generator is not slower
/// than Wharf's for want of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Rabbitmq(args) => rabbitmq(&args),
        Command::RabbitmqTopic(args) => rabbitmq_topic::topic(&args),
        Command::RabbitmqFanout(args) => rabbitmq_topic::fanout(&args),
        Command::NatsRequest(args) => nats_request::request(&args),
        Command::PostgresQueue(args) => postgres_queue::postgres_queue(&args),
        Command::Mqtt(args) => mqtt::mqtt(&args),
    }
}

fn rabbitmq(args: &RabbitArgs) -> anyhow::Result<()> {
    args.shape.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let server_cpu_before = args.server_pid.map(cpu_time_of).transpose()?;
    let bench_cpu_before = own_cpu_time()?;
    let measured = runtime.block_on(drive(args))?;
    let bench_cpu = own_cpu_time()?.saturating_sub(bench_cpu_before);
    let server_cpu = match (args.server_pid, server_cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_time_of(pid)?.saturating_sub(before)),
        _ => None,
    };
    let memory = args.server_pid.map(memory_of).transpose()?;
    report(args, measured, bench_cpu, server_cpu, memory);
    Ok(())
}

struct Measured {
    sends_seconds: f64,
    end_to_end_seconds: f64,
    latencies_us: Vec<u64>,
    redelivered: u64,
}

async fn drive(args: &RabbitArgs) -> anyhow::Result<Measured> {
    let queue = format!("bench-{}-{}", std::process::id(), unix_micros());
    let admin = connect(&args.url).await?;
    let admin_channel = admin.create_channel().await?;
    admin_channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: !args.transient,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("cannot declare the queue")?;
    let progress = Arc::new(Progress {
        total: args.shape.messages,
        acked: AtomicU64::new(0),
        redelivered: AtomicU64::new(0),
        started: Instant::now(),
        finished: Mutex::new(None),
    });
    let mut consumers = Vec::new();
    for index in 0..args.shape.consumers {
        let connection = connect(&args.url).await?;
        let task = consume(
            connection,
            queue.clone(),
            index,
            args.shape.batch,
            progress.clone(),
        );
        consumers.push(tokio::spawn(task));
    }
    let mut producers = Vec::new();
    for index in 0..args.shape.producers {
        let count = args.shape.messages / args.shape.producers
            + u64::from(index < args.shape.messages % args.shape.producers);
        let connection = connect(&args.url).await?;
        let task = produce(
            connection,
            queue.clone(),
            count,
            args.clone(),
            progress.started,
        );
        producers.push(tokio::spawn(task));
    }
    let mut sends_end = progress.started;
    for producer in producers {
        sends_end = sends_end.max(producer.await??);
    }
    let mut latencies_us = Vec::new();
    for consumer in consumers {
        latencies_us.extend(consumer.await??);
    }
    admin_channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let finished = progress.finished.lock().ok().and_then(|finished| *finished);
    let finished = finished.unwrap_or_else(Instant::now);
    Ok(Measured {
        sends_seconds: sends_end.duration_since(progress.started).as_secs_f64(),
        end_to_end_seconds: finished.duration_since(progress.started).as_secs_f64(),
        latencies_us,
        redelivered: progress.redelivered.load(Ordering::Relaxed),
    })
}

async fn connect(url: &str) -> anyhow::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

/// Publishes `count` persistent messages with up to `window` unconfirmed; returns when the last
/// one was confirmed.
async fn produce(
    connection: Connection,
    queue: String,
    count: u64,
    args: RabbitArgs,
    started: Instant,
) -> anyhow::Result<Instant> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mode = if args.transient {
        TRANSIENT
    } else {
        PERSISTENT
    };
    let properties = BasicProperties::default().with_delivery_mode(mode);
    let mut body = vec![b'x'; args.shape.body_bytes.max(8)];
    let mut in_flight: VecDeque<PublisherConfirm> = VecDeque::with_capacity(args.window);
    let pace = (args.shape.rate > 0)
        .then(|| Duration::from_secs_f64(args.shape.producers as f64 / args.shape.rate as f64));
    for sent in 0..count {
        if let Some(pace) = pace.filter(|_| sent % args.shape.batch == 0) {
            let sent = u32::try_from(sent).unwrap_or(u32::MAX);
            tokio::time::sleep_until((started + pace * sent).into()).await;
        }
        if in_flight.len() >= args.window.max(1) {
            if let Some(confirm) = in_flight.pop_front() {
                check_confirm(confirm).await?;
            }
        }
        body[..8].copy_from_slice(&unix_micros().to_le_bytes());
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await?;
        in_flight.push_back(confirm);
    }
    while let Some(confirm) = in_flight.pop_front() {
        check_confirm(confirm).await?;
    }
    let confirmed_at = Instant::now();
    connection.close(200, "done".into()).await?;
    Ok(confirmed_at)
}

async fn check_confirm(confirm: PublisherConfirm) -> anyhow::Result<()> {
    if !confirm.await?.is_ack() {
        bail!("the broker nacked a publish");
    }
    Ok(())
}

/// Consumes with manual acks until the whole run is acked; returns latencies.
async fn consume(
    connection: Connection,
    queue: String,
    index: u64,
    batch: u64,
    progress: Arc<Progress>,
) -> anyhow::Result<Vec<u64>> {
    let channel = connection.create_channel().await?;
    let prefetch = u16::try_from(batch * 2).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            format!("bench-consumer-{index}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut latencies_us = Vec::new();
    let mut unacked = 0u64;
    let mut last_tag = None;
    while !progress.done() {
        let next = tokio::time::timeout(ACK_IDLE, consumer.next()).await;
        let delivery = match next {
            Ok(Some(delivery)) => delivery?,
            Ok(None) => bail!("the broker cancelled the consumer"),
            Err(_) => {
                if let Some(tag) = last_tag.take() {
                    ack_up_to(&channel, tag, unacked, &progress).await?;
                    unacked = 0;
                }
                continue;
            }
        };
        let received_us = unix_micros();
        if let Some(sent) = delivery.data.get(..8) {
            let sent_us = u64::from_le_bytes(sent.try_into().unwrap_or([0; 8]));
            latencies_us.push(received_us.saturating_sub(sent_us));
        }
        if delivery.redelivered {
            progress.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        last_tag = Some(delivery.delivery_tag);
        unacked += 1;
        if unacked >= batch {
            ack_up_to(&channel, delivery.delivery_tag, unacked, &progress).await?;
            last_tag = None;
            unacked = 0;
        }
    }
    connection.close(200, "done".into()).await?;
    Ok(latencies_us)
}

async fn ack_up_to(
    channel: &lapin::Channel,
    tag: u64,
    count: u64,
    progress: &Progress,
) -> anyhow::Result<()> {
    channel
        .basic_ack(tag, BasicAckOptions { multiple: true })
        .await?;
    progress.record_acks(count);
    Ok(())
}

impl Progress {
    fn done(&self) -> bool {
        self.acked.load(Ordering::Relaxed) >= self.total
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

fn report(
    args: &RabbitArgs,
    mut measured: Measured,
    bench_cpu: Duration,
    server_cpu: Option<Duration>,
    memory: Option<(u64, u64)>,
) {
    measured.latencies_us.sort_unstable();
    let percentile_ms = |percent: usize| percentile_ms(&measured.latencies_us, percent);
    let messages = args.shape.messages as f64;
    let sends_per_s = messages / measured.sends_seconds.max(f64::EPSILON);
    let end_to_end_per_s = messages / measured.end_to_end_seconds.max(f64::EPSILON);
    let rss_mib = memory.map(|(peak, _)| peak as f64 / 1024.0);
    let rss_end_mib = memory.map(|(_, resident)| resident as f64 / 1024.0);
    let server_cpu_s = server_cpu.map(|cpu| cpu.as_secs_f64());
    let shown = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{value:.1}"));
    let label = &args.label;
    let load = match args.shape.rate {
        0 => "flat out".to_string(),
        rate => format!("offered {rate} msg/s"),
    };
    let durability = if args.transient {
        "transient"
    } else {
        "durable"
    };
    println!(
        "{label} (AMQP, lapin, {durability}): {} messages of {} B, {} producers x window {}, {} consumers x prefetch {}, {load}",
        args.shape.messages, args.shape.body_bytes, args.shape.producers, args.window, args.shape.consumers, args.shape.batch * 2
    );
    println!("  sends/s (confirmed)          {sends_per_s:>12.0}");
    println!("  end-to-end msg/s (acked)     {end_to_end_per_s:>12.0}");
    println!("  latency p50 ms               {:>12.2}", percentile_ms(50));
    println!("  latency p99 ms               {:>12.2}", percentile_ms(99));
    println!("  server peak RSS MiB          {:>12}", shown(rss_mib));
    println!("  server RSS at end MiB        {:>12}", shown(rss_end_mib));
    println!("  server CPU s                 {:>12}", shown(server_cpu_s));
    println!(
        "  bench CPU s                  {:>12.1}",
        bench_cpu.as_secs_f64()
    );
    println!(
        "  wall s                       {:>12.1}",
        measured.end_to_end_seconds
    );
    println!(
        "  redelivered                  {:>12}",
        measured.redelivered
    );
    let summary = json!({
        format!("{label}_sends_per_s"): sends_per_s.round(),
        format!("{label}_end_to_end_per_s"): end_to_end_per_s.round(),
        format!("{label}_p50_ms"): percentile_ms(50),
        format!("{label}_p99_ms"): percentile_ms(99),
        format!("{label}_rss_mib"): rss_mib,
        format!("{label}_rss_end_mib"): rss_end_mib,
        format!("{label}_server_cpu_s"): server_cpu_s,
        format!("{label}_bench_cpu_s"): bench_cpu.as_secs_f64(),
        format!("{label}_seconds"): measured.end_to_end_seconds,
        format!("{label}_redelivered"): measured.redelivered,
        "messages": args.shape.messages,
        "producers": args.shape.producers,
        "consumers": args.shape.consumers,
        "batch": args.shape.batch,
        "window": args.window,
        "rate": args.shape.rate,
        "body_bytes": args.shape.body_bytes,
    });
    println!("{summary}");
}

/// The `percent` percentile of sorted microseconds, in milliseconds (0 when empty).
pub(crate) fn percentile_ms(sorted_us: &[u64], percent: usize) -> f64 {
    match sorted_us.len() {
        0 => 0.0,
        len => sorted_us[(len * percent / 100).min(len - 1)] as f64 / 1000.0,
    }
}

/// (VmHWM, VmRSS) in KiB from /proc/PID/status.
fn memory_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}

/// utime + stime from /proc/PID/stat (fields 14 and 15).
fn cpu_time_of(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / per_second))
}

pub(crate) fn own_cpu_time() -> anyhow::Result<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; getrusage fills it or fails without writing.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if status != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    // SAFETY: getrusage succeeded, so it initialised the struct (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    let micros = |time: libc::timeval| {
        Duration::from_secs(time.tv_sec.max(0) as u64)
            + Duration::from_micros(time.tv_usec.max(0) as u64)
    };
    Ok(micros(usage.ru_utime) + micros(usage.ru_stime))
}

pub(crate) fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}
