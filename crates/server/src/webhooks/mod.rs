//! The webhook dispatcher: a push consumer per enabled endpoint that POSTs each message,
//! signed by the Standard Webhooks rules, and settles it by the answer.
//!
//! The engine keeps the endpoints and their queues (`wharf_engine::webhooks`). Here, one
//! supervisor follows the engine's endpoint changes and runs a worker per enabled endpoint.
//! A worker holds a consumer with credit [`Settings::concurrency`] and runs that many
//! attempts at once. A 2xx acks the message; `410 Gone` disables the endpoint and returns the
//! message; any other failure nacks it with the retry schedule's next delay (with jitter), and
//! once the schedule is spent the queue dead-letters it. A circuit breaker stops an endpoint
//! that keeps failing: after [`Settings::breaker_failures`] failures in a row it waits
//! (doubling from [`Settings::breaker_open`] up to [`Settings::breaker_open_max`]), then lets
//! one attempt through alone; a success closes it. An endpoint that has failed without a
//! success for [`Settings::disable_after`] is disabled.

pub mod attempts;
mod deliver;
mod guard;
pub mod metrics;
mod signature;

use attempts::{Attempt, AttemptLog, Outcome};
use bytes::Bytes;
use deliver::{Answer, Outgoing};
use serde_json::value::RawValue;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::{
    sync::{mpsc, watch},
    task::{JoinHandle, JoinSet},
};
use wharf_engine::{
    broker::{api::Delivery, ConsumeRequest, Consumer, NackAction},
    webhooks::{endpoint_queue, secret_bytes, Endpoint, DELIVERY_LEASE},
    Engine,
};
use wharf_model::message::Message;

/// How deliveries are made; `[webhooks]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connect to private, loopback, link-local and metadata addresses too.
    pub allow_private: bool,
    /// Resolving and connecting, each.
    pub connect_timeout: Duration,
    /// From the request's first byte to the response's last one read.
    pub response_timeout: Duration,
    /// Response body bytes read at most (the log keeps the first 256).
    pub response_bytes_max: usize,
    /// Attempts in flight per endpoint.
    pub concurrency: usize,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub breaker_open_max: Duration,
    pub disable_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            response_bytes_max: 64 * 1024,
            concurrency: 8,
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
            breaker_open_max: Duration::from_secs(120),
            disable_after: Duration::from_secs(5 * 24 * 60 * 60),
        }
    }
}

/// What the API shares with the dispatcher.
#[derive(Debug, Default)]
pub struct Webhooks {
    pub settings: Settings,
    pub attempts: AttemptLog,
}

/// Runs the dispatcher until the engine closes (or the task is aborted).
pub async fn run(engine: Engine, shared: Arc<Webhooks>) {
    let mut changes = engine.webhook_changes();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    loop {
        let endpoints: HashMap<String, Endpoint> = engine.webhook_endpoints().into_iter().collect();
        workers.retain(|id, worker| {
            let keep = endpoints.get(id) == Some(&worker.endpoint) && worker.endpoint.enabled;
            if !keep {
                let _ = worker.stop.send(true);
            }
            keep
        });
        for (id, endpoint) in endpoints {
            if endpoint.enabled && !workers.contains_key(&id) {
                let (stop, stopped) = watch::channel(false);
                let task = run_endpoint(
                    engine.clone(),
                    id.clone(),
                    endpoint.clone(),
                    shared.clone(),
                    stopped,
                );
                tokio::spawn(task);
                workers.insert(id, Worker { endpoint, stop });
            }
        }
        if changes.changed().await.is_err() {
            break;
        }
    }
    for worker in workers.values() {
        let _ = worker.stop.send(true);
    }
}

struct Worker {
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
}

