//! The event store end to end through the engine's public API, over a real file store with a
//! manual clock: expected versions under concurrent writers, idempotent re-appends, deletes,
//! atomic multi-event appends, `$all` reads (catch-up then live), restarts, snapshots, stream
//! metadata, system and checkpointed projections, and persistent subscriptions.

mod append;
mod batch;
mod concurrency;
mod deletes;
mod failures;
mod projections;
mod reads;
mod restart;
mod snapshots;
mod subscriptions;

use bytes::Bytes;
use std::{future::Future, path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::eventstore::{Appended, EventFilter, NewEvent, RecordedEvent},
    clock::ManualClock,
    eventstore::{EventStoreError, ExpectedVersion, ReadDirection},
    Engine, EngineConfig, EngineError,
};
use wharf_storage::{Store, StoreConfig};

pub const START: u64 = 1_800_000_000_000;

/// Opens the file store in `dir` and an engine over it. A store still locked by the previous
/// engine's last tasks is opened again once they let go.
pub async fn open(dir: &Path, clock: &Arc<ManualClock>) -> (Engine, Arc<Store>) {
    open_with(dir, clock, EngineConfig::default()).await
}

/// [`open`] with `config`.
pub async fn open_with(
    dir: &Path,
    clock: &Arc<ManualClock>,
    config: EngineConfig,
) -> (Engine, Arc<Store>) {
    let store = guard(async {
        loop {
            match Store::open(dir, StoreConfig::default()) {
                Ok(store) => break Arc::new(store),
                Err(wharf_storage::StorageError::Locked { .. }) => tokio::task::yield_now().await,
                Err(error) => panic!("{error}"),
            }
        }
    })
    .await;
    let engine = Engine::open(store.clone(), clock.clone(), config)
        .await
        .unwrap();
    (engine, store)
}

pub async fn close(engine: Engine, store: Arc<Store>) {
    engine.close();
    store.close().await.unwrap();
}

pub async fn guard<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the engine should have answered")
}

/// A UUID made from `n`, so that tests can name ids and tell them apart.
pub fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// A JSON event of `event_type` with id [`uuid`]`(n)`.
pub fn event(n: u64, event_type: &str) -> NewEvent {
    NewEvent {
        id: Some(uuid(n)),
        event_type: event_type.to_string(),
        data: Bytes::from(format!("{{\"n\":{n}}}")),
        data_is_json: true,
        metadata: Bytes::new(),
    }
}

/// A JSON event of `event_type` whose id the engine generates.
pub fn unnamed(event_type: &str) -> NewEvent {
    NewEvent {
        id: None,
        ..event(0, event_type)
    }
}

pub async fn append(
    engine: &Engine,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Appended {
    guard(engine.append_events(stream, expected, events))
        .await
        .unwrap_or_else(|error| panic!("append to {stream} expecting {expected}: {error:?}"))
}

/// The event-store error inside an engine error, or a panic naming what came instead.
pub fn event_error<T: std::fmt::Debug>(result: Result<T, EngineError>) -> EventStoreError {
    match result {
        Err(EngineError::EventStore(error)) => error,
        other => panic!("expected an event-store error, got {other:?}"),
    }
}

/// The `current` of a wrong-expected-version refusal, or a panic naming what came instead.
pub fn refused_at<T: std::fmt::Debug>(result: Result<T, EngineError>) -> Option<u64> {
    match event_error(result) {
        EventStoreError::WrongExpectedVersion { current, .. } => current,
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
}

/// Every readable event of `stream`, forward, `page` per read, following `next`.
pub async fn read_stream(engine: &Engine, stream: &str, page: usize) -> Vec<RecordedEvent> {
    let mut from = None;
    let mut events = Vec::new();
    loop {
        let read = guard(engine.read_event_stream(stream, from, ReadDirection::Forward, page))
            .await
            .unwrap_or_else(|error| panic!("read {stream}: {error:?}"));
        assert!(read.events.len() <= page);
        events.extend(read.events);
        match read.next {
            Some(next) => from = Some(next),
            None => return events,
        }
    }
}

/// Every event of `$all` that passes `filter`, `page` per read, following `next` to the end.
pub async fn read_all(engine: &Engine, filter: &EventFilter, page: usize) -> Vec<RecordedEvent> {
    let end = engine.events_end();
    let mut from = 0;
    let mut events = Vec::new();
    while from < end {
        let read = guard(engine.read_all_events(from, page, filter))
            .await
            .unwrap();
        assert!(read.events.len() <= page);
        assert!(read.next > from, "a read below the end moves forward");
        events.extend(read.events);
        from = read.next;
    }
    events
}

pub fn ids(events: &[RecordedEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

pub fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

pub fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// Polls `check` until it holds, or panics after a few seconds: no sleeping in place of a
/// condition.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
