//! `wharf bench topic`: publishing through a topic's routing table to durable queues over HTTP,
//! the shape `bench/topic-vs-peers.sh` also drives RabbitMQ's topic and fanout exchanges with
//! (crates/peerbench).
//!
//! For each `--bindings` count the benchmark creates a topic, a few durable queues and that many
//! bindings spread over them with `--setup-connections` concurrent connections (timed: binding
//! setup is part of what a routing table costs), then `--producers` tasks publish 1 KiB messages
//! in batches of `--batch` with routing keys that match up to three bindings each. A second
//! scenario publishes one message per call to a fanout topic bound to `--fanout-queues` durable
//! queues. Latencies are per publish call, send to confirmed reply. Without `--server` the
//! benchmark starts `wharf serve` as a child process, as `wharf bench queue` does.

use super::{
    http1::{Connection, Endpoint},
    process_cpu_time,
    queue::{parse, remote_endpoint, unix_micros, with_server_log},
    server_process::ServerProcess,
    BenchError, Remote,
};
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// Distinct first words of routing keys: a trie level wide enough to matter, narrow enough that
/// every first word carries many bindings.
const REGIONS: u64 = 50;
/// Binding kinds per routing-key id: `*` in the middle, `#` at the end, exact key.
const BINDING_KINDS: u64 = 3;

#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Messages to publish per binding count.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Binding counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,100000")]
    bindings: Vec<u64>,
    /// Publisher tasks, one connection each.
    #[arg(long, default_value_t = 4)]
    producers: u64,
    /// Messages per publish request on the routing scenario.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Size of each message body.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Durable queues the bindings point at; queue count stays small whatever the bindings.
    #[arg(long, default_value_t = 4)]
    destination_queues: u64,
    /// Concurrent connections creating bindings.
    #[arg(long, default_value_t = 32)]
    setup_connections: u64,
    /// Durable queues bound to the fanout topic.
    #[arg(long, default_value_t = 100)]
    fanout_queues: u64,
    /// Messages published (one per call) to the fanout topic; 0 skips the scenario.
    #[arg(long, default_value_t = 2_000)]
    fanout_messages: u64,
}

