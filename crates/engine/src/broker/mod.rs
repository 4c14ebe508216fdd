//! The broker: the registry of live queues and the operations doors call.
//!
//! [`Engine`] owns every queue's runtime, the definitions in the metadata store, and one timer
//! task per queue (delays, leases, TTL). Doors call its async methods with engine types and
//! translate the results; nothing here knows a protocol.

pub mod api;
mod consumers;
mod delivery_read;
mod door_state;
pub mod eventstore;
mod expiry;
mod fresh;
pub(crate) mod queue_runtime;
pub(crate) mod records;
mod replay;
mod replies;
mod settle;
pub(crate) mod space;
pub mod streams;
mod topic_records;
mod topics;
mod validate;
mod wal;

pub use api::*;
pub use consumers::{ConsumeRequest, Consumer, CONSUMER_CREDIT_MAX};
mod listing;
pub use listing::{Page, PageRequest};
pub use replies::{
    ReplyInbox, RequestTarget, ScatterResult, REPLY_ADDRESS_PREFIX, SCATTER_EXPECT_MAX,
};
pub use settle::Redriven;
pub use streams::{
    FetchRequest, Fetched, GroupInfo, GroupJoin, MemberState, OffsetAt, OffsetReset, PartitionInfo,
    PartitionLag, ProduceRecord, ProduceRequest, Produced, ProducerSequence, StreamInfo,
    FETCH_WAIT_MAX,
};
pub use topics::{
    json_body, BindingInfo, FeedSubscription, Interested, LiveFeed, LiveInterest, LiveMessage,
    MissedCounter, PublishMessage, Published, Subscription, TopicInfo, TopicStats,
};

use crate::{
    clock::Clock,
    error::{EngineError, Field, FieldProblem, NameProblem, ResourceKind},
    queue::{Browse, OptionField, QueueOptions, QueueState, ReceiptKey},
};
use queue_runtime::QueueRuntime;
use std::{
    cell::Cell,
    collections::{hash_map::RandomState, BTreeMap},
    hash::BuildHasher,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};
use wharf_model::{MessageIdGenerator, QueueName};
use wharf_storage::{LogStore, MetaOp, Storage};

/// Key prefix of queue definitions in the metadata store.
const QUEUE_META_PREFIX: &str = "queue/";
/// Default of [`EngineConfig::fresh_messages_bytes`]: what the log's tail cache keeps of the
/// WAL by default.
pub const FRESH_MESSAGES_BYTES_DEFAULT: usize = 8 << 20;

/// What the engine itself is configured with. How logs are laid out and synced is the
/// storage's business (`wharf_storage::StoreConfig`): the engine only says which logs must be
/// durable.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Records a WAL must hold before the unsettled messages in its older half are copied
    /// forward (see `wal::relocate_stragglers`). 262,144 records of 1 KiB are 256 MiB, a few
    /// segments of the file store: less would copy messages that free nothing.
    pub relocate_span_min: u64,
    /// Most requests (request-reply and scatter-gather) waiting for replies at once. Each holds
    /// a reply address and a buffer in memory until its reply or timeout.
    pub requests_pending_max: usize,
    /// Most live topic subscriptions (SSE subscribers) at once, across every topic. Each holds
    /// a buffer of up to 1,024 messages.
    pub subscriptions_max: usize,
    /// Messages a second each caller (user or token) may send, publish or request; `None`:
    /// no limit. See `security::limits`.
    pub send_rate: Option<crate::security::limits::SendRate>,
    /// Receives long-polling at once (waiting for a first message); 429 past it.
    pub receive_waiters_max: usize,
    /// Queues, topics and bindings each non-administrator caller may create; 0: no limit.
    /// See `security::quotas`.
    pub definitions_per_caller: usize,
    /// Most messages in one send, publish or reply batch.
    pub batch_messages_max: usize,
    /// Most body bytes in one send, publish or reply batch.
    pub batch_bytes_max: usize,
    /// Most stream partitions, over every stream (each holds an open file).
    pub stream_partitions_max: usize,
    /// Most persistent subscriptions of the event store (each follows `$all` with a task and
    /// reads every new event once).
    pub event_subscriptions_max: usize,
    /// The topic alert events are published to (see `alerts`).
    pub alerts_topic: String,
    /// Alert rules of the configuration file, by name.
    pub alert_rules: Vec<(String, crate::alerts::AlertRule)>,
    /// The wait before each webhook delivery attempt, the first one's included: its length
    /// is the most attempts a message gets before it is dead-lettered for its endpoint.
    pub webhook_retry_schedule: Vec<Duration>,
    /// How long each endpoint's history stream keeps what was routed to it, for replay.
    pub webhook_history: Duration,
    /// Bytes of messages just sent kept, across all queues, for their first delivery (see
    /// `fresh`); 0 reads every delivery from its record.
    pub fresh_messages_bytes: usize,
}