/// Delivers one endpoint's queue until told to stop: then finishes the attempts under way and
/// returns the deliveries it had not begun.
async fn run_endpoint(
    engine: Engine,
    id: String,
    endpoint: Endpoint,
    shared: Arc<Webhooks>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = &shared.settings;
    let Some(mut consumer) = attach(&engine, &id, settings).await else {
        return;
    };
    let (target, acker) = Target::new(&engine, &id, endpoint);
    let target = Arc::new(target);
    let mut breaker = Breaker::new(settings);
    let mut pacer = target.endpoint.rate_limit_per_s.map(Pacer::new);
    let mut running: JoinSet<Outcome> = JoinSet::new();
    loop {
        if let Some(wait) = breaker.wait(tokio::time::Instant::now()) {
            match wait_while_open(
                wait,
                &mut breaker,
                &mut running,
                &engine,
                &target,
                &mut stop,
            )
            .await
            {
                true => break,
                false => continue,
            }
        }
        let full =
            running.len() >= settings.concurrency || (breaker.probing() && !running.is_empty());
        let delivery = tokio::select! {
            // Results first: one that disables the endpoint stops the worker before it takes
            // another delivery.
            biased;
            Some(result) = running.join_next(), if !running.is_empty() => {
                match count_result(&mut breaker, result, &engine, &target).await {
                    true => break,
                    false => continue,
                }
            }
            delivery = consumer.next(), if !full => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
            _ = stop.changed() => break,
        };
        if let Some(pacer) = &mut pacer {
            pacer.wait().await;
        }
        running.spawn(deliver_one(
            engine.clone(),
            target.clone(),
            delivery,
            shared.clone(),
        ));
    }
    while running.join_next().await.is_some() {}
    if engine.webhook_endpoint(&id).is_err() {
        // Deleted: attempts that ended after the delete handler cleared the log go too.
        shared.attempts.forget(&id);
    }
    // The acks first, then the consumer's leases go back (when it is dropped, below).
    drop(target);
    let _ = acker.await;
    drop(consumer);
}

async fn attach(engine: &Engine, id: &str, settings: &Settings) -> Option<Consumer> {
    let request = ConsumeRequest {
        credit: settings.concurrency,
        lease: Some(DELIVERY_LEASE),
    };
    match engine.consume(&endpoint_queue(id), request).await {
        Ok(consumer) => Some(consumer),
        Err(error) => {
            tracing::error!(endpoint = %id, %error, "webhook endpoint cannot consume its queue");
            None
        }
    }
}

/// While the circuit is open: lets the attempts under way end, then waits `wait` for the
/// probe. True when the worker is to stop (told to, or its endpoint was disabled).
async fn wait_while_open(
    wait: Duration,
    breaker: &mut Breaker,
    running: &mut JoinSet<Outcome>,
    engine: &Engine,
    target: &Target,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut stopped = false;
    while let Some(result) = running.join_next().await {
        stopped |= count_result(breaker, result, engine, target).await;
    }
    if stopped {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        _ = stop.changed() => true,
    }
}

/// An endpoint as its worker sends to it.
struct Target {
    id: String,
    queue: String,
    endpoint: Endpoint,
    url: Option<url::Url>,
    connections: deliver::Connections,
    /// Receipts of delivered messages, for the [`acker`].
    acks: mpsc::UnboundedSender<String>,
}

impl Target {
    /// The target and its acker, which ends once the target is dropped and its acks written.
    fn new(engine: &Engine, id: &str, endpoint: Endpoint) -> (Target, JoinHandle<()>) {
        let (acks, receipts) = mpsc::unbounded_channel();
        let acker = tokio::spawn(acker(engine.clone(), id.to_string(), receipts));
        let target = Target {
            id: id.to_string(),
            queue: endpoint_queue(id),
            url: url::Url::parse(&endpoint.url).ok(),
            endpoint,
            connections: deliver::Connections::default(),
            acks,
        };
        (target, acker)
    }
}

/// Acks delivered messages, together: whatever came in while one ack was written goes in the
/// next, so concurrent deliveries share the write and its fsync.
async fn acker(engine: Engine, id: String, mut receipts: mpsc::UnboundedReceiver<String>) {
    let queue = endpoint_queue(&id);
    let mut batch = Vec::new();
    while receipts.recv_many(&mut batch, ACK_BATCH_MAX).await > 0 {
        if let Err(error) = engine.ack(&queue, &batch).await {
            tracing::warn!(endpoint = %id, %error, "acking webhook deliveries failed; they will be sent again");
        }
        batch.clear();
    }
}

