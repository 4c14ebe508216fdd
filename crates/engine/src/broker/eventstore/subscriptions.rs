//! Persistent subscriptions: a named group of competing consumers over a stream or a filtered
//! `$all`, with leases, acks, retries and parking, built on a queue. A feeder task per group
//! reads `$all` after the group's checkpoint and sends each matching event to the queue
//! `events-sub.GROUP` (message id = the event's position, so that a feed repeated after a
//! crash is deduplicated by the queue), then moves the checkpoint. Consumers receive, ack and
//! nack through that queue; an event delivered `max_deliveries` times without an ack is parked
//! in `events-sub.GROUP.parked` (the queue's dead-letter queue), where the queue API can list
//! and redrive it.

use super::{Engine, EventFilter, RecordedEvent};
use crate::{
    broker::{listing, NackAction, Page, PageRequest, ReceiptResult, ReceiveRequest, SendMessage},
    error::EngineError,
    eventstore::EventStoreError,
    queue::QueueOptions,
};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};
use tokio::sync::watch;
use wharf_model::QueueName;
use wharf_storage::MetaOp;

const SUBSCRIPTION_META_PREFIX: &str = "event-subscription/";
/// Prefix of the queue of each group.
pub const SUBSCRIPTION_QUEUE_PREFIX: &str = "events-sub.";
/// The header that carries an event's position through the queue.
const POSITION_HEADER: &str = "position";
/// Content type of the queue's messages: the event's record as stored in `$all`.
const EVENT_CONTENT_TYPE: &str = "application/vnd.wharf.event";
/// Events a feeder sends to its queue at once.
const FEED_BATCH: usize = 256;
/// Unsettled events a group's queue holds before its feeder waits for consumers.
const QUEUE_LENGTH_MAX: u64 = 10_000;
/// How long a feeder waits before trying a full queue again.
const FULL_QUEUE_PAUSE_MS: u64 = 200;

/// How a group consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_prefix: Option<String>,
    /// Start after the events that exist when the group is created, not from the start.
    #[serde(default)]
    pub from_end: bool,
    /// Deliveries of an event before it is parked.
    pub max_deliveries: u32,
    /// How long a delivery stays leased to one consumer before it is retried.
    pub lease_ms: u64,
}

impl SubscriptionSettings {
    fn filter(&self) -> EventFilter {
        EventFilter {
            type_prefix: self.type_prefix.clone(),
            stream_prefix: self.stream_prefix.clone(),
            stream: self.stream.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    settings: SubscriptionSettings,
    /// The last position of `$all` fed to the queue.
    checkpoint: Option<u64>,
}

/// A group and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub group: String,
    pub settings: SubscriptionSettings,
    pub checkpoint: Option<u64>,
    pub queue: String,
    pub parked_queue: String,
}

/// An event leased to a consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDelivery {
    pub event: RecordedEvent,
    pub receipt: String,
    pub delivery_count: u32,
}

pub fn subscription_queue(group: &str) -> String {
    format!("{SUBSCRIPTION_QUEUE_PREFIX}{group}")
}

/// What follows a group's queue name in the name of its parked queue.
const PARKED_SUFFIX: &str = ".parked";

fn parked_queue(group: &str) -> String {
    format!("{SUBSCRIPTION_QUEUE_PREFIX}{group}{PARKED_SUFFIX}")
}

fn check_group(group: &str) -> Result<(), EventStoreError> {
    super::projections::check_projection_name(group).map_err(|error| match error {
        EventStoreError::Invalid { problem, .. } => EventStoreError::invalid("group", problem),
        other => other,
    })
}