/// Default of [`EngineConfig::requests_pending_max`]: 10,000 waiting requests with one 1 KiB
/// reply each is about 10 MiB, and far more concurrent requests than one node's clients send.
pub const REQUESTS_PENDING_MAX_DEFAULT: usize = 10_000;
/// Default of [`EngineConfig::definitions_per_caller`]: far more than an application declares,
/// few enough that a runaway client cannot fill the metadata store.
pub const DEFINITIONS_PER_CALLER_DEFAULT: usize = 1_000;
/// Default of [`EngineConfig::receive_waiters_max`]: a waiting receive costs a consumer
/// registration and a task; 10,000 of them is a few megabytes.
pub const RECEIVE_WAITERS_MAX_DEFAULT: usize = 10_000;
/// Default of [`EngineConfig::subscriptions_max`]: a subscriber's buffer can hold 1,024
/// messages, so 1,000 slow subscribers of 1 KiB messages stay near 1 GiB at worst.
pub const SUBSCRIPTIONS_MAX_DEFAULT: usize = 1_000;
/// Default of [`EngineConfig::stream_partitions_max`]: what one node is measured to serve
/// (docs/benchmarks.md). Each partition holds one open file (two while it takes large
/// commits), so the process's descriptor limit bounds it too.
pub const STREAM_PARTITIONS_MAX_DEFAULT: usize = 10_000;
/// Default of [`EngineConfig::event_subscriptions_max`]: every append wakes each group's
/// feeder, which reads the new events through its filter (about 1 µs a group, measured), so
/// 1,000 groups add about a millisecond of CPU to each append.
pub const EVENT_SUBSCRIPTIONS_MAX_DEFAULT: usize = 1_000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            relocate_span_min: 1 << 18,
            requests_pending_max: REQUESTS_PENDING_MAX_DEFAULT,
            subscriptions_max: SUBSCRIPTIONS_MAX_DEFAULT,
            send_rate: None,
            receive_waiters_max: RECEIVE_WAITERS_MAX_DEFAULT,
            definitions_per_caller: DEFINITIONS_PER_CALLER_DEFAULT,
            batch_messages_max: api::SEND_BATCH_MESSAGES_MAX,
            batch_bytes_max: api::SEND_BATCH_BYTES_MAX,
            stream_partitions_max: STREAM_PARTITIONS_MAX_DEFAULT,
            event_subscriptions_max: EVENT_SUBSCRIPTIONS_MAX_DEFAULT,
            alerts_topic: crate::alerts::ALERTS_TOPIC_DEFAULT.to_string(),
            alert_rules: Vec::new(),
            webhook_retry_schedule: crate::webhooks::RETRY_SCHEDULE_DEFAULT.to_vec(),
            webhook_history: crate::webhooks::HISTORY_DEFAULT,
            fresh_messages_bytes: FRESH_MESSAGES_BYTES_DEFAULT,
        }
    }
}

/// The broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Storage>,
    /// The shared WALs of durable and of transient queues.
    wal: Arc<dyn LogStore>,
    wal_transient: Arc<dyn LogStore>,
    /// When space was last reclaimed from the WALs.
    last_reclaim_at: std::sync::atomic::AtomicU64,
    /// When taking back the disk reserve was last tried (see `space.rs`).
    last_restore_at: std::sync::atomic::AtomicU64,
    /// Every resource id handed out is at least this: above every id found in use at open.
    resource_floor: std::sync::atomic::AtomicU64,
    /// Set when metadata was found damaged: reclaim deletes nothing from the WALs, which may
    /// hold the messages of a queue whose definition was lost.
    wal_kept_whole: AtomicBool,
    /// Send-rate buckets per caller (see `security::limits`).
    pub(crate) send_buckets: crate::security::limits::SendBuckets,
    /// Receives long-polling now, against [`EngineConfig::receive_waiters_max`].
    receive_waiters: std::sync::atomic::AtomicUsize,
    /// Owners of definitions created by non-administrators (see `security::quotas`).
    pub(crate) quotas: crate::security::quotas::Quotas,
    /// Users and tokens (see `security`).
    pub(crate) accounts: crate::security::accounts::Accounts,
    /// The audit log (see `security::audit`).
    pub(crate) audit: Arc<dyn LogStore>,
    /// Alert rules and their states (see `alerts`).
    pub(crate) alerts: crate::alerts::Alerts,
    pub(crate) webhooks: crate::webhooks::Webhooks,
    clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    queues: RwLock<BTreeMap<String, Arc<QueueRuntime>>>,
    topics: RwLock<BTreeMap<String, Arc<topics::TopicRuntime>>>,
    streams: RwLock<BTreeMap<String, Arc<streams::StreamRuntime>>>,
    /// Committed offsets of every stream's consumer groups.
    committed: Arc<streams::CommittedOffsets>,
    /// The event store.
    events: eventstore::EventStore,
    /// Pending requests by reply address (request-reply and scatter-gather).
    replies: Mutex<replies::Registry>,
    /// Serializes creating, updating and deleting queues (rare; keeps metadata and the
    /// registry in step).
    pub(crate) admin: tokio::sync::Mutex<()>,
    ids: Mutex<MessageIdGenerator>,
    /// Live topic subscriptions, against [`EngineConfig::subscriptions_max`].
    subscriptions: Arc<std::sync::atomic::AtomicUsize>,
    /// Topics a door relies on, by name, with the door: never deleted (see
    /// [`Engine::keep_topic`]).
    kept_topics: Mutex<BTreeMap<String, &'static str>>,
    /// Definitions found unreadable at open; see [`Engine::damaged_definitions`].
    damaged: Mutex<Vec<Arc<EngineError>>>,
    /// Differs per process start, so receipts from an earlier run never match.
    seed: u64,
    /// Signs every queue's receipts; drawn at random per process start.
    receipt_key: ReceiptKey,
    /// Messages just sent, for their first delivery (see `fresh`).
    fresh: Arc<fresh::FreshMessages>,
    closing: AtomicBool,
}