/// Most receipts in one ack.
const ACK_BATCH_MAX: usize = 1_000;

/// One attempt of one delivery, settled and logged; what came of it.
async fn deliver_one(
    engine: Engine,
    target: Arc<Target>,
    delivery: Delivery,
    shared: Arc<Webhooks>,
) -> Outcome {
    let now_ms = engine.clock().now();
    let message = &delivery.message;
    let answer = match &target.url {
        Some(url) => {
            let outgoing = outgoing(&target.endpoint, url.clone(), message, now_ms);
            deliver::attempt(&outgoing, &shared.settings, &target.connections).await
        }
        None => Answer {
            status: None,
            error: Some("the endpoint's URL does not parse".into()),
            body_head: String::new(),
            latency: Duration::ZERO,
            address: None,
        },
    };
    let (outcome, next_attempt_at_ms) = settle(&engine, &target, &delivery, &answer).await;
    let attempt = Attempt {
        endpoint: target.id.clone(),
        message_id: message.id.clone(),
        attempt: delivery.delivery_count,
        at_ms: now_ms,
        status: answer.status,
        latency_ms: answer.latency.as_millis() as u64,
        error: answer.error.clone(),
        response: answer.body_head.clone(),
        address: answer.address.map(|address| address.to_string()),
        outcome,
        next_attempt_at_ms,
    };
    shared.attempts.record(&target.id, attempt);
    metrics::attempt(outcome, answer.latency);
    outcome
}

/// Acks, returns or retries the delivery by the answer.
async fn settle(
    engine: &Engine,
    target: &Target,
    delivery: &Delivery,
    answer: &Answer,
) -> (Outcome, Option<u64>) {
    let receipts = [delivery.receipt.clone()];
    let queue = &target.queue;
    if answer.succeeded() {
        // The acker ends only after every target is dropped: it is there to take this.
        let _ = target.acks.send(delivery.receipt.clone());
        return (Outcome::Delivered, None);
    }
    let error = match (answer.status, &answer.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error.clone(),
        (None, None) => "no answer".to_string(),
    };
    if answer.status == Some(410) {
        // No nack: the worker stops on this outcome, and its consumer going away returns the
        // lease, so the message waits, ready, for the endpoint to be enabled again.
        let reason = format!("{} answered 410 Gone", target.endpoint.url);
        disable(engine, target, &reason).await;
        return (Outcome::EndpointDisabled, None);
    }
    let schedule = engine.webhook_retry_schedule();
    let next = schedule.get(delivery.delivery_count as usize).copied();
    let delay = next.map(jitter);
    let retry = NackAction::Requeue {
        delay: Some(delay.unwrap_or(Duration::ZERO)),
        error: Some(error),
    };
    if let Err(error) = engine.nack(queue, &receipts, retry).await {
        tracing::warn!(endpoint = %target.id, %error, "returning a failed webhook delivery failed; its lease will end");
    }
    match delay {
        Some(delay) => {
            let at = engine.clock().now() + delay.as_millis() as u64;
            (Outcome::RetryScheduled, Some(at))
        }
        None => (Outcome::DeadLettered, None),
    }
}

/// `delay` moved at random by up to a fifth either way, so retries after an outage spread.
fn jitter(delay: Duration) -> Duration {
    let millis = delay.as_millis() as u64;
    if millis < 5 {
        return delay;
    }
    let spread = millis / 5;
    let random = u64::from_le_bytes(rand_bytes());
    Duration::from_millis(millis - spread + random % (2 * spread + 1))
}

fn rand_bytes() -> [u8; 8] {
    // The standard library's per-process random hasher keys: enough to spread retries.
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::time::Instant::now().elapsed().as_nanos() as u64);
    hasher.finish().to_le_bytes()
}