impl Engine {
    /// Creates the group (and its queues) and starts feeding it. False when it exists with
    /// the same settings; [`EventStoreError::SubscriptionConflict`] with others;
    /// [`EngineError::LimitReached`] for a new group past `event_subscriptions_max`.
    pub async fn put_event_subscription(
        &self,
        group: &str,
        settings: SubscriptionSettings,
    ) -> Result<bool, EngineError> {
        self.check_open()?;
        check_group(group)?;
        for (field, value) in [
            ("stream", &settings.stream),
            ("type_prefix", &settings.type_prefix),
            ("stream_prefix", &settings.stream_prefix),
        ] {
            if let Some(value) = value {
                crate::eventstore::check_prefix(field, value)?;
            }
        }
        // A system projection's events keep their own stream ids: filter by prefix instead.
        if let Some(stream) = &settings.stream {
            crate::eventstore::check_stream_id("stream", stream)?;
        }
        let _changes = self.inner.events.subscription_changes.lock().await;
        if let Ok(stored) = self.stored_subscription(group) {
            return match stored.settings == settings {
                true => Ok(false),
                false => Err(EventStoreError::SubscriptionConflict {
                    group: group.to_string(),
                }
                .into()),
            };
        }
        let max = self.inner.config.event_subscriptions_max;
        if self
            .inner
            .events
            .feeders
            .lock()
            .expect("feeders lock")
            .len()
            >= max
        {
            return Err(EngineError::LimitReached {
                limit: "limits.event_subscriptions_max",
                max,
            });
        }
        let parked = QueueName::try_from(parked_queue(group))
            .map_err(|_| EventStoreError::invalid("group", "too long to name its queues"))?;
        let options = QueueOptions {
            lease_ms: settings.lease_ms,
            max_deliveries: Some(settings.max_deliveries),
            dead_letter_queue: Some(parked),
            max_length: Some(QUEUE_LENGTH_MAX),
            ..QueueOptions::default()
        };
        self.put_owned_queue(&subscription_queue(group), options)
            .await?;
        let checkpoint = match settings.from_end {
            true => self.events_end().checked_sub(1),
            false => None,
        };
        let stored = Stored {
            settings,
            checkpoint,
        };
        self.write_subscription(group, &stored).await?;
        self.start_feeder(group);
        Ok(true)
    }

    pub fn event_subscription(&self, group: &str) -> Result<SubscriptionInfo, EngineError> {
        check_group(group)?;
        let stored = self.stored_subscription(group)?;
        Ok(describe(group, stored))
    }

    /// One page of the persistent subscriptions by group name.
    pub fn event_subscriptions_page(&self, request: PageRequest<'_>) -> Page<SubscriptionInfo> {
        let page = listing::meta_page(&*self.inner.store, SUBSCRIPTION_META_PREFIX, request);
        Page {
            items: (page.items.into_iter())
                .filter_map(|(group, value)| {
                    Some(describe(&group, serde_json::from_value(value).ok()?))
                })
                .collect(),
            next: page.next,
        }
    }

    pub fn event_subscriptions(&self) -> Vec<SubscriptionInfo> {
        let entries = self.inner.store.meta_list(SUBSCRIPTION_META_PREFIX);
        (entries.into_iter())
            .filter_map(|(key, value)| {
                let stored = serde_json::from_value(value).ok()?;
                Some(describe(&key[SUBSCRIPTION_META_PREFIX.len()..], stored))
            })
            .collect()
    }

