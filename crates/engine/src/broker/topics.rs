//! Topics in the broker: definitions in the metadata store, bindings and retained messages in
//! each topic's log, and publishing to every matched destination.

use super::{api::SendMessage, topic_records::TopicRecord, validate, Engine};
use crate::{
    error::EngineError,
    topic::{BindingSpec, Destination, Router, TopicOptions},
};
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    pin::Pin,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, RwLock,
    },
};
use tokio::sync::mpsc;
use wharf_model::{
    filter::{Evaluation, Filter},
    message::Message,
    pattern::{Pattern, Syntax},
    QueueName,
};
use wharf_storage::{Log, LogConfig};

/// Key prefix of topic definitions in the metadata store.
pub(super) const TOPIC_META_PREFIX: &str = "topic/";
/// Topic-to-topic routing deeper than this stops: it bounds a publish through a cycle.
const TOPIC_HOPS_MAX: usize = 8;
/// Messages a live subscriber may lag behind before it misses some (at most once).
const SUBSCRIBER_BUFFER: usize = 1_024;
/// Topic logs hold bindings and retained messages: small, so small segments.
const TOPIC_SEGMENT_BYTES: u64 = 1 << 20;

/// One message to publish with its routing key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishMessage {
    pub routing_key: String,
    pub message: SendMessage,
}

/// What became of one published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    /// Destinations that stored it (0: unroutable).
    pub routed: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub options: TopicOptions,
    pub stats: TopicStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicStats {
    pub published: u64,
    /// Deliveries to destinations (a message routed to three queues counts three).
    pub routed: u64,
    pub unroutable: u64,
    pub bindings: u64,
    /// Filter evaluations (bindings, rules, subscriptions) that a cost limit stopped, each
    /// counted as no match (docs/filters.md, "Cost of one evaluation").
    pub filters_stopped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingInfo {
    pub id: String,
    pub spec: BindingSpec,
    /// Messages this binding matched since the server started.
    pub matched: u64,
}

/// A live subscription: retained matches first, then messages as they are published. Dropping
/// it ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    pub retained: Vec<Message>,
    pub messages: mpsc::Receiver<Message>,
    _guard: SubscriberGuard,
}

#[derive(Debug)]
pub(super) struct TopicRuntime {
    pub name: String,
    log: Log,
    pub router: RwLock<Router>,
    retained: Mutex<BTreeMap<String, Message>>,
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    next_subscriber: AtomicU64,
    published: AtomicU64,
    routed: AtomicU64,
    unroutable: AtomicU64,
    filters_stopped: AtomicU64,
    matched: Mutex<HashMap<String, u64>>,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    syntax: Syntax,
    pattern: Pattern,
    filter: Option<Filter>,
    sender: mpsc::Sender<Message>,
}