impl Engine {
    /// Opens every queue and topic defined in the storage and replays their logs.
    pub async fn open(
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (wal, wal_transient) = wal::open_wals(store.as_ref()).await?;
        let audit_options = wharf_storage::LogOptions {
            durability: wharf_storage::Durability::Durable,
            size: wharf_storage::LogSize::Small,
        };
        let audit = (store.open_log(crate::security::audit::AUDIT_LOG_NAME, audit_options)).await?;
        let accounts = crate::security::accounts::Accounts::load(store.as_ref());
        let quotas = crate::security::quotas::Quotas::load(store.as_ref());
        let (alerts, alerts_damaged) =
            crate::alerts::Alerts::load(store.as_ref(), &config.alert_rules)?;
        let committed = Arc::new(streams::CommittedOffsets::open(store.as_ref()).await?);
        let events = eventstore::EventStore::open(store.as_ref(), clock.clone()).await?;
        let (webhooks, webhooks_damaged) = crate::webhooks::Webhooks::load(store.as_ref());
        let damaged = alerts_damaged.into_iter().chain(webhooks_damaged);
        let fresh = Arc::new(fresh::FreshMessages::new(config.fresh_messages_bytes));
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                wal,
                wal_transient,
                last_reclaim_at: std::sync::atomic::AtomicU64::new(0),
                last_restore_at: std::sync::atomic::AtomicU64::new(0),
                resource_floor: std::sync::atomic::AtomicU64::new(1),
                wal_kept_whole: AtomicBool::new(false),
                accounts,
                quotas,
                audit,
                alerts,
                send_buckets: Default::default(),
                receive_waiters: Default::default(),
                clock,
                config,
                queues: RwLock::new(BTreeMap::new()),
                topics: RwLock::new(BTreeMap::new()),
                streams: RwLock::new(BTreeMap::new()),
                committed,
                events,
                replies: Mutex::default(),
                admin: tokio::sync::Mutex::new(()),
                ids: Mutex::new(MessageIdGenerator::new()),
                subscriptions: Arc::default(),
                kept_topics: Mutex::default(),
                damaged: Mutex::new(damaged.map(Arc::new).collect()),
                webhooks,
                seed: random_u64(),
                receipt_key: ReceiptKey::random(),
                fresh,
                closing: AtomicBool::new(false),
            }),
        };
        engine.open_queues().await?;
        engine.open_topics().await?;
        engine.open_streams().await?;
        // After the streams: an endpoint's history stream must be found, not made again.
        engine.route_webhooks().await?;
        engine.start_event_subscriptions();
        let queues: Vec<_> = engine.registry().values().cloned().collect();
        for queue in queues {
            let settles = queue.tick(engine.now())?;
            engine.persist_settlements(&queue, settles).await?;
        }
        Ok(engine)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Definitions found unreadable at open ([`EngineError::CorruptDefinition`]): their queues
    /// and topics stay closed until an operator fixes or replaces them (a `put` of the same
    /// name writes a new definition); everything else opened.
    pub fn damaged_definitions(&self) -> Vec<Arc<EngineError>> {
        self.inner.damaged.lock().expect("damaged lock").clone()
    }

    /// Logs and keeps a definition found unreadable at open.
    fn report_damaged(&self, damaged: EngineError) {
        tracing::error!(error = %damaged, "a definition is damaged: its queue or topic stays closed");
        (self.inner.damaged.lock().expect("damaged lock")).push(Arc::new(damaged));
    }

    /// Creates the queue, or updates its options. Returns true when it was created. A named
    /// dead-letter queue that does not exist is created with default options.
    /// The queues of a persistent subscription are the subscription's to configure.
    pub async fn put_queue(&self, name: &str, options: QueueOptions) -> Result<bool, EngineError> {
        self.check_not_subscription_queue(name)?;
        self.put_owned_queue(name, options).await
    }

    /// [`Engine::put_queue`] for the owner of the queue, a persistent subscription included.
    pub(crate) async fn put_owned_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<bool, EngineError> {
        let (engine, name) = (self.clone(), name.to_string());
        let change = async move { engine.put_queue_in_task(&name, options).await };
        self.in_task("put_queue", change).await
    }

    /// Runs a definition change in a task of its own. A caller that goes away (an HTTP client
    /// hanging up) then cannot stop it between its metadata write and the registry change that
    /// follows: live state and what a restart reads stay the same.
    pub(crate) async fn in_task<T: Send + 'static>(
        &self,
        operation: &'static str,
        change: impl std::future::Future<Output = Result<T, EngineError>> + Send + 'static,
    ) -> Result<T, EngineError> {
        tokio::spawn(change)
            .await
            .unwrap_or_else(|error| Err(internal_error(operation, &error)))
    }

    async fn put_queue_in_task(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<bool, EngineError> {
        self.check_open()?;
        let name = parse_name(name)?;
        if name.as_str().starts_with(REPLY_ADDRESS_PREFIX) {
            return Err(EngineError::InvalidName {
                kind: ResourceKind::Queue,
                name: name.to_string(),
                problem: NameProblem::ReplyAddress,
            });
        }
        options.validate()?;
        let dead_letter_field = Field::QueueOption(OptionField::DeadLetterQueue);
        if options.dead_letter_queue.as_ref() == Some(&name) {
            let problem = FieldProblem::OwnDeadLetterQueue;
            return Err(EngineError::invalid_field(dead_letter_field, problem));
        }
        // It would be created like any queue below, so it obeys the rules of a queue's name.
        let dead_letter_name = options.dead_letter_queue.as_ref().map(QueueName::as_str);
        if dead_letter_name.is_some_and(|dead| dead.starts_with(REPLY_ADDRESS_PREFIX)) {
            let problem = FieldProblem::InvalidName {
                problem: NameProblem::ReplyAddress,
            };
            return Err(EngineError::invalid_field(dead_letter_field, problem));
        }
        let _admin = self.inner.admin.lock().await;
        if let Some(dead_letter_queue) = &options.dead_letter_queue {
            if self.find(dead_letter_queue.as_str()).is_none() {
                self.create_queue(dead_letter_queue.clone(), QueueOptions::default())
                    .await?;
            }
        }
        match self.find(name.as_str()) {
            Some(queue) => {
                if queue.options()?.durable != options.durable {
                    return Err(EngineError::invalid_field(
                        Field::QueueOption(OptionField::Durable),
                        FieldProblem::FixedAtCreation,
                    ));
                }
                self.write_definition(&name, &options).await?;
                queue.set_options(options)?;
                queue.timer_changed.notify_one();
                // Declaring a queue again is using it.
                queue.touch(self.now());
                expiry::watch(self, &queue);
                Ok(false)
            }
            None => {
                self.check_space().await?;
                self.create_queue(name, options).await?;
                Ok(true)
            }
        }
    }

    /// Marks a queue used now, as a declare of it does (for `expires_ms`), without changing it.
    pub fn touch_queue(&self, name: &str) -> Result<(), EngineError> {
        self.queue(name)?.touch(self.now());
        Ok(())
    }

    /// Every queue but those closed by an internal error (they are logged when it happens).
    pub fn list_queues(&self) -> Vec<QueueInfo> {
        let now = self.now();
        self.registry()
            .values()
            .filter_map(|queue| queue_info(queue, now).ok())
            .collect()
    }

    /// How many queues there are, without reading their statistics.
    pub fn queue_count(&self) -> usize {
        self.registry().len()
    }

    /// One page of the queues by name, among those `visible` admits (see [`listing`]).
    pub fn list_queues_page(
        &self,
        request: PageRequest<'_>,
        visible: impl Fn(&str) -> bool,
    ) -> Page<QueueInfo> {
        let page = listing::page_of(&self.registry(), request, visible);
        let now = self.now();
        Page {
            items: (page.items.iter())
                .filter_map(|queue| queue_info(queue, now).ok())
                .collect(),
            next: page.next,
        }
    }

    pub fn queue_info(&self, name: &str) -> Result<QueueInfo, EngineError> {
        queue_info(&self.queue(name)?, self.now())
    }

    /// Deletes the queue and every message in it.
    pub async fn delete_queue(&self, name: &str) -> Result<(), EngineError> {
        let (engine, name) = (self.clone(), name.to_string());
        let change = async move { engine.delete_queue_in_task(&name).await };
        self.in_task("delete_queue", change).await
    }

    async fn delete_queue_in_task(&self, name: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let _admin = self.inner.admin.lock().await;
        let queue = self.queue(name)?;
        self.check_queue_unowned(name)?;
        // Its records stay in the WAL, unread (no definition names its resource), until reclaim.
        let delete = vec![
            MetaOp::Delete(format!("{QUEUE_META_PREFIX}{name}")),
            MetaOp::Delete(wal::resource_key(name)),
        ];
        space::meta_apply_freeing(self.inner.store.as_ref(), delete).await?;
        self.inner
            .queues
            .write()
            .expect("registry lock")
            .remove(name);
        queue.mark_deleted();
        Ok(())
    }

    /// Refuses to delete a queue that goes with a webhook endpoint or a persistent subscription.
    fn check_queue_unowned(&self, name: &str) -> Result<(), EngineError> {
        let queue = name.to_string();
        if let Some(endpoint) = self.webhook_owning(name) {
            return Err(EngineError::WebhookQueue { queue, endpoint });
        }
        self.check_not_subscription_queue(name)
    }

    /// Refuses what only a persistent subscription may do to its queues: feed them, set
    /// their options, delete them.
    pub(crate) fn check_not_subscription_queue(&self, name: &str) -> Result<(), EngineError> {
        match self.subscription_owning(name) {
            Some(group) => Err(EngineError::SubscriptionQueue {
                queue: name.to_string(),
                group,
            }),
            None => Ok(()),
        }
    }

    /// Sends a batch: all of it is stored (durably, for a durable queue) or none of it. The
    /// queues of a persistent subscription take the events of its feeder only.
    pub async fn send(
        &self,
        queue: &str,
        batch: Vec<SendMessage>,
    ) -> Result<Vec<Sent>, EngineError> {
        self.check_open()?;
        if queue.starts_with(REPLY_ADDRESS_PREFIX) {
            return self.send_reply(queue, batch);
        }
        self.check_not_subscription_queue(queue)?;
        self.send_owned(queue, batch).await
    }

    /// [`Engine::send`] for the owner of the queue, a persistent subscription included.
    pub(crate) async fn send_owned(
        &self,
        queue: &str,
        batch: Vec<SendMessage>,
    ) -> Result<Vec<Sent>, EngineError> {
        let queue = self.queue(queue)?;
        self.check_space().await?;
        let now = self.now();
        let messages = self.messages_from_batch(batch, now)?;
        let ids: Vec<String> = messages.iter().map(|(m, _)| m.id.clone()).collect();
        let duplicates = self.send_to(queue, messages, now).await?;
        Ok(ids
            .into_iter()
            .zip(duplicates)
            .map(|(id, duplicate)| Sent { id, duplicate })
            .collect())
    }

    /// Stores messages in a queue and applies them, in a task of its own: a caller that goes
    /// away (a client hanging up) cannot stop a send between its append and its apply, which
    /// would leave the queue's reservation held and the written messages unapplied until a
    /// restart. Returns per message whether it was a duplicate.
    pub(crate) async fn send_to(
        &self,
        queue: Arc<QueueRuntime>,
        messages: Vec<(wharf_model::message::Message, bool)>,
        now: u64,
    ) -> Result<Vec<bool>, EngineError> {
        let engine = self.clone();
        tokio::spawn(async move {
            let (duplicates, evicted) = queue.send(messages, now).await?;
            // The messages are stored: the send succeeded. Evictions that cannot be recorded
            // are put back (and logged), not reported as a failed send that a client retries.
            engine.persist_evictions(&queue, evicted).await;
            engine.dispatch(&queue).await;
            Ok(duplicates)
        })
        .await
        .unwrap_or_else(|error| Err(internal_error("send", &error)))
    }

    /// Sends to several queues with one append per WAL (a publish's copies to all its queue
    /// destinations share one write and one fsync), in a task of its own like `send_to`.
    /// Returns, per queue in order, whether its messages were stored.
    pub(crate) async fn send_many(
        &self,
        sends: Vec<QueueSend>,
        now: u64,
    ) -> Result<Vec<Result<(), EngineError>>, EngineError> {
        let engine = self.clone();
        tokio::spawn(async move { engine.send_many_in_task(sends, now).await })
            .await
            .map_err(|error| internal_error("send", &error))
    }

    async fn send_many_in_task(
        &self,
        sends: Vec<QueueSend>,
        now: u64,
    ) -> Vec<Result<(), EngineError>> {
        let prepared: Vec<_> = (sends.iter())
            .map(|send| (send.queue).send_prepare(&send.messages, send.encoded.as_deref(), now))
            .collect();
        let mut firsts: Vec<Option<Result<u64, wharf_storage::StorageError>>> =
            sends.iter().map(|_| None).collect();
        for (log, durable) in [(&self.inner.wal, true), (&self.inner.wal_transient, false)] {
            let members: Vec<usize> = (0..sends.len())
                .filter(|&i| prepared[i].is_ok() && sends[i].queue.durable == durable)
                .collect();
            let records: Vec<bytes::Bytes> = (members.iter())
                .flat_map(|&i| prepared[i].as_ref().map_or(&[][..], |p| &p.records[..]))
                .cloned()
                .collect();
            if records.is_empty() {
                for &i in &members {
                    firsts[i] = Some(Ok(0));
                }
                continue;
            }
            let written = log.append(&records, None).await;
            let mut next = written.as_ref().map_or(0, |range| range.start.0);
            for &i in &members {
                firsts[i] = Some(written.as_ref().map(|_| next).map_err(Clone::clone));
                next += prepared[i].as_ref().map_or(0, |p| p.records.len() as u64);
            }
        }
        let mut results = Vec::with_capacity(sends.len());
        for ((send, prepared), first) in sends.iter().zip(prepared).zip(firsts) {
            let (queue, messages) = (&send.queue, &send.messages);
            let result = match (prepared, first) {
                (Ok(prepared), Some(first)) => {
                    match queue.send_finish(prepared, messages, first, now) {
                        Ok((_, evicted)) => {
                            self.persist_evictions(queue, evicted).await;
                            Ok(())
                        }
                        Err(error) => Err(error),
                    }
                }
                (Err(error), _) => Err(error),
                // Every queue is durable or not, so this cannot happen; release its room anyway.
                (Ok(prepared), None) => {
                    let closed = wharf_storage::StorageError::Closed {
                        path: queue.name.as_str().into(),
                    };
                    queue
                        .send_finish(prepared, messages, Err(closed), now)
                        .map(|_| ())
                }
            };
            self.dispatch(queue).await;
            results.push(result);
        }
        results
    }

    /// Leases up to `max_messages`, waiting up to `wait` for a first one. A waiting receive is a
    /// push consumer for the length of the wait, so a send wakes only as many waiting receives
    /// as it has messages for.
    pub async fn receive(
        &self,
        queue: &str,
        request: ReceiveRequest,
    ) -> Result<Vec<Delivery>, EngineError> {
        self.check_open()?;
        check_receive(&request)?;
        let runtime = self.queue(queue)?;
        let lease_ms = request.lease.map(|d| d.as_millis() as u64);
        let now = self.now();
        runtime.touch(now);
        let deadline = now.saturating_add(request.wait.as_millis() as u64);
        let (deliveries, settles) = runtime.receive(request.max_messages, lease_ms, now).await?;
        self.persist_and_dispatch(&runtime, settles).await?;
        if !deliveries.is_empty() || request.wait.is_zero() {
            return Ok(deliveries);
        }
        let _waiting = self.receive_waiter()?;
        let consume = ConsumeRequest {
            credit: request.max_messages,
            lease: request.lease,
        };
        let mut consumer = self.consume(queue, consume).await?;
        let first = tokio::select! {
            first = consumer.next() => first,
            _ = self.inner.clock.sleep_until(deadline) => None,
        };
        let Some(first) = first else {
            return Ok(consumer.take_remaining());
        };
        // Let the dispatch that woke this receive finish handing over, so nothing it leased to
        // this consumer is left to be returned; then top the batch up from what is ready.
        let mut deliveries = {
            let _dispatching = runtime.dispatching.lock().await;
            consumer.disown(std::slice::from_ref(&first));
            let mut deliveries = vec![first];
            deliveries.extend(consumer.take_remaining());
            deliveries
        };
        if runtime.dispatch_again.load(Ordering::Acquire) {
            self.dispatch(&runtime).await;
        }
        let room = request.max_messages - deliveries.len();
        if room > 0 {
            let (more, settles) = runtime.receive(room, lease_ms, self.now()).await?;
            self.persist_and_dispatch(&runtime, settles).await?;
            deliveries.extend(more);
        }
        Ok(deliveries)
    }

    /// A place among the receives long-polling, or [`EngineError::LimitReached`].
    fn receive_waiter(&self) -> Result<WaiterPlace<'_>, EngineError> {
        let waiters = &self.inner.receive_waiters;
        let max = self.inner.config.receive_waiters_max;
        let taken = waiters.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (now < max).then_some(now + 1)
        });
        match taken {
            Ok(_) => Ok(WaiterPlace(waiters)),
            Err(_) => Err(EngineError::LimitReached {
                limit: "receive_waiters_max",
                max,
            }),
        }
    }

    /// Settles leased messages for good; durable before it returns.
    pub async fn ack(
        &self,
        queue: &str,
        receipts: &[String],
    ) -> Result<Vec<ReceiptResult>, EngineError> {
        self.check_open()?;
        let queue = self.queue(queue)?;
        let (seqs, results) = queue.check_acks(receipts, self.now())?;
        queue
            .write_settled(
                self.inner.store.as_ref(),
                &seqs,
                records::SettleReason::Acked,
                &[crate::queue::SettleReason::Acked],
            )
            .await?;
        self.dispatch(&queue).await;
        self.reclaim().await;
        Ok(results)
    }

    pub async fn nack(
        &self,
        queue: &str,
        receipts: &[String],
        action: NackAction,
    ) -> Result<Vec<ReceiptResult>, EngineError> {
        self.check_open()?;
        let queue = self.queue(queue)?;
        let (state_action, error) = match action.with_error_capped() {
            NackAction::Requeue { delay, error } => (
                crate::queue::NackAction::Requeue {
                    delay_ms: delay.map(|d| d.as_millis() as u64),
                },
                error,
            ),
            NackAction::DeadLetter { error } => (
                crate::queue::NackAction::DeadLetter {
                    reason: error.clone().unwrap_or_default(),
                },
                error,
            ),
        };
        // Settlements first, written; only then the nacks that return messages: a failed write
        // leaves every lease of the call as it was.
        let error = error.as_deref();
        let mut plan = queue.nack_begin(receipts, &state_action, error, self.now())?;
        let settles = std::mem::take(&mut plan.settles);
        self.persist_settlements(&queue, settles).await?;
        let late = queue.nack_finish(&mut plan, &state_action, error, self.now())?;
        let (indexes, late): (Vec<usize>, Vec<_>) = late.into_iter().unzip();
        let persisted = self.persist_settlements(&queue, late).await;
        self.dispatch(&queue).await;
        match persisted {
            Ok(()) => {}
            // Those few were put back under their leases; the rest of the call took.
            Err(EngineError::Storage(error)) => {
                for index in indexes {
                    plan.results[index].error = Some(ReceiptFailure::NotStored(error.clone()));
                }
            }
            Err(error) => return Err(error),
        }
        Ok(plan.results)
    }

    /// Moves leases' deadlines to now + `lease`.
    pub async fn extend(
        &self,
        queue: &str,
        receipts: &[String],
        lease: Duration,
    ) -> Result<Vec<ReceiptResult>, EngineError> {
        self.check_open()?;
        let lease_ms = lease.as_millis() as u64;
        if lease_ms > crate::queue::LEASE_MS_MAX {
            let problem = FieldProblem::DurationOutOfRange {
                value: lease,
                min: Duration::ZERO,
                max: Duration::from_millis(crate::queue::LEASE_MS_MAX),
            };
            return Err(EngineError::invalid_field(Field::Lease, problem));
        }
        let queue = self.queue(queue)?;
        queue.extend(receipts, lease_ms, self.now())
    }

    /// Up to `max` messages in delivery order, without leasing them.
    pub async fn peek(&self, queue: &str, max: usize) -> Result<Vec<PeekedMessage>, EngineError> {
        self.browse(queue, Browse::Ready, max).await
    }

    /// Up to `max` of the messages `which` names, without changing them.
    pub async fn browse(
        &self,
        queue: &str,
        which: Browse,
        max: usize,
    ) -> Result<Vec<PeekedMessage>, EngineError> {
        self.queue(queue)?.browse(which, max, self.now()).await
    }

    /// The unsettled message `id` of `queue`, without changing it.
    pub async fn get_message(&self, queue: &str, id: &str) -> Result<PeekedMessage, EngineError> {
        match self.queue(queue)?.find(id).await? {
            Some((_, found)) => Ok(found),
            None => Err(EngineError::MessageNotFound {
                queue: queue.to_string(),
                id: id.to_string(),
            }),
        }
    }

    /// Removes the ready or delayed message `id` of `queue`, as a purge of one message (it
    /// counts as purged). A leased message is its consumer's to settle: refused.
    pub async fn delete_message(&self, queue: &str, id: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let runtime = self.queue(queue)?;
        let not_found = || EngineError::MessageNotFound {
            queue: queue.to_string(),
            id: id.to_string(),
        };
        let (seq, found) = runtime.find(id).await?.ok_or_else(not_found)?;
        match found.status {
            crate::queue::MessageStatus::Ready | crate::queue::MessageStatus::Delayed { .. } => {}
            crate::queue::MessageStatus::Leased { .. } | crate::queue::MessageStatus::Settling => {
                return Err(EngineError::MessageLeased {
                    queue: queue.to_string(),
                    id: id.to_string(),
                })
            }
        }
        // Leased between the check and the write, it is removed all the same, as a purge's
        // race goes; its consumer's ack then finds no lease. Settled meanwhile: nothing to do.
        runtime
            .write_settled(
                self.inner.store.as_ref(),
                &[seq.0],
                records::SettleReason::Purged,
                &[crate::queue::SettleReason::Purged],
            )
            .await?;
        self.reclaim().await;
        Ok(())
    }

    /// Removes every ready and delayed message; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<u64, EngineError> {
        self.check_open()?;
        let queue = self.queue(queue)?;
        let seqs = queue.purgeable()?;
        queue
            .write_settled(
                self.inner.store.as_ref(),
                &seqs,
                records::SettleReason::Purged,
                &[crate::queue::SettleReason::Purged],
            )
            .await?;
        self.reclaim().await;
        Ok(seqs.len() as u64)
    }

    /// Stops timers and long polls; the store is closed by its owner afterwards.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.events.close();
        for stream in self.streams().values() {
            for partition in stream.partitions() {
                // Wakes long-polling fetches, which then find the engine closing.
                partition.end.send_modify(|_| {});
            }
        }
        for queue in self.registry().values() {
            queue.close_consumers();
            queue.timer_changed.notify_one();
        }
    }

    pub(crate) fn check_open(&self) -> Result<(), EngineError> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(EngineError::ShuttingDown);
        }
        Ok(())
    }

    /// The engine's clock: ms since the epoch (a manual clock in tests).
    pub fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<QueueRuntime>>> {
        self.inner.queues.read().expect("registry lock")
    }

    pub(crate) fn find(&self, name: &str) -> Option<Arc<QueueRuntime>> {
        self.registry().get(name).cloned()
    }

    fn queue(&self, name: &str) -> Result<Arc<QueueRuntime>, EngineError> {
        self.find(name).ok_or_else(|| EngineError::QueueNotFound {
            name: name.to_string(),
        })
    }

    /// Most messages one send or publish may carry (`EngineConfig::batch_messages_max`).
    pub fn batch_messages_max(&self) -> usize {
        self.inner.config.batch_messages_max
    }

    /// Checks a batch a door hands in against the configured limits and turns it into
    /// messages, generating the ids not given.
    fn messages_from_batch(
        &self,
        batch: Vec<SendMessage>,
        now: u64,
    ) -> Result<Vec<(wharf_model::message::Message, bool)>, EngineError> {
        let limits = validate::BatchLimits {
            messages: self.inner.config.batch_messages_max,
            bytes: self.inner.config.batch_bytes_max,
        };
        validate::messages_from_batch(batch, limits, now, || self.generate_id(now))
    }

    fn generate_id(&self, now: u64) -> String {
        let random = random_u64().to_le_bytes();
        let mut ids = self.inner.ids.lock().expect("id lock");
        ids.generate(now, random).into()
    }

    async fn write_definition(
        &self,
        name: &QueueName,
        options: &QueueOptions,
    ) -> Result<(), EngineError> {
        let value = serde_json::to_value(options).expect("options serialize");
        let key = format!("{QUEUE_META_PREFIX}{name}");
        self.inner
            .store
            .meta_apply(vec![MetaOp::Put(key, value)])
            .await?;
        Ok(())
    }

    /// Defines a new queue (with its resource id, in one metadata transaction) and opens it
    /// empty.
    async fn create_queue(
        &self,
        name: QueueName,
        options: QueueOptions,
    ) -> Result<(), EngineError> {
        let resource = self
            .allocate_resource(vec![MetaOp::Put(
                format!("{QUEUE_META_PREFIX}{name}"),
                serde_json::to_value(&options).expect("options serialize"),
            )])
            .await?;
        let state = QueueState::new(options, self.inner.seed)?;
        self.register_queue(name, resource, state);
        Ok(())
    }

    /// Registers an opened queue and starts its timer.
    fn register_queue(&self, name: QueueName, resource: wal::ResourceId, state: QueueState) {
        let log = match state.options().durable {
            true => self.inner.wal.clone(),
            false => self.inner.wal_transient.clone(),
        };
        let (key, seed) = (self.inner.receipt_key.clone(), self.inner.seed);
        let fresh = self.inner.fresh.clone();
        let runtime = Arc::new(QueueRuntime::new(
            name, log, resource, state, key, seed, fresh,
        ));
        self.inner
            .queues
            .write()
            .expect("registry lock")
            .insert(runtime.name.to_string(), runtime.clone());
        expiry::watch(self, &runtime);
        tokio::spawn(settle::run_timer(Arc::downgrade(&self.inner), runtime));
    }
}

