//! Webhook endpoints: where messages of topics are POSTed, signed, by the server's dispatcher.
//!
//! An endpoint is a durable queue, `wharf.webhook.{id}`, bound to the topics it subscribes to,
//! with a dead-letter queue `wharf.webhook.{id}.dead`: a publish that matches is stored for the
//! endpoint before it is acknowledged, a delivery is a lease of the queue, a retry is a nack
//! with the schedule's delay, and a message that exhausts the schedule is dead-lettered. The
//! definition is kept in the metadata store under `webhooks/endpoint/{id}`; the engine
//! reconciles the queue and bindings with it on every change and at open.
//!
//! Every endpoint also has a history stream, `wharf.webhook.{id}.history`, bound like its
//! queue and kept for [`crate::EngineConfig::webhook_history`]: a replay reads a time range of
//! it back into the endpoint's queue, each message under its own id.
//!
//! The engine holds the definitions; the HTTP delivery (signing, the address guard, the
//! attempt log) is the server's (`wharf_server::webhooks`), which follows
//! [`Engine::webhook_changes`].

mod spec;

pub use spec::{
    check_id, generate_secret, secret_bytes, EndpointSpec, EndpointSubscription,
    SubscriptionMember, ENDPOINT_ID_BYTES_MAX, RATE_LIMIT_PER_S_MAX, SECRET_PREFIX,
    SUBSCRIPTIONS_MAX,
};

use crate::{
    error::{DefinitionError, EngineError, Field, WebhookField},
    queue::QueueOptions,
    topic::{BindingSpec, Destination, DestinationKind},
    Engine,
};
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
    time::Duration,
};
use tokio::sync::watch;
use wharf_model::pattern::Syntax;
use wharf_storage::MetaOp;

/// Default of [`crate::EngineConfig::webhook_history`]: a week, time to notice an outage of a
/// receiver and replay what it lost.
pub const HISTORY_DEFAULT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Most messages one replay sends: a longer range is replayed in several calls.
pub const REPLAY_MESSAGES_MAX: usize = 100_000;
/// Records read from the history stream per step of a replay (one send batch each).
const REPLAY_BATCH: usize = 500;

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub messages: usize,
    /// [`REPLAY_MESSAGES_MAX`] was reached before the end of the range; `next_since` is where
    /// the next call continues (ms since the epoch).
    pub next_since: Option<u64>,
}

/// Where endpoint definitions are kept.
pub const WEBHOOK_META_PREFIX: &str = "webhooks/endpoint/";
/// An endpoint's queue is named this prefix + its id.
pub const WEBHOOK_QUEUE_PREFIX: &str = "wharf.webhook.";
/// Most endpoints at once.
pub const ENDPOINTS_MAX: usize = 10_000;
/// How long a replaced secret still signs deliveries beside the new one, so receivers can
/// switch without refusing anything in between.
pub const SECRET_GRACE: Duration = Duration::from_secs(24 * 60 * 60);
/// The lease of one delivery attempt: longer than the dispatcher's connect and response
/// timeouts together, so a lease ends before its attempt only when the server died.
pub const DELIVERY_LEASE: Duration = Duration::from_secs(5 * 60);

/// Default of `EngineConfig::webhook_retry_schedule`: the wait before each attempt, the
/// first immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (eight attempts over
/// about 28 hours; the dispatcher adds jitter).
pub const RETRY_SCHEDULE_DEFAULT: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(5 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
];

/// A replaced secret, still signing until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at_ms: u64,
}

/// An endpoint as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub subscriptions: Vec<EndpointSubscription>,
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousSecret>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    pub enabled: bool,
    /// Why the dispatcher disabled it (a `410 Gone`, failing too long); cleared when a client
    /// enables it again.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Endpoint {
    /// The secrets that sign a delivery at `now`: the current one, and the replaced one during
    /// its grace period.
    pub fn signing_secrets(&self, now_ms: u64) -> Vec<&str> {
        let previous = (self.previous_secret.as_ref())
            .filter(|previous| previous.expires_at_ms > now_ms)
            .map(|previous| previous.secret.as_str());
        std::iter::once(self.secret.as_str())
            .chain(previous)
            .collect()
    }
}

