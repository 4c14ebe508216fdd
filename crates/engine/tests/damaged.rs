//! A damaged record among a batch of deliveries: the rest of the batch is delivered, and the
//! damaged message leaves the queue, counted, instead of failing every receive that meets it.
//!
//! The damage is simulated by a storage wrapper whose reads of chosen offsets fail as a
//! corrupt record does, over the memory store: what a damaged file makes the file store answer.

use bytes::Bytes;
use std::{
    collections::BTreeSet,
    ops::Range,
    sync::{Arc, Mutex},
    time::Duration,
};
use wharf_engine::{
    broker::{ConsumeRequest, ReceiveRequest, SendMessage},
    clock::ManualClock,
    queue::QueueOptions,
    Engine, EngineConfig,
};
use wharf_storage::{
    LogOptions, LogStore, MemoryStore, MetaOp, Offset, Record, Storage, StorageError, StorageFuture,
};

const START: u64 = 1_800_000_000_000;

/// The memory store, with reads of the offsets in `damaged` failing as corrupt.
#[derive(Debug, Clone, Default)]
struct DamagedStore {
    inner: MemoryStore,
    damaged: Arc<Mutex<BTreeSet<u64>>>,
}

#[derive(Debug)]
struct DamagedLog {
    inner: Arc<dyn LogStore>,
    damaged: Arc<Mutex<BTreeSet<u64>>>,
}

impl DamagedLog {
    fn check(&self, offset: Offset) -> Result<(), StorageError> {
        match self.damaged.lock().unwrap().contains(&offset.0) {
            true => Err(StorageError::Corrupt {
                path: "wal".into(),
                offset,
                position: offset.0,
                reason: "checksum mismatch",
            }),
            false => Ok(()),
        }
    }
}

impl LogStore for DamagedLog {
    fn append<'a>(
        &'a self,
        records: &'a [Bytes],
        condition: Option<Offset>,
    ) -> StorageFuture<'a, Range<Offset>> {
        self.inner.append(records, condition)
    }

    fn append_lazy(&self, records: &[Bytes]) -> Result<Range<Offset>, StorageError> {
        self.inner.append_lazy(records)
    }

    fn read(&self, offset: Offset) -> StorageFuture<'_, Option<Record>> {
        match self.check(offset) {
            Ok(()) => self.inner.read(offset),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn read_many(&self, offsets: &[Offset]) -> StorageFuture<'_, Vec<Option<Record>>> {
        match offsets.iter().try_for_each(|offset| self.check(*offset)) {
            Ok(()) => self.inner.read_many(offsets),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn read_batch(&self, from: Offset, max: usize, bytes: usize) -> StorageFuture<'_, Vec<Record>> {
        self.inner.read_batch(from, max, bytes)
    }

    fn wait_for(&self, offset: Offset) -> StorageFuture<'_, ()> {
        self.inner.wait_for(offset)
    }

    fn start_offset(&self) -> Offset {
        self.inner.start_offset()
    }

    fn end_offset(&self) -> Offset {
        self.inner.end_offset()
    }

    fn truncate_before(&self, offset: Offset) -> StorageFuture<'_, Offset> {
        self.inner.truncate_before(offset)
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        self.inner.close()
    }
}

impl Storage for DamagedStore {
    fn open_log<'a>(
        &'a self,
        name: &'a str,
        options: LogOptions,
    ) -> StorageFuture<'a, Arc<dyn LogStore>> {
        Box::pin(async move {
            let inner = self.inner.open_log(name, options).await?;
            let damaged = self.damaged.clone();
            Ok(Arc::new(DamagedLog { inner, damaged }) as Arc<dyn LogStore>)
        })
    }

    fn delete_log<'a>(&'a self, name: &'a str) -> StorageFuture<'a, ()> {
        self.inner.delete_log(name)
    }

    fn meta_get(&self, key: &str) -> Option<serde_json::Value> {
        self.inner.meta_get(key)
    }

    fn meta_range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, serde_json::Value)> {
        self.inner.meta_range(prefix, after, limit)
    }

    fn meta_apply(&self, ops: Vec<MetaOp>) -> StorageFuture<'_, ()> {
        self.inner.meta_apply(ops)
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        self.inner.close()
    }
}

/// An engine over a damaged store, with `jobs` holding bodies `0..count`; the message with
/// body `damaged` has its record damaged.
async fn jobs_with_one_damaged(count: usize, damaged: usize) -> Engine {
    let store = DamagedStore::default();
    let engine = Engine::open(
        Arc::new(store.clone()),
        ManualClock::new(START),
        // Every delivery reads its record, or the messages just sent would come from memory.
        EngineConfig {
            fresh_messages_bytes: 0,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    engine
        .put_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    let batch = (0..count)
        .map(|i| SendMessage {
            body: Bytes::from(i.to_string()),
            ..SendMessage::default()
        })
        .collect();
    engine.send("jobs", batch).await.unwrap();
    // The send is the WAL's last append, one record per message in order.
    assert_eq!(engine.queue_info("jobs").unwrap().stats.ready, count as u64);
    let first = wal_end(&store).await - count as u64;
    store.damaged.lock().unwrap().insert(first + damaged as u64);
    engine
}

async fn wal_end(store: &DamagedStore) -> u64 {
    let wal = store.inner.open_log("wal", LogOptions::default()).await;
    wal.unwrap().end_offset().0
}

fn bodies(deliveries: &[wharf_engine::broker::Delivery]) -> Vec<String> {
    (deliveries.iter())
        .map(|d| String::from_utf8(d.message.body.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_receive_returns_the_batch_without_the_damaged_message() {
    let engine = jobs_with_one_damaged(10, 3).await;
    let request = ReceiveRequest {
        max_messages: 10,
        wait: Duration::ZERO,
        lease: None,
    };
    let got = engine.receive("jobs", request).await.unwrap();
    let expected: Vec<String> = [0, 1, 2, 4, 5, 6, 7, 8, 9].map(|i| i.to_string()).to_vec();
    assert_eq!(bodies(&got), expected);
    let stats = engine.queue_info("jobs").unwrap().stats;
    assert_eq!(
        (stats.leased, stats.ready, stats.counters.damaged),
        (9, 0, 1),
        "the damaged message left the queue, counted; nothing is stuck leased"
    );
}

#[tokio::test]
async fn a_push_consumer_gets_every_message_but_the_damaged_one() {
    let engine = jobs_with_one_damaged(5, 0).await;
    let request = ConsumeRequest {
        credit: 5,
        lease: None,
    };
    let mut consumer = engine.consume("jobs", request).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("deliveries keep coming")
            .expect("the consumer stays attached");
        got.push(delivery);
    }
    assert_eq!(bodies(&got), ["1", "2", "3", "4"]);
    assert_eq!(engine.queue_info("jobs").unwrap().stats.counters.damaged, 1);
}
