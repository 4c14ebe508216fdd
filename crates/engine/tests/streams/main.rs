//! Streams end to end through the engine's public API, over a real store (or the in-memory
//! one for crash tests) with a manual clock: where records land, offsets under concurrency,
//! fetch bounds and long polls, offsets by time, idempotent producers across restarts,
//! retention, compaction, consumer groups and deleting a stream.
//!
//! Segments are 64 KiB so that a few hundred kilobytes of records span several of them and
//! retention and compaction, which delete whole segments, have something to delete.

mod compaction;
mod fetch;
mod groups;
mod produce;
mod restart;
mod retention;

use bytes::Bytes;
use std::{future::Future, path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{FetchRequest, ProduceRecord, ProduceRequest, Produced},
    clock::ManualClock,
    stream::{StreamError, StreamOptions},
    Engine, EngineConfig, EngineError,
};
use wharf_model::record_batch::Record;
use wharf_storage::{LogConfig, Store, StoreConfig};

pub const START: u64 = 1_800_000_000_000;
pub const SEGMENT_BYTES: u64 = 64 << 10;

/// Opens the file store in `dir` with small segments and an engine over it. A store still
/// locked by the previous engine's last tasks is opened again once they let go.
pub async fn open(dir: &Path, clock: &Arc<ManualClock>) -> (Engine, Arc<Store>) {
    let config = StoreConfig {
        log: LogConfig {
            segment_bytes: SEGMENT_BYTES,
            ..LogConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = guard(async {
        loop {
            match Store::open(dir, config.clone()) {
                Ok(store) => break Arc::new(store),
                Err(wharf_storage::StorageError::Locked { .. }) => tokio::task::yield_now().await,
                Err(error) => panic!("{error}"),
            }
        }
    })
    .await;
    let engine = Engine::open(store.clone(), clock.clone(), EngineConfig::default())
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

pub fn partitions(count: u32) -> StreamOptions {
    StreamOptions {
        partitions: count,
        ..StreamOptions::default()
    }
}

pub fn keyed(key: &str, value: &str) -> ProduceRecord {
    ProduceRecord {
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        ..ProduceRecord::default()
    }
}

pub fn keyless(value: &str) -> ProduceRecord {
    ProduceRecord {
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        ..ProduceRecord::default()
    }
}

pub fn to_partition(partition: u32, value: &str) -> ProduceRecord {
    ProduceRecord {
        partition: Some(partition),
        ..keyless(value)
    }
}

pub fn request(records: Vec<ProduceRecord>) -> ProduceRequest {
    ProduceRequest {
        records,
        producer: None,
    }
}

pub async fn produce(engine: &Engine, stream: &str, records: Vec<ProduceRecord>) -> Vec<Produced> {
    guard(engine.produce(stream, request(records)))
        .await
        .unwrap()
}

pub fn fetch_request(offset: u64, max_records: usize) -> FetchRequest {
    FetchRequest {
        offset,
        max_records,
        max_bytes: usize::MAX,
        wait: Duration::ZERO,
    }
}

/// Every record of `partition` from its earliest offset to its end, `max_records` per fetch,
/// following `next_offset` across whatever gaps compaction left.
pub async fn fetch_all(
    engine: &Engine,
    stream: &str,
    partition: u32,
    max_records: usize,
) -> Vec<Record> {
    let info = engine.stream_info(stream).unwrap();
    let extent = info.partitions[partition as usize];
    let mut offset = extent.earliest;
    let mut records = Vec::new();
    while offset < extent.latest {
        let fetched = guard(engine.fetch(stream, partition, fetch_request(offset, max_records)))
            .await
            .unwrap();
        assert!(
            fetched.next_offset > offset,
            "a fetch below the end moves forward: {offset} -> {}",
            fetched.next_offset
        );
        if let Some(last) = fetched.records.last() {
            assert!(fetched.next_offset > last.offset);
        }
        records.extend(fetched.records);
        offset = fetched.next_offset;
    }
    assert_eq!(offset, extent.latest, "fetching ends exactly at the end");
    records
}

pub fn text(bytes: &Option<Bytes>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

pub fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| text(&r.value).expect("a value"))
        .collect()
}

/// The stream error inside an engine error, or a panic naming what came instead.
pub fn stream_error<T: std::fmt::Debug>(result: Result<T, EngineError>) -> StreamError {
    match result {
        Err(EngineError::Stream(error)) => error,
        other => panic!("expected a stream error, got {other:?}"),
    }
}