#[derive(Debug)]
struct SubscriberGuard {
    id: u64,
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    /// The engine's count of live subscriptions, taken by this one.
    count: Arc<AtomicUsize>,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.retain(|s| s.id != self.id);
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Engine {
    /// Creates the topic or updates its options; true when created.
    pub async fn put_topic(&self, name: &str, options: TopicOptions) -> Result<bool, EngineError> {
        self.check_open()?;
        let name = parse_topic_name(name)?;
        let router = Router::new(options.clone())?;
        let _admin = self.inner.admin.lock().await;
        let value = serde_json::to_value(&options).expect("options serialize");
        if let Some(topic) = self.find_topic(&name) {
            topic
                .router
                .write()
                .expect("router lock")
                .set_options(options)?;
            self.inner
                .store
                .meta()
                .put(format!("{TOPIC_META_PREFIX}{name}"), value)?;
            return Ok(false);
        }
        self.inner
            .store
            .meta()
            .put(format!("{TOPIC_META_PREFIX}{name}"), value)?;
        self.open_topic(name, router).await?;
        Ok(true)
    }

    pub fn list_topics(&self) -> Vec<TopicInfo> {
        let topics: Vec<_> = self.topics().values().cloned().collect();
        topics.iter().map(topic_info).collect()
    }

    pub fn topic_info(&self, name: &str) -> Result<TopicInfo, EngineError> {
        Ok(topic_info(&self.topic(name)?))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let _admin = self.inner.admin.lock().await;
        let topic = self.topic(name)?;
        self.inner
            .store
            .meta()
            .delete(format!("{TOPIC_META_PREFIX}{name}"))?;
        self.inner.topics.write().expect("topics lock").remove(name);
        topic.subscribers.lock().expect("subscribers lock").clear();
        self.inner.store.delete_log(&topic_log_name(name)).await?;
        Ok(())
    }

    /// Adds a binding; returns its id. Retained messages it matches go to its destination.
    pub async fn bind(&self, topic: &str, spec: BindingSpec) -> Result<String, EngineError> {
        self.check_open()?;
        let runtime = self.topic(topic)?;
        self.check_destination(&spec.destination)?;
        runtime.router.read().expect("router lock").check(&spec)?;
        let id = self.generate_id(self.now());
        let record = TopicRecord::BindingAdded {
            id: id.clone(),
            spec: spec.clone(),
        };
        runtime.log.append_one(record.encode()).await?;
        runtime
            .router
            .write()
            .expect("router lock")
            .add(id.clone(), spec.clone())?;
        let retained: Vec<(String, Message)> = runtime
            .retained
            .lock()
            .expect("retained lock")
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for (key, message) in retained {
            let route = runtime
                .router
                .read()
                .expect("router lock")
                .route_one(&id, &key, &message);
            if route {
                self.deliver(&spec.destination, vec![(key, message)], 0)
                    .await?;
            }
        }
        Ok(id)
    }

    /// A durable subscription in one call: binds a queue, creating it (default options) when it
    /// does not exist yet. The spec is checked first, so a refused binding creates no queue.
    pub async fn bind_with_queue(
        &self,
        topic: &str,
        spec: BindingSpec,
    ) -> Result<String, EngineError> {
        let Destination::Queue(queue) = &spec.destination else {
            return Err(validate::field_error(
                "create_queue",
                "only a queue destination can be created",
            ));
        };
        let runtime = self.topic(topic)?;
        runtime.router.read().expect("router lock").check(&spec)?;
        if self.find(queue).is_none() {
            self.put_queue(queue, crate::queue::QueueOptions::default())
                .await?;
        }
        self.bind(topic, spec).await
    }

    pub async fn unbind(&self, topic: &str, id: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let runtime = self.topic(topic)?;
        if !runtime
            .router
            .read()
            .expect("router lock")
            .bindings()
            .any(|(b, _)| b == id)
        {
            return Err(EngineError::BindingNotFound {
                topic: topic.to_string(),
                id: id.to_string(),
            });
        }
        let record = TopicRecord::BindingRemoved { id: id.to_string() };
        runtime.log.append_one(record.encode()).await?;
        runtime.router.write().expect("router lock").remove(id);
        runtime.matched.lock().expect("matched lock").remove(id);
        Ok(())
    }

    pub fn list_bindings(&self, topic: &str) -> Result<Vec<BindingInfo>, EngineError> {
        let runtime = self.topic(topic)?;
        let matched = runtime.matched.lock().expect("matched lock").clone();
        let router = runtime.router.read().expect("router lock");
        Ok(router
            .bindings()
            .map(|(id, spec)| BindingInfo {
                id: id.clone(),
                spec: spec.clone(),
                matched: matched.get(id).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Publishes a batch; returns once every durable destination stored its messages.
    pub async fn publish(
        &self,
        topic: &str,
        batch: Vec<PublishMessage>,
    ) -> Result<Vec<Published>, EngineError> {
        self.check_open()?;
        let now = self.now();
        let (keys, sends): (Vec<String>, Vec<SendMessage>) = batch
            .into_iter()
            .map(|p| (p.routing_key, p.message))
            .unzip();
        let messages = validate::messages_from_batch(sends, now, || self.generate_id(now))?;
        let messages = keys
            .into_iter()
            .zip(messages.into_iter().map(|(m, _)| m))
            .collect();
        self.publish_messages(topic.to_string(), messages, 0).await
    }

    /// Subscribes a live client: retained matches now, later publishes as they happen.
    pub fn subscribe(
        &self,
        topic: &str,
        pattern: &str,
        syntax: Syntax,
        filter: Option<&str>,
    ) -> Result<Subscription, EngineError> {
        self.check_open()?;
        let runtime = self.topic(topic)?;
        let pattern = Pattern::parse(pattern, syntax)
            .map_err(|e| validate::field_error("pattern", &e.to_string()))?;
        let filter = filter
            .map(|f| Filter::parse(f).map_err(|e| validate::field_error("filter", &e.to_string())))
            .transpose()?;
        let count = self.inner.subscriptions.clone();
        let max = self.inner.config.subscriptions_max;
        if count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(EngineError::LimitReached {
                limit: "subscriptions_max",
                max,
            });
        }
        let (sender, messages) = mpsc::channel(SUBSCRIBER_BUFFER);
        let subscriber = Subscriber {
            id: runtime.next_subscriber.fetch_add(1, Ordering::Relaxed),
            syntax,
            pattern,
            filter,
            sender,
        };
        let retained = runtime
            .retained
            .lock()
            .expect("retained lock")
            .iter()
            .filter(|(key, message)| {
                let wanted = subscriber.wants(key, message, json_body(message).as_ref());
                runtime.count_filter_stop(wanted)
            })
            .map(|(_, message)| message.clone())
            .collect();
        let guard = SubscriberGuard {
            id: subscriber.id,
            subscribers: runtime.subscribers.clone(),
            count,
        };
        runtime
            .subscribers
            .lock()
            .expect("subscribers lock")
            .push(subscriber);
        Ok(Subscription {
            retained,
            messages,
            _guard: guard,
        })
    }

    /// Routes validated messages and stores them in every destination; recursive for topic
    /// destinations, up to [`TOPIC_HOPS_MAX`].
    pub(super) fn publish_messages(
        &self,
        topic: String,
        messages: Vec<(String, Message)>,
        hops: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Published>, EngineError>> + Send + '_>> {
        Box::pin(async move {
            let runtime = self.topic(&topic)?;
            runtime.retain(&messages).await?;
            let (messages, routes) = route_batch(runtime.clone(), messages).await?;
            let mut groups: BTreeMap<Destination, Vec<usize>> = BTreeMap::new();
            for (index, destinations) in routes.into_iter().enumerate() {
                for destination in destinations {
                    groups.entry(destination).or_default().push(index);
                }
            }
            let mut routed = vec![0usize; messages.len()];
            // Spawned handles, not a JoinSet: a publisher that hangs up detaches the deliveries
            // instead of aborting them, so no destination is left half-served.
            let mut deliveries = Vec::new();
            for (destination, indexes) in groups {
                let batch: Vec<_> = indexes.iter().map(|i| messages[*i].clone()).collect();
                let engine = self.clone();
                deliveries.push(tokio::spawn(async move {
                    let stored = engine.deliver(&destination, batch, hops).await;
                    (indexes, stored)
                }));
            }
            for delivery in deliveries {
                let (indexes, stored) = delivery.await.expect("delivery task panicked");
                if stored? {
                    for index in indexes {
                        routed[index] += 1;
                    }
                }
            }
            runtime.count(&routed);
            Ok(messages
                .into_iter()
                .zip(routed)
                .map(|((_, message), routed)| Published {
                    id: message.id,
                    routed,
                })
                .collect())
        })
    }

    /// Stores messages in one destination; false when it does not exist (any more).
    async fn deliver(
        &self,
        destination: &Destination,
        batch: Vec<(String, Message)>,
        hops: usize,
    ) -> Result<bool, EngineError> {
        match destination {
            Destination::Queue(name) => {
                let Some(queue) = self.find(name) else {
                    return Ok(false);
                };
                let messages: Vec<_> = batch.into_iter().map(|(_, m)| (m, false)).collect();
                self.send_to(queue, messages, self.now()).await?;
                Ok(true)
            }
            Destination::Topic(name)
                if hops < TOPIC_HOPS_MAX && self.find_topic(name).is_some() =>
            {
                self.publish_messages(name.clone(), batch, hops + 1).await?;
                Ok(true)
            }
            Destination::Topic(_) | Destination::Stream(_) => Ok(false),
        }
    }

    fn check_destination(&self, destination: &Destination) -> Result<(), EngineError> {
        match destination {
            Destination::Queue(name) => self.queue(name).map(|_| ()),
            Destination::Topic(name) => self.topic(name).map(|_| ()),
            Destination::Stream(_) => Err(validate::field_error(
                "stream",
                "stream destinations are not available yet",
            )),
        }
    }

    /// Opens (replays) a topic's log and registers it.
    pub(super) async fn open_topic(
        &self,
        name: String,
        mut router: Router,
    ) -> Result<(), EngineError> {
        let store = self.inner.store.clone();
        let log_name = topic_log_name(&name);
        let (log, retained, router) = tokio::task::spawn_blocking(move || {
            let config = LogConfig {
                segment_bytes: TOPIC_SEGMENT_BYTES,
                ..LogConfig::default()
            };
            let log = store.log(&log_name, config)?;
            let retained = replay_topic(&log, &mut router)?;
            Ok::<_, EngineError>((log, retained, router))
        })
        .await
        .expect("topic replay panicked")?;
        let runtime = TopicRuntime {
            name: name.clone(),
            log,
            router: RwLock::new(router),
            retained: Mutex::new(retained),
            subscribers: Arc::default(),
            next_subscriber: AtomicU64::new(0),
            published: AtomicU64::new(0),
            routed: AtomicU64::new(0),
            unroutable: AtomicU64::new(0),
            filters_stopped: AtomicU64::new(0),
            matched: Mutex::default(),
        };
        self.inner
            .topics
            .write()
            .expect("topics lock")
            .insert(name, Arc::new(runtime));
        Ok(())
    }

    fn topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<TopicRuntime>>> {
        self.inner.topics.read().expect("topics lock")
    }

    fn find_topic(&self, name: &str) -> Option<Arc<TopicRuntime>> {
        self.topics().get(name).cloned()
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicRuntime>, EngineError> {
        self.find_topic(name)
            .ok_or_else(|| EngineError::TopicNotFound {
                name: name.to_string(),
            })
    }
}

/// Body bytes a batch may carry and still be routed on the async runtime when filters read
/// bodies. Parsing JSON and running filters costs about a millisecond per 64 KiB; more than that
/// moves to a blocking thread, so one large publish never stalls other requests (health checks
/// included) on a runtime worker.
const ROUTE_INLINE_BODY_BYTES_MAX: usize = 64 << 10;

/// The destinations of each message, in order. Routing that must parse large bodies runs on the
/// blocking pool; the messages come back with the routes.
async fn route_batch(
    runtime: Arc<TopicRuntime>,
    messages: Vec<(String, Message)>,
) -> Result<(Vec<(String, Message)>, Vec<Vec<Destination>>), EngineError> {
    let route_all = move |runtime: &TopicRuntime, messages: Vec<(String, Message)>| {
        let routes = (messages.iter())
            .map(|(key, message)| runtime.route(key, message))
            .collect();
        (messages, routes)
    };
    let body_bytes: usize = messages.iter().map(|(_, m)| m.body.len()).sum();
    if body_bytes <= ROUTE_INLINE_BODY_BYTES_MAX || !runtime.reads_bodies() {
        return Ok(route_all(&runtime, messages));
    }
    tokio::task::spawn_blocking(move || route_all(&runtime, messages))
        .await
        .map_err(|error| super::internal_error("routing", &error))
}

impl TopicRuntime {
    /// Whether routing a message may parse its body: a binding, rule or subscriber filters.
    fn reads_bodies(&self) -> bool {
        self.router.read().expect("router lock").reads_body()
            || (self.subscribers.lock().expect("subscribers lock"))
                .iter()
                .any(|s| s.filter.is_some())
    }

    /// Keeps the last message per key when the topic retains (an empty body clears the key).
    async fn retain(&self, messages: &[(String, Message)]) -> Result<(), EngineError> {
        if !self.router.read().expect("router lock").options().retain {
            return Ok(());
        }
        let records: Vec<_> = messages
            .iter()
            .map(|(key, message)| {
                TopicRecord::Retained {
                    key: key.clone(),
                    message: message.clone(),
                }
                .encode()
            })
            .collect();
        self.log.append(&records).await?;
        let mut retained = self.retained.lock().expect("retained lock");
        for (key, message) in messages {
            apply_retained(&mut retained, key, message.clone());
        }
        Ok(())
    }

    /// Destinations of one message; also feeds live subscribers and the binding counters.
    fn route(&self, key: &str, message: &Message) -> Vec<Destination> {
        let router = self.router.read().expect("router lock");
        let mut subscribers = self.subscribers.lock().expect("subscribers lock");
        subscribers.retain(|s| !s.sender.is_closed());
        // Parse the body once, and only when some filter will read it.
        let reads_body = router.reads_body() || subscribers.iter().any(|s| s.filter.is_some());
        let body = reads_body.then(|| json_body(message)).flatten();
        let route = router.route(key, &message.headers, body.as_ref());
        drop(router);
        {
            let mut matched = self.matched.lock().expect("matched lock");
            for id in &route.bindings {
                *matched.entry(id.clone()).or_default() += 1;
            }
        }
        self.filters_stopped
            .fetch_add(route.filters_stopped, Ordering::Relaxed);
        for subscriber in subscribers.iter() {
            if self.count_filter_stop(subscriber.wants(key, message, body.as_ref())) {
                // At most once: a subscriber too slow to keep its buffer free misses messages.
                let _ = subscriber.sender.try_send(message.clone());
            }
        }
        route.destinations.into_iter().collect()
    }

    /// Counts `evaluation` if a cost limit stopped it; whether it matched either way.
    fn count_filter_stop(&self, evaluation: Evaluation) -> bool {
        if evaluation.stopped_by.is_some() {
            self.filters_stopped.fetch_add(1, Ordering::Relaxed);
        }
        evaluation.matched
    }

    fn count(&self, routed: &[usize]) {
        self.published
            .fetch_add(routed.len() as u64, Ordering::Relaxed);
        let total: usize = routed.iter().sum();
        self.routed.fetch_add(total as u64, Ordering::Relaxed);
        let unroutable = routed.iter().filter(|r| **r == 0).count();
        self.unroutable
            .fetch_add(unroutable as u64, Ordering::Relaxed);
    }
}

impl Subscriber {
    /// The key pattern first; the filter runs only when it matches.
    fn wants(&self, key: &str, message: &Message, body: Option<&serde_json::Value>) -> Evaluation {
        let mut words = Vec::new();
        let key_matches =
            self.syntax.split_key(key, &mut words).is_ok() && self.pattern.matches(&words);
        match &self.filter {
            Some(filter) if key_matches => filter.evaluate(&message.headers, body),
            _ => Evaluation {
                matched: key_matches,
                stopped_by: None,
            },
        }
    }
}

impl Router {
    /// Whether the binding `id` takes a message with this key (for retained delivery on bind).
    fn route_one(&self, id: &str, key: &str, message: &Message) -> bool {
        let body = json_body(message);
        self.route(key, &message.headers, body.as_ref())
            .bindings
            .iter()
            .any(|b| b == id)
    }
}

fn apply_retained(retained: &mut BTreeMap<String, Message>, key: &str, message: Message) {
    if message.body.is_empty() {
        retained.remove(key);
    } else {
        retained.insert(key.to_string(), message);
    }
}

/// The body as JSON for filters, when it is JSON.
pub(super) fn json_body(message: &Message) -> Option<serde_json::Value> {
    let json = message.content_type.starts_with("application/json")
        || message.content_type.contains("+json");
    json.then(|| serde_json::from_slice(&message.body).ok())
        .flatten()
}

fn replay_topic(log: &Log, router: &mut Router) -> Result<BTreeMap<String, Message>, EngineError> {
    let mut retained = BTreeMap::new();
    let mut at = log.start_offset();
    loop {
        let records = log.read_batch(at, 4_096, 8 << 20)?;
        let Some(last) = records.last() else {
            break;
        };
        at = last.offset.next();
        for record in &records {
            match TopicRecord::decode(record.offset.0, &record.payload)? {
                TopicRecord::BindingAdded { id, spec } => router.add(id, spec)?,
                TopicRecord::BindingRemoved { id } => {
                    router.remove(&id);
                }
                TopicRecord::Retained { key, message } => {
                    apply_retained(&mut retained, &key, message)
                }
            }
        }
    }
    Ok(retained)
}

fn topic_info(topic: &Arc<TopicRuntime>) -> TopicInfo {
    let router = topic.router.read().expect("router lock");
    TopicInfo {
        name: topic.name.clone(),
        options: router.options().clone(),
        stats: TopicStats {
            published: topic.published.load(Ordering::Relaxed),
            routed: topic.routed.load(Ordering::Relaxed),
            unroutable: topic.unroutable.load(Ordering::Relaxed),
            bindings: router.len() as u64,
            filters_stopped: topic.filters_stopped.load(Ordering::Relaxed),
        },
    }
}

fn topic_log_name(name: &str) -> String {
    format!("topic-{name}")
}

/// Topic names follow the queue naming rules (letters, digits, `.`, `-`, `_`).
fn parse_topic_name(name: &str) -> Result<String, EngineError> {
    QueueName::from_str(name)
        .map(|n| n.to_string())
        .map_err(|e| EngineError::InvalidName {
            kind: "topic",
            name: name.to_string(),
            reason: e.to_string(),
        })
}
