//! `wharf-peerbench rabbitmq-topic` and `rabbitmq-fanout`: the `wharf bench topic` workloads
//! against RabbitMQ's topic and fanout exchanges.
//!
//! Topic: for each binding count, a durable topic exchange, a few durable queues and that many
//! bindings made with the same patterns as Wharf's (`binding_pattern`, the formula of
//! crates/cli/src/bench/topic.rs), then persistent messages with keys matching up to three
//! bindings each, published with publisher confirms and a window in flight. Binding creation in
//! RabbitMQ is slow (each durable binding is a Mnesia transaction), so it stops after
//! `--binding-budget-s` and the run reports how many bindings it made. Latency is publish to
//! confirm per message (Wharf's is per batch call). Fanout: a fanout exchange bound to
//! `--fanout-queues` durable queues, each producer publishing one message and awaiting its
//! confirm before the next, like Wharf's one message per call.

use crate::{connect, cpu_time_of, own_cpu_time, percentile_ms};
use anyhow::{bail, Context};
use clap::Args;
use lapin::{
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
    BasicProperties, Channel, ExchangeKind, PublisherConfirm,
};
use serde_json::{json, Map, Value};
use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// Distinct first words of routing keys; the same as Wharf's run.
const REGIONS: u64 = 50;
/// Binding kinds per routing-key id: `*` in the middle, `#` at the end, exact key.
const BINDING_KINDS: u64 = 3;
/// AMQP delivery_mode 2: the broker writes the message to disk before confirming it.
const PERSISTENT: u8 = 2;

