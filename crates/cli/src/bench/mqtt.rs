//! `wharf bench mqtt pubsub` and `wharf bench mqtt fanout`: MQTT 3.1.1 workloads driven by
//! one client library (rumqttc) against Wharf's MQTT door or any other broker, so
//! `bench/mqtt-vs-mosquitto.sh` can hold Wharf and Mosquitto to the same client, settings and
//! machine in one run. Without `--port` it starts its own `wharf serve` with the MQTT door on a
//! free loopback port; with `--port` (and `--server-pid` for the broker's CPU and memory) it
//! drives the broker there.
//!
//! Pubsub: one subscriber on `bench/t` (subscribed, SUBACK seen) and then one publisher, each
//! on its own clean-session connection; the publisher sends `--messages` as fast as the client
//! lets it, with up to `--inflight` QoS 1 publishes unacknowledged. Fanout: `--subscribers`
//! connections on `bench/fan` in one runtime, then one publisher paced at `--rate` messages/s.
//! Every payload starts with a stamp (below) so the receiver can time each delivery and tell a
//! lost message from a duplicate. Every wait has a deadline: a message that never arrives ends
//! the run with an error naming how many are missing, never a hang. Prints a few lines and,
//! last, one JSON line with `<label>_`-prefixed keys for the script.
//!
//! ```text
//! payload: | send time, unix µs (u64 LE) | sequence number (u64 LE) | filler to --size |
//!            0                            8                          16
//! ```

use super::{
    process_cpu_time,
    queue::unix_micros,
    server_process::{process_cpu_time_of, process_memory, ServerOptions, ServerProcess},
    topic::percentile_ms,
    BenchError,
};
use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, Subcommand};
use rumqttc::{
    mqttbytes::{qos as qos_from_level, v4::SubscribeReasonCode},
    AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS,
};
use serde_json::{json, Map, Value};
use std::{sync::Arc, time::Duration};
use tokio::{
    sync::Semaphore,
    task::JoinSet,
    time::{sleep_until, timeout, timeout_at, Instant},
};

const PUBSUB_TOPIC: &str = "bench/t";
const FANOUT_TOPIC: &str = "bench/fan";
/// Send time and sequence number at the head of every payload (layout in the module header).
const STAMP_BYTES: usize = 16;
/// Once a subscriber has had a message, this long without another means the rest are lost.
/// Far above any gap a working broker leaves at these rates, so only a real loss trips it.
const IDLE_GAP: Duration = Duration::from_secs(10);
/// Requests a client queues before `publish` waits for its event loop. Large enough that the
/// publishing task rarely sleeps on the hand-off, small enough that a QoS 0 stamp is taken
/// close to the write, not behind a long client-side queue.
const REQUEST_CHANNEL_CAPACITY: usize = 100;
/// Room for the fixed header, topic and packet id on top of the payload in rumqttc's packet
/// size check (its default limit, 10 KiB, would refuse larger `--size`).
const PACKET_OVERHEAD_BYTES: usize = 1024;
/// Fan-out subscribers connecting at once: stays under the listen backlog of a broker (128 on
/// Linux by default) so no SYN is dropped and retried a second later.
const CONNECTS_AT_ONCE: usize = 64;
/// Time given to a DISCONNECT to reach the broker before the socket is dropped anyway.
const DISCONNECT_WAIT: Duration = Duration::from_secs(1);
/// Unacknowledged QoS 1 and 2 publishes per connection where no flag sets it: rumqttc's default.
const INFLIGHT: u16 = 100;
/// rumqttc's own limit on the wait for CONNACK, in whole seconds.
const CONNECT_TIMEOUT_S: u64 = 10;

#[derive(Debug, Args, Clone)]
pub struct MqttArgs {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand, Clone)]
enum Workload {
    /// One publisher, one subscriber on `bench/t`: msg/s end to end and latency.
    Pubsub(PubsubArgs),
    /// One paced publisher, many subscribers on `bench/fan`: deliveries/s and latency.
    Fanout(FanoutArgs),
}