/// The request for `message`: the endpoint's headers, then the signature headers.
fn outgoing(endpoint: &Endpoint, url: url::Url, message: &Message, now_ms: u64) -> Outgoing {
    let body = payload(message);
    let timestamp = now_ms / 1000;
    let keys: Vec<Vec<u8>> = (endpoint.signing_secrets(now_ms).into_iter())
        .filter_map(|secret| secret_bytes(secret).ok())
        .collect();
    let mut headers: Vec<(String, String)> = endpoint.headers.clone().into_iter().collect();
    headers.push(("content-type".into(), "application/json".into()));
    headers.push(("webhook-id".into(), message.id.clone()));
    headers.push(("webhook-timestamp".into(), timestamp.to_string()));
    let signature = signature::header(&keys, &message.id, timestamp, &body);
    headers.push(("webhook-signature".into(), signature));
    Outgoing { url, headers, body }
}

/// The body of a delivery: the message as JSON. `type` is the message's `type` header (or
/// CloudEvents' `ce-type`), `data` its body when that is JSON, else `data_base64`.
pub fn payload(message: &Message) -> Bytes {
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        timestamp: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data_base64: Option<String>,
        content_type: &'a str,
        headers: &'a std::collections::BTreeMap<String, String>,
    }
    let json = serde_json::from_slice::<&RawValue>(&message.body).ok();
    let kind = (message.headers.get("type"))
        .or_else(|| message.headers.get("ce-type"))
        .map_or("message", String::as_str);
    let sent = SystemTime::UNIX_EPOCH + Duration::from_millis(message.sent_at);
    let payload = Payload {
        id: &message.id,
        kind,
        timestamp: humantime::format_rfc3339_millis(sent).to_string(),
        data: json,
        data_base64: match json {
            Some(_) => None,
            None => Some(base64_simd::STANDARD.encode_to_string(&message.body)),
        },
        content_type: &message.content_type,
        headers: &message.headers,
    };
    Bytes::from(serde_json::to_vec(&payload).expect("a payload of strings and JSON serializes"))
}

/// Consecutive failures and what the breaker makes of them.
struct Breaker {
    settings: Settings,
    failures: u32,
    threshold: u32,
    max: Duration,
    /// Open until then; `None` when closed or half-open.
    open_until: Option<tokio::time::Instant>,
    /// How long it opens next time.
    next_open: Duration,
    half_open: bool,
    /// When the current run of failures began (engine ms).
    failing_since: Option<u64>,
}

impl Breaker {
    fn new(settings: &Settings) -> Breaker {
        Breaker {
            settings: settings.clone(),
            failures: 0,
            threshold: settings.breaker_failures.max(1),
            max: settings.breaker_open_max,
            open_until: None,
            next_open: settings.breaker_open,
            half_open: false,
            failing_since: None,
        }
    }

    /// How long to wait before the next attempt, while open.
    fn wait(&mut self, now: tokio::time::Instant) -> Option<Duration> {
        let until = self.open_until?;
        if until <= now {
            self.open_until = None;
            self.half_open = true;
            return None;
        }
        Some(until - now)
    }

    /// Half-open: the next attempt is a probe and runs alone.
    fn probing(&self) -> bool {
        self.half_open
    }

    /// Counts an attempt's result at `now_ms` (the engine's time); returns why the endpoint is
    /// to be disabled when it has failed for `disable_after` without a success.
    fn record(&mut self, succeeded: bool, now_ms: u64) -> Option<String> {
        if succeeded {
            *self = Breaker::new(&self.settings);
            return None;
        }
        let since = *self.failing_since.get_or_insert(now_ms);
        self.failures += 1;
        let failing = now_ms.saturating_sub(since);
        if failing >= self.settings.disable_after.as_millis() as u64 {
            return Some(format!(
                "failing for {} s without a success",
                failing / 1000
            ));
        }
        if self.half_open || self.failures >= self.threshold {
            let open = self.next_open;
            self.open_until = Some(tokio::time::Instant::now() + open);
            self.next_open = (open * 2).min(self.max);
            self.half_open = false;
        }
        None
    }

    fn is_open(&self) -> bool {
        self.open_until.is_some()
    }
}

