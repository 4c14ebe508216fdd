//! Topics in the broker: definitions in the metadata store, bindings and retained messages in
//! each topic's log, and publishing to every matched destination.
//!
//! In memory a topic keeps its routing table and, per retained key, only where the message lies
//! in the log (`topic::RetainedIndex`); bodies are read back when delivered (`retained`). Every
//! write to the log goes through [`TopicRuntime::write`], and memory is rebuilt from the log in
//! log order (`log_state`). `compaction` keeps the log from growing without bound.
//!
//! Locks of one topic, in the order they are taken (none is held across an `.await` but
//! `writes`): `writes` (async: writers share it, a compaction batch or a change of options
//! takes it alone) → `state` → `router` → `subscribers` → `matched`.

mod compaction;
mod log_state;
mod retained;
mod subscribers;
#[cfg(test)]
mod tests;

use retained::RetainedMessages;
use subscribers::Subscribers;

use super::{
    api::{SendMessage, ORIGIN_TOPIC_HEADER, RETAINED_COPY_HEADER, ROUTING_KEY_HEADER},
    internal_error, queue_runtime,
    topic_records::TopicRecord,
    Engine, QueueSend,
};
use crate::{
    error::{DefinitionError, EngineError, Field, FieldProblem, NameProblem, ResourceKind},
    topic::{BindingSpec, Destination, Router, TopicOptions},
};
use bytes::Bytes;
use log_state::{LogState, NO_COPIES};
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    ops::Range,
    pin::Pin,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
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
use wharf_storage::{
    Durability, LogOptions, LogSize, LogStore, MetaOp, Offset, LOG_NAME_BYTES_MAX,
};

/// Key prefix of topic definitions in the metadata store.
pub(super) const TOPIC_META_PREFIX: &str = "topic/";
/// Topic-to-topic routing deeper than this stops: it bounds a publish through a cycle.
const TOPIC_HOPS_MAX: usize = 8;
/// How much of a long topic name its log's name keeps: `topic-`, this much, `~` and 64 hex
/// digits of digest fill [`LOG_NAME_BYTES_MAX`] exactly.
const TOPIC_LOG_PREFIX_BYTES: usize = LOG_NAME_BYTES_MAX - "topic-".len() - 1 - 64;
/// Messages a live subscriber may lag behind before it misses some (at most once).
const SUBSCRIBER_BUFFER: usize = 1_024;

/// One message to publish with its routing key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishMessage {
    pub routing_key: String,
    pub message: SendMessage,
    /// Keep it as its key's retained message even when the topic does not retain every
    /// message (MQTT's RETAIN flag); an empty body clears the key.
    pub retain: bool,
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
    /// Routing keys with a retained message now.
    pub retained: u64,
    /// Compaction passes of the topic's log completed since the server started.
    pub compactions: u64,
    /// Live subscriptions now.
    pub subscribers: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingInfo {
    pub id: String,
    pub spec: BindingSpec,
    /// Messages this binding matched since the server started.
    pub matched: u64,
}

/// A message a live subscription received, with the routing key it was published with and the
/// tag of the subscription it matched (see [`LiveFeed`]).
#[derive(Debug)]
pub struct LiveMessage {
    pub tag: u64,
    pub routing_key: Arc<str>,
    /// Shared by every subscriber the message went to: one copy however many there are.
    pub message: Arc<Message>,
    /// The message's bytes in its feed's budget, given back when this is dropped (moving
    /// `message` out and dropping the rest gives them back too).
    _held: Held,
}

/// Bytes of a feed's budget that one unread message holds; returned on drop.
#[derive(Debug)]
struct Held {
    bytes: usize,
    feed_bytes: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.feed_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Where live messages go: a bounded channel, possibly shared by several subscriptions of one
/// client (each with its own tag), and the count of messages it missed because it was full.
/// Delivery is at most once: the topic never waits for a slow reader. The channel is bounded
/// in messages and in body bytes ([`FEED_BYTES_MAX`] unless set), so a reader that stops
/// holds at most that much however large the messages are.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    sender: mpsc::Sender<LiveMessage>,
    missed: Arc<AtomicU64>,
    /// Body bytes of the messages sent and not yet dropped by the reader.
    bytes: Arc<AtomicUsize>,
    bytes_max: usize,
}

/// Body bytes a feed holds unread before it misses messages: a thousand 64 KiB messages.
pub const FEED_BYTES_MAX: usize = 64 << 20;

impl LiveFeed {
    /// A feed holding up to `buffer` unread messages of [`FEED_BYTES_MAX`] body bytes in all,
    /// and its receiving end.
    pub fn new(buffer: usize) -> (LiveFeed, mpsc::Receiver<LiveMessage>) {
        LiveFeed::with_bytes(buffer, FEED_BYTES_MAX)
    }

    /// A feed holding up to `buffer` unread messages of `bytes_max` body bytes in all (one
    /// message larger than that still passes when nothing else is held).
    pub fn with_bytes(buffer: usize, bytes_max: usize) -> (LiveFeed, mpsc::Receiver<LiveMessage>) {
        let (sender, receiver) = mpsc::channel(buffer.max(1));
        let feed = LiveFeed {
            sender,
            missed: Arc::new(AtomicU64::new(0)),
            bytes: Arc::new(AtomicUsize::new(0)),
            bytes_max,
        };
        (feed, receiver)
    }