/// Which broker, and the limits of a run against it.
#[derive(Debug, Args, Clone)]
struct Target {
    #[arg(long, default_value = "127.0.0.1", requires = "port")]
    host: String,
    /// The broker's MQTT port; without it the benchmark starts its own `wharf serve` with the
    /// MQTT door on a free loopback port.
    #[arg(long)]
    port: Option<u16>,
    /// Prefix of the JSON keys (`wharf`, `mosquitto`).
    #[arg(long, default_value = "wharf")]
    label: String,
    /// Broker process id, to report its CPU time and peak RSS from /proc (the benchmark's own
    /// server is measured without it).
    #[arg(long, requires = "port")]
    server_pid: Option<u32>,
    /// Deadline for the whole run, connections included; past it the run fails.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Report messages that never arrived instead of failing (MQTT lets a broker drop QoS 0).
    #[arg(long)]
    allow_loss: bool,
    /// User name in every CONNECT; none when absent (anonymous).
    #[arg(long, requires = "password")]
    username: Option<String>,
    #[arg(long, requires = "username")]
    password: Option<String>,
}

#[derive(Debug, Args, Clone)]
struct PubsubArgs {
    #[command(flatten)]
    target: Target,
    /// QoS of the publishes and of the subscription.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Payload bytes per message (at least 16, the stamp).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// QoS 1 and 2 publishes the publisher keeps unacknowledged (rumqttc's inflight).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    inflight: u16,
}

#[derive(Debug, Args, Clone)]
struct FanoutArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Messages published; each goes to every subscriber.
    #[arg(long, default_value_t = 200)]
    messages: u64,
    /// Messages per second the publisher offers; 0 sends as fast as the client lets it. The
    /// default, 20 x 1,000 subscribers = 20,000 deliveries/s, is well under what Mosquitto
    /// delivers on 2 cores (75,000-80,000/s), so the latency is a broker's, not a queue's.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload bytes per message (at least 16, the stamp).
    #[arg(long, default_value_t = 1024)]
    size: usize,
}

/// What one subscriber saw.
#[derive(Default)]
struct Received {
    latencies_us: Vec<u64>,
    duplicates: u64,
    last_at: Option<Instant>,
}

/// CPU time spent by the broker and by this process over one measured phase.
struct Spent {
    server_cpu: Option<Duration>,
    bench_cpu: Duration,
}

struct PubsubMeasured {
    publish_seconds: f64,
    end_to_end_seconds: f64,
    received: Received,
    spent: Spent,
}

struct FanoutMeasured {
    connect_seconds: f64,
    seconds: f64,
    /// All subscribers' deliveries together.
    received: Received,
    spent: Spent,
}

/// What a publisher sends: `count` stamped messages, each `pace` after the previous one when
/// given, else as fast as the client's request channel takes them.
struct PublishPlan {
    topic: &'static str,
    qos: QoS,
    count: u64,
    size: usize,
    pace: Option<Duration>,
}

/// Runs the workload against the broker `args` name, or against a `wharf serve` of its own.
pub fn run(args: &MqttArgs) -> Result<(), BenchError> {
    let (args, server) = match args.workload.target().port {
        Some(_) => (args.clone(), None),
        None => {
            let server = ServerProcess::start_with(&ServerOptions {
                mqtt: true,
                ..ServerOptions::default()
            })?;
            let mut args = args.clone();
            let target = args.workload.target_mut();
            let address = server
                .mqtt_address
                .ok_or_else(|| BenchError::Server("the server has no MQTT address".to_string()))?;
            target.host = address.ip().to_string();
            target.port = Some(address.port());
            target.server_pid = Some(server.pid());
            (args, Some(server))
        }
    };
    let result = drive(&args).map_err(|error| match &server {
        Some(server) => BenchError::Server(format!("{error:#}; server log: {}", server.log_tail())),
        None => BenchError::Server(format!("{error:#}")),
    });
    if let Some(server) = server {
        server.stop();
    }
    result
}

fn drive(args: &MqttArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.workload {
        Workload::Pubsub(args) => {
            check_shape(args.messages, args.size)?;
            let measured = runtime.block_on(pubsub_run(args))?;
            pubsub_report(args, measured)
        }
        Workload::Fanout(args) => {
            check_shape(args.messages, args.size)?;
            if args.subscribers == 0 {
                bail!("--subscribers must be positive");
            }
            let measured = runtime.block_on(fanout_run(args))?;
            fanout_report(args, measured)
        }
    }
}

impl Workload {
    fn target(&self) -> &Target {
        match self {
            Workload::Pubsub(args) => &args.target,
            Workload::Fanout(args) => &args.target,
        }
    }

