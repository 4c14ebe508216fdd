//! The event store over one global log, `events`: appends through one appender
//! ([`appender`]), the index rebuilt at open, reads ([`read`]), snapshots ([`snapshots`]) and
//! checkpointed projections ([`projections`]). `crate::eventstore` holds the plain state.

mod appender;
mod projections;
mod read;
mod snapshots;
mod subscriptions;

pub use appender::Appended;
pub use projections::{Projection, ProjectionFilter};
pub use read::{AllEvents, EventFilter, RecordedEvent, StreamEvents};
pub use snapshots::Snapshot;
pub use subscriptions::{
    subscription_queue, SubscriptionDelivery, SubscriptionInfo, SubscriptionSettings,
    SUBSCRIPTION_QUEUE_PREFIX,
};

use super::Engine;
use crate::{
    clock::Clock,
    error::EngineError,
    eventstore::{
        check_stream_id,
        record::{self, EventHeader, EventId},
        EventStoreError, ExpectedVersion, Index, ReadDirection, StreamMetadata, StreamStatus,
        APPEND_BATCH_MAX, APPEND_EVENTS_MAX, READ_LIMIT_MAX,
    },
};
use bytes::{Bytes, BytesMut};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use wharf_storage::{Durability, LogOptions, LogSize, LogStore, Offset, Storage};

/// The global log: every event, stream-metadata change and delete, in order. Its offsets are
/// the positions of `$all`.
pub const EVENTS_LOG: &str = "events";
/// Records one open reads at a time while rebuilding the index.
const REPLAY_BATCH_RECORDS: usize = 8_192;
const REPLAY_BATCH_BYTES: usize = 16 << 20;
/// Tries of an idempotent `any` append before it gives up on idempotency (see
/// `append_events_any_given`). Each failed try means another writer's append landed between
/// the check and the try, so 16 in a row is a stream written far faster than one writer
/// retries; a plain `any` append then still succeeds.
const ANY_RECHECKS_MAX: usize = 16;

/// An event to append, as a door hands it over.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// A UUID; generated (time-ordered) when absent. Re-sending the same ids with the same
    /// expected version is answered as the first append was.
    pub id: Option<String>,
    pub event_type: String,
    /// JSON text when `data_is_json` (the door parsed it), other bytes otherwise.
    pub data: Bytes,
    pub data_is_json: bool,
    /// JSON text of an object (the door parsed it); empty for none.
    pub metadata: Bytes,
}

/// One append of [`Engine::append_events_batch`]: events for a stream, if it is where
/// `expected` says.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// An append checked and encoded, not yet made.
struct PreparedAppend {
    expected: ExpectedVersion,
    ids: Vec<EventId>,
    /// Every event's id was given, so a retry can be recognized.
    given: bool,
    encoded: Vec<BytesMut>,
}

/// The error of append `at` of a batch, its field named within the batch
/// (`appends[3].events[0].type`).
fn in_batch(at: usize, error: EngineError) -> EngineError {
    let field = |field: &str| format!("appends[{at}].{field}");
    match error {
        EngineError::EventStore(EventStoreError::Invalid {
            field: name,
            problem,
        }) => EventStoreError::invalid(field(&name), problem).into(),
        EngineError::EventStore(
            error @ (EventStoreError::NoEvents | EventStoreError::TooManyEvents { .. }),
        ) => EventStoreError::invalid(field("events"), error.to_string()).into(),
        other => other,
    }
}

/// Where a catch-up subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpFrom {
    /// The first event (of the stream, or of `$all`).
    Start,
    /// Only events appended from now on.
    End,
    /// A version of the stream, or a position of `$all` without one.
    At(u64),
}

/// What the appender and readers share.
#[derive(Debug)]
pub(crate) struct EventStoreState {
    pub(crate) log: Arc<dyn LogStore>,
    pub(crate) index: RwLock<Index>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The end of `$all` after the last commit; subscribers wait on it.
    pub(crate) appended: watch::Sender<u64>,
    /// Set when the engine closes: subscribers end.
    closing: watch::Sender<bool>,
    snapshots: snapshots::Snapshots,
}