    /// Messages dropped so far because the buffer was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Acquire)
    }

    /// The count of [`LiveFeed::missed`], readable without holding the feed: the feed's
    /// receiver sees its end (`None`) only once every `LiveFeed` is dropped.
    pub fn missed_counter(&self) -> MissedCounter {
        MissedCounter(self.missed.clone())
    }

    fn offer(&self, tag: u64, routing_key: Arc<str>, message: Arc<Message>) {
        let bytes = message.body.len();
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let held = Held {
            bytes,
            feed_bytes: self.bytes.clone(),
        };
        if before > 0 && before + bytes > self.bytes_max {
            // Dropping `held` gives the bytes back.
            self.missed.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let live = LiveMessage {
            tag,
            routing_key,
            message,
            _held: held,
        };
        if self.sender.try_send(live).is_err() {
            self.missed.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Body bytes of the messages sent and not yet dropped by the reader.
    pub fn bytes_held(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }
}

/// See [`LiveFeed::missed_counter`].
#[derive(Debug, Clone)]
pub struct MissedCounter(Arc<AtomicU64>);

impl MissedCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// What a live subscription wants: a routing-key pattern and an optional filter.
#[derive(Debug, Clone, Copy)]
pub struct Interested<'a> {
    pub pattern: &'a str,
    pub syntax: Syntax,
    pub filter: Option<&'a str>,
}

/// What a live subscription wants, checked outside the engine's routing: a client that takes
/// a topic's messages once (through one subscription) and hands them to many local
/// subscribers, such as the real-time hub, asks it of each message.
#[derive(Debug, Clone)]
pub struct LiveInterest(Arc<Interest>);

impl LiveInterest {
    pub fn parse(interested: Interested<'_>) -> Result<LiveInterest, EngineError> {
        Ok(LiveInterest(Arc::new(Interest::parse(
            interested,
            Offset(0),
        )?)))
    }

    /// Whether it wants the message published with `key`; `body` is [`json_body`] of the
    /// message, needed only when [`LiveInterest::reads_body`].
    pub fn wants(&self, key: &str, message: &Message, body: Option<&serde_json::Value>) -> bool {
        self.0.wants(key, message, body).matched
    }

    pub fn reads_body(&self) -> bool {
        self.0.filter.is_some()
    }
}

/// A live subscription: retained matches first (read from the topic's log batch by batch),
/// then messages as they are published. Dropping it ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    /// The retained messages that matched when the subscription began: see
    /// [`Subscription::next_retained`].
    retained: RetainedMessages,
    /// Messages published since the subscription began. A key published again while the
    /// retained messages are read arrives here only, with its new message.
    pub messages: mpsc::Receiver<LiveMessage>,
    _guard: SubscriberGuard,
}

/// A live subscription whose messages go to a [`LiveFeed`] the caller holds: what a client
/// with many subscriptions (a WebSocket) uses, so that one buffer bounds all of them.
#[derive(Debug)]
pub struct FeedSubscription {
    retained: RetainedMessages,
    _guard: SubscriberGuard,
}

#[derive(Debug)]
pub(super) struct TopicRuntime {
    pub name: String,
    log: Arc<dyn LogStore>,
    pub router: RwLock<Router>,
    /// The log as applied: how far, and the retained index.
    state: Mutex<LogState>,
    /// Held shared by each write (append and apply), alone by a compaction batch or a change
    /// of options: a copy is never overtaken by a write it did not see.
    writes: Arc<tokio::sync::RwLock<()>>,
    compacting: AtomicBool,
    compactions: AtomicU64,
    /// Set when the topic is deleted: walks over its retained messages stop.
    deleted: AtomicBool,
    subscribers: Arc<Mutex<Subscribers>>,
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
    tag: u64,
    interest: Arc<Interest>,
    feed: LiveFeed,
}

/// What a subscriber wants, shared by its live feed and its walk over retained messages.
#[derive(Debug)]
struct Interest {
    syntax: Syntax,
    pattern: Pattern,
    filter: Option<Filter>,
    /// The log's applied end when the subscription began. A retained message published below it
    /// is read from the log; one published at or above it arrives live.
    retained_before: Offset,
}

/// A taken place in the engine's count of subscriptions, given back if registering fails.
struct SubscriberCount(Option<Arc<AtomicUsize>>);