    fn target_mut(&mut self) -> &mut Target {
        match self {
            Workload::Pubsub(args) => &mut args.target,
            Workload::Fanout(args) => &mut args.target,
        }
    }
}

/// Subscribes, then publishes flat out; the clock runs from the first publish to the last
/// delivery, and the broker's CPU is counted over the same span.
async fn pubsub_run(args: &PubsubArgs) -> anyhow::Result<PubsubMeasured> {
    let target = &args.target;
    let deadline = Instant::now() + Duration::from_secs(target.timeout_s);
    let qos = qos_from_level(args.qos).context("--qos")?;
    let tag = format!("{}-{}", std::process::id(), unix_micros());
    let subscriber_id = format!("bench-sub-{tag}");
    let (subscriber, mut subscriber_loop) =
        client(target, &subscriber_id, args.size, args.inflight);
    connect(&mut subscriber_loop, deadline).await?;
    subscribe(
        &subscriber,
        &mut subscriber_loop,
        PUBSUB_TOPIC,
        qos,
        deadline,
    )
    .await?;
    let publisher_id = format!("bench-pub-{tag}");
    let (publisher, mut publisher_loop) = client(target, &publisher_id, args.size, args.inflight);
    connect(&mut publisher_loop, deadline).await?;

    let usage = Usage::start(target.server_pid)?;
    let receiving = tokio::spawn(receive(subscriber_loop, args.messages, deadline));
    let plan = PublishPlan {
        topic: PUBSUB_TOPIC,
        qos,
        count: args.messages,
        size: args.size,
        pace: None,
    };
    let started = Instant::now();
    let (publisher_loop, completed_at) =
        publish_and_complete(&publisher, publisher_loop, &plan, deadline).await?;
    let (subscriber_loop, received) = receiving.await??;
    let spent = usage.stop()?;

    disconnect(publisher, publisher_loop).await;
    disconnect(subscriber, subscriber_loop).await;
    let last_at = received.last_at.unwrap_or(started);
    Ok(PubsubMeasured {
        publish_seconds: completed_at.duration_since(started).as_secs_f64(),
        end_to_end_seconds: last_at.duration_since(started).as_secs_f64(),
        received,
        spent,
    })
}

/// Connects and subscribes every subscriber, then publishes at the offered rate; CPU is counted
/// from the first publish to the last delivery, not over the connection storm before it.
async fn fanout_run(args: &FanoutArgs) -> anyhow::Result<FanoutMeasured> {
    let target = &args.target;
    let deadline = Instant::now() + Duration::from_secs(target.timeout_s);
    let qos = qos_from_level(args.qos).context("--qos")?;
    let connecting = Instant::now();
    let subscribers = fanout_subscribe_all(args, qos, deadline).await?;
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let tag = format!("{}-{}", std::process::id(), unix_micros());
    let publisher_id = format!("bench-pub-{tag}");
    let (publisher, mut publisher_loop) = client(target, &publisher_id, args.size, INFLIGHT);
    connect(&mut publisher_loop, deadline).await?;

    let usage = Usage::start(target.server_pid)?;
    let mut receiving = Vec::with_capacity(subscribers.len());
    let mut clients = Vec::with_capacity(subscribers.len());
    for (client, eventloop) in subscribers {
        receiving.push(tokio::spawn(receive(eventloop, args.messages, deadline)));
        clients.push(client);
    }
    let plan = PublishPlan {
        topic: FANOUT_TOPIC,
        qos,
        count: args.messages,
        size: args.size,
        pace: (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64)),
    };
    let started = Instant::now();
    let (publisher_loop, _) =
        publish_and_complete(&publisher, publisher_loop, &plan, deadline).await?;
    let (eventloops, received) = fanout_collect(receiving, args.messages).await?;
    let spent = usage.stop()?;

    disconnect(publisher, publisher_loop).await;
    disconnect_all(clients.into_iter().zip(eventloops)).await;
    let last_at = received.last_at.unwrap_or(started);
    Ok(FanoutMeasured {
        connect_seconds,
        seconds: last_at.duration_since(started).as_secs_f64(),
        received,
        spent,
    })
}