/// `server`: the URL given with `--server` or `WHARF_SERVER`; `None` starts a child server.
pub fn run(args: &TopicArgs, server: Option<&Remote<'_>>) -> Result<(), BenchError> {
    let positive = [
        args.messages,
        args.producers,
        args.batch,
        args.destination_queues,
        args.setup_connections,
        args.fanout_queues,
    ];
    if positive.contains(&0) || args.bindings.is_empty() || args.bindings.contains(&0) {
        return Err(BenchError::Usage(
            "--messages, --bindings, --producers, --batch, --destination-queues, \
             --setup-connections and --fanout-queues must be positive"
                .into(),
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
    let (routing, fanout) = result.map_err(|error| target.explain(error))?;
    target.stop();
    report(args, &routing, fanout.as_ref(), &usage);
    Ok(())
}

/// The server a benchmark drives: a child it started, or one the user named.
pub(super) struct Target {
    child: Option<ServerProcess>,
    pub endpoint: Endpoint,
}

/// CPU time used during a run; the server's only when it is our child.
pub(super) struct Usage {
    pub bench_cpu: Duration,
    pub server_cpu: Option<Duration>,
}

impl Target {
    pub fn start(server: Option<&Remote<'_>>) -> Result<Target, BenchError> {
        match server {
            Some(remote) => Ok(Target {
                child: None,
                endpoint: remote_endpoint(remote)?,
            }),
            None => {
                let child = ServerProcess::start()?;
                let endpoint = Endpoint::new(child.address, None)?;
                Ok(Target {
                    child: Some(child),
                    endpoint,
                })
            }
        }
    }

    pub fn usage_start(&self) -> Result<Usage, BenchError> {
        Ok(Usage {
            bench_cpu: process_cpu_time()?,
            server_cpu: self
                .child
                .as_ref()
                .map(ServerProcess::cpu_time)
                .transpose()?,
        })
    }

    pub fn usage_end(&self, start: Usage) -> Result<Usage, BenchError> {
        let server_cpu = match (&self.child, start.server_cpu) {
            (Some(child), Some(before)) => Some(child.cpu_time()?.saturating_sub(before)),
            _ => None,
        };
        Ok(Usage {
            bench_cpu: process_cpu_time()?.saturating_sub(start.bench_cpu),
            server_cpu,
        })
    }

    /// Adds the child server's log to an error, where there is a child.
    pub fn explain(&self, error: BenchError) -> BenchError {
        with_server_log(error, self.child.as_ref())
    }

    pub fn stop(self) {
        if let Some(child) = self.child {
            child.stop();
        }
    }
}

/// One binding count's figures.
#[derive(Debug)]
struct RoutingRun {
    bindings: u64,
    setup_seconds: f64,
    publish_seconds: f64,
    latencies_us: Vec<u64>,
    routed: u64,
}

/// The fanout scenario's figures.
#[derive(Debug)]
struct FanoutRun {
    publish_seconds: f64,
    latencies_us: Vec<u64>,
    routed: u64,
}

/// What the publishers send: `batch` messages per call, keys from `key`.
#[derive(Clone)]
struct PublishPlan {
    path: String,
    messages: u64,
    producers: u64,
    batch: u64,
    body_base64: Arc<str>,
    /// Routing-key ids are drawn from `0..key_ids`; see [`routing_key`].
    key_ids: u64,
    /// Messages the server confirmed so far, for the progress bar.
    published: Arc<AtomicU64>,
}

async fn drive(
    args: &TopicArgs,
    endpoint: &Endpoint,
) -> Result<(Vec<RoutingRun>, Option<FanoutRun>), BenchError> {
    let body_base64: Arc<str> = base64::engine::general_purpose::STANDARD
        .encode(vec![b'x'; args.body_bytes])
        .into();
    let mut routing = Vec::new();
    for &bindings in &args.bindings {
        routing.push(drive_routing(args, endpoint, bindings, body_base64.clone()).await?);
    }
    let fanout = match args.fanout_messages {
        0 => None,
        _ => Some(drive_fanout(args, endpoint, body_base64).await?),
    };
    Ok((routing, fanout))
}

async fn drive_routing(
    args: &TopicArgs,
    endpoint: &Endpoint,
    bindings: u64,
    body_base64: Arc<str>,
) -> Result<RoutingRun, BenchError> {
    let prefix = format!("bench-topic-{}-{}", std::process::id(), unix_micros());
    let mut admin = Connection::open(endpoint).await?;
    let topic_path = format!("/v1/topics/{prefix}");
    put(&mut admin, &topic_path, json!({"kind": "topic"})).await?;
    let queues = create_queues(&mut admin, &prefix, args.destination_queues).await?;
    let setup_started = Instant::now();
    let queue_names = Arc::new(queues.clone());
    let make_binding = move |index: u64| {
        json!({
            "pattern": binding_pattern(index),
            "syntax": "amqp",
            "queue": queue_names[(index % queue_names.len() as u64) as usize],
        })
    };
    bind_all(
        endpoint,
        &topic_path,
        bindings,
        args.setup_connections,
        make_binding,
    )
    .await?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let plan = PublishPlan {
        path: format!("{topic_path}/publish"),
        messages: args.messages,
        producers: args.producers,
        batch: args.batch,
        body_base64,
        key_ids: bindings.div_ceil(BINDING_KINDS),
        published: Arc::new(AtomicU64::new(0)),
    };
    let (publish_seconds, latencies_us, routed) = publish_all(endpoint, plan).await?;
    clean_up(&mut admin, &topic_path, &queues).await;
    Ok(RoutingRun {
        bindings,
        setup_seconds,
        publish_seconds,
        latencies_us,
        routed,
    })
}

async fn drive_fanout(
    args: &TopicArgs,
    endpoint: &Endpoint,
    body_base64: Arc<str>,
) -> Result<FanoutRun, BenchError> {
    let prefix = format!("bench-fanout-{}-{}", std::process::id(), unix_micros());
    let mut admin = Connection::open(endpoint).await?;
    let topic_path = format!("/v1/topics/{prefix}");
    put(&mut admin, &topic_path, json!({"kind": "fanout"})).await?;
    let queues = create_queues(&mut admin, &prefix, args.fanout_queues).await?;
    let queue_names = Arc::new(queues.clone());
    // Fanout topics ignore the pattern; `#` says "everything" to a reader.
    let make_binding = move |index: u64| json!({"pattern": "#", "syntax": "amqp", "queue": queue_names[index as usize]});
    bind_all(
        endpoint,
        &topic_path,
        args.fanout_queues,
        args.setup_connections,
        make_binding,
    )
    .await?;
    let plan = PublishPlan {
        path: format!("{topic_path}/publish"),
        messages: args.fanout_messages,
        producers: args.producers,
        batch: 1,
        body_base64,
        key_ids: 1,
        published: Arc::new(AtomicU64::new(0)),
    };
    let (publish_seconds, latencies_us, routed) = publish_all(endpoint, plan).await?;
    clean_up(&mut admin, &topic_path, &queues).await;
    Ok(FanoutRun {
        publish_seconds,
        latencies_us,
        routed,
    })
}

/// Binding `index`'s pattern. Bindings come in threes per id (`index / 3`): a `*` in the
/// middle, a `#` at the end and the exact key, so the key of an id matches all three. The id is
/// in every pattern, so no two bindings are the same and the table really has `--bindings`
/// entries. `crates/peerbench` builds RabbitMQ's bindings with the same formula.
pub(super) fn binding_pattern(index: u64) -> String {
    let id = index / BINDING_KINDS;
    let region = id % REGIONS;
    match index % BINDING_KINDS {
        0 => format!("region{region}.*.type{id}"),
        1 => format!("region{region}.host{id}.#"),
        _ => format!("region{region}.host{id}.type{id}"),
    }
}

/// The routing key of id `id`: matched by that id's (up to) three bindings.
pub(super) fn routing_key(id: u64) -> String {
    format!("region{}.host{id}.type{id}", id % REGIONS)
}

/// A cheap, well-spread pseudo-random number from a counter (splitmix64).
fn spread(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn put(connection: &mut Connection, path: &str, body: Value) -> Result<(), BenchError> {
    connection
        .request_ok(Method::PUT, path, Bytes::from(body.to_string()))
        .await
        .map(|_| ())
}

/// Creates `count` durable queues named after `prefix`; returns their names.
async fn create_queues(
    admin: &mut Connection,
    prefix: &str,
    count: u64,
) -> Result<Vec<String>, BenchError> {
    let mut names = Vec::new();
    for index in 0..count {
        let name = format!("{prefix}-q{index}");
        put(admin, &format!("/v1/queues/{name}"), json!({})).await?;
        names.push(name);
    }
    Ok(names)
}

/// Adds bindings `0..count` over `connections` concurrent connections.
async fn bind_all(
    endpoint: &Endpoint,
    topic_path: &str,
    count: u64,
    connections: u64,
    make_binding: impl Fn(u64) -> Value + Send + Sync + 'static,
) -> Result<(), BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let make_binding = Arc::new(make_binding);
    let path = Arc::<str>::from(format!("{topic_path}/bindings"));
    let mut tasks = Vec::new();
    for _ in 0..connections.min(count) {
        let mut connection = Connection::open(endpoint).await?;
        let (next, make_binding, path) = (next.clone(), make_binding.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<(), BenchError>(());
                }
                let body = Bytes::from(make_binding(index).to_string());
                connection.request_ok(Method::POST, &path, body).await?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(task_failed)??;
    }
    Ok(())
}

/// Runs the plan's publishers; returns (seconds, per-call latencies, messages routed).
async fn publish_all(
    endpoint: &Endpoint,
    plan: PublishPlan,
) -> Result<(f64, Vec<u64>, u64), BenchError> {
    let failed = Arc::new(AtomicBool::new(false));
    let _bar = super::CounterBar::spawn(
        "bench topic",
        plan.messages,
        "published",
        plan.published.clone(),
    );
    let mut tasks = Vec::new();
    for index in 0..plan.producers {
        let count =
            plan.messages / plan.producers + u64::from(index < plan.messages % plan.producers);
        let connection = Connection::open(endpoint).await?;
        let task = publish(connection, plan.clone(), index, count, failed.clone());
        tasks.push(tokio::spawn(task));
    }
    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(plan.messages.div_ceil(plan.batch) as usize);
    let mut routed = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await.map_err(task_failed).and_then(|result| result) {
            Ok((latencies, task_routed)) => {
                latencies_us.extend(latencies);
                routed += task_routed;
            }
            Err(error) => {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok((started.elapsed().as_secs_f64(), latencies_us, routed)),
    }
}

/// One publisher: `count` messages in batches; returns (per-call latencies, routed copies).
async fn publish(
    mut connection: Connection,
    plan: PublishPlan,
    producer: u64,
    count: u64,
    failed: Arc<AtomicBool>,
) -> Result<(Vec<u64>, u64), BenchError> {
    let mut latencies_us = Vec::with_capacity(count.div_ceil(plan.batch) as usize);
    let mut routed = 0;
    let mut sent = 0;
    let mut request = String::new();
    while sent < count && !failed.load(Ordering::Relaxed) {
        let size = (count - sent).min(plan.batch);
        request.clear();
        request.push_str("{\"messages\":[");
        for index in 0..size {
            if index > 0 {
                request.push(',');
            }
            let id = spread((producer << 40) | (sent + index)) % plan.key_ids;
            request.push_str(&format!(
                "{{\"routing_key\":\"{}\",\"body_base64\":\"{}\"}}",
                routing_key(id),
                plan.body_base64
            ));
        }
        request.push_str("]}");
        let call_started = Instant::now();
        let reply = connection
            .request_ok(Method::POST, &plan.path, Bytes::from(request.clone()))
            .await?;
        latencies_us.push(call_started.elapsed().as_micros() as u64);
        routed += count_routed(&parse(&reply, &plan.path)?, size, &plan.path)?;
        sent += size;
        plan.published.fetch_add(size, Ordering::Relaxed);
    }
    Ok((latencies_us, routed))
}

/// Checks a publish reply confirmed `size` messages; returns the copies routed.
fn count_routed(reply: &Value, size: u64, path: &str) -> Result<u64, BenchError> {
    let messages = reply["messages"].as_array().map_or(&[][..], Vec::as_slice);
    if messages.len() as u64 != size {
        return Err(BenchError::Http {
            request: format!("POST {path}"),
            detail: format!("published {size} messages, {} confirmed", messages.len()),
        });
    }
    // `routed` is a count; accept a list of destinations as well.
    Ok(messages
        .iter()
        .map(|message| match &message["routed"] {
            Value::Array(destinations) => destinations.len() as u64,
            other => other.as_u64().unwrap_or(0),
        })
        .sum())
}

/// Deletes what a scenario created so the next one starts on an empty server. Failures are
/// ignored: the figures are already taken.
async fn clean_up(admin: &mut Connection, topic_path: &str, queues: &[String]) {
    let _ = admin
        .request(Method::DELETE, topic_path, Bytes::new())
        .await;
    for queue in queues {
        let path = format!("/v1/queues/{queue}");
        let _ = admin.request(Method::DELETE, &path, Bytes::new()).await;
    }
}

fn task_failed(error: tokio::task::JoinError) -> BenchError {
    BenchError::Server(format!("a load task failed: {error}"))
}

/// The `percent` percentile of sorted microseconds, in milliseconds (0 when empty).
pub(super) fn percentile_ms(sorted_us: &[u64], percent: usize) -> f64 {
    match sorted_us.len() {
        0 => 0.0,
        len => sorted_us[(len * percent / 100).min(len - 1)] as f64 / 1000.0,
    }
}

fn report(args: &TopicArgs, routing: &[RoutingRun], fanout: Option<&FanoutRun>, usage: &Usage) {
    println!(
        "wharf bench topic: {} messages of {} B per binding count, {} producers x batch {}, \
         {} destination queues, durable",
        args.messages, args.body_bytes, args.producers, args.batch, args.destination_queues
    );
    println!(
        "  {:>9} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12}",
        "bindings", "setup s", "bindings/s", "msg/s", "p50 ms", "p99 ms", "routed/msg"
    );
    let mut summary = serde_json::Map::new();
    for run in routing {
        let mut latencies = run.latencies_us.clone();
        latencies.sort_unstable();
        let per_s = args.messages as f64 / run.publish_seconds.max(f64::EPSILON);
        let bindings_per_s = run.bindings as f64 / run.setup_seconds.max(f64::EPSILON);
        let routed_per_message = run.routed as f64 / args.messages as f64;
        let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
        println!(
            "  {:>9} {:>10.1} {:>12.0} {:>12.0} {p50:>10.2} {p99:>10.2} {routed_per_message:>12.2}",
            run.bindings, run.setup_seconds, bindings_per_s, per_s
        );
        let key = |name: &str| format!("wharf_topic_{}_{name}", run.bindings);
        summary.insert(key("msgs_per_s"), json!(per_s.round()));
        summary.insert(key("p50_ms"), json!(p50));
        summary.insert(key("p99_ms"), json!(p99));
        summary.insert(key("setup_s"), json!(run.setup_seconds));
        summary.insert(key("bindings_per_s"), json!(bindings_per_s.round()));
        summary.insert(key("routed_per_msg"), json!(routed_per_message));
    }
    if let Some(fanout) = fanout {
        report_fanout(args, fanout, &mut summary);
    }
    let server_cpu_s = usage.server_cpu.map(|cpu| cpu.as_secs_f64());
    let shown = server_cpu_s.map_or("-".to_string(), |cpu| format!("{cpu:.1}"));
    println!(
        "  server CPU s {shown}, bench CPU s {:.1}",
        usage.bench_cpu.as_secs_f64()
    );
    summary.insert("wharf_topic_server_cpu_s".into(), json!(server_cpu_s));
    summary.insert(
        "wharf_topic_bench_cpu_s".into(),
        json!(usage.bench_cpu.as_secs_f64()),
    );
    summary.insert("bindings".into(), json!(args.bindings));
    summary.insert("messages".into(), json!(args.messages));
    summary.insert("producers".into(), json!(args.producers));
    summary.insert("batch".into(), json!(args.batch));
    summary.insert("body_bytes".into(), json!(args.body_bytes));
    summary.insert("fanout_queues".into(), json!(args.fanout_queues));
    summary.insert("fanout_messages".into(), json!(args.fanout_messages));
    println!("{}", Value::Object(summary));
}

fn report_fanout(
    args: &TopicArgs,
    fanout: &FanoutRun,
    summary: &mut serde_json::Map<String, Value>,
) {
    let mut latencies = fanout.latencies_us.clone();
    latencies.sort_unstable();
    let per_s = args.fanout_messages as f64 / fanout.publish_seconds.max(f64::EPSILON);
    let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
    let routed_per_message = fanout.routed as f64 / args.fanout_messages as f64;
    println!(
        "  fanout to {} durable queues, one message per call, {} producers: \
         {per_s:.0} publishes/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {routed_per_message:.1} copies/msg",
        args.fanout_queues, args.producers
    );
    summary.insert("wharf_fanout_publishes_per_s".into(), json!(per_s.round()));
    summary.insert("wharf_fanout_p50_ms".into(), json!(p50));
    summary.insert("wharf_fanout_p99_ms".into(), json!(p99));
    summary.insert(
        "wharf_fanout_routed_per_msg".into(),
        json!(routed_per_message),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_of_an_id_matches_its_three_bindings_and_only_theirs() {
        let key = routing_key(7);
        let words: Vec<&str> = key.split('.').collect();
        let matches = |pattern: &str| {
            let parts: Vec<&str> = pattern.split('.').collect();
            match parts.last() {
                Some(&"#") => words.starts_with(&parts[..parts.len() - 1]),
                _ => {
                    parts.len() == words.len()
                        && parts.iter().zip(&words).all(|(p, w)| *p == "*" || p == w)
                }
            }
        };
        let matched: Vec<u64> = (0..300)
            .filter(|&index| matches(&binding_pattern(index)))
            .collect();
        assert_eq!(matched, [21, 22, 23]);
    }
}