impl Drop for SubscriberCount {
    fn drop(&mut self) {
        if let Some(count) = self.0.take() {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[derive(Debug)]
struct SubscriberGuard {
    id: u64,
    subscribers: Arc<Mutex<Subscribers>>,
    /// The engine's count of live subscriptions, taken by this one; `None` for a
    /// [`FeedSubscription`], whose feed's owner bounds them.
    count: Option<Arc<AtomicUsize>>,
}

impl Subscription {
    /// The next batch of retained messages the subscription matches, in routing-key order,
    /// read from the topic's log; `None` once all were given. A batch holds at most 256
    /// messages and 256 KiB of bodies, and may be empty when none of the keys it looked at
    /// matched: ask again. Take them all before [`Subscription::messages`].
    pub async fn next_retained(&mut self) -> Result<Option<Vec<(String, Message)>>, EngineError> {
        self.retained.next_batch().await
    }

    /// Whether every retained message was given.
    pub fn retained_done(&self) -> bool {
        self.retained.is_done()
    }
}

impl FeedSubscription {
    /// See [`Subscription::next_retained`].
    pub async fn next_retained(&mut self) -> Result<Option<Vec<(String, Message)>>, EngineError> {
        self.retained.next_batch().await
    }

    /// Whether every retained message was given.
    pub fn retained_done(&self) -> bool {
        self.retained.is_done()
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.remove(self.id);
        }
        if let Some(count) = &self.count {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Engine {
    /// Creates the topic or updates its options; true when created.
    pub async fn put_topic(&self, name: &str, options: TopicOptions) -> Result<bool, EngineError> {
        let (engine, name) = (self.clone(), name.to_string());
        let change = async move { engine.put_topic_in_task(&name, options).await };
        self.in_task("put_topic", change).await
    }

    async fn put_topic_in_task(
        &self,
        name: &str,
        options: TopicOptions,
    ) -> Result<bool, EngineError> {
        self.check_open()?;
        let name = parse_topic_name(name)?;
        let options = crate::topic::router::canonical_options(options)?;
        let router = Router::new(options.clone())?;
        let _admin = self.inner.admin.lock().await;
        // Under the admin lock: no queue named here is deleted between the check and the write.
        self.check_topic_destinations(&options)?;
        let value = serde_json::to_value(&options).expect("options serialize");
        if let Some(topic) = self.find_topic(&name) {
            // Alone, so no binding checked against the old kind is added under the new one.
            let _writing = topic.writes.write().await;
            let previous = {
                let mut router = topic.router.write().expect("router lock");
                let previous = router.options().clone();
                router.set_options(options)?;
                previous
            };
            let put = MetaOp::Put(format!("{TOPIC_META_PREFIX}{name}"), value);
            if let Err(error) = self.inner.store.meta_apply(vec![put]).await {
                // Not written, so not applied: the options that held still hold.
                let mut router = topic.router.write().expect("router lock");
                router.set_options(previous)?;
                return Err(error.into());
            }
            return Ok(false);
        }
        self.check_space().await?;
        // The log first: a definition written before a log that then fails to open would
        // bring back, at the next start, a topic whose create answered an error.
        let runtime = self.load_topic(name.clone(), router).await?;
        let put = MetaOp::Put(format!("{TOPIC_META_PREFIX}{name}"), value);
        if let Err(error) = self.inner.store.meta_apply(vec![put]).await {
            drop(runtime);
            // Nothing names the new, empty log; deleting it frees its space now rather than
            // leaving it for a later create of the same name to find.
            let log = topic_log_name(&name);
            if let Err(cleanup) = self.inner.store.delete_log(&log).await {
                tracing::warn!(topic = %name, error = %cleanup, "deleting the log of a topic whose create failed");
            }
            return Err(error.into());
        }
        self.register_topic(name, runtime);
        Ok(true)
    }

    pub fn list_topics(&self) -> Vec<TopicInfo> {
        let topics: Vec<_> = self.topics().values().cloned().collect();
        topics.iter().map(topic_info).collect()
    }

    /// How many topics there are.
    pub fn topic_count(&self) -> usize {
        self.topics().len()
    }

    /// One page of the topics by name, among those `visible` admits.
    pub fn list_topics_page(
        &self,
        request: super::PageRequest<'_>,
        visible: impl Fn(&str) -> bool,
    ) -> super::Page<TopicInfo> {
        let page = super::listing::page_of(&self.topics(), request, visible);
        page.map(|topic| topic_info(&topic))
    }

    pub fn topic_info(&self, name: &str) -> Result<TopicInfo, EngineError> {
        Ok(topic_info(&self.topic(name)?))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), EngineError> {
        let (engine, name) = (self.clone(), name.to_string());
        let change = async move { engine.delete_topic_in_task(&name).await };
        self.in_task("delete_topic", change).await
    }

    async fn delete_topic_in_task(&self, name: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let _admin = self.inner.admin.lock().await;
        let topic = self.topic(name)?;
        self.check_topic_unneeded(name)?;
        let delete = MetaOp::Delete(format!("{TOPIC_META_PREFIX}{name}"));
        super::space::meta_apply_freeing(self.inner.store.as_ref(), vec![delete]).await?;
        self.inner.topics.write().expect("topics lock").remove(name);
        // Alone: no write or compaction batch of the topic is under way when its log goes.
        let _writing = topic.writes.write().await;
        topic.deleted.store(true, Ordering::Release);
        topic.subscribers.lock().expect("subscribers lock").clear();
        self.inner.store.delete_log(&topic_log_name(name)).await?;
        Ok(())
    }

    /// Keeps topic `name` from being deleted from now on: `door` routes through it (its
    /// clients would find it gone, and the bindings of their subscriptions with it).
    pub fn keep_topic(&self, name: &str, door: &'static str) {
        let mut kept = self.inner.kept_topics.lock().expect("kept topics lock");
        kept.insert(name.to_string(), door);
    }

    /// Refuses to delete a topic a door routes through or a webhook endpoint subscribes to.
    fn check_topic_unneeded(&self, name: &str) -> Result<(), EngineError> {
        let kept = self.inner.kept_topics.lock().expect("kept topics lock");
        if let Some(&door) = kept.get(name) {
            let topic = name.to_string();
            return Err(EngineError::TopicKept { topic, door });
        }
        drop(kept);
        match self.webhook_subscribing(name) {
            Some(endpoint) => Err(EngineError::WebhookTopic {
                topic: name.to_string(),
                endpoint,
            }),
            None => Ok(()),
        }
    }

    /// Adds a binding; returns its id. Retained messages it matches go to its destination,
    /// read from the topic's log a batch at a time.
    /// What another resource owns and writes alone (a persistent subscription's queues, a
    /// webhook endpoint's history) is no destination.
    pub async fn bind(&self, topic: &str, spec: BindingSpec) -> Result<String, EngineError> {
        self.check_destination_unowned(&spec.destination)?;
        self.bind_owned(topic, spec).await
    }

    /// [`Engine::bind`] for the owner of the destination, a webhook endpoint included.
    pub(crate) async fn bind_owned(
        &self,
        topic: &str,
        spec: BindingSpec,
    ) -> Result<String, EngineError> {
        self.check_open()?;
        let runtime = self.topic(topic)?;
        let spec = crate::topic::router::canonical_spec(spec)?;
        let kind = spec.destination.kind();
        self.check_destination(&spec.destination, Field::Destination { kind })?;
        runtime.router.read().expect("router lock").check(&spec)?;
        let id = self.generate_id(self.now());
        let record = TopicRecord::BindingAdded {
            id: id.clone(),
            spec: spec.clone(),
        };
        let check = |router: &Router| router.check(&spec);
        let written = runtime.write(vec![record.encode()], check).await?;
        // Messages published from the binding's record on were routed to it live.
        self.deliver_retained(&runtime, &id, &spec.destination, written.start)
            .await?;
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
            return Err(EngineError::invalid_field(
                Field::CreateQueue,
                FieldProblem::NotAQueue,
            ));
        };
        let runtime = self.topic(topic)?;
        runtime.router.read().expect("router lock").check(&spec)?;
        let field = Field::Destination {
            kind: spec.destination.kind(),
        };
        check_destination_name(&spec.destination, &field)?;
        if self.find(queue).is_none() {
            self.put_queue(queue, crate::queue::QueueOptions::default())
                .await?;
        }
        self.bind(topic, spec).await
    }

    /// Removes binding `id`. A binding a webhook endpoint made is refused: it changes with the
    /// endpoint.
    pub async fn unbind(&self, topic: &str, id: &str) -> Result<(), EngineError> {
        let spec = {
            let runtime = self.topic(topic)?;
            let router = runtime.router.read().expect("router lock");
            router.binding(id).cloned()
        };
        if let Some(endpoint) = spec.and_then(|spec| self.webhook_owning_binding(topic, &spec)) {
            let (topic, id) = (topic.to_string(), id.to_string());
            return Err(EngineError::WebhookBinding {
                topic,
                id,
                endpoint,
            });
        }
        self.unbind_any(topic, id).await
    }

    /// Removes binding `id`, whoever made it.
    pub(crate) async fn unbind_any(&self, topic: &str, id: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let runtime = self.topic(topic)?;
        let record = TopicRecord::BindingRemoved { id: id.to_string() };
        let check = |router: &Router| match router.binding(id) {
            Some(_) => Ok(()),
            None => Err(EngineError::BindingNotFound {
                topic: topic.to_string(),
                id: id.to_string(),
            }),
        };
        runtime.write(vec![record.encode()], check).await?;
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
        self.check_space().await?;
        let now = self.now();
        let retain: Vec<bool> = batch.iter().map(|p| p.retain).collect();
        let (keys, sends): (Vec<String>, Vec<SendMessage>) = batch
            .into_iter()
            .map(|p| (p.routing_key, p.message))
            .unzip();
        let messages = self.messages_from_batch(sends, now)?;
        let messages = keys
            .into_iter()
            .zip(messages.into_iter().map(|(m, _)| m))
            .collect();
        self.publish_messages(topic.to_string(), messages, retain, 0, None)
            .await
    }

    /// Subscribes a live client: retained matches now, later publishes as they happen, in a
    /// buffer of its own. Counts against `subscriptions_max`.
    pub fn subscribe(
        &self,
        topic: &str,
        pattern: &str,
        syntax: Syntax,
        filter: Option<&str>,
    ) -> Result<Subscription, EngineError> {
        self.check_open()?;
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
        let guard_count = SubscriberCount(Some(count));
        let (feed, messages) = LiveFeed::new(SUBSCRIBER_BUFFER);
        let interested = Interested {
            pattern,
            syntax,
            filter,
        };
        let (retained, guard) =
            self.register_subscriber(topic, interested, feed, 0, guard_count)?;
        Ok(Subscription {
            retained,
            messages,
            _guard: guard,
        })
    }

    /// Subscribes into `feed`, whose messages carry `tag`: the caller's buffer bounds this
    /// subscription, so it does not count against `subscriptions_max`.
    pub fn subscribe_feed(
        &self,
        topic: &str,
        interested: Interested<'_>,
        feed: LiveFeed,
        tag: u64,
    ) -> Result<FeedSubscription, EngineError> {
        self.check_open()?;
        let (retained, guard) =
            self.register_subscriber(topic, interested, feed, tag, SubscriberCount(None))?;
        Ok(FeedSubscription {
            retained,
            _guard: guard,
        })
    }

    fn register_subscriber(
        &self,
        topic: &str,
        interested: Interested<'_>,
        feed: LiveFeed,
        tag: u64,
        mut count: SubscriberCount,
    ) -> Result<(RetainedMessages, SubscriberGuard), EngineError> {
        let runtime = self.topic(topic)?;
        let mut interest = Interest::parse(interested, Offset(0))?;
        let id = runtime.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let interest = {
            // Registered under the state lock: every retained message published below
            // `retained_before` is in the index, and every later one finds the subscriber.
            let state = runtime.state.lock().expect("topic state lock");
            interest.retained_before = state.applied_end;
            let interest = Arc::new(interest);
            let subscriber = Subscriber {
                id,
                tag,
                interest: interest.clone(),
                feed,
            };
            (runtime.subscribers.lock().expect("subscribers lock")).add(subscriber);
            interest
        };
        let guard = SubscriberGuard {
            id,
            subscribers: runtime.subscribers.clone(),
            count: count.0.take(),
        };
        Ok((RetainedMessages::new(runtime, interest), guard))
    }

    /// Routes validated messages and stores them in every destination; recursive for topic
    /// destinations, up to [`TOPIC_HOPS_MAX`].
    /// `origin` is the topic the messages were first published to, when they reach `topic`
    /// through a topic-to-topic binding (`hops` of them so far), and whether they are copies
    /// of its retained messages made for a new binding: queues mark those as such.
    pub(super) fn publish_messages(
        &self,
        topic: String,
        messages: Vec<(String, Message)>,
        retain: Vec<bool>,
        hops: usize,
        origin: Option<(String, bool)>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Published>, EngineError>> + Send + '_>> {
        Box::pin(async move {
            let runtime = self.topic(&topic)?;
            let (origin, retained_copies) = origin.unwrap_or_else(|| (topic.clone(), false));
            let retained_at = runtime.retain(&messages, &retain).await?;
            // Shared from here on: live subscribers take the message itself, not a copy.
            let messages = (messages.into_iter())
                .map(|(key, message)| (key, Arc::new(message)))
                .collect();
            let (messages, routes) = route_batch(runtime.clone(), messages, retained_at).await?;
            let mut groups: BTreeMap<Destination, Vec<usize>> = BTreeMap::new();
            for (index, destinations) in routes.into_iter().enumerate() {
                for destination in destinations {
                    groups.entry(destination).or_default().push(index);
                }
            }
            let mut routed = vec![0usize; messages.len()];
            // Queue destinations: every copy in one append per WAL, in a task of its own.
            let mut queue_sends = Vec::new();
            let mut queue_indexes = Vec::new();
            let mut deliveries = Vec::new();
            // Each message as queues keep it (with its routing key) and its `enqueued` record,
            // made once however many queues store it.
            let mut queued: Vec<Option<(Message, Bytes)>> = vec![None; messages.len()];
            for (destination, indexes) in groups {
                if let Destination::Queue(name) = &destination {
                    if let Some(queue) = self.find(name) {
                        let (batch, records) = (indexes.iter())
                            .map(|i| {
                                let (message, record) = queued[*i].get_or_insert_with(|| {
                                    let (key, message) = &messages[*i];
                                    let message = as_queued(
                                        (&origin, retained_copies),
                                        key.clone(),
                                        (**message).clone(),
                                    );
                                    let record = queue_runtime::encode_enqueued(&message);
                                    (message, record)
                                });
                                ((message.clone(), false), record.clone())
                            })
                            .unzip();
                        queue_sends.push(QueueSend {
                            queue,
                            messages: batch,
                            encoded: Some(records),
                        });
                        queue_indexes.push(indexes);
                    }
                    continue;
                }
                // Spawned handles, not a JoinSet: a publisher that hangs up detaches the
                // deliveries instead of aborting them, so no destination is left half-served.
                let batch: Vec<_> = (indexes.iter())
                    .map(|i| (messages[*i].0.clone(), Message::clone(&messages[*i].1)))
                    .collect();
                let (engine, origin) = (self.clone(), origin.clone());
                deliveries.push(tokio::spawn(async move {
                    let copies = (origin, retained_copies);
                    let stored = (engine.deliver(&destination, batch, hops, copies)).await;
                    (indexes, stored)
                }));
            }
            let stored = self.send_many(queue_sends, self.now()).await?;
            for (indexes, stored) in queue_indexes.into_iter().zip(stored) {
                stored?;
                for index in indexes {
                    routed[index] += 1;
                }
            }
            for delivery in deliveries {
                let (indexes, stored) = delivery
                    .await
                    .map_err(|error| super::internal_error("delivery", &error))?;
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
                    id: Arc::try_unwrap(message).map_or_else(|shared| shared.id.clone(), |m| m.id),
                    routed,
                })
                .collect())
        })
    }

    /// Stores messages first published to topic `origin` in one destination (copies of
    /// retained messages for a new binding when `retained`); false when it does not exist
    /// (any more).
    async fn deliver(
        &self,
        destination: &Destination,
        batch: Vec<(String, Message)>,
        hops: usize,
        (origin, retained): (String, bool),
    ) -> Result<bool, EngineError> {
        match destination {
            Destination::Queue(name) => {
                let Some(queue) = self.find(name) else {
                    return Ok(false);
                };
                let messages: Vec<_> = (batch.into_iter())
                    .map(|(key, message)| (as_queued((&origin, retained), key, message), false))
                    .collect();
                self.send_to(queue, messages, self.now()).await?;
                Ok(true)
            }
            Destination::Topic(name)
                if hops < TOPIC_HOPS_MAX && self.find_topic(name).is_some() =>
            {
                let retain = vec![false; batch.len()];
                let origin = Some((origin, retained));
                self.publish_messages(name.clone(), batch, retain, hops + 1, origin)
                    .await?;
                Ok(true)
            }
            Destination::Stream(name) => {
                if self.find_stream(name).is_none() {
                    return Ok(false);
                }
                let records = batch.into_iter().map(stream_record).collect();
                let request = super::ProduceRequest {
                    records,
                    producer: None,
                };
                self.produce_owned(name, request).await?;
                Ok(true)
            }
            Destination::Topic(_) => Ok(false),
        }
    }

    /// Sends a new binding the retained messages it matches that were published before
    /// `before`, a batch of keys at a time.
    async fn deliver_retained(
        &self,
        runtime: &Arc<TopicRuntime>,
        id: &str,
        destination: &Destination,
        before: Offset,
    ) -> Result<(), EngineError> {
        let mut after: Option<String> = None;
        // Ends: each step moves `after` forward by at least one key, or ends the walk.
        loop {
            let step = runtime
                .retained_step(
                    after.as_deref(),
                    before,
                    |_| true,
                    |key, message| {
                        runtime
                            .router
                            .read()
                            .expect("router lock")
                            .route_one(id, key, message)
                    },
                )
                .await?;
            let Some(last) = step.last else {
                return Ok(());
            };
            after = Some(last);
            if !step.messages.is_empty() {
                let copies = (runtime.name.clone(), true);
                (self.deliver(destination, step.messages, 0, copies)).await?;
            }
        }
    }

    /// Checks that `destination`, named by `field`, is a queue or topic that exists now. One
    /// check for bindings, rules and alternates: none may name what is not there.
    fn check_destination(
        &self,
        destination: &Destination,
        field: Field,
    ) -> Result<(), EngineError> {
        check_destination_name(destination, &field)?;
        let exists = match destination {
            Destination::Queue(name) => self.find(name).is_some(),
            Destination::Topic(name) => self.find_topic(name).is_some(),
            Destination::Stream(name) => self.find_stream(name).is_some(),
        };
        match exists {
            true => Ok(()),
            false => Err(EngineError::DestinationNotFound {
                field,
                kind: destination.kind(),
                name: destination.name().to_string(),
            }),
        }
    }

    /// Refuses a destination that another resource owns and writes alone.
    fn check_destination_unowned(&self, destination: &Destination) -> Result<(), EngineError> {
        match destination {
            Destination::Queue(name) => self.check_not_subscription_queue(name),
            Destination::Stream(name) => self.check_not_webhook_history(name),
            Destination::Topic(_) => Ok(()),
        }
    }

    /// The alternate and the rule destinations of `options`, each through
    /// [`Engine::check_destination`] and [`Engine::check_destination_unowned`].
    fn check_topic_destinations(&self, options: &TopicOptions) -> Result<(), EngineError> {
        if let Some(alternate) = &options.alternate {
            let kind = alternate.kind();
            self.check_destination(alternate, Field::Alternate { kind })?;
            self.check_destination_unowned(alternate)?;
        }
        for (index, rule) in options.rules.iter().enumerate() {
            let kind = rule.destination.kind();
            let field = Field::RuleDestination { index, kind };
            self.check_destination(&rule.destination, field)?;
            self.check_destination_unowned(&rule.destination)?;
        }
        Ok(())
    }

    /// Opens every topic defined in the storage; a definition that does not decode or is
    /// refused is reported as damaged and left closed.
    pub(super) async fn open_topics(&self) -> Result<(), EngineError> {
        for (key, value) in self.inner.store.meta_list(TOPIC_META_PREFIX) {
            let name = key[TOPIC_META_PREFIX.len()..].to_string();
            let router = serde_json::from_value(value)
                .map_err(|e| EngineError::corrupt_definition(&key, DefinitionError::Decode(e)))
                .and_then(|options| {
                    Router::new(options).map_err(|e| {
                        EngineError::corrupt_definition(&key, DefinitionError::Refused(Box::new(e)))
                    })
                });
            match router {
                Ok(router) => self.open_topic(name, router).await?,
                Err(damaged) => self.report_damaged(damaged),
            }
        }
        Ok(())
    }

    /// Opens (replays) a topic's log and registers it.
    pub(super) async fn open_topic(&self, name: String, router: Router) -> Result<(), EngineError> {
        let runtime = self.load_topic(name.clone(), router).await?;
        self.register_topic(name, runtime);
        Ok(())
    }

    /// Opens a topic's log and reads its state, without making the topic visible.
    async fn load_topic(
        &self,
        name: String,
        router: Router,
    ) -> Result<Arc<TopicRuntime>, EngineError> {
        // Small: a topic's log holds bindings and retained messages, and compaction keeps it
        // near what is live.
        let options = LogOptions {
            durability: Durability::Durable,
            size: LogSize::Small,
        };
        let log = (self.inner.store.open_log(&topic_log_name(&name), options)).await?;
        let router = RwLock::new(router);
        let state = Mutex::new(LogState::new(log.start_offset()));
        log_state::catch_up(&state, log.as_ref(), &router, &NO_COPIES).await?;
        let runtime = Arc::new(TopicRuntime {
            name: name.clone(),
            log,
            router,
            state,
            writes: Arc::default(),
            compacting: AtomicBool::new(false),
            compactions: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
            subscribers: Arc::default(),
            next_subscriber: AtomicU64::new(0),
            published: AtomicU64::new(0),
            routed: AtomicU64::new(0),
            unroutable: AtomicU64::new(0),
            filters_stopped: AtomicU64::new(0),
            matched: Mutex::default(),
        });
        Ok(runtime)
    }

    fn register_topic(&self, name: String, runtime: Arc<TopicRuntime>) {
        // A log left long by an earlier run (or an interrupted pass) is compacted now.
        runtime.maybe_compact();
        self.inner
            .topics
            .write()
            .expect("topics lock")
            .insert(name, runtime);
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

/// `message` as a queue keeps it: with the routing key it was published with in
/// [`ROUTING_KEY_HEADER`] and the topic it was published to in [`ORIGIN_TOPIC_HEADER`], since a
/// queue keeps neither of its own, and marked with [`RETAINED_COPY_HEADER`] when it is a
/// retained message copied for a new binding.
fn as_queued((origin, retained): (&str, bool), key: String, mut message: Message) -> Message {
    (message.headers).insert(ROUTING_KEY_HEADER.to_string(), key);
    (message.headers).insert(ORIGIN_TOPIC_HEADER.to_string(), origin.to_string());
    match retained {
        true => (message.headers).insert(RETAINED_COPY_HEADER.to_string(), "1".to_string()),
        false => (message.headers).remove(RETAINED_COPY_HEADER),
    };
    message
}

/// The destinations of each message, in order. Routing that must parse large bodies runs on the
/// blocking pool; the messages come back with the routes.
async fn route_batch(
    runtime: Arc<TopicRuntime>,
    messages: Vec<(String, Arc<Message>)>,
    retained_at: Vec<Option<Offset>>,
) -> Result<(Vec<(String, Arc<Message>)>, Vec<Vec<Destination>>), EngineError> {
    let route_all = move |runtime: &TopicRuntime, messages: Vec<(String, Arc<Message>)>| {
        let routes = (messages.iter().zip(&retained_at))
            .map(|((key, message), retained_at)| runtime.route(key, message, *retained_at))
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
            || (self.subscribers.lock().expect("subscribers lock")).any_filtered()
    }

    /// Keeps the last message per key of the messages to retain: all of them when the topic
    /// retains, else those flagged in `flagged` (an empty body clears the key). Returns the
    /// offset of each message's `retained` record, `None` for a message not retained.
    async fn retain(
        self: &Arc<Self>,
        messages: &[(String, Message)],
        flagged: &[bool],
    ) -> Result<Vec<Option<Offset>>, EngineError> {
        let all = self.router.read().expect("router lock").options().retain;
        let retained = |index: usize| all || flagged.get(index).copied().unwrap_or(false);
        let records: Vec<_> = (messages.iter().enumerate())
            .filter(|(index, _)| retained(*index))
            .map(|(_, (key, message))| {
                TopicRecord::Retained {
                    key: key.clone(),
                    message: message.clone(),
                }
                .encode()
            })
            .collect();
        if records.is_empty() {
            return Ok(vec![None; messages.len()]);
        }
        let written = self.write(records, |_| Ok(())).await?;
        let mut next = written.start;
        Ok((0..messages.len())
            .map(|index| {
                retained(index).then(|| {
                    let at = next;
                    next = Offset(next.0 + 1);
                    at
                })
            })
            .collect())
    }

    /// Appends records to the topic's log and applies them once `check` passes against the
    /// routing table, under the shared write lock. Runs in a task of its own: a caller that
    /// goes away cannot leave its records appended but unapplied, nor a compaction batch
    /// waiting on an append that no longer has an owner.
    async fn write(
        self: &Arc<Self>,
        records: Vec<Bytes>,
        check: impl FnOnce(&Router) -> Result<(), EngineError>,
    ) -> Result<Range<Offset>, EngineError> {
        let writing = self.writes.clone().read_owned().await;
        check(&self.router.read().expect("router lock"))?;
        let runtime = self.clone();
        let written = tokio::spawn(async move {
            let written = runtime.log.append(&records, None).await?;
            runtime.catch_up(&NO_COPIES).await?;
            drop(writing);
            Ok::<_, EngineError>(written)
        })
        .await
        .unwrap_or_else(|error| Err(internal_error("topic write", &error)))?;
        self.maybe_compact();
        Ok(written)
    }

    /// Applies what other writers appended up to the log's end; `copies` marks compaction
    /// copies (see [`LogState::catch_up`]).
    async fn catch_up(&self, copies: &Range<Offset>) -> Result<(), EngineError> {
        log_state::catch_up(&self.state, self.log.as_ref(), &self.router, copies).await
    }

    /// Destinations of one message; also feeds live subscribers and the binding counters.
    /// `retained_at` is the offset of the message's `retained` record, if the topic retains.
    fn route(
        &self,
        key: &str,
        message: &Arc<Message>,
        retained_at: Option<Offset>,
    ) -> Vec<Destination> {
        let router = self.router.read().expect("router lock");
        let subscribers = self.subscribers.lock().expect("subscribers lock");
        // Parse the body once, and only when some filter will read it.
        let reads_body = router.reads_body() || subscribers.any_filtered();
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
        let mut shared_key: Option<Arc<str>> = None;
        // A subscriber leaves the index when its guard drops; one whose client went away
        // meanwhile gets nothing (its channel is closed).
        for subscriber in subscribers.matching(key) {
            let interest = &subscriber.interest;
            if retained_at.is_some_and(|at| at < interest.retained_before) {
                // The subscriber's walk over retained messages has this one, or a later one.
                continue;
            }
            if self.count_filter_stop(interest.wants(key, message, body.as_ref())) {
                // At most once: a subscriber too slow to keep its buffer free misses messages.
                let routing_key = shared_key.get_or_insert_with(|| Arc::from(key)).clone();
                (subscriber.feed).offer(subscriber.tag, routing_key, message.clone());
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

impl Interest {
    fn parse(interested: Interested<'_>, retained_before: Offset) -> Result<Interest, EngineError> {
        let pattern = Pattern::parse(interested.pattern, interested.syntax).map_err(|source| {
            EngineError::invalid_field(Field::Pattern, FieldProblem::InvalidPattern { source })
        })?;
        let filter = (interested.filter.map(Filter::parse).transpose()).map_err(|source| {
            EngineError::invalid_field(Field::Filter, FieldProblem::InvalidFilter { source })
        })?;
        Ok(Interest {
            syntax: interested.syntax,
            pattern,
            filter,
            retained_before,
        })
    }

    fn key_matches(&self, key: &str) -> bool {
        let mut words = Vec::new();
        self.syntax.split_key(key, &mut words).is_ok() && self.pattern.matches(&words)
    }

    /// The key pattern first; the filter runs only when it matches.
    fn wants(&self, key: &str, message: &Message, body: Option<&serde_json::Value>) -> Evaluation {
        let key_matches = self.key_matches(key);
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
        let body = self.reads_body().then(|| json_body(message)).flatten();
        self.route(key, &message.headers, body.as_ref())
            .bindings
            .iter()
            .any(|b| b == id)
    }
}

/// The body as JSON for filters, when it is JSON.
/// A message's body parsed as JSON, when its content type says JSON and it parses: what
/// filters read.
pub fn json_body(message: &Message) -> Option<serde_json::Value> {
    let json = message.content_type.starts_with("application/json")
        || message.content_type.contains("+json");
    json.then(|| serde_json::from_slice(&message.body).ok())
        .flatten()
}

fn topic_info(topic: &Arc<TopicRuntime>) -> TopicInfo {
    let retained = topic.state.lock().expect("topic state lock").retained.len() as u64;
    let subscribers = topic.subscribers.lock().map_or(0, |list| list.len() as u64);
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
            retained,
            compactions: topic.compactions.load(Ordering::Relaxed),
            subscribers,
        },
    }
}

/// The name of a topic's log: `topic-NAME`, readable for operators. A name too long for that
/// to be one file name (over 249 bytes) gets `topic-PREFIX~DIGEST` instead: its first
/// [`TOPIC_LOG_PREFIX_BYTES`] bytes and the SHA-256 of the whole name. `~` is no name
/// character, so the long form never equals the plain form of another name, and the plain
/// form of every name that had a log before stays what it was.
fn topic_log_name(name: &str) -> String {
    let plain = format!("topic-{name}");
    if plain.len() <= LOG_NAME_BYTES_MAX {
        return plain;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let digest: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    // Names are ASCII, so any byte index is a character boundary.
    format!("topic-{}~{digest}", &name[..TOPIC_LOG_PREFIX_BYTES])
}

/// A destination a binding, rule or alternate may name: a queue, topic or stream under the
/// naming rules, not a reply address (only the engine makes those).
fn check_destination_name(destination: &Destination, field: &Field) -> Result<(), EngineError> {
    let refuse = |problem| Err(EngineError::invalid_field(field.clone(), problem));
    let name = match destination {
        Destination::Queue(name) | Destination::Topic(name) | Destination::Stream(name) => name,
    };
    if let Err(source) = QueueName::from_str(name) {
        let problem = NameProblem::Rules { source };
        return refuse(FieldProblem::InvalidName { problem });
    }
    let is_queue = matches!(destination, Destination::Queue(_));
    if is_queue && name.starts_with(super::REPLY_ADDRESS_PREFIX) {
        let problem = NameProblem::ReplyAddress;
        return refuse(FieldProblem::InvalidName { problem });
    }
    Ok(())
}

/// A published message as a stream record: its routing key is the key (so one key keeps one
/// partition), its body the value, its time the timestamp; its headers follow, with its
/// content type and id as the headers `content-type` and `message-id`.
fn stream_record((routing_key, message): (String, Message)) -> super::ProduceRecord {
    use wharf_model::record_batch::Header;
    let mut headers: Vec<Header> = (message.headers.into_iter())
        .map(|(key, value)| Header {
            key,
            value: Some(Bytes::from(value)),
        })
        .collect();
    headers.push(Header {
        key: "content-type".into(),
        value: Some(Bytes::from(message.content_type)),
    });
    headers.push(Header {
        key: "message-id".into(),
        value: Some(Bytes::from(message.id)),
    });
    super::ProduceRecord {
        key: Some(Bytes::from(routing_key)),
        value: Some(message.body),
        headers,
        partition: None,
        timestamp: i64::try_from(message.sent_at).ok(),
    }
}

/// Topic names follow the queue naming rules (letters, digits, `.`, `-`, `_`).
fn parse_topic_name(name: &str) -> Result<String, EngineError> {
    QueueName::from_str(name)
        .map(|n| n.to_string())
        .map_err(|source| EngineError::InvalidName {
            kind: ResourceKind::Topic,
            name: name.to_string(),
            problem: NameProblem::Rules { source },
        })
}