/// Connects `--subscribers` clients, at most `CONNECTS_AT_ONCE` at a time, each subscribed to
/// the fan-out topic with its SUBACK seen before this returns.
async fn fanout_subscribe_all(
    args: &FanoutArgs,
    qos: QoS,
    deadline: Instant,
) -> anyhow::Result<Vec<(AsyncClient, EventLoop)>> {
    let permits = Arc::new(Semaphore::new(CONNECTS_AT_ONCE));
    let tag = format!("{}-{}", std::process::id(), unix_micros());
    let mut tasks = JoinSet::new();
    for index in 0..args.subscribers {
        let (target, size, permits) = (args.target.clone(), args.size, permits.clone());
        let id = format!("bench-fan-{tag}-{index}");
        let count = args.subscribers;
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let (client, mut eventloop) = client(&target, &id, size, INFLIGHT);
            let subscribed = async {
                connect(&mut eventloop, deadline).await?;
                subscribe(&client, &mut eventloop, FANOUT_TOPIC, qos, deadline).await
            };
            subscribed
                .await
                .with_context(|| format!("fan-out subscriber {index} of {count}"))?;
            Ok::<_, anyhow::Error>((client, eventloop))
        });
    }
    let mut subscribers = Vec::with_capacity(args.subscribers);
    while let Some(joined) = tasks.join_next().await {
        subscribers.push(joined??);
    }
    Ok(subscribers)
}

/// Waits for every fan-out subscriber (each bounded by the run's deadline) and adds up what
/// they received; a subscriber whose connection failed fails the run.
async fn fanout_collect(
    receiving: Vec<tokio::task::JoinHandle<anyhow::Result<(EventLoop, Received)>>>,
    expected: u64,
) -> anyhow::Result<(Vec<EventLoop>, Received)> {
    let mut eventloops = Vec::with_capacity(receiving.len());
    let mut total = Received {
        latencies_us: Vec::with_capacity(receiving.len() * expected as usize),
        ..Received::default()
    };
    for (index, task) in receiving.into_iter().enumerate() {
        let (eventloop, received) = task
            .await?
            .with_context(|| format!("fan-out subscriber {index}"))?;
        eventloops.push(eventloop);
        total.latencies_us.extend_from_slice(&received.latencies_us);
        total.duplicates += received.duplicates;
        total.last_at = total.last_at.max(received.last_at);
    }
    Ok((eventloops, total))
}

/// A clean-session MQTT 3.1.1 client for `target` with room for `size`-byte payloads and up to
/// `inflight` unacknowledged QoS 1 and 2 publishes. TCP_NODELAY is on: rumqttc flushes each
/// packet on its own, and with Nagle a paced publish or a PUBACK would wait for the peer's
/// delayed ACK (up to 40 ms on Linux), timing TCP instead of the broker.
fn client(
    target: &Target,
    client_id: &str,
    size: usize,
    inflight: u16,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port.unwrap_or(1883));
    let packet_bytes_max = size + PACKET_OVERHEAD_BYTES;
    options
        .set_clean_session(true)
        .set_inflight(inflight)
        .set_max_packet_size(packet_bytes_max, packet_bytes_max);
    if let (Some(username), Some(password)) = (&target.username, &target.password) {
        options.set_credentials(username, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(CONNECT_TIMEOUT_S);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// Polls the event loop once, turning a missed deadline and a dropped connection into errors.
async fn poll(eventloop: &mut EventLoop, deadline: Instant) -> anyhow::Result<Event> {
    match timeout_at(deadline, eventloop.poll()).await {
        Ok(polled) => polled.context("MQTT connection failed"),
        Err(_) => bail!("the broker did not answer before the run's deadline (--timeout-s)"),
    }
}

async fn connect(eventloop: &mut EventLoop, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = poll(eventloop, deadline).await? {
            return Ok(());
        }
    }
}

/// Subscribes and waits for the SUBACK. Brokers add a subscription before acknowledging it
/// (MQTT 3.1.1 §3.8.4, [MQTT-3.8.4-3], even lets them deliver before the SUBACK), so every
/// message published after this returns is one the subscriber must get.
async fn subscribe(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    topic: &str,
    qos: QoS,
    deadline: Instant,
) -> anyhow::Result<()> {
    client.subscribe(topic, qos).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(ack)) = poll(eventloop, deadline).await? {
            if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                bail!("the broker refused the subscription to {topic}");
            }
            return Ok(());
        }
    }
}