    /// Stops feeding the group and deletes it with its queues.
    pub async fn delete_event_subscription(&self, group: &str) -> Result<(), EngineError> {
        self.check_open()?;
        check_group(group)?;
        let _changes = self.inner.events.subscription_changes.lock().await;
        self.stored_subscription(group)?;
        let checkpoint_writes = self.inner.events.checkpoint_writes.lock().await;
        if let Some(stop) = (self.inner.events.feeders.lock().expect("feeders lock")).remove(group)
        {
            stop.send_replace(true);
        }
        let key = format!("{SUBSCRIPTION_META_PREFIX}{group}");
        self.inner
            .store
            .meta_apply(vec![MetaOp::Delete(key)])
            .await?;
        drop(checkpoint_writes);
        for queue in [subscription_queue(group), parked_queue(group)] {
            match self.delete_queue(&queue).await {
                Ok(()) | Err(EngineError::QueueNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Leases up to `max` events of the group, waiting up to `wait` for a first one.
    pub async fn receive_subscription_events(
        &self,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<SubscriptionDelivery>, EngineError> {
        check_group(group)?;
        self.stored_subscription(group)?;
        let request = ReceiveRequest {
            max_messages: max,
            wait,
            lease: None,
        };
        let queue = subscription_queue(group);
        let deliveries = self.receive(&queue, request).await?;
        let mut events = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match event_of(&delivery.message) {
                Ok(event) => events.push(SubscriptionDelivery {
                    event,
                    receipt: delivery.receipt,
                    delivery_count: delivery.delivery_count,
                }),
                Err(problem) => {
                    self.park_foreign(group, &queue, delivery.receipt, problem)
                        .await
                }
            }
        }
        Ok(events)
    }

    /// Parks a message of the group's queue that is no event of `$all` (one routed or
    /// dead-lettered there by a binding or another queue), so that it cannot hold the
    /// group's consumers up. Should that fail, its lease runs out and it comes back until
    /// `max_deliveries` parks it.
    async fn park_foreign(&self, group: &str, queue: &str, receipt: String, problem: String) {
        tracing::warn!(
            group,
            problem,
            "persistent subscription parks a message that is no event"
        );
        let action = NackAction::DeadLetter {
            error: Some(format!("not an event of the subscription: {problem}")),
        };
        if let Err(error) = self.nack(queue, &[receipt], action).await {
            tracing::warn!(%error, group, "could not park a message that is no event");
        }
    }

    /// Settles events the group's consumers are done with, by receipt.
    pub async fn ack_subscription_events(
        &self,
        group: &str,
        receipts: &[String],
    ) -> Result<Vec<ReceiptResult>, EngineError> {
        check_group(group)?;
        self.stored_subscription(group)?;
        self.ack(&subscription_queue(group), receipts).await
    }

    /// Gives events back to the group, for a retry or to be parked.
    pub async fn nack_subscription_events(
        &self,
        group: &str,
        receipts: &[String],
        action: NackAction,
    ) -> Result<Vec<ReceiptResult>, EngineError> {
        check_group(group)?;
        self.stored_subscription(group)?;
        self.nack(&subscription_queue(group), receipts, action)
            .await
    }

    /// The persistent subscription whose queue (or parked queue) `queue` is, if any.
    pub(crate) fn subscription_owning(&self, queue: &str) -> Option<String> {
        let group = queue.strip_prefix(SUBSCRIPTION_QUEUE_PREFIX)?;
        // `events-sub.a.parked` is group `a.parked`'s queue or group `a`'s parked events.
        (std::iter::once(group).chain(group.strip_suffix(PARKED_SUFFIX)))
            .find(|group| self.stored_subscription(group).is_ok())
            .map(str::to_string)
    }

    /// Starts the feeders of every group defined (at open).
    pub(crate) fn start_event_subscriptions(&self) {
        for info in self.event_subscriptions() {
            self.start_feeder(&info.group);
        }
    }

    fn start_feeder(&self, group: &str) {
        let (stop, stopped) = watch::channel(false);
        let mut feeders = self.inner.events.feeders.lock().expect("feeders lock");
        if let Some(previous) = feeders.insert(group.to_string(), stop) {
            previous.send_replace(true);
        }
        tokio::spawn(feed(self.clone(), group.to_string(), stopped));
    }

    fn stored_subscription(&self, group: &str) -> Result<Stored, EngineError> {
        let key = format!("{SUBSCRIPTION_META_PREFIX}{group}");
        let not_found = || EventStoreError::SubscriptionNotFound {
            group: group.to_string(),
        };
        let value = self.inner.store.meta_get(&key).ok_or_else(not_found)?;
        serde_json::from_value(value).map_err(|error| {
            let error = crate::error::DefinitionError::Decode(error);
            EngineError::corrupt_definition(&key, error)
        })
    }

    async fn write_subscription(&self, group: &str, stored: &Stored) -> Result<(), EngineError> {
        let key = format!("{SUBSCRIPTION_META_PREFIX}{group}");
        let value = serde_json::to_value(stored).expect("subscription serializes");
        self.inner
            .store
            .meta_apply(vec![MetaOp::Put(key, value)])
            .await?;
        Ok(())
    }
}

fn describe(group: &str, stored: Stored) -> SubscriptionInfo {
    SubscriptionInfo {
        group: group.to_string(),
        settings: stored.settings,
        checkpoint: stored.checkpoint,
        queue: subscription_queue(group),
        parked_queue: parked_queue(group),
    }
}

/// Feeds the group's queue until the group is deleted or the engine closes.
async fn feed(engine: Engine, group: String, mut stopped: watch::Receiver<bool>) {
    let queue = subscription_queue(&group);
    loop {
        if *stopped.borrow() || engine.check_open().is_err() {
            return;
        }
        let Ok(mut stored) = engine.stored_subscription(&group) else {
            return;
        };
        let from = stored.checkpoint.map_or(0, |checkpoint| checkpoint + 1);
        let filter = stored.settings.filter();
        let page = match engine.read_all_events(from, FEED_BATCH, &filter).await {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%error, group, "persistent subscription cannot read $all; it stops");
                return;
            }
        };
        if page.next == from {
            tokio::select! {
                _ = engine.wait_for_events(from) => {}
                _ = stopped.changed() => {}
            }
            continue;
        }
        let batch: Vec<SendMessage> = page.events.iter().map(message_of).collect();
        if !batch.is_empty() {
            match engine.send_owned(&queue, batch).await {
                Ok(_) => {}
                Err(EngineError::QueueFull { .. }) => {
                    let until = engine.now() + FULL_QUEUE_PAUSE_MS;
                    tokio::select! {
                        _ = engine.inner.clock.sleep_until(until) => {}
                        _ = stopped.changed() => {}
                    }
                    continue;
                }
                Err(error) => {
                    // Every group's feeder retries 5 times a second while the cause lasts (a
                    // full disk): one line a while, with how many were left out.
                    static THROTTLE: crate::log_throttle::LogThrottle =
                        crate::log_throttle::LogThrottle::new();
                    if let Some(suppressed) = THROTTLE.allow() {
                        tracing::warn!(%error, group, suppressed, "persistent subscription feed failed; retrying");
                    }
                    let until = engine.now() + FULL_QUEUE_PAUSE_MS;
                    tokio::select! {
                        _ = engine.inner.clock.sleep_until(until) => {}
                        _ = stopped.changed() => {}
                    }
                    continue;
                }
            }
        }
        stored.checkpoint = Some(page.next - 1);
        let checkpoint_writes = engine.inner.events.checkpoint_writes.lock().await;
        if *stopped.borrow() {
            return;
        }
        if let Err(error) = engine.write_subscription(&group, &stored).await {
            tracing::warn!(%error, group, "persistent subscription checkpoint not written");
        }
        drop(checkpoint_writes);
    }
}

/// The event a message of a group's queue carries, or what is wrong with it.
fn event_of(message: &wharf_model::message::Message) -> Result<RecordedEvent, String> {
    let position = (message.headers.get(POSITION_HEADER))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("it has no `{POSITION_HEADER}` header holding a position"))?;
    match RecordedEvent::decode(position, &message.body) {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err("it holds no event".to_string()),
        Err(error) => Err(error.to_string()),
    }
}

fn message_of(event: &RecordedEvent) -> SendMessage {
    let headers = BTreeMap::from([(POSITION_HEADER.to_string(), event.position.to_string())]);
    SendMessage {
        id: Some(event.position.to_string()),
        body: event.record.clone(),
        content_type: Some(EVENT_CONTENT_TYPE.to_string()),
        headers,
        priority: None,
        delay: None,
        deliver_at: None,
        ttl: None,
        group: None,
        correlation_id: None,
        reply_to: None,
    }
}