fn queue_info(queue: &Arc<QueueRuntime>, now: u64) -> Result<QueueInfo, EngineError> {
    Ok(QueueInfo {
        name: queue.name.to_string(),
        options: queue.options()?,
        stats: queue.stats(now)?,
    })
}

/// A task of the engine's own that panicked (a bug): the one operation fails, and is logged.
pub(crate) fn internal_error(
    operation: &'static str,
    error: &tokio::task::JoinError,
) -> EngineError {
    tracing::error!(operation, %error, "internal error");
    EngineError::Internal { operation }
}

fn parse_name(name: &str) -> Result<QueueName, EngineError> {
    QueueName::from_str(name).map_err(|source| EngineError::InvalidName {
        kind: ResourceKind::Queue,
        name: name.to_string(),
        problem: NameProblem::Rules { source },
    })
}

fn check_receive(request: &ReceiveRequest) -> Result<(), EngineError> {
    if request.max_messages == 0 || request.max_messages > RECEIVE_MESSAGES_MAX {
        let problem = FieldProblem::OutOfRange {
            value: request.max_messages as u64,
            min: 1,
            max: RECEIVE_MESSAGES_MAX as u64,
        };
        return Err(EngineError::invalid_field(Field::MaxMessages, problem));
    }
    if request.wait > RECEIVE_WAIT_MAX {
        let problem = FieldProblem::DurationOutOfRange {
            value: request.wait,
            min: Duration::ZERO,
            max: RECEIVE_WAIT_MAX,
        };
        return Err(EngineError::invalid_field(Field::Wait, problem));
    }
    match request.lease {
        Some(lease) => check_lease(lease),
        None => Ok(()),
    }
}