/// Publishes the plan while a task drives the publisher's event loop; returns the loop and when
/// the last publish completed. When both fail, the event loop's error is the cause.
async fn publish_and_complete(
    client: &AsyncClient,
    eventloop: EventLoop,
    plan: &PublishPlan,
    deadline: Instant,
) -> anyhow::Result<(EventLoop, Instant)> {
    let completing = tokio::spawn(complete(eventloop, plan.count, plan.qos, deadline));
    let published = publish_all(client, plan, deadline).await;
    let completed = completing.await?;
    match (published, completed) {
        (_, Err(error)) | (Err(error), _) => Err(error),
        (Ok(()), Ok(completed)) => Ok(completed),
    }
}

async fn publish_all(
    client: &AsyncClient,
    plan: &PublishPlan,
    deadline: Instant,
) -> anyhow::Result<()> {
    let (started, count) = (Instant::now(), plan.count);
    for sequence in 0..count {
        if let Some(pace) = plan.pace {
            sleep_until(started + pace.mul_f64(sequence as f64)).await;
        }
        let payload = stamped_payload(sequence, plan.size);
        let publishing = client.publish_bytes(plan.topic, plan.qos, false, payload);
        match timeout_at(deadline, publishing).await {
            Ok(published) => published.context("the publisher's connection is gone")?,
            Err(_) => bail!("publish {sequence} of {count} stalled past the run's deadline"),
        }
    }
    Ok(())
}

fn stamped_payload(sequence: u64, size: usize) -> Bytes {
    let mut payload = BytesMut::with_capacity(size);
    payload.put_u64_le(unix_micros());
    payload.put_u64_le(sequence);
    payload.resize(size, b'x');
    payload.freeze()
}

/// Drives the publisher's event loop until `count` publishes are done: written for QoS 0,
/// PUBACK for QoS 1, PUBCOMP for QoS 2. Returns the loop and when the last one completed.
async fn complete(
    mut eventloop: EventLoop,
    count: u64,
    qos: QoS,
    deadline: Instant,
) -> anyhow::Result<(EventLoop, Instant)> {
    let mut completed = 0;
    while completed < count {
        let done = match poll(&mut eventloop, deadline).await {
            Ok(event) => is_completion(&event, qos),
            Err(error) => {
                return Err(error.context(format!("publisher: {completed} of {count} completed")))
            }
        };
        completed += u64::from(done);
    }
    Ok((eventloop, Instant::now()))
}

