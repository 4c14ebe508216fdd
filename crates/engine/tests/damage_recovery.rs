//! Damage in the shared WAL, through the real file store: the next start opens every queue,
//! and the damage costs only the records it touched (issue 8: 8 bytes flipped in an older
//! segment used to stop the whole broker).

use bytes::Bytes;
use std::{path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{ReceiveRequest, SendMessage},
    clock::ManualClock,
    queue::QueueOptions,
    Engine, EngineConfig,
};
use wharf_storage::{LogConfig, Store, StoreConfig};

const START: u64 = 1_800_000_000_000;
const QUEUES: [&str; 3] = ["a", "b", "c"];
const ROUNDS: usize = 30;
const PER_SEND: usize = 10;

async fn open(dir: &Path) -> (Engine, Arc<Store>) {
    let config = StoreConfig {
        log: LogConfig {
            segment_bytes: 64 << 10,
            ..LogConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = loop {
        match Store::open(dir, config.clone()) {
            Ok(store) => break Arc::new(store),
            // The previous engine's last tasks may hold the directory for a moment.
            Err(wharf_storage::StorageError::Locked { .. }) => tokio::task::yield_now().await,
            Err(error) => panic!("{error}"),
        }
    };
    let engine = Engine::open(
        store.clone(),
        ManualClock::new(START),
        EngineConfig::default(),
    )
    .await
    .expect("damage never stops the engine from opening");
    (engine, store)
}

fn ready(engine: &Engine) -> Vec<u64> {
    QUEUES
        .iter()
        .map(|queue| engine.queue_info(queue).unwrap().stats.ready)
        .collect()
}

/// Creates the queues and sends each `ROUNDS` batches of `PER_SEND` 200-byte messages, so the
/// WAL spans several segments with the queues' records interleaved.
async fn fill_queues(engine: &Engine) {
    for queue in QUEUES {
        engine
            .put_queue(queue, QueueOptions::default())
            .await
            .unwrap();
    }
    let body = Bytes::from(vec![b'x'; 200]);
    for _ in 0..ROUNDS {
        for queue in QUEUES {
            let batch = (0..PER_SEND)
                .map(|_| SendMessage {
                    body: body.clone(),
                    ..SendMessage::default()
                })
                .collect();
            engine.send(queue, batch).await.unwrap();
        }
    }
}

/// Flips 8 bytes in the middle of the WAL's second segment file (an older, sealed one).
fn flip_bytes_in_an_older_segment(dir: &Path) {
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("logs").join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "the WAL rotated: {segments:?}");
    let path = &segments[1];
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 8] {
        *byte ^= 0xff;
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn flipped_bytes_in_an_older_wal_segment_cost_only_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path()).await;
    fill_queues(&engine).await;
    let sent = (ROUNDS * PER_SEND) as u64;
    assert_eq!(ready(&engine), [sent; 3]);
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));

    flip_bytes_in_an_older_segment(dir.path());
    let (engine, _store) = open(dir.path()).await;
    let after = ready(&engine);
    let lost: u64 = after.iter().map(|ready| sent - ready).sum();
    assert!(
        (1..=2).contains(&lost),
        "8 bytes damage one or two records, not a queue: ready {after:?}"
    );
    // Every message left is delivered.
    for (queue, ready) in QUEUES.iter().zip(after) {
        let request = ReceiveRequest {
            max_messages: 100,
            wait: Duration::ZERO,
            lease: None,
        };
        let mut received = 0;
        while received < ready {
            let got = engine.receive(queue, request.clone()).await.unwrap();
            assert!(!got.is_empty(), "{queue}: {received} of {ready} delivered");
            received += got.len() as u64;
        }
    }
}

/// A lost message that had been delivered is attributed to its queue through its delivery
/// record: the queue's `damaged` counter shows it after the restart.
#[tokio::test]
async fn messages_lost_after_delivery_are_counted_damaged_in_their_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path()).await;
    fill_queues(&engine).await;
    // Every message delivered once: each gets a delivery record after all the sends.
    let sent = (ROUNDS * PER_SEND) as u64;
    let request = ReceiveRequest {
        max_messages: 100,
        wait: Duration::ZERO,
        lease: Some(Duration::from_secs(600)),
    };
    for queue in QUEUES {
        let mut received = 0;
        while received < sent {
            received += engine.receive(queue, request.clone()).await.unwrap().len() as u64;
        }
    }
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));

    flip_bytes_in_an_older_segment(dir.path());
    let (engine, _store) = open(dir.path()).await;
    let after = ready(&engine);
    let lost: u64 = after.iter().map(|ready| sent - ready).sum();
    assert!((1..=2).contains(&lost), "ready {after:?}");
    let damaged: Vec<u64> = (QUEUES.iter())
        .map(|queue| engine.queue_info(queue).unwrap().stats.counters.damaged)
        .collect();
    let lost_per_queue: Vec<u64> = after.iter().map(|ready| sent - ready).collect();
    assert_eq!(
        damaged, lost_per_queue,
        "each lost message counted in its queue"
    );
}