#[derive(Debug, Args, Clone)]
pub struct TopicArgs {
    /// AMQP URL of the broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Messages to publish per binding count.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Binding counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,100000")]
    bindings: Vec<u64>,
    #[arg(long, default_value_t = 4)]
    producers: u64,
    /// Accepted for the same command line as Wharf's; AMQP publishes one message per frame.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    #[arg(long, default_value_t = 4)]
    destination_queues: u64,
    /// Concurrent connections creating bindings.
    #[arg(long, default_value_t = 32)]
    setup_connections: u64,
    /// Stop creating bindings after this long and measure with those made.
    #[arg(long, default_value_t = 120)]
    binding_budget_s: u64,
    /// Unconfirmed publishes in flight per producer.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Broker process id, to report its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Args, Clone)]
pub struct FanoutArgs {
    /// AMQP URL of the broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Messages to publish, one confirmed publish at a time per producer.
    #[arg(long, default_value_t = 2_000)]
    fanout_messages: u64,
    #[arg(long, default_value_t = 100)]
    fanout_queues: u64,
    #[arg(long, default_value_t = 4)]
    producers: u64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Broker process id, to report its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What a publish phase sends.
#[derive(Clone)]
struct PublishPlan {
    exchange: String,
    messages: u64,
    producers: u64,
    window: usize,
    body_bytes: usize,
    /// Routing-key ids are drawn from `0..key_ids`.
    key_ids: u64,
}

struct Published {
    seconds: f64,
    latencies_us: Vec<u64>,
}

pub fn topic(args: &TopicArgs) -> anyhow::Result<()> {
    if args.messages == 0 || args.producers == 0 || args.bindings.contains(&0) {
        bail!("--messages, --producers and --bindings must be positive");
    }
    let runtime = runtime()?;
    let server_cpu_before = args.server_pid.map(cpu_time_of).transpose()?;
    let bench_cpu_before = own_cpu_time()?;
    println!(
        "rabbitmq topic exchange (AMQP, lapin): {} persistent messages of {} B per binding count, \
         {} producers x window {}, {} durable queues",
        args.messages, args.body_bytes, args.producers, args.window, args.destination_queues
    );
    println!(
        "  {:>9} {:>9} {:>10} {:>12} {:>12} {:>10} {:>10}",
        "bindings", "made", "setup s", "bindings/s", "msg/s", "p50 ms", "p99 ms"
    );
    let mut summary = Map::new();
    for &bindings in &args.bindings {
        runtime.block_on(topic_run(args, bindings, &mut summary))?;
    }
    let bench_cpu = own_cpu_time()?.saturating_sub(bench_cpu_before);
    let server_cpu = match (args.server_pid, server_cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_time_of(pid)?.saturating_sub(before)),
        _ => None,
    };
    println!("  confirm latency is per message (publish to confirm)");
    finish(
        summary,
        "rabbitmq_topic",
        server_cpu,
        bench_cpu,
        |summary| {
            summary.insert("bindings".into(), json!(args.bindings));
            summary.insert("messages".into(), json!(args.messages));
            summary.insert("window".into(), json!(args.window));
        },
    );
    Ok(())
}

pub fn fanout(args: &FanoutArgs) -> anyhow::Result<()> {
    if args.fanout_messages == 0 || args.producers == 0 || args.fanout_queues == 0 {
        bail!("--fanout-messages, --fanout-queues and --producers must be positive");
    }
    let runtime = runtime()?;
    let server_cpu_before = args.server_pid.map(cpu_time_of).transpose()?;
    let bench_cpu_before = own_cpu_time()?;
    let published = runtime.block_on(fanout_run(args))?;
    let bench_cpu = own_cpu_time()?.saturating_sub(bench_cpu_before);
    let server_cpu = match (args.server_pid, server_cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_time_of(pid)?.saturating_sub(before)),
        _ => None,
    };
    let mut latencies = published.latencies_us;
    latencies.sort_unstable();
    let per_s = args.fanout_messages as f64 / published.seconds.max(f64::EPSILON);
    let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
    println!(
        "rabbitmq fanout exchange to {} durable queues, persistent, one confirmed publish at a \
         time, {} producers: {per_s:.0} publishes/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        args.fanout_queues, args.producers
    );
    let mut summary = Map::new();
    summary.insert(
        "rabbitmq_fanout_publishes_per_s".into(),
        json!(per_s.round()),
    );
    summary.insert("rabbitmq_fanout_p50_ms".into(), json!(p50));
    summary.insert("rabbitmq_fanout_p99_ms".into(), json!(p99));
    finish(
        summary,
        "rabbitmq_fanout",
        server_cpu,
        bench_cpu,
        |summary| {
            summary.insert("fanout_queues".into(), json!(args.fanout_queues));
            summary.insert("fanout_messages".into(), json!(args.fanout_messages));
        },
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints the CPU line and the JSON summary line.
fn finish(
    mut summary: Map<String, Value>,
    label: &str,
    server_cpu: Option<Duration>,
    bench_cpu: Duration,
    extra: impl FnOnce(&mut Map<String, Value>),
) {
    let server_cpu_s = server_cpu.map(|cpu| cpu.as_secs_f64());
    let shown = server_cpu_s.map_or("-".to_string(), |cpu| format!("{cpu:.1}"));
    println!(
        "  server CPU s {shown}, bench CPU s {:.1}",
        bench_cpu.as_secs_f64()
    );
    summary.insert(format!("{label}_server_cpu_s"), json!(server_cpu_s));
    summary.insert(
        format!("{label}_bench_cpu_s"),
        json!(bench_cpu.as_secs_f64()),
    );
    extra(&mut summary);
    println!("{}", Value::Object(summary));
}

async fn topic_run(
    args: &TopicArgs,
    bindings: u64,
    summary: &mut Map<String, Value>,
) -> anyhow::Result<()> {
    let prefix = format!(
        "bench-topic-{}-{}",
        std::process::id(),
        crate::unix_micros()
    );
    let admin = connect(&args.url).await?;
    let channel = admin.create_channel().await?;
    declare_exchange(&channel, &prefix, ExchangeKind::Topic).await?;
    let queues = declare_queues(&channel, &prefix, args.destination_queues).await?;
    let started = Instant::now();
    let budget = Duration::from_secs(args.binding_budget_s);
    let made = bind_all(args, &prefix, &queues, bindings, budget).await?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let plan = PublishPlan {
        exchange: prefix.clone(),
        messages: args.messages,
        producers: args.producers,
        window: args.window,
        body_bytes: args.body_bytes,
        key_ids: made.div_ceil(BINDING_KINDS).max(1),
    };
    let mut published = publish_all(&args.url, plan).await?;
    published.latencies_us.sort_unstable();
    let latencies = &published.latencies_us;
    let per_s = args.messages as f64 / published.seconds.max(f64::EPSILON);
    let bindings_per_s = made as f64 / setup_seconds.max(f64::EPSILON);
    let (p50, p99) = (percentile_ms(latencies, 50), percentile_ms(latencies, 99));
    let capped = if made < bindings { "  (capped)" } else { "" };
    println!(
        "  {bindings:>9} {made:>9} {setup_seconds:>10.1} {bindings_per_s:>12.0} {per_s:>12.0} \
         {p50:>10.2} {p99:>10.2}{capped}"
    );
    let key = |name: &str| format!("rabbitmq_topic_{bindings}_{name}");
    summary.insert(key("msgs_per_s"), json!(per_s.round()));
    summary.insert(key("p50_ms"), json!(p50));
    summary.insert(key("p99_ms"), json!(p99));
    summary.insert(key("setup_s"), json!(setup_seconds));
    summary.insert(key("bindings_per_s"), json!(bindings_per_s.round()));
    summary.insert(key("bindings_made"), json!(made));
    channel
        .exchange_delete(prefix.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    delete_queues(&channel, &queues).await?;
    let _ = admin.close(200, "done".into()).await;
    Ok(())
}

async fn fanout_run(args: &FanoutArgs) -> anyhow::Result<Published> {
    let prefix = format!(
        "bench-fanout-{}-{}",
        std::process::id(),
        crate::unix_micros()
    );
    let admin = connect(&args.url).await?;
    let channel = admin.create_channel().await?;
    declare_exchange(&channel, &prefix, ExchangeKind::Fanout).await?;
    let queues = declare_queues(&channel, &prefix, args.fanout_queues).await?;
    for queue in &queues {
        channel
            .queue_bind(
                queue.as_str().into(),
                prefix.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let plan = PublishPlan {
        exchange: prefix.clone(),
        messages: args.fanout_messages,
        producers: args.producers,
        window: 1,
        body_bytes: args.body_bytes,
        key_ids: 1,
    };
    let published = publish_all(&args.url, plan).await?;
    channel
        .exchange_delete(prefix.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    delete_queues(&channel, &queues).await?;
    let _ = admin.close(200, "done".into()).await;
    Ok(published)
}

async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> anyhow::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .with_context(|| format!("cannot declare exchange {name}"))
}

async fn declare_queues(
    channel: &Channel,
    prefix: &str,
    count: u64,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for index in 0..count {
        let name = format!("{prefix}-q{index}");
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot declare queue {name}"))?;
        names.push(name);
    }
    Ok(names)
}

async fn delete_queues(channel: &Channel, queues: &[String]) -> anyhow::Result<()> {
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    Ok(())
}

/// Makes bindings `0..count` over concurrent channels until done or `budget` passes; returns
/// how many were made (a prefix `0..made` when nothing failed).
async fn bind_all(
    args: &TopicArgs,
    exchange: &str,
    queues: &[String],
    count: u64,
    budget: Duration,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicU64::new(0));
    let out_of_time = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + budget;
    let queues: Arc<[String]> = queues.into();
    let mut tasks = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..args.setup_connections.clamp(1, count) {
        let connection = connect(&args.url).await?;
        let channel = connection.create_channel().await?;
        connections.push(connection);
        let (next, made, out_of_time) = (next.clone(), made.clone(), out_of_time.clone());
        let (queues, exchange) = (queues.clone(), exchange.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                if Instant::now() >= deadline {
                    out_of_time.store(true, Ordering::Relaxed);
                    return Ok::<(), anyhow::Error>(());
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok(());
                }
                let queue = &queues[(index % queues.len() as u64) as usize];
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.as_str().into(),
                        binding_pattern(index).as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                made.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        if let Err(error) = task.await? {
            errors.push(format!("{error:#}"));
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        bail!("cannot bind: {}", errors.join("; "));
    }
    close_all(connections).await;
    Ok(made.load(Ordering::Relaxed))
}

/// Closes connections whose tasks are done. Best effort: a channel its task dropped may still
/// be closing, which lapin reports as an error, and the figures are already taken.
async fn close_all(connections: Vec<lapin::Connection>) {
    for connection in connections {
        let _ = connection.close(200, "done".into()).await;
    }
}

/// Runs the plan's producers on their own connections.
async fn publish_all(url: &str, plan: PublishPlan) -> anyhow::Result<Published> {
    let mut tasks = Vec::new();
    let mut connections = Vec::new();
    for index in 0..plan.producers {
        let count =
            plan.messages / plan.producers + u64::from(index < plan.messages % plan.producers);
        let connection = connect(url).await?;
        let channel = connection.create_channel().await?;
        connections.push(connection);
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        tasks.push(tokio::spawn(publish(channel, plan.clone(), index, count)));
    }
    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(plan.messages as usize);
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    close_all(connections).await;
    Ok(Published {
        seconds,
        latencies_us,
    })
}

/// Publishes `count` persistent messages with up to `window` unconfirmed; returns publish to
/// confirm latencies.
async fn publish(
    channel: Channel,
    plan: PublishPlan,
    producer: u64,
    count: u64,
) -> anyhow::Result<Vec<u64>> {
    let properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
    let body = vec![b'x'; plan.body_bytes];
    let mut in_flight: VecDeque<(Instant, PublisherConfirm)> = VecDeque::new();
    let mut latencies_us = Vec::with_capacity(count as usize);
    for sent in 0..count {
        if in_flight.len() >= plan.window.max(1) {
            if let Some((at, confirm)) = in_flight.pop_front() {
                latencies_us.push(check_confirm(at, confirm).await?);
            }
        }
        let id = spread((producer << 40) | sent) % plan.key_ids;
        let confirm = channel
            .basic_publish(
                plan.exchange.as_str().into(),
                routing_key(id).as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await?;
        in_flight.push_back((Instant::now(), confirm));
    }
    while let Some((at, confirm)) = in_flight.pop_front() {
        latencies_us.push(check_confirm(at, confirm).await?);
    }
    Ok(latencies_us)
}

async fn check_confirm(at: Instant, confirm: PublisherConfirm) -> anyhow::Result<u64> {
    if !confirm.await?.is_ack() {
        bail!("the broker nacked a publish");
    }
    Ok(at.elapsed().as_micros() as u64)
}

/// Binding `index`'s pattern; the formula of crates/cli/src/bench/topic.rs.
fn binding_pattern(index: u64) -> String {
    let id = index / BINDING_KINDS;
    let region = id % REGIONS;
    match index % BINDING_KINDS {
        0 => format!("region{region}.*.type{id}"),
        1 => format!("region{region}.host{id}.#"),
        _ => format!("region{region}.host{id}.type{id}"),
    }
}

/// The routing key of id `id`: matched by that id's (up to) three bindings.
fn routing_key(id: u64) -> String {
    format!("region{}.host{id}.type{id}", id % REGIONS)
}

/// splitmix64, as Wharf's run draws its keys.
fn spread(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