fn is_completion(event: &Event, qos: QoS) -> bool {
    matches!(
        (qos, event),
        (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
            | (QoS::AtLeastOnce, Event::Incoming(Packet::PubAck(_)))
            | (QoS::ExactlyOnce, Event::Incoming(Packet::PubComp(_)))
    )
}

/// Receives until `expected` distinct messages arrived, `IDLE_GAP` passed without one after the
/// first, or the deadline; timing each from its stamp. Missing messages are the caller's to
/// judge; a dropped connection is an error.
async fn receive(
    mut eventloop: EventLoop,
    expected: u64,
    deadline: Instant,
) -> anyhow::Result<(EventLoop, Received)> {
    let mut seen = vec![false; expected as usize];
    let mut received = Received {
        latencies_us: Vec::with_capacity(expected as usize),
        ..Received::default()
    };
    while (received.latencies_us.len() as u64) < expected {
        let wait_until = received
            .last_at
            .map_or(deadline, |last_at| deadline.min(last_at + IDLE_GAP));
        let event = match timeout_at(wait_until, eventloop.poll()).await {
            Ok(polled) => polled.with_context(|| {
                format!(
                    "subscriber connection failed after {} of {expected} messages",
                    received.latencies_us.len()
                )
            })?,
            Err(_) => break,
        };
        if let Event::Incoming(Packet::Publish(publish)) = event {
            receive_record(&mut received, &mut seen, &publish.payload)?;
        }
    }
    Ok((eventloop, received))
}

/// Times one delivery from its stamp and counts it once, however often it came.
fn receive_record(
    received: &mut Received,
    seen: &mut [bool],
    payload: &[u8],
) -> anyhow::Result<()> {
    let now_us = unix_micros();
    received.last_at = Some(Instant::now());
    let stamp = payload
        .get(..STAMP_BYTES)
        .context("a delivery is shorter than the stamp: not this run's message")?;
    let sent_us = u64::from_le_bytes(stamp[..8].try_into()?);
    let sequence = u64::from_le_bytes(stamp[8..].try_into()?);
    let slot = seen
        .get_mut(sequence as usize)
        .with_context(|| format!("a delivery carries sequence {sequence}, outside this run"))?;
    if std::mem::replace(slot, true) {
        received.duplicates += 1;
    } else {
        received.latencies_us.push(now_us.saturating_sub(sent_us));
    }
    Ok(())
}

/// Sends DISCONNECT so the broker sees a clean close rather than a reset; best effort, bounded
/// by `DISCONNECT_WAIT`, since the figures are already taken.
async fn disconnect(client: AsyncClient, mut eventloop: EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = timeout(DISCONNECT_WAIT, async {
        while let Ok(event) = eventloop.poll().await {
            if event == Event::Outgoing(Outgoing::Disconnect) {
                break;
            }
        }
    })
    .await;
}

async fn disconnect_all(pairs: impl Iterator<Item = (AsyncClient, EventLoop)>) {
    let mut tasks = JoinSet::new();
    for (client, eventloop) in pairs {
        tasks.spawn(disconnect(client, eventloop));
    }
    while tasks.join_next().await.is_some() {}
}

fn check_shape(messages: u64, size: usize) -> anyhow::Result<()> {
    if messages == 0 {
        bail!("--messages must be positive");
    }
    if size < STAMP_BYTES {
        bail!("--size must be at least {STAMP_BYTES} bytes, the send time and sequence number");
    }
    Ok(())
}

/// Fails on missing messages unless `--allow-loss`; returns how many are missing.
fn check_loss(target: &Target, expected: u64, delivered: u64, what: &str) -> anyhow::Result<u64> {
    let lost = expected.saturating_sub(delivered);
    if lost > 0 && !target.allow_loss {
        bail!(
            "{}: {lost} of {expected} {what} never arrived (a broker may drop messages past a queue \
             limit, e.g. Mosquitto's max_queued_messages; --allow-loss reports them instead)",
            target.label
        );
    }
    Ok(lost)
}

/// Broker and load-generator CPU counters at the start of a measured phase.
struct Usage {
    server_pid: Option<u32>,
    server_before: Option<Duration>,
    bench_before: Duration,
}

impl Usage {
    fn start(server_pid: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            server_pid,
            server_before: server_pid.map(process_cpu_time_of).transpose()?,
            bench_before: process_cpu_time()?,
        })
    }

    fn stop(self) -> anyhow::Result<Spent> {
        let server_cpu = match (self.server_pid, self.server_before) {
            (Some(pid), Some(before)) => Some(process_cpu_time_of(pid)?.saturating_sub(before)),
            _ => None,
        };
        Ok(Spent {
            server_cpu,
            bench_cpu: process_cpu_time()?.saturating_sub(self.bench_before),
        })
    }
}

fn pubsub_report(args: &PubsubArgs, measured: PubsubMeasured) -> anyhow::Result<()> {
    let target = &args.target;
    let mut latencies = measured.received.latencies_us;
    let lost = check_loss(target, args.messages, latencies.len() as u64, "messages")?;
    latencies.sort_unstable();
    let delivered = latencies.len() as f64;
    let end_to_end_per_s = delivered / measured.end_to_end_seconds.max(f64::EPSILON);
    let publish_per_s = args.messages as f64 / measured.publish_seconds.max(f64::EPSILON);
    let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
    println!(
        "{} (MQTT 3.1.1, rumqttc): pubsub QoS {}, {} messages of {} B, 1 publisher (inflight {}), 1 subscriber",
        target.label, args.qos, args.messages, args.size, args.inflight
    );
    println!("  end-to-end msg/s             {end_to_end_per_s:>12.0}");
    println!("  publisher msg/s              {publish_per_s:>12.0}");
    println!("  latency p50 / p99 ms         {p50:>12.2} / {p99:.2}");
    println!(
        "  lost / duplicates            {lost:>12} / {}",
        measured.received.duplicates
    );
    let mut summary = Map::new();
    let key = |name: &str| format!("{}_{name}", target.label);
    summary.insert(key("end_to_end_per_s"), json!(end_to_end_per_s.round()));
    summary.insert(key("publish_per_s"), json!(publish_per_s.round()));
    summary.insert(key("p50_ms"), json!(p50));
    summary.insert(key("p99_ms"), json!(p99));
    summary.insert(key("lost"), json!(lost));
    summary.insert(key("duplicates"), json!(measured.received.duplicates));
    summary.insert(key("seconds"), json!(measured.end_to_end_seconds));
    let shape = json!({"workload": "pubsub", "qos": args.qos, "messages": args.messages,
        "size": args.size, "inflight": args.inflight});
    // Per message published: the broker took in every one, whether or not it delivered it.
    let published = args.messages as f64;
    finish(
        target,
        summary,
        &measured.spent,
        published,
        "message",
        shape,
    )
}

