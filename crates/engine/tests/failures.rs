//! Failed appends on every kind of operation: the operation fails, memory stays equal to the
//! log, service resumes when the disk has room again, and a restart finds the same state.

use bytes::Bytes;
use std::{future::Future, path::Path, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{NackAction, ReceiveRequest, SendMessage},
    clock::ManualClock,
    queue::QueueOptions,
    topic::TopicOptions,
    Engine, EngineConfig, EngineError,
};
use wharf_model::QueueName;
use wharf_storage::{Faults, StorageError, Store, StoreConfig};

const START: u64 = 1_800_000_000_000;

/// Opens without a disk reserve: a full disk then fails every write, which is what most tests
/// here check (nothing half-applied).
async fn open(dir: &Path, clock: Arc<ManualClock>, faults: &Arc<Faults>) -> (Engine, Arc<Store>) {
    open_with_reserve(dir, clock, faults, 0).await
}

async fn open_with_reserve(
    dir: &Path,
    clock: Arc<ManualClock>,
    faults: &Arc<Faults>,
    reserve_bytes: u64,
) -> (Engine, Arc<Store>) {
    let config = StoreConfig {
        faults: Some(faults.clone()),
        reserve_bytes,
        ..StoreConfig::default()
    };
    // The previous engine's background tasks (a timer finishing its write) may hold the store
    // for a moment after close: let them run until the directory's lock is free.
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
    let engine = Engine::open(store.clone(), clock, EngineConfig::default())
        .await
        .unwrap();
    (engine, store)
}

async fn guard<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the engine should have answered")
}

fn message(body: &str, ttl: Option<Duration>) -> SendMessage {
    SendMessage {
        body: Bytes::copy_from_slice(body.as_bytes()),
        ttl,
        ..SendMessage::default()
    }
}

fn receive_one() -> ReceiveRequest {
    ReceiveRequest {
        max_messages: 1,
        wait: Duration::ZERO,
        lease: Some(Duration::from_secs(600)),
    }
}

/// (ready + delayed + leased) per queue, in name order.
fn totals(engine: &Engine) -> Vec<(String, u64)> {
    (engine.list_queues().into_iter())
        .map(|q| (q.name, q.stats.ready + q.stats.delayed + q.stats.leased))
        .collect()
}

fn is_disk_full(error: &EngineError) -> bool {
    matches!(error, EngineError::Storage(storage) if storage.is_disk_full())
}