/// A lease a receive or a push consumer asks for: 1 ms to [`crate::queue::LEASE_MS_MAX`].
pub(crate) fn check_lease(lease: Duration) -> Result<(), EngineError> {
    let min = Duration::from_millis(1);
    let max = Duration::from_millis(crate::queue::LEASE_MS_MAX);
    if lease < min || lease > max {
        let problem = FieldProblem::DurationOutOfRange {
            value: lease,
            min,
            max,
        };
        return Err(EngineError::invalid_field(Field::Lease, problem));
    }
    Ok(())
}

/// Messages for one queue of a [`Engine::send_many`].
pub(crate) struct QueueSend {
    pub queue: Arc<QueueRuntime>,
    /// Each with whether its id came from the client (dedup).
    pub messages: Vec<(wharf_model::message::Message, bool)>,
    /// Their `enqueued` records without dedup, when the caller encoded them already (a
    /// publish encodes each message once for every queue it reaches).
    pub encoded: Option<Vec<bytes::Bytes>>,
}

/// A random 64-bit value: a counter hashed with the standard library's random hasher keys,
/// drawn once per thread (SipHash with secret keys is a keyed pseudo-random function). Enough
/// for seeds and id entropy without a random-number dependency, and no system call per
/// value (asking the process id for each message cost 2% of the MQTT door's CPU).
fn random_u64() -> u64 {
    thread_local! {
        static SOURCE: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
    }
    SOURCE.with(|(keys, counter)| {
        let next = counter.get().wrapping_add(1);
        counter.set(next);
        keys.hash_one(next)
    })
}

/// A long-polling receive's place, given back when it ends (or is cancelled).
struct WaiterPlace<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for WaiterPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