/// The event store of an engine.
#[derive(Debug)]
pub(crate) struct EventStore {
    state: Arc<EventStoreState>,
    appender: mpsc::Sender<appender::Job>,
    /// Each projection's time lag, as last measured.
    lags: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Stops each persistent subscription's feeder.
    feeders: std::sync::Mutex<std::collections::HashMap<String, watch::Sender<bool>>>,
    /// Held by a feeder from its last look at its stop signal to the end of its checkpoint
    /// write, and by a delete from stopping the feeder to deleting the group: the metadata
    /// store applies writes on blocking threads in no set order, so without it a checkpoint
    /// written just before a delete could land after it and bring the group back.
    checkpoint_writes: tokio::sync::Mutex<()>,
    /// Held while a persistent subscription is created or deleted, so that the count checked
    /// against `event_subscriptions_max` is the count created.
    subscription_changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for appender::Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("stream", &self.stream).finish()
    }
}

impl EventStore {
    /// Opens the logs and rebuilds the index by reading `$all` from its start.
    pub(crate) async fn open(
        store: &dyn Storage,
        clock: Arc<dyn Clock>,
    ) -> Result<EventStore, EngineError> {
        // One log per node: preallocated segments, whose overwrites sync faster than a
        // growing file's (no size to sync).
        let options = LogOptions {
            durability: Durability::Durable,
            size: LogSize::Large,
        };
        let log = store.open_log(EVENTS_LOG, options).await?;
        let mut index = Index::default();
        let mut at = log.start_offset();
        loop {
            let batch = log
                .read_batch(at, REPLAY_BATCH_RECORDS, REPLAY_BATCH_BYTES)
                .await?;
            let Some(last) = batch.last() else { break };
            at = last.offset.next();
            for stored in &batch {
                match record::decode(stored.offset.0, &stored.payload) {
                    Ok(decoded) => index.apply(stored.offset.0, &decoded),
                    Err(error) => tracing::error!(%error, "skipping a damaged event-store record"),
                }
            }
        }
        let snapshots = snapshots::Snapshots::open(store).await?;
        let end = log.end_offset().0;
        let state = Arc::new(EventStoreState {
            log,
            index: RwLock::new(index),
            clock,
            appended: watch::Sender::new(end),
            closing: watch::Sender::new(false),
            snapshots,
        });
        let appender = appender::spawn(state.clone());
        Ok(EventStore {
            state,
            appender,
            feeders: Default::default(),
            lags: Default::default(),
            checkpoint_writes: tokio::sync::Mutex::new(()),
            subscription_changes: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn close(&self) {
        self.state.closing.send_replace(true);
    }

    /// Streams ever written and events ever appended.
    pub(crate) fn counts(&self) -> (usize, u64) {
        let index = self.state.index.read().expect("event index lock");
        (index.stream_count(), index.event_count())
    }
}

impl Engine {
    fn events(&self) -> &Arc<EventStoreState> {
        &self.inner.events.state
    }

    /// Streams ever written and events ever appended, for metrics.
    pub fn event_store_counts(&self) -> (usize, u64) {
        self.inner.events.counts()
    }

    /// Appends `events` to `stream` as one atomic unit if the stream is where `expected` says.
    /// On a mismatch nothing is written and the error gives the stream's current version,
    /// unless these very events (same ids) were appended after that version before: then the
    /// answer is that first append's.
    pub async fn append_events(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, EngineError> {
        self.check_open()?;
        let prepared = self.prepare_append(stream, expected, &events)?;
        self.commit_append(stream, prepared).await
    }

    /// Appends to several streams in one call, each append on its own as
    /// [`Engine::append_events`] makes it (atomic, with its own expected version), all sharing
    /// the disk's syncs. Appends to the same stream are applied in the order given, each
    /// checked against the stream as the ones before it leave it. Every append is checked
    /// before any is made: an invalid one (its field named `appends[i]....`) fails the whole
    /// call with nothing written. Otherwise the answer holds one outcome per append, in order;
    /// a refused append (wrong expected version, a deleted stream) refuses only itself.
    pub async fn append_events_batch(
        &self,
        appends: &[StreamAppend],
    ) -> Result<Vec<Result<Appended, EngineError>>, EngineError> {
        self.check_open()?;
        match appends.len() {
            0 => {
                return Err(EventStoreError::invalid("appends", "give at least one append").into())
            }
            count if count > APPEND_BATCH_MAX => {
                let problem = format!(
                    "a batch holds at most {APPEND_BATCH_MAX} appends; this one has {count}"
                );
                return Err(EventStoreError::invalid("appends", problem).into());
            }
            _ => {}
        }
        let bytes: usize = (appends.iter().flat_map(|append| &append.events))
            .map(|event| event.data.len() + event.metadata.len())
            .sum();
        if bytes > self.inner.config.batch_bytes_max {
            let problem = format!(
                "data and metadata come to {bytes} bytes; a batch holds at most {}",
                self.inner.config.batch_bytes_max
            );
            return Err(EventStoreError::invalid("appends", problem).into());
        }
        // Per stream, its appends in order: streams proceed side by side, each in order.
        let mut streams: Vec<(&str, Vec<(usize, PreparedAppend)>)> = Vec::new();
        let mut stream_at = std::collections::HashMap::with_capacity(appends.len());
        for (at, append) in appends.iter().enumerate() {
            let prepared = (self.prepare_append(&append.stream, append.expected, &append.events))
                .map_err(|error| in_batch(at, error))?;
            let group = *stream_at.entry(append.stream.as_str()).or_insert_with(|| {
                streams.push((append.stream.as_str(), Vec::new()));
                streams.len() - 1
            });
            streams[group].1.push((at, prepared));
        }
        let runs = streams.into_iter().map(|(stream, prepared)| async move {
            let mut outcomes = Vec::with_capacity(prepared.len());
            for (at, prepared) in prepared {
                outcomes.push((at, self.commit_append(stream, prepared).await));
            }
            outcomes
        });
        let mut outcomes: Vec<_> = (futures_util::future::join_all(runs).await)
            .into_iter()
            .flatten()
            .collect();
        outcomes.sort_unstable_by_key(|(at, _)| *at);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }

    /// Checks an append and encodes its events; writes nothing.
    fn prepare_append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<PreparedAppend, EngineError> {
        check_stream_id("stream", stream)?;
        match events.len() {
            0 => return Err(EventStoreError::NoEvents.into()),
            count if count > APPEND_EVENTS_MAX => {
                return Err(EventStoreError::TooManyEvents { count }.into())
            }
            _ => {}
        }
        let bytes: usize = events.iter().map(|e| e.data.len() + e.metadata.len()).sum();
        if bytes > self.inner.config.batch_bytes_max {
            let problem = format!(
                "data and metadata come to {bytes} bytes; an append holds at most {}",
                self.inner.config.batch_bytes_max
            );
            return Err(EventStoreError::invalid("events", problem).into());
        }
        let (ids, given) = self.event_ids(events)?;
        let encoded = append_events_encode(stream, events, &ids);
        Ok(PreparedAppend {
            expected,
            ids,
            given,
            encoded,
        })
    }

    /// Makes a prepared append (see [`Engine::append_events`]).
    async fn commit_append(
        &self,
        stream: &str,
        prepared: PreparedAppend,
    ) -> Result<Appended, EngineError> {
        let PreparedAppend {
            expected,
            ids,
            given,
            encoded,
        } = prepared;
        if given && matches!(expected, ExpectedVersion::Any) {
            return self.append_events_any_given(stream, &ids, encoded).await;
        }
        let change = appender::Change::Append {
            expected,
            events: encoded,
        };
        let result = self.event_change(stream, change).await;
        if let Err(EngineError::EventStore(EventStoreError::WrongExpectedVersion { .. })) = &result
        {
            if let (true, Some(appended)) = (
                given,
                self.append_events_resent(stream, expected, &ids).await?,
            ) {
                return Ok(appended);
            }
        }
        result
    }

    /// Checks each event's type and returns the ids of `events`, parsed, or generated for those
    /// without one, and whether every one was given (only then can a retry be recognized). A
    /// repeated id is refused: a retry of the append could not be told apart.
    fn event_ids(&self, events: &[NewEvent]) -> Result<(Vec<EventId>, bool), EngineError> {
        let now = self.now();
        let mut ids = Vec::with_capacity(events.len());
        let mut given = true;
        // Which id came at which index; a single event cannot repeat one.
        let mut seen =
            (events.len() > 1).then(|| std::collections::HashMap::with_capacity(events.len()));
        for (at, event) in events.iter().enumerate() {
            // The field is named only when the type is refused: this runs for every event.
            wharf_model::check_resource_name(&event.event_type).map_err(|error| {
                EventStoreError::invalid(format!("events[{at}].type"), error.to_string())
            })?;
            let id = match &event.id {
                Some(text) => {
                    let id = EventId::parse(text).ok_or_else(|| {
                        let problem = "is not a UUID (8-4-4-4-12 hex digits)";
                        EventStoreError::invalid(format!("events[{at}].id"), problem)
                    })?;
                    if let Some(first) = seen.as_mut().and_then(|seen| seen.insert(id, at)) {
                        let problem =
                            format!("repeats events[{first}].id; ids in one append differ");
                        let field = format!("events[{at}].id");
                        return Err(EventStoreError::invalid(field, problem).into());
                    }
                    id
                }
                None => {
                    given = false;
                    EventId::parse(&self.generate_id(now)).expect("generated ids are UUIDs")
                }
            };
            ids.push(id);
        }
        Ok((ids, given))
    }

    /// After a refusal: the answer of the earlier append of `ids` with the same `expected`,
    /// if that is what was sent again.
    async fn append_events_resent(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        ids: &[EventId],
    ) -> Result<Option<Appended>, EngineError> {
        let first = match expected {
            ExpectedVersion::Exact(version) => match version.checked_add(1) {
                Some(first) => first,
                None => return Ok(None),
            },
            // A no_stream append took the first version after the last soft delete (0 for a
            // stream never deleted): versions continue across a delete.
            ExpectedVersion::NoStream => {
                let index = self.events().index.read().expect("event index lock");
                index.visible_from(stream)
            }
            ExpectedVersion::Any | ExpectedVersion::Exists => return Ok(None),
        };
        self.appended_before(stream, Some(first), ids).await
    }

    /// An `any` append of events whose ids were given. Checking that they are not the
    /// stream's last events and then appending would store twice a re-send made while the
    /// first was in flight (both check before either lands), so each try expects the head its
    /// check saw: whatever lands in between, that re-send included, refuses it and the check
    /// runs again. After [`ANY_RECHECKS_MAX`] refusals (other writers winning each time) it
    /// appends as plain `any`.
    async fn append_events_any_given(
        &self,
        stream: &str,
        ids: &[EventId],
        events: Vec<BytesMut>,
    ) -> Result<Appended, EngineError> {
        for _ in 0..ANY_RECHECKS_MAX {
            let head = self
                .events()
                .index
                .read()
                .expect("event index lock")
                .head(stream);
            if let Some(appended) = self.appended_before(stream, None, ids).await? {
                return Ok(appended);
            }
            let expected =
                (head.current_version()).map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            let change = appender::Change::Append {
                expected,
                events: events.clone(),
            };
            match self.event_change(stream, change).await {
                Err(EngineError::EventStore(EventStoreError::WrongExpectedVersion { .. })) => {}
                answer => return answer,
            }
        }
        let change = appender::Change::Append {
            expected: ExpectedVersion::Any,
            events,
        };
        self.event_change(stream, change).await
    }

    async fn event_change(
        &self,
        stream: &str,
        change: appender::Change,
    ) -> Result<Appended, EngineError> {
        let (reply, answer) = oneshot::channel();
        let job = appender::Job {
            stream: stream.to_string(),
            change,
            reply,
        };
        let appender = &self.inner.events.appender;
        appender
            .send(job)
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        answer.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// Whether `ids` are the events of `stream` from version `first` (or, with `None`, its
    /// last ones): a retry of an append that was stored.
    async fn appended_before(
        &self,
        stream: &str,
        first: Option<u64>,
        ids: &[EventId],
    ) -> Result<Option<Appended>, EngineError> {
        let positions: Option<Vec<(u64, u64)>> = {
            let index = self.events().index.read().expect("event index lock");
            let head = index.head(stream);
            let count = ids.len() as u64;
            let first = match first {
                Some(first) => Some(first),
                None => head.next_version.checked_sub(count),
            };
            first
                .filter(|first| {
                    first
                        .checked_add(count)
                        .is_some_and(|end| end <= head.next_version)
                })
                .and_then(|first| {
                    (first..first + count)
                        .map(|version| Some((version, index.position_of(stream, version)?)))
                        .collect()
                })
        };
        let Some(positions) = positions else {
            return Ok(None);
        };
        let offsets: Vec<Offset> = positions.iter().map(|p| Offset(p.1)).collect();
        let records = self.events().log.read_many(&offsets).await?;
        for (record, id) in records.iter().zip(ids) {
            let Some(record) = record else {
                return Ok(None);
            };
            match RecordedEvent::decode(record.offset.0, &record.payload)? {
                Some(event) if event.id == *id && event.stream == stream => {}
                _ => return Ok(None),
            }
        }
        let (first, last) = (positions[0], positions[positions.len() - 1]);
        Ok(Some(Appended {
            first_version: first.0,
            version: last.0,
            first_position: first.1,
            position: last.1,
            created: false,
        }))
    }

    /// Up to `limit` events of `stream` (or of a system projection, `$ce-...` or `$et-...`)
    /// from version `from`.
    pub async fn read_event_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<StreamEvents, EngineError> {
        crate::eventstore::check_readable("stream", stream)?;
        let limit = limit.min(READ_LIMIT_MAX);
        let not_found = || EventStoreError::StreamNotFound {
            stream: stream.to_string(),
        };
        let (slice, metadata) = {
            let index = self.events().index.read().expect("event index lock");
            if stream.starts_with(crate::eventstore::SYSTEM_PREFIX) {
                let slice = index.read_projection(stream, from, direction, limit);
                (slice.ok_or_else(not_found)?, None)
            } else {
                let slice = index
                    .read(stream, from, direction, limit)
                    .map_err(|_tombstoned| EventStoreError::StreamDeleted {
                        stream: stream.to_string(),
                    })?;
                (slice.ok_or_else(not_found)?, index.metadata(stream))
            }
        };
        let max_age = metadata.and_then(|m| m.max_age_ms);
        self.events().events_of(slice, max_age).await
    }

    /// Up to `limit` events of `$all` from position `from` that pass `filter`.
    pub async fn read_all_events(
        &self,
        from: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<AllEvents, EngineError> {
        let limit = limit.min(READ_LIMIT_MAX);
        self.events().read_all(from, limit, filter).await
    }

    /// The end of `$all`: the position the next event takes.
    pub fn events_end(&self) -> u64 {
        *self.events().appended.borrow()
    }

    /// The position of `$all` a catch-up subscription (to `stream`, or to `$all`) starting
    /// `from` reads first.
    pub fn catch_up_position(&self, stream: Option<&str>, from: CatchUpFrom) -> u64 {
        // The end first: everything before it is in the index, so a version not found there
        // comes at this position or later.
        let end = self.events_end();
        match (stream, from) {
            (_, CatchUpFrom::End) => end,
            (None, CatchUpFrom::Start) => 0,
            (None, CatchUpFrom::At(position)) => position,
            (Some(stream), CatchUpFrom::Start) => self.event_position(stream, 0).unwrap_or(end),
            (Some(stream), CatchUpFrom::At(version)) => {
                self.event_position(stream, version).unwrap_or(end)
            }
        }
    }

    /// The position of `version` of `stream`, if it was ever written.
    fn event_position(&self, stream: &str, version: u64) -> Option<u64> {
        let index = self.events().index.read().expect("event index lock");
        index.position_of(stream, version)
    }

    /// Waits until `$all` holds a record at `position` or past it; false when the engine is
    /// closing instead.
    pub async fn wait_for_events(&self, position: u64) -> bool {
        let mut appended = self.events().appended.subscribe();
        let mut closing = self.events().closing.subscribe();
        if *closing.borrow() {
            return false;
        }
        tokio::select! {
            reached = appended.wait_for(|end| *end > position) => reached.is_ok(),
            _ = closing.wait_for(|closing| *closing) => false,
        }
    }

    /// The stream's metadata and where it stands.
    pub fn event_stream_metadata(
        &self,
        stream: &str,
    ) -> Result<(StreamMetadata, Option<u64>), EngineError> {
        check_stream_id("stream", stream)?;
        let index = self.events().index.read().expect("event index lock");
        let head = index.head(stream);
        let not_found = || EventStoreError::StreamNotFound {
            stream: stream.to_string(),
        };
        match head.status {
            Some(StreamStatus::Tombstoned) => Err(EventStoreError::StreamDeleted {
                stream: stream.to_string(),
            }
            .into()),
            None => match index.metadata(stream) {
                Some(metadata) => Ok((metadata, None)),
                None => Err(not_found().into()),
            },
            Some(_) => Ok((
                index.metadata(stream).unwrap_or_default(),
                head.current_version(),
            )),
        }
    }

    /// Sets the stream's metadata (a stream need not exist to be given metadata).
    pub async fn set_event_stream_metadata(
        &self,
        stream: &str,
        metadata: StreamMetadata,
    ) -> Result<(), EngineError> {
        self.check_open()?;
        check_stream_id("stream", stream)?;
        for (field, bound) in [
            ("max_count", metadata.max_count),
            ("max_age_ms", metadata.max_age_ms),
        ] {
            if bound == Some(0) {
                let problem = "must be at least 1 (leave it out for no bound)";
                return Err(EventStoreError::invalid(field, problem).into());
            }
        }
        let change = appender::Change::Metadata(metadata);
        self.event_change(stream, change).await.map(|_| ())
    }

    /// Deletes the stream: soft (reads find nothing; an append recreates it, versions
    /// continuing) or hard (a tombstone: never written or read again).
    pub async fn delete_event_stream(&self, stream: &str, hard: bool) -> Result<(), EngineError> {
        self.check_open()?;
        check_stream_id("stream", stream)?;
        let change = appender::Change::Delete { hard };
        self.event_change(stream, change).await.map(|_| ())
    }
}

/// The events of an append as log records, version and time left for the appender to stamp.
fn append_events_encode(stream: &str, events: &[NewEvent], ids: &[EventId]) -> Vec<BytesMut> {
    (events.iter().zip(ids))
        .map(|(event, id)| {
            let header = EventHeader {
                version: 0,
                time_ms: 0,
                id: *id,
                stream,
                event_type: &event.event_type,
                data_is_json: event.data_is_json,
            };
            let metadata: &[u8] = match event.metadata.is_empty() {
                true => b"{}",
                false => &event.metadata,
            };
            record::encode_unstamped(&header, metadata, &event.data)
        })
        .collect()
}