#[tokio::test]
async fn a_full_disk_fails_each_operation_and_leaves_memory_equal_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let faults = Faults::new();
    let (engine, store) = open(dir.path(), clock.clone(), &faults).await;
    let options = QueueOptions {
        dead_letter_queue: Some(QueueName::try_from("dead".to_string()).unwrap()),
        retry_backoff_ms: 0,
        ..QueueOptions::default()
    };
    engine.put_queue("jobs", options).await.unwrap();
    let batch = vec![
        message("to-ack", None),
        message("to-reject", None),
        message("to-expire", Some(Duration::from_secs(5))),
        message("to-purge", None),
    ];
    engine.send("jobs", batch).await.unwrap();
    let to_ack = engine.receive("jobs", receive_one()).await.unwrap();
    let to_reject = engine.receive("jobs", receive_one()).await.unwrap();
    let before = totals(&engine);

    faults.set_space(Some(0));
    let send = engine.send("jobs", vec![message("refused", None)]).await;
    assert!(send.as_ref().is_err_and(is_disk_full), "{send:?}");
    let receipts = |d: &Vec<wharf_engine::broker::Delivery>| vec![d[0].receipt.clone()];
    let ack = engine.ack("jobs", &receipts(&to_ack)).await;
    assert!(ack.as_ref().is_err_and(is_disk_full), "{ack:?}");
    let reject = NackAction::DeadLetter {
        error: Some("no".into()),
    };
    let nack = engine.nack("jobs", &receipts(&to_reject), reject).await;
    assert!(nack.as_ref().is_err_and(is_disk_full), "{nack:?}");
    assert_eq!(totals(&engine), before, "after nack");
    let stats = || engine.queue_info("jobs").unwrap().stats;
    assert_eq!(
        (stats().leased, stats().counters.nacked),
        (2, 0),
        "a nack that was not written changes nothing: both leases hold, no nack counted"
    );
    let purge = engine.purge("jobs").await;
    assert!(purge.as_ref().is_err_and(is_disk_full), "{purge:?}");
    assert_eq!(totals(&engine), before, "after purge");
    // The TTL runs out while the disk is full: the timer cannot record the expiry.
    clock.advance(Duration::from_secs(5));
    // The timer decides the expiry, fails to write it, and puts the message back as it was:
    // let it run, then wait until nothing is in flight.
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    guard(async {
        while totals(&engine) != before {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        stats().counters.expired,
        0,
        "an expiry that was not written is not counted"
    );
    assert_eq!(
        totals(&engine),
        before,
        "nothing applied that was not written"
    );
    assert_eq!(
        stats().leased,
        2,
        "the ack and the nack failed, so their leases hold"
    );

    faults.set_space(None);
    let acked = engine.ack("jobs", &receipts(&to_ack)).await.unwrap();
    assert!(acked[0].error.is_none(), "{acked:?}");
    // The failed nack's receipt still holds: the consumer retries it, and it takes.
    let requeue = NackAction::Requeue {
        delay: None,
        error: None,
    };
    let nacked = engine.nack("jobs", &receipts(&to_reject), requeue).await;
    assert!(nacked.as_ref().unwrap()[0].error.is_none(), "{nacked:?}");
    assert_eq!(stats().counters.nacked, 1);
    // The expired message moves at the timer's retry.
    clock.advance(Duration::from_secs(1));
    let dead = guard(async {
        loop {
            let info = engine.queue_info("dead");
            if info.is_ok_and(|dead| dead.stats.ready == 1) {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    dead.await;
    assert_eq!(
        engine.purge("jobs").await.unwrap(),
        2,
        "to-reject and to-purge"
    );
    let live = totals(&engine);
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));

    let (engine, _store) = open(dir.path(), clock, &faults).await;
    assert_eq!(
        totals(&engine),
        live,
        "live state equals a replay of the log"
    );
    let expired = engine.receive("dead", receive_one()).await.unwrap();
    assert_eq!(expired[0].message.body.as_ref(), b"to-expire");
}

/// With the disk full to the last byte, the writes that free space still work (they release
/// the disk reserve), writes that add data are refused with a clear error so they cannot eat
/// the reserve, and once space is back the reserve is taken back and sends resume.
#[tokio::test]
async fn a_full_disk_still_acks_purges_and_deletes_from_the_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let faults = Faults::new();
    let reserve = 256 << 10;
    let (engine, store) = open_with_reserve(dir.path(), clock.clone(), &faults, reserve).await;
    let reserve_file = dir.path().join(wharf_storage::RESERVE_FILE_NAME);
    assert_eq!(std::fs::metadata(&reserve_file).unwrap().len(), reserve);
    for queue in ["jobs", "other"] {
        engine
            .put_queue(queue, QueueOptions::default())
            .await
            .unwrap();
    }
    engine
        .put_topic("events", TopicOptions::default())
        .await
        .unwrap();
    let batch = ["a", "b", "c", "d"]
        .map(|body| message(body, None))
        .to_vec();
    engine.send("jobs", batch).await.unwrap();
    let to_ack = engine.receive("jobs", receive_one()).await.unwrap();
    let to_nack = engine.receive("jobs", receive_one()).await.unwrap();

    faults.set_space(Some(0));
    let send = engine.send("jobs", vec![message("refused", None)]).await;
    assert!(send.as_ref().is_err_and(is_disk_full), "{send:?}");
    let acked = engine
        .ack("jobs", &[to_ack[0].receipt.clone()])
        .await
        .unwrap();
    assert!(acked[0].error.is_none(), "the ack took: {acked:?}");
    assert!(!reserve_file.exists(), "the reserve was released for it");
    let is_reserved =
        |error: &EngineError| matches!(error, EngineError::Storage(StorageError::SpaceReserved));
    let send = engine.send("jobs", vec![message("refused", None)]).await;
    assert!(send.as_ref().is_err_and(is_reserved), "{send:?}");
    let create = engine.put_queue("new", QueueOptions::default()).await;
    assert!(create.as_ref().is_err_and(is_reserved), "{create:?}");
    let create = engine.put_topic("new", TopicOptions::default()).await;
    assert!(create.as_ref().is_err_and(is_reserved), "{create:?}");
    let requeue = NackAction::Requeue {
        delay: None,
        error: None,
    };
    let nacked = engine
        .nack("jobs", &[to_nack[0].receipt.clone()], requeue)
        .await;
    assert!(nacked.as_ref().unwrap()[0].error.is_none(), "{nacked:?}");
    assert_eq!(engine.purge("jobs").await.unwrap(), 3, "b, c and d");
    engine.delete_queue("other").await.unwrap();
    engine.delete_topic("events").await.unwrap();

    faults.set_space(None);
    let send = engine
        .send("jobs", vec![message("still refused", None)])
        .await;
    assert!(
        send.as_ref().is_err_and(is_reserved),
        "taking the reserve back is tried at most once a second: {send:?}"
    );
    clock.advance(Duration::from_secs(2));
    engine.send("jobs", vec![message("e", None)]).await.unwrap();
    assert_eq!(std::fs::metadata(&reserve_file).unwrap().len(), reserve);
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));

    let (engine, _store) = open_with_reserve(dir.path(), clock, &faults, reserve).await;
    assert_eq!(totals(&engine), vec![("jobs".to_string(), 1)]);
    assert!(engine.list_topics().is_empty());
    let received = engine.receive("jobs", receive_one()).await.unwrap();
    assert_eq!(received[0].message.body.as_ref(), b"e");
}