/// Counts an attempt's result; opens the circuit or disables the endpoint as it says. True
/// when the endpoint is disabled: its worker stops at once, before it takes another delivery.
async fn count_result(
    breaker: &mut Breaker,
    result: Result<Outcome, tokio::task::JoinError>,
    engine: &Engine,
    target: &Target,
) -> bool {
    let outcome = result.unwrap_or(Outcome::RetryScheduled);
    if outcome == Outcome::EndpointDisabled {
        return true;
    }
    let succeeded = outcome == Outcome::Delivered;
    let was_open = breaker.is_open() || breaker.probing();
    match breaker.record(succeeded, engine.clock().now()) {
        Some(reason) => {
            disable(engine, target, &reason).await;
            return true;
        }
        None if breaker.is_open() && !was_open => {
            tracing::warn!(endpoint = %target.id, failures = breaker.failures, "webhook endpoint keeps failing; circuit open");
        }
        None if succeeded && was_open => {
            tracing::info!(endpoint = %target.id, "webhook endpoint answers again; circuit closed");
        }
        None => {}
    }
    false
}

async fn disable(engine: &Engine, target: &Target, reason: &str) {
    tracing::warn!(endpoint = %target.id, "webhook endpoint disabled: {reason}");
    metrics::disabled();
    if let Err(error) = engine.disable_webhook_endpoint(&target.id, reason).await {
        tracing::error!(endpoint = %target.id, %error, "disabling a webhook endpoint failed");
    }
}

/// Spaces attempts to at most `rate` a second.
struct Pacer {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pacer {
    fn new(rate: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs(1) / rate.max(1),
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let now = tokio::time::Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next = self.next.max(now) + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker_settings() -> Settings {
        Settings {
            breaker_failures: 3,
            breaker_open: Duration::from_secs(10),
            breaker_open_max: Duration::from_secs(25),
            disable_after: Duration::from_secs(3600),
            ..Settings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_failures_in_a_row_probes_and_closes_on_success() {
        let mut breaker = Breaker::new(&breaker_settings());
        let now = || tokio::time::Instant::now();
        for _ in 0..2 {
            assert_eq!(breaker.record(false, 0), None);
            assert_eq!(breaker.wait(now()), None);
        }
        assert_eq!(breaker.record(false, 0), None);
        assert_eq!(breaker.wait(now()), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        // Half-open: one probe; its failure opens it again for twice as long, capped.
        assert_eq!(breaker.wait(now()), None);
        assert!(breaker.probing());
        breaker.record(false, 10_000);
        assert_eq!(breaker.wait(now()), Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(breaker.wait(now()), None);
        breaker.record(false, 30_000);
        assert_eq!(breaker.wait(now()), Some(Duration::from_secs(25)));
        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(breaker.wait(now()), None);
        // A successful probe closes it: failures count from zero again.
        breaker.record(true, 55_000);
        assert!(!breaker.probing());
        assert_eq!(breaker.record(false, 56_000), None);
        assert_eq!(breaker.wait(now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_for_the_configured_time_disables() {
        let mut breaker = Breaker::new(&breaker_settings());
        assert_eq!(breaker.record(false, 1_000), None);
        assert_eq!(breaker.record(false, 3_600_999), None);
        let reason = breaker.record(false, 3_601_000).unwrap();
        assert!(reason.contains("failing for 3600 s"), "{reason}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_attempts_to_the_rate() {
        let mut pacer = Pacer::new(4);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let delay = jitter(Duration::from_secs(100));
            assert!(delay >= Duration::from_secs(80) && delay <= Duration::from_secs(120));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn payloads_carry_json_bodies_as_json_and_others_as_base64() {
        let mut message = Message {
            id: "m1".into(),
            body: Bytes::from_static(br#"{"order":7}"#),
            content_type: "application/json".into(),
            headers: [("type".to_string(), "order.paid".to_string())].into(),
            priority: 0,
            group: None,
            correlation_id: None,
            reply_to: None,
            sent_at: 1_700_000_000_123,
            deliver_at: None,
            expires_at: None,
            dead_letter: None,
        };
        let json: serde_json::Value = serde_json::from_slice(&payload(&message)).unwrap();
        assert_eq!(json["id"], "m1");
        assert_eq!(json["type"], "order.paid");
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["data"]["order"], 7);
        message.body = Bytes::from_static(&[0xff, 0x00]);
        let json: serde_json::Value = serde_json::from_slice(&payload(&message)).unwrap();
        assert_eq!(json["data_base64"], "/wA=");
        assert!(json.get("data").is_none());
    }
}
