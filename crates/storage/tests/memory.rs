//! What only the memory store does: crashes on demand, injected failures and held commits, for
//! tests and the simulation. The promises it shares with the file store are in
//! `conformance.rs`.

use bytes::Bytes;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
};
use wharf_storage::{
    Durability, LogOptions, LogSize, LogStore, MemoryStore, MetaOp, Offset, Storage, StorageError,
};

fn record(i: u64) -> Bytes {
    Bytes::from(format!("record {i}"))
}

fn records(range: std::ops::Range<u64>) -> Vec<Bytes> {
    range.map(record).collect()
}

async fn open(store: &MemoryStore, name: &str) -> Arc<dyn LogStore> {
    store.open_log(name, LogOptions::default()).await.unwrap()
}

async fn payloads(log: &dyn LogStore) -> Vec<Bytes> {
    let records = log
        .read_batch(log.start_offset(), usize::MAX, usize::MAX)
        .await
        .unwrap();
    records.into_iter().map(|r| r.payload).collect()
}

/// Polls a future once, with a waker that does nothing: the memory store never needs a runtime
/// to make progress, so one poll shows whether an append is done or waiting.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    future.poll(&mut Context::from_waker(&waker))
}

fn assert_closed<T: std::fmt::Debug>(result: Result<T, StorageError>) {
    assert!(
        matches!(result, Err(StorageError::Closed { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_crash_loses_lazy_appends_and_keeps_committed_ones() {
    let store = MemoryStore::new();
    let log = open(&store, "q").await;
    log.append(&records(0..3), None).await.unwrap();
    log.append_lazy(&records(3..5)).unwrap();
    store.crash();
    assert_closed(log.append(&[record(9)], None).await);
    assert_closed(log.append_lazy(&[record(9)]));
    let log = open(&store, "q").await;
    assert_eq!(payloads(&*log).await, records(0..3));
    assert_eq!(
        log.append(&[record(3)], Some(Offset(3))).await.unwrap(),
        Offset(3)..Offset(4),
        "the lost offsets are handed out again"
    );
}

#[tokio::test]
async fn a_crash_fails_appends_waiting_for_a_held_commit_and_loses_them() {
    let store = MemoryStore::new();
    let log = open(&store, "q").await;
    log.append(&[record(0)], None).await.unwrap();
    store.hold_commits();
    let batch = records(1..4);
    let mut waiting = log.append(&batch, None);
    assert!(poll_once(waiting.as_mut()).is_pending());
    assert_eq!(
        log.end_offset(),
        Offset(1),
        "not readable before its commit"
    );
    store.crash();
    assert_closed(waiting.await);
    store.release_commits();
    let log = open(&store, "q").await;
    assert_eq!(payloads(&*log).await, records(0..1));
}

#[tokio::test]
async fn held_appends_counts_the_appends_waiting_for_a_held_commit() {
    let store = MemoryStore::new();
    let (a, b) = (open(&store, "a").await, open(&store, "b").await);
    store.hold_commits();
    a.append_lazy(&[record(0)]).unwrap();
    assert_eq!(store.held_appends(), 0, "a lazy append waits for nothing");
    let (first, second) = ([record(1)], [record(2)]);
    let mut on_a = a.append(&first, None);
    let mut on_b = b.append(&second, None);
    assert!(poll_once(on_a.as_mut()).is_pending());
    assert!(poll_once(on_b.as_mut()).is_pending());
    assert_eq!(
        store.held_appends(),
        2,
        "one per waiting append, over every log"
    );
    store.crash();
    assert_eq!(store.held_appends(), 0, "lost in the crash");
    assert_closed(on_a.await);
    store.release_commits();
}

#[tokio::test]
async fn released_commits_answer_every_waiting_append_in_order() {
    let store = MemoryStore::new();
    let log = open(&store, "q").await;
    store.hold_commits();
    let (first, second) = ([record(0)], records(1..3));
    let mut a = log.append(&first, None);
    let mut b = log.append(&second, Some(Offset(1)));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    log.append_lazy(&[record(3)]).unwrap();
    store.release_commits();
    assert_eq!(a.await.unwrap(), Offset(0)..Offset(1));
    assert_eq!(b.await.unwrap(), Offset(1)..Offset(3));
    assert_eq!(payloads(&*log).await, records(0..4));
    store.crash();
    let log = open(&store, "q").await;
    assert_eq!(
        payloads(&*log).await,
        records(0..4),
        "released commits are synced"
    );
}

#[tokio::test]
async fn a_crash_loses_the_unsynced_tail_of_a_transient_log_only() {
    let store = MemoryStore::new();
    let transient = LogOptions {
        durability: Durability::Transient,
        size: LogSize::Small,
    };
    let durable = open(&store, "durable").await;
    let log = store.open_log("transient", transient).await.unwrap();
    log.append(&records(0..2), None).await.unwrap();
    durable.append(&records(0..2), None).await.unwrap();
    log.close().await.unwrap();
    let log = store.open_log("transient", transient).await.unwrap();
    log.append(&records(2..4), None).await.unwrap();
    assert_eq!(
        payloads(&*log).await,
        records(0..4),
        "readable without a sync"
    );
    store.crash();
    let log = store.open_log("transient", transient).await.unwrap();
    assert_eq!(
        payloads(&*log).await,
        records(0..2),
        "the close synced the first two"
    );
    let durable = open(&store, "durable").await;
    assert_eq!(payloads(&*durable).await, records(0..2));
}

#[tokio::test]
async fn injected_failures_fail_exactly_the_next_commits() {
    let store = MemoryStore::new();
    let log = open(&store, "q").await;
    log.append(&[record(0)], None).await.unwrap();
    store.fail_appends(2);
    log.append_lazy(&[record(1)]).unwrap();
    for _ in 0..2 {
        let error = log.append(&records(1..3), None).await.unwrap_err();
        assert!(!error.is_disk_full(), "an EIO, not a full disk: {error}");
        assert!(matches!(error, StorageError::Io { .. }), "{error:?}");
    }
    assert_eq!(log.end_offset(), Offset(1));
    assert_eq!(
        log.append(&records(1..3), None).await.unwrap(),
        Offset(1)..Offset(3),
        "the lazy append rode the first failed commit and was lost with it"
    );
    assert_eq!(payloads(&*log).await, records(0..3));
}

#[tokio::test]
async fn a_clean_reopen_commits_pending_appends() {
    let store = MemoryStore::new();
    let log = open(&store, "q").await;
    log.append_lazy(&records(0..2)).unwrap();
    store.reopen();
    assert_closed(log.append(&[record(2)], None).await);
    let log = open(&store, "q").await;
    assert_eq!(payloads(&*log).await, records(0..2));
}

#[tokio::test]
async fn a_closed_store_opens_no_log_until_it_restarts() {
    let store = MemoryStore::new();
    store
        .meta_apply(vec![MetaOp::Put("queue/q".into(), serde_json::json!(1))])
        .await
        .unwrap();
    Storage::close(&store).await.unwrap();
    assert_closed(store.open_log("q", LogOptions::default()).await);
    store.crash();
    open(&store, "q").await;
    assert_eq!(store.meta_get("queue/q"), Some(serde_json::json!(1)));
}

/// The simulation replays a seed by making the same calls again: they must give the same logs.
#[tokio::test]
async fn the_same_calls_give_the_same_logs() {
    async fn script() -> Vec<Vec<Bytes>> {
        let store = MemoryStore::new();
        let (mut a, mut b) = (open(&store, "a").await, open(&store, "b").await);
        for i in 0..50u64 {
            if i % 7 == 0 {
                store.fail_appends(1);
            }
            if i % 5 == 0 {
                let _ = a.append_lazy(&[record(1_000 + i)]);
            }
            let _ = a.append(&[record(i)], None).await;
            let _ = b.append(&[record(i)], Some(Offset(i / 2))).await;
            if i % 13 == 12 {
                store.crash();
                (a, b) = (open(&store, "a").await, open(&store, "b").await);
            }
        }
        vec![payloads(&*a).await, payloads(&*b).await]
    }
    let logs = script().await;
    assert!(logs.iter().all(|log| !log.is_empty()), "{logs:?}");
    assert_eq!(logs, script().await);
}