/// The queue that holds an endpoint's pending deliveries.
pub fn endpoint_queue(id: &str) -> String {
    format!("{WEBHOOK_QUEUE_PREFIX}{id}")
}

/// Where an endpoint's messages go once the retry schedule is spent.
pub fn endpoint_dead_queue(id: &str) -> String {
    format!("{WEBHOOK_QUEUE_PREFIX}{id}.dead")
}

/// What follows an endpoint's queue name in the name of its history stream.
const HISTORY_SUFFIX: &str = ".history";

/// The stream that keeps what endpoint `id` was sent, for replay.
pub fn endpoint_history_stream(id: &str) -> String {
    format!("{WEBHOOK_QUEUE_PREFIX}{id}{HISTORY_SUFFIX}")
}

/// Every endpoint, and a generation that changes with each of them.
#[derive(Debug)]
pub(crate) struct Webhooks {
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    /// Held through each change of an endpoint: its queues, bindings and definition change
    /// together. (Not the engine's `admin` lock, which the queue and topic calls take.)
    changing: tokio::sync::Mutex<()>,
    changes: watch::Sender<u64>,
}

impl Webhooks {
    /// The endpoints kept in `store`; one that no longer decodes is returned as damaged.
    pub(crate) fn load(store: &dyn wharf_storage::Storage) -> (Webhooks, Vec<EngineError>) {
        let mut endpoints = BTreeMap::new();
        let mut damaged = Vec::new();
        for (key, value) in store.meta_list(WEBHOOK_META_PREFIX) {
            let id = key[WEBHOOK_META_PREFIX.len()..].to_string();
            match serde_json::from_value::<Endpoint>(value) {
                Ok(endpoint) => drop(endpoints.insert(id, endpoint)),
                Err(error) => damaged.push(EngineError::CorruptDefinition {
                    key,
                    source: DefinitionError::Decode(error),
                }),
            }
        }
        let webhooks = Webhooks {
            endpoints: Mutex::new(endpoints),
            changing: tokio::sync::Mutex::new(()),
            changes: watch::Sender::new(0),
        };
        (webhooks, damaged)
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Endpoint>> {
        // Plain data, changed in single inserts and removes: whole even if a holder panicked.
        (self.endpoints.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }
}

impl Engine {
    /// Creates or replaces endpoint `id`; returns it and whether it was created. A replaced
    /// endpoint keeps its secret unless `spec` gives one; a new secret leaves the old one
    /// signing for [`SECRET_GRACE`].
    pub async fn put_webhook_endpoint(
        &self,
        id: &str,
        spec: EndpointSpec,
    ) -> Result<(Endpoint, bool), EngineError> {
        self.check_open()?;
        check_id(id)?;
        spec.validate()?;
        for (index, subscription) in spec.subscriptions.iter().enumerate() {
            if self.topic_info(&subscription.topic).is_err() {
                return Err(EngineError::DestinationNotFound {
                    field: Field::Webhook(WebhookField::Subscription {
                        index,
                        member: SubscriptionMember::Topic,
                    }),
                    kind: DestinationKind::Topic,
                    name: subscription.topic.clone(),
                });
            }
        }
        let _changing = self.inner.webhooks.changing.lock().await;
        let old = self.inner.webhooks.endpoints().get(id).cloned();
        if old.is_none() && self.inner.webhooks.endpoints().len() >= ENDPOINTS_MAX {
            return Err(EngineError::LimitReached {
                limit: "webhook endpoints",
                max: ENDPOINTS_MAX,
            });
        }
        if old.is_none() {
            self.check_endpoint_resources_free(id)?;
        }
        let endpoint = self.endpoint_from(spec, old.as_ref());
        self.store_endpoint(id, &endpoint).await?;
        self.route_endpoint(id, old.as_ref(), Some(&endpoint))
            .await?;
        self.inner.webhooks.changed();
        Ok((endpoint, old.is_none()))
    }

    /// Refuses a new endpoint whose queues or history someone made before it: what they hold
    /// would be delivered, or replayed, signed with the endpoint's secret. (The endpoint is
    /// stored before its queues are made, so a retry of a create that failed half-way finds
    /// the endpoint and is not refused.)
    fn check_endpoint_resources_free(&self, id: &str) -> Result<(), EngineError> {
        let queues = [endpoint_queue(id), endpoint_dead_queue(id)];
        let taken = (queues.into_iter())
            .find(|queue| self.find(queue).is_some())
            .map(|queue| format!("queue {queue:?}"))
            .or_else(|| {
                let history = endpoint_history_stream(id);
                (self.find_stream(&history).is_some()).then(|| format!("stream {history:?}"))
            });
        match taken {
            Some(resource) => Err(EngineError::WebhookResourceExists {
                endpoint: id.to_string(),
                resource,
            }),
            None => Ok(()),
        }
    }

    fn endpoint_from(&self, spec: EndpointSpec, old: Option<&Endpoint>) -> Endpoint {
        let now = self.now();
        let (secret, previous_secret) = match (spec.secret, old) {
            (None, Some(old)) => (old.secret.clone(), old.previous_secret.clone()),
            (None, None) => (generate_secret(), None),
            (Some(given), Some(old)) if given != old.secret => {
                let previous = PreviousSecret {
                    secret: old.secret.clone(),
                    expires_at_ms: now + SECRET_GRACE.as_millis() as u64,
                };
                (given, Some(previous))
            }
            (Some(given), old) => (given, old.and_then(|old| old.previous_secret.clone())),
        };
        let disabled_reason = match spec.enabled {
            true => None,
            false => old.and_then(|old| old.disabled_reason.clone()),
        };
        Endpoint {
            url: spec.url,
            subscriptions: spec.subscriptions,
            secret,
            previous_secret,
            headers: spec.headers,
            rate_limit_per_s: spec.rate_limit_per_s,
            enabled: spec.enabled,
            disabled_reason,
            created_at_ms: old.map_or(now, |old| old.created_at_ms),
            updated_at_ms: now,
        }
    }

    async fn store_endpoint(&self, id: &str, endpoint: &Endpoint) -> Result<(), EngineError> {
        let value = serde_json::to_value(endpoint).map_err(|_| EngineError::Internal {
            operation: "encode webhook endpoint",
        })?;
        let put = MetaOp::Put(format!("{WEBHOOK_META_PREFIX}{id}"), value);
        self.inner.store.meta_apply(vec![put]).await?;
        (self.inner.webhooks.endpoints()).insert(id.to_string(), endpoint.clone());
        Ok(())
    }

    /// Deletes endpoint `id` with its queues: pending and dead-lettered deliveries go too.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let _changing = self.inner.webhooks.changing.lock().await;
        let old = self.webhook_endpoint(id)?;
        self.route_endpoint(id, Some(&old), None).await?;
        let delete = MetaOp::Delete(format!("{WEBHOOK_META_PREFIX}{id}"));
        crate::broker::space::meta_apply_freeing(self.inner.store.as_ref(), vec![delete]).await?;
        self.inner.webhooks.endpoints().remove(id);
        for queue in [endpoint_queue(id), endpoint_dead_queue(id)] {
            match self.delete_queue(&queue).await {
                Ok(()) | Err(EngineError::QueueNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let history = endpoint_history_stream(id);
        if self.find_stream(&history).is_some() {
            self.delete_stream(&history).await?;
        }
        self.inner.webhooks.changed();
        Ok(())
    }

    /// Turns endpoint `id` off with `reason` (the dispatcher's call on a `410 Gone` or a
    /// failure that lasted too long). Its messages stay queued for when it is enabled again.
    pub async fn disable_webhook_endpoint(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<(), EngineError> {
        self.check_open()?;
        let _changing = self.inner.webhooks.changing.lock().await;
        let mut endpoint = self.webhook_endpoint(id)?;
        endpoint.enabled = false;
        endpoint.disabled_reason = Some(crate::broker::queue_runtime::cap_error_text(
            reason.to_string(),
        ));
        endpoint.updated_at_ms = self.now();
        self.store_endpoint(id, &endpoint).await?;
        self.inner.webhooks.changed();
        Ok(())
    }

    pub fn webhook_endpoint(&self, id: &str) -> Result<Endpoint, EngineError> {
        (self.inner.webhooks.endpoints().get(id).cloned())
            .ok_or_else(|| EngineError::WebhookNotFound { id: id.to_string() })
    }

    /// Every endpoint, by id.
    pub fn webhook_endpoints(&self) -> Vec<(String, Endpoint)> {
        (self.inner.webhooks.endpoints().iter())
            .map(|(id, endpoint)| (id.clone(), endpoint.clone()))
            .collect()
    }

    /// Changes whenever an endpoint is created, replaced, disabled or deleted.
    pub fn webhook_changes(&self) -> watch::Receiver<u64> {
        self.inner.webhooks.changes.subscribe()
    }

    /// Sends message `id` again to each endpoint whose dead-letter queue holds it (only to
    /// `endpoint` when given), under its own id; returns the endpoints it went back to.
    pub async fn retry_webhook_message(
        &self,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<Vec<String>, EngineError> {
        let endpoints = match endpoint {
            Some(endpoint) => vec![(endpoint.to_string(), self.webhook_endpoint(endpoint)?)],
            None => self.webhook_endpoints(),
        };
        let mut retried = Vec::new();
        for (endpoint, _) in endpoints {
            let dead = endpoint_dead_queue(&endpoint);
            let message = match self.get_message(&dead, id).await {
                Ok(peeked) => peeked.message,
                Err(EngineError::MessageNotFound { .. } | EngineError::QueueNotFound { .. }) => {
                    continue
                }
                Err(error) => return Err(error),
            };
            let send = crate::broker::SendMessage {
                id: Some(message.id.clone()),
                body: message.body.clone(),
                content_type: Some(message.content_type.clone()),
                headers: message.headers.clone(),
                correlation_id: message.correlation_id.clone(),
                ..Default::default()
            };
            // Sent first: a crash between the two leaves it in both, delivered again at worst.
            self.send(&endpoint_queue(&endpoint), vec![send]).await?;
            self.delete_message(&dead, id).await?;
            retried.push(endpoint);
        }
        Ok(retried)
    }

    /// Sends endpoint `id` again what was routed to it from `since_ms` to `until_ms` (ms since
    /// the epoch, both included), each message under its own id, read from its history
    /// stream; at most [`REPLAY_MESSAGES_MAX`] per call.
    pub async fn replay_webhook(
        &self,
        id: &str,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Replayed, EngineError> {
        self.check_open()?;
        self.webhook_endpoint(id)?;
        if until_ms < since_ms {
            return Ok(Replayed {
                messages: 0,
                next_since: None,
            });
        }
        let (history, queue) = (endpoint_history_stream(id), endpoint_queue(id));
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let until = i64::try_from(until_ms).unwrap_or(i64::MAX);
        let at = crate::broker::OffsetAt::Timestamp(since);
        let mut offset = self.offset_at(&history, 0, at).await?;
        let mut messages = 0;
        // Ends: each step reads records after `offset` and moves it past them, or stops at the
        // end of the stream, past `until`, or at the most messages a call sends.
        loop {
            let request = crate::broker::FetchRequest {
                offset,
                max_records: REPLAY_BATCH,
                max_bytes: 4 << 20,
                wait: Duration::ZERO,
            };
            let fetched = self.fetch(&history, 0, request).await?;
            let in_range: Vec<_> = (fetched.records.iter())
                .take_while(|record| record.timestamp <= until)
                .take(REPLAY_MESSAGES_MAX - messages)
                .collect();
            let batch: Vec<_> = in_range
                .iter()
                .map(|record| replayed_message(record))
                .collect();
            let last = in_range
                .last()
                .map(|record| (record.offset, record.timestamp));
            if !batch.is_empty() {
                messages += batch.len();
                self.send(&queue, batch).await?;
            }
            let read_all = in_range.len() == fetched.records.len();
            if messages >= REPLAY_MESSAGES_MAX
                && !(read_all && fetched.next_offset >= fetched.latest)
            {
                let next_since = last.map(|(_, at)| at.max(0) as u64);
                return Ok(Replayed {
                    messages,
                    next_since,
                });
            }
            if fetched.records.is_empty() || !read_all {
                return Ok(Replayed {
                    messages,
                    next_since: None,
                });
            }
            offset = fetched.next_offset;
        }
    }

    /// The endpoint whose queue or dead-letter queue `queue` is, if any.
    pub(crate) fn webhook_owning(&self, queue: &str) -> Option<String> {
        let id = queue.strip_prefix(WEBHOOK_QUEUE_PREFIX)?;
        let endpoints = self.inner.webhooks.endpoints();
        // `wharf.webhook.a.dead` is endpoint `a.dead`'s queue or endpoint `a`'s dead letters.
        (std::iter::once(id).chain(id.strip_suffix(".dead")))
            .find(|id| endpoints.contains_key(*id))
            .map(str::to_string)
    }

    /// The endpoint that made binding `spec` of `topic` (one of its subscriptions, to its
    /// queue or its history), if any.
    pub(crate) fn webhook_owning_binding(&self, topic: &str, spec: &BindingSpec) -> Option<String> {
        let name = match &spec.destination {
            Destination::Queue(name) | Destination::Stream(name) => name,
            _ => return None,
        };
        let id = name.strip_prefix(WEBHOOK_QUEUE_PREFIX)?;
        let id = id.strip_suffix(HISTORY_SUFFIX).unwrap_or(id);
        let endpoints = self.inner.webhooks.endpoints();
        let endpoint = endpoints.get(id)?;
        (endpoint.subscriptions.iter())
            .filter(|subscription| subscription.topic == topic)
            .any(|subscription| {
                binding_spec(subscription, spec.destination.clone()).is_ok_and(|made| made == *spec)
            })
            .then(|| id.to_string())
    }

    /// An endpoint that subscribes to `topic`, if any.
    pub(crate) fn webhook_subscribing(&self, topic: &str) -> Option<String> {
        (self.inner.webhooks.endpoints().iter())
            .find(|(_, endpoint)| endpoint.subscriptions.iter().any(|s| s.topic == topic))
            .map(|(id, _)| id.clone())
    }

    /// Refuses what only a webhook endpoint may do to its history: write it, delete it.
    pub(crate) fn check_not_webhook_history(&self, stream: &str) -> Result<(), EngineError> {
        match self.webhook_owning_stream(stream) {
            Some(endpoint) => Err(crate::stream::StreamError::WebhookHistory {
                stream: stream.to_string(),
                endpoint,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The endpoint whose history `stream` is, if any.
    pub(crate) fn webhook_owning_stream(&self, stream: &str) -> Option<String> {
        let id = stream
            .strip_prefix(WEBHOOK_QUEUE_PREFIX)?
            .strip_suffix(HISTORY_SUFFIX)?;
        (self.inner.webhooks.endpoints())
            .contains_key(id)
            .then(|| id.to_string())
    }

    /// The retry schedule: the wait before each attempt, the first one's included.
    pub fn webhook_retry_schedule(&self) -> &[Duration] {
        &self.inner.config.webhook_retry_schedule
    }

    /// Makes the queues and bindings match every endpoint (after a crash between a
    /// definition and its routing).
    pub(crate) async fn route_webhooks(&self) -> Result<(), EngineError> {
        for (id, endpoint) in self.webhook_endpoints() {
            self.route_endpoint(&id, Some(&endpoint), Some(&endpoint))
                .await?;
        }
        Ok(())
    }

    /// Brings endpoint `id`'s queues and bindings from `old`'s subscriptions to `new`'s;
    /// idempotent, so running it again after a crash finishes the job.
    async fn route_endpoint(
        &self,
        id: &str,
        old: Option<&Endpoint>,
        new: Option<&Endpoint>,
    ) -> Result<(), EngineError> {
        let queue = endpoint_queue(id);
        if new.is_some() {
            self.ensure_endpoint_queues(id).await?;
        }
        fn subscriptions(endpoint: Option<&Endpoint>) -> &[EndpointSubscription] {
            endpoint.map_or(&[], |endpoint| &endpoint.subscriptions)
        }
        let topics: BTreeSet<&str> = (subscriptions(old).iter())
            .chain(subscriptions(new))
            .map(|subscription| subscription.topic.as_str())
            .collect();
        let destinations = [
            Destination::Queue(queue),
            Destination::Stream(endpoint_history_stream(id)),
        ];
        for topic in topics {
            for destination in &destinations {
                let wanted: Vec<BindingSpec> = (subscriptions(new).iter())
                    .filter(|subscription| subscription.topic == topic)
                    .map(|subscription| binding_spec(subscription, destination.clone()))
                    .collect::<Result<_, _>>()?;
                self.route_topic(topic, destination, wanted).await?;
            }
        }
        Ok(())
    }

    /// Makes `topic`'s bindings to `destination` exactly `wanted`.
    async fn route_topic(
        &self,
        topic: &str,
        destination: &Destination,
        wanted: Vec<BindingSpec>,
    ) -> Result<(), EngineError> {
        let Ok(bindings) = self.list_bindings(topic) else {
            return Ok(()); // The topic was deleted, and its bindings with it.
        };
        let ours: Vec<_> = (bindings.into_iter())
            .filter(|binding| binding.spec.destination == *destination)
            .collect();
        for binding in &ours {
            if !wanted.contains(&binding.spec) {
                self.unbind_any(topic, &binding.id).await?;
            }
        }
        for spec in wanted {
            if !ours.iter().any(|binding| binding.spec == spec) {
                self.bind_owned(topic, spec).await?;
            }
        }
        Ok(())
    }

    async fn ensure_endpoint_queues(&self, id: &str) -> Result<(), EngineError> {
        let dead = endpoint_dead_queue(id);
        if self.find(&dead).is_none() {
            self.put_queue(&dead, QueueOptions::default()).await?;
        }
        let schedule = &self.inner.config.webhook_retry_schedule;
        let queue = endpoint_queue(id);
        let options = QueueOptions {
            lease_ms: DELIVERY_LEASE.as_millis() as u64,
            max_deliveries: Some(schedule.len().max(1) as u32),
            dead_letter_queue: Some(dead.parse().map_err(|_| EngineError::Internal {
                operation: "name a webhook dead-letter queue",
            })?),
            // A manual retry sends a message again under its own id.
            dedup_window_ms: 0,
            ..QueueOptions::default()
        };
        let current = self.find(&queue).and_then(|runtime| runtime.options().ok());
        if current.as_ref() != Some(&options) {
            self.put_queue(&queue, options).await?;
        }
        let history = endpoint_history_stream(id);
        let retention_ms = self.inner.config.webhook_history.as_millis().max(1) as u64;
        let current = self.stream_info(&history).ok().map(|info| info.options);
        if current.is_none_or(|options| options.retention_ms != Some(retention_ms)) {
            let options = crate::stream::StreamOptions {
                retention_ms: Some(retention_ms),
                ..crate::stream::StreamOptions::default()
            };
            self.put_stream(&history, options).await?;
        }
        Ok(())
    }
}

/// A record of a history stream as the message it was (see the topic's stream records: the
/// message's headers, then `content-type` and `message-id`).
fn replayed_message(record: &wharf_model::record_batch::Record) -> crate::broker::SendMessage {
    let mut headers = BTreeMap::new();
    let (mut id, mut content_type) = (None, None);
    for header in &record.headers {
        let value = (header.value.as_ref()).map(|v| String::from_utf8_lossy(v).into_owned());
        match header.key.as_str() {
            "message-id" => id = value,
            "content-type" => content_type = value,
            key => {
                headers.insert(key.to_string(), value.unwrap_or_default());
            }
        }
    }
    crate::broker::SendMessage {
        id,
        body: record.value.clone().unwrap_or_default(),
        content_type,
        headers,
        ..Default::default()
    }
}

/// The binding that routes `subscription` to `destination`, as the router shows it.
fn binding_spec(
    subscription: &EndpointSubscription,
    destination: Destination,
) -> Result<BindingSpec, EngineError> {
    crate::topic::router::canonical_spec(BindingSpec {
        pattern: subscription.pattern.clone(),
        syntax: Syntax::default(),
        filter: subscription.filter.clone(),
        headers: None,
        destination,
    })
}

#[cfg(test)]
mod tests;