fn fanout_report(args: &FanoutArgs, mut measured: FanoutMeasured) -> anyhow::Result<()> {
    let target = &args.target;
    let expected = args.messages * args.subscribers as u64;
    let delivered = measured.received.latencies_us.len() as u64;
    let lost = check_loss(target, expected, delivered, "deliveries")?;
    measured.received.latencies_us.sort_unstable();
    let latencies = &measured.received.latencies_us;
    let deliveries_per_s = delivered as f64 / measured.seconds.max(f64::EPSILON);
    let (p50, p99) = (percentile_ms(latencies, 50), percentile_ms(latencies, 99));
    let offered = match args.rate {
        0 => "flat out".to_string(),
        rate => format!("{rate} msg/s"),
    };
    println!(
        "{} (MQTT 3.1.1, rumqttc): fanout QoS {}, {} messages of {} B at {offered} to {} subscribers",
        target.label, args.qos, args.messages, args.size, args.subscribers
    );
    println!(
        "  subscribers connected in s   {:>12.1}",
        measured.connect_seconds
    );
    println!("  deliveries/s                 {deliveries_per_s:>12.0}");
    println!("  latency p50 / p99 ms         {p50:>12.2} / {p99:.2}");
    println!(
        "  lost / duplicates            {lost:>12} / {}",
        measured.received.duplicates
    );
    let mut summary = Map::new();
    let key = |name: &str| format!("{}_{name}", target.label);
    summary.insert(key("deliveries_per_s"), json!(deliveries_per_s.round()));
    summary.insert(key("p50_ms"), json!(p50));
    summary.insert(key("p99_ms"), json!(p99));
    summary.insert(key("lost"), json!(lost));
    summary.insert(key("duplicates"), json!(measured.received.duplicates));
    summary.insert(key("connect_s"), json!(measured.connect_seconds));
    summary.insert(key("seconds"), json!(measured.seconds));
    let shape = json!({"workload": "fanout", "qos": args.qos, "messages": args.messages,
        "subscribers": args.subscribers, "rate": args.rate, "size": args.size});
    finish(
        target,
        summary,
        &measured.spent,
        delivered as f64,
        "delivery",
        shape,
    )
}

/// Adds CPU and memory figures to the summary, the broker's CPU also per `unit` (`units` of
/// them in the run), prints them and the JSON line.
fn finish(
    target: &Target,
    mut summary: Map<String, Value>,
    spent: &Spent,
    units: f64,
    unit: &str,
    shape: Value,
) -> anyhow::Result<()> {
    let key = |name: &str| format!("{}_{name}", target.label);
    let server_cpu_s = spent.server_cpu.map(|cpu| cpu.as_secs_f64());
    let per_unit_us = server_cpu_s.map(|cpu| cpu * 1e6 / units.max(1.0));
    let rss_mib = target
        .server_pid
        .map(process_memory)
        .transpose()?
        .map(|memory| memory.peak_kib as f64 / 1024.0);
    let shown = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{value:.2}"));
    println!("  server CPU s                 {:>12}", shown(server_cpu_s));
    println!("  server CPU µs per {unit:<10} {:>12}", shown(per_unit_us));
    println!("  server peak RSS MiB          {:>12}", shown(rss_mib));
    println!(
        "  bench CPU s                  {:>12.2}",
        spent.bench_cpu.as_secs_f64()
    );
    summary.insert(key("server_cpu_s"), json!(server_cpu_s));
    summary.insert(
        key(&format!("server_cpu_us_per_{unit}")),
        json!(per_unit_us),
    );
    summary.insert(key("rss_mib"), json!(rss_mib));
    summary.insert(key("bench_cpu_s"), json!(spent.bench_cpu.as_secs_f64()));
    if let Value::Object(shape) = shape {
        summary.extend(shape);
    }
    println!("{}", Value::Object(summary));
    Ok(())
}