/// A create that answered an error leaves nothing a restart brings back: not its definition,
/// not a log. A topic's log takes no disk until it is written, so a topic whose definition
/// fits is created whole.
#[tokio::test]
async fn a_create_that_failed_is_not_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let faults = Faults::new();
    let (engine, store) = open(dir.path(), clock.clone(), &faults).await;
    engine
        .put_queue("kept", QueueOptions::default())
        .await
        .unwrap();

    faults.set_space(Some(0));
    let queue = engine.put_queue("newq", QueueOptions::default()).await;
    assert!(queue.as_ref().is_err_and(is_disk_full), "{queue:?}");
    faults.set_space(None);
    faults.set_fail_syncs(true);
    engine
        .put_queue("unsynced", QueueOptions::default())
        .await
        .unwrap_err();
    engine
        .put_topic("unsynced", TopicOptions::default())
        .await
        .unwrap_err();
    faults.set_fail_syncs(false);
    // Room for the definition, none for a segment set aside ahead.
    faults.set_space(Some(4_096));
    let topic = engine.put_topic("newt", TopicOptions::default()).await;
    assert!(topic.is_ok(), "{topic:?}");
    faults.set_space(None);
    let names = |engine: &Engine| -> (Vec<String>, Vec<String>) {
        let queues = engine.list_queues().into_iter().map(|q| q.name).collect();
        let topics = engine.list_topics().into_iter().map(|t| t.name).collect();
        (queues, topics)
    };
    let expected = (vec!["kept".to_string()], vec!["newt".to_string()]);
    assert_eq!(names(&engine), expected, "before the restart");
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));

    let (engine, _store) = open(dir.path(), clock, &faults).await;
    assert_eq!(names(&engine), expected, "after the restart");
    engine
        .put_topic("newt", TopicOptions::default())
        .await
        .unwrap();
    assert_eq!(engine.topic_info("newt").unwrap().name, "newt");
}

/// Without its metadata snapshot a data directory would open with no queues and orphaned
/// logs: the store refuses to open instead, naming the file.
#[tokio::test]
async fn a_lost_metadata_snapshot_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (engine, store) = open(dir.path(), ManualClock::new(START), &faults).await;
    engine
        .put_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    engine
        .send("jobs", vec![message("kept", None)])
        .await
        .unwrap();
    engine.close();
    store.close().await.unwrap();
    drop((engine, store));
    guard(async {
        while Store::open(dir.path(), StoreConfig::default())
            .is_err_and(|e| matches!(e, wharf_storage::StorageError::Locked { .. }))
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    std::fs::remove_file(dir.path().join("meta/meta.json")).unwrap();
    let error = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(error, wharf_storage::StorageError::MetaMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("meta.json"), "{error}");
}

/// A caller that goes away in the middle of a create (an HTTP client hanging up while the
/// definition is being synced) does not leave it written but unregistered: a queue missing
/// now that a restart would bring back.
#[tokio::test]
async fn a_create_whose_caller_went_away_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let (engine, _store) = open(dir.path(), ManualClock::new(START), &faults).await;
    // Each polled once (its definition's write is under way), then dropped.
    let queue = Box::pin(engine.put_queue("abandoned-queue", QueueOptions::default()));
    assert!(
        poll_once(queue).await.is_none(),
        "the create waits for its fsync"
    );
    let topic = Box::pin(engine.put_topic("abandoned-topic", TopicOptions::default()));
    assert!(
        poll_once(topic).await.is_none(),
        "the create waits for its fsync"
    );
    guard(async {
        while engine.queue_info("abandoned-queue").is_err()
            || engine.topic_info("abandoned-topic").is_err()
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

async fn poll_once<F: Future>(mut future: std::pin::Pin<Box<F>>) -> Option<F::Output> {
    let poll = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx)));
    match poll.await {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}
