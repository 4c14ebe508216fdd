//! Where records land, offsets under concurrent producers, idempotent producers (also across
//! a crash), and a stream deleted and created again.

use crate::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use wharf_engine::broker::ProducerSequence;
use wharf_model::partitioner::partition_for_key;
use wharf_storage::MemoryStore;

#[tokio::test]
async fn keyed_records_land_on_kafkas_murmur2_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("keys", partitions(5)).await.unwrap();
    // toPositive(murmur2(key)) % 5 from Kafka's vectors: "foobar" -790332482 -> 1357151166,
    // "abc" 479470107, "21" -973932308 -> 1173551340.
    let produced = produce(
        &engine,
        "keys",
        vec![keyed("foobar", "1"), keyed("abc", "2"), keyed("21", "3")],
    )
    .await;
    let placed: Vec<u32> = produced.iter().map(|p| p.partition).collect();
    assert_eq!(placed, [1, 2, 0]);

    let keys: Vec<String> = (0..40).map(|i| format!("customer-{i}")).collect();
    let records = keys.iter().map(|key| keyed(key, key)).collect();
    let produced = produce(&engine, "keys", records).await;
    for (key, produced) in keys.iter().zip(&produced) {
        assert_eq!(
            produced.partition,
            partition_for_key(key.as_bytes(), 5),
            "{key}"
        );
    }
    // The same key always lands on the same partition, in order.
    let again = produce(&engine, "keys", vec![keyed("foobar", "4")]).await;
    assert_eq!(again[0].partition, 1);
    let records = fetch_all(&engine, "keys", 1, 100).await;
    let foobar: Vec<String> = (records.iter())
        .filter(|r| r.key.as_deref() == Some(b"foobar".as_slice()))
        .map(|r| text(&r.value).unwrap())
        .collect();
    assert_eq!(foobar, ["1", "4"]);

    // An explicit partition wins over the key.
    let explicit = ProduceRecord {
        partition: Some(4),
        ..keyed("foobar", "5")
    };
    let produced = produce(&engine, "keys", vec![explicit]).await;
    assert_eq!(produced[0].partition, 4);
    let last = fetch_all(&engine, "keys", 4, 100).await.pop().unwrap();
    assert_eq!(
        (text(&last.key), text(&last.value)),
        (Some("foobar".into()), Some("5".into()))
    );
}

#[tokio::test]
async fn keyless_records_take_the_partitions_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("turns", partitions(3)).await.unwrap();
    let records = (0..7).map(|i| keyless(&i.to_string())).collect();
    let produced = produce(&engine, "turns", records).await;
    let placed: Vec<u32> = produced.iter().map(|p| p.partition).collect();
    assert_eq!(placed, [0, 1, 2, 0, 1, 2, 0]);
    // The turn goes on across requests.
    let produced = produce(&engine, "turns", vec![keyless("7"), keyless("8")]).await;
    let placed: Vec<(u32, u64)> = produced.iter().map(|p| (p.partition, p.offset)).collect();
    assert_eq!(placed, [(1, 2), (2, 2)]);
    assert_eq!(
        values(&fetch_all(&engine, "turns", 0, 100).await),
        ["0", "3", "6"]
    );
    assert_eq!(
        values(&fetch_all(&engine, "turns", 1, 100).await),
        ["1", "4", "7"]
    );
    assert_eq!(
        values(&fetch_all(&engine, "turns", 2, 100).await),
        ["2", "5", "8"]
    );
}

#[tokio::test]
async fn a_record_naming_a_missing_partition_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("small", partitions(2)).await.unwrap();
    let result = engine
        .produce(
            "small",
            request(vec![to_partition(0, "a"), to_partition(2, "b")]),
        )
        .await;
    let error = stream_error(result);
    assert!(
        matches!(
            error,
            StreamError::RecordPartition {
                index: 1,
                partition: 2,
                partitions: 2,
                ..
            }
        ),
        "{error:?}"
    );
    let info = engine.stream_info("small").unwrap();
    assert!(info
        .partitions
        .iter()
        .all(|p| p.latest == 0 && p.records == 0));
}

/// Many tasks produce to the same partitions at once: every partition's offsets are exactly
/// 0..n, each handed out once, and a fetch returns each record at its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_produces_get_gap_free_offsets_per_partition() {
    const TASKS: usize = 12;
    const REQUESTS: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("busy", partitions(3)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let engine = engine.clone();
        tasks.spawn(async move {
            let mut stored = Vec::new();
            for number in 0..REQUESTS {
                // 1 to 3 records per request, over one or several partitions.
                let records: Vec<ProduceRecord> = (0..1 + (task + number) % 3)
                    .map(|index| {
                        let value = format!("{task}-{number}-{index}");
                        match (task + index) % 3 {
                            0 => to_partition(((number + index) % 3) as u32, &value),
                            1 => keyed(&format!("key-{number}"), &value),
                            _ => keyless(&value),
                        }
                    })
                    .collect();
                let values: Vec<String> = records.iter().map(|r| text(&r.value).unwrap()).collect();
                let produced = engine.produce("busy", request(records)).await.unwrap();
                assert_eq!(produced.len(), values.len());
                stored.extend(produced.into_iter().zip(values));
            }
            stored
        });
    }
    let mut by_partition: BTreeMap<u32, BTreeMap<u64, String>> = BTreeMap::new();
    let mut total = 0;
    while let Some(done) = guard(tasks.join_next()).await {
        for (produced, value) in done.unwrap() {
            total += 1;
            let previous = (by_partition.entry(produced.partition).or_default())
                .insert(produced.offset, value);
            assert!(previous.is_none(), "offset {produced:?} handed out twice");
        }
    }
    let info = engine.stream_info("busy").unwrap();
    assert_eq!(info.produced, total);
    for partition in 0..3 {
        let stored = by_partition.remove(&partition).unwrap_or_default();
        let offsets: Vec<u64> = stored.keys().copied().collect();
        let expected: Vec<u64> = (0..stored.len() as u64).collect();
        assert_eq!(offsets, expected, "partition {partition} has gaps");
        assert_eq!(
            info.partitions[partition as usize].latest,
            stored.len() as u64
        );
        let records = fetch_all(&engine, "busy", partition, 7).await;
        let fetched: Vec<(u64, String)> = (records.iter())
            .map(|r| (r.offset, text(&r.value).unwrap()))
            .collect();
        let expected: Vec<(u64, String)> = stored.into_iter().collect();
        assert_eq!(fetched, expected, "partition {partition}");
    }
}

fn idempotent(records: Vec<ProduceRecord>, producer_id: i64, sequence: i64) -> ProduceRequest {
    ProduceRequest {
        records,
        producer: Some(ProducerSequence {
            producer_id,
            sequence,
        }),
    }
}

fn records_stored(engine: &Engine, stream: &str) -> u64 {
    let info = engine.stream_info(stream).unwrap();
    info.partitions.iter().map(|p| p.records).sum()
}

#[tokio::test]
async fn a_retried_produce_returns_the_same_offsets_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    // Over 5 partitions these keys go to 1, 2 and 0.
    engine.put_stream("orders", partitions(5)).await.unwrap();
    let records = vec![keyed("foobar", "a"), keyed("abc", "b"), keyed("21", "c")];
    let first = engine
        .produce("orders", idempotent(records.clone(), 7, 0))
        .await
        .unwrap();
    assert_eq!(records_stored(&engine, "orders"), 3);
    let retry = engine
        .produce("orders", idempotent(records.clone(), 7, 0))
        .await
        .unwrap();
    assert_eq!(retry, first);
    assert_eq!(
        records_stored(&engine, "orders"),
        3,
        "the retry stored nothing"
    );

    let next = engine
        .produce("orders", idempotent(vec![keyed("abc", "d")], 7, 1))
        .await
        .unwrap();
    let abc_partition = partition_for_key(b"abc", 5);
    assert_eq!(
        next,
        [Produced {
            partition: abc_partition,
            offset: first[1].offset + 1
        }]
    );
    let error = stream_error(
        engine
            .produce("orders", idempotent(vec![keyed("abc", "e")], 7, 3))
            .await,
    );
    assert!(
        matches!(
            error,
            StreamError::SequenceGap {
                producer_id: 7,
                given: 3,
                expected: 2
            }
        ),
        "{error:?}"
    );
    // Another producer has its own numbering.
    engine
        .produce("orders", idempotent(vec![keyed("abc", "f")], 8, 0))
        .await
        .unwrap();
    assert_eq!(records_stored(&engine, "orders"), 5);
    let values: Vec<String> = values(&fetch_all(&engine, "orders", abc_partition, 100).await);
    assert_eq!(values, ["b", "d", "f"]);
}

#[tokio::test]
async fn a_retry_is_recognised_after_a_crash_and_restart() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(START);
    let open_memory = || async {
        Engine::open(
            Arc::new(store.clone()),
            clock.clone(),
            EngineConfig::default(),
        )
        .await
        .unwrap()
    };
    let engine = open_memory().await;
    engine.put_stream("orders", partitions(2)).await.unwrap();
    let first = vec![to_partition(0, "a"), to_partition(1, "b")];
    let second = vec![to_partition(0, "c"), keyless("keyless")];
    let stored_first = engine
        .produce("orders", idempotent(first.clone(), 42, 0))
        .await
        .unwrap();
    let stored_second = engine
        .produce("orders", idempotent(second.clone(), 42, 1))
        .await
        .unwrap();

    store.crash();
    drop(engine);
    let engine = open_memory().await;
    assert_eq!(
        records_stored(&engine, "orders"),
        4,
        "durable produces survive"
    );
    let retry = engine
        .produce("orders", idempotent(second, 42, 1))
        .await
        .unwrap();
    assert_eq!(retry, stored_second, "the retry after the crash");
    let retry = engine
        .produce("orders", idempotent(first, 42, 0))
        .await
        .unwrap();
    assert_eq!(retry, stored_first, "an older retry still remembered");
    assert_eq!(
        records_stored(&engine, "orders"),
        4,
        "no retry stored anything"
    );
    let error = stream_error(
        engine
            .produce("orders", idempotent(vec![to_partition(1, "x")], 42, 3))
            .await,
    );
    assert!(
        matches!(
            error,
            StreamError::SequenceGap {
                given: 3,
                expected: 2,
                ..
            }
        ),
        "the gap is measured against what was stored before the crash: {error:?}"
    );
    let next = engine
        .produce("orders", idempotent(vec![to_partition(1, "d")], 42, 2))
        .await
        .unwrap();
    let partition_one = engine.stream_info("orders").unwrap().partitions[1];
    assert_eq!(next[0].offset, partition_one.latest - 1);

    // And once more after a clean restart.
    store.reopen();
    drop(engine);
    let engine = open_memory().await;
    let retry = engine
        .produce("orders", idempotent(vec![to_partition(1, "d")], 42, 2))
        .await
        .unwrap();
    assert_eq!(retry, next);
    assert_eq!(records_stored(&engine, "orders"), 5);
}

#[tokio::test]
async fn a_deleted_stream_is_gone_and_a_new_one_under_its_name_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("events", partitions(2)).await.unwrap();
    let old = vec![
        to_partition(0, "old-1"),
        to_partition(0, "old-2"),
        to_partition(1, "old-3"),
    ];
    produce(&engine, "events", old).await;
    engine
        .commit_offsets("events", "readers", None, &[(0, 2)])
        .await
        .unwrap();
    engine.delete_stream("events").await.unwrap();
    assert!(matches!(
        stream_error(engine.stream_info("events")),
        StreamError::NotFound { .. }
    ));
    assert!(matches!(
        stream_error(engine.produce("events", request(vec![keyless("x")])).await),
        StreamError::NotFound { .. }
    ));
    assert!(matches!(
        stream_error(engine.fetch("events", 0, fetch_request(0, 10)).await),
        StreamError::NotFound { .. }
    ));
    assert!(engine.list_streams().is_empty());
    // A stream of the same name later is another stream: no groups carry over.

    let created = engine.put_stream("events", partitions(1)).await.unwrap();
    assert!(created, "a new stream, not a change of the old one");
    let info = engine.stream_info("events").unwrap();
    assert_eq!(info.partitions.len(), 1);
    assert_eq!(
        (info.partitions[0].earliest, info.partitions[0].latest),
        (0, 0)
    );
    let produced = produce(&engine, "events", vec![to_partition(0, "new")]).await;
    assert_eq!(produced[0].offset, 0);
    assert_eq!(values(&fetch_all(&engine, "events", 0, 10).await), ["new"]);
    assert!(engine.list_groups("events").unwrap().is_empty());
}

#[tokio::test]
async fn a_sequence_reused_with_other_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("orders", partitions(1)).await.unwrap();
    engine
        .produce("orders", idempotent(vec![keyless("a"), keyless("b")], 3, 0))
        .await
        .unwrap();
    let error = stream_error(
        engine
            .produce("orders", idempotent(vec![keyless("c")], 3, 0))
            .await,
    );
    assert!(
        matches!(
            error,
            StreamError::SequenceReused {
                producer_id: 3,
                sequence: 0,
                partition: 0,
                stored: 2,
                given: 1
            }
        ),
        "{error:?}"
    );
    assert_eq!(records_stored(&engine, "orders"), 2);
    let negative = stream_error(
        engine
            .produce("orders", idempotent(vec![keyless("d")], -1, 1))
            .await,
    );
    assert!(matches!(
        negative,
        StreamError::ProducerIdNegative { producer_id: -1 }
    ));
}

/// The server places an idempotent request's records (by key, or keyless by producer id and
/// sequence), modulo the partition count. A retry after the stream grew is placed again over
/// the new count and would land on partitions that do not hold the sequence: it is refused
/// rather than stored twice.
#[tokio::test]
async fn a_retry_after_the_stream_grew_is_refused_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("orders", partitions(2)).await.unwrap();
    // Keyless, producer 2, sequence 0: 2 % 2 = partition 0; over 5 partitions, 2. "foobar"
    // goes to 0 of 2 and 1 of 5.
    let records = vec![keyless("a"), keyed("foobar", "b")];
    let first = engine
        .produce("orders", idempotent(records.clone(), 2, 0))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [0, 0]
    );
    engine.put_stream("orders", partitions(5)).await.unwrap();
    let retry = engine.produce("orders", idempotent(records, 2, 0)).await;
    let Err(EngineError::Stream(StreamError::SequenceMoved {
        producer_id: 2,
        sequence: 0,
        partition: 0,
    })) = retry
    else {
        panic!("a retry placed elsewhere after the stream grew is refused, got {retry:?}");
    };
    assert_eq!(records_stored(&engine, "orders"), 2, "stored once");
}

/// One step of an idempotent producer's life.
#[derive(Debug, Clone)]
enum ProducerStep {
    /// The next request: records by (key number, or keyless).
    Next(Vec<Option<u8>>),
    /// A retry of the request this many before the newest (0: the newest).
    Retry(usize),
    /// A crash of the store and a restart of the engine.
    Crash,
}

fn producer_step() -> impl Strategy<Value = ProducerStep> {
    prop_oneof![
        3 => prop::collection::vec(prop::option::of(0u8..8), 1..4).prop_map(ProducerStep::Next),
        2 => (0usize..4).prop_map(ProducerStep::Retry),
        1 => Just(ProducerStep::Crash),
    ]
}

fn producer_case(steps: Vec<ProducerStep>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = MemoryStore::new();
        let clock = ManualClock::new(START);
        let open_memory = || async {
            Engine::open(
                Arc::new(store.clone()),
                clock.clone(),
                EngineConfig::default(),
            )
            .await
            .unwrap()
        };
        let mut engine = open_memory().await;
        engine.put_stream("orders", partitions(3)).await.unwrap();
        // Each request sent, with its records and where they were stored.
        let mut sent: Vec<(Vec<ProduceRecord>, Vec<Produced>)> = Vec::new();
        let mut records_total = 0u64;
        for step in steps {
            match step {
                ProducerStep::Next(keys) => {
                    let sequence = sent.len();
                    let records: Vec<ProduceRecord> = (keys.iter().enumerate())
                        .map(|(index, key)| {
                            let value = format!("{sequence}-{index}");
                            match key {
                                Some(key) => keyed(&format!("key-{key}"), &value),
                                None => keyless(&value),
                            }
                        })
                        .collect();
                    let request = idempotent(records.clone(), 5, sequence as i64);
                    let produced = engine.produce("orders", request).await.unwrap();
                    records_total += records.len() as u64;
                    sent.push((records, produced));
                }
                ProducerStep::Retry(back) if back < sent.len() => {
                    let sequence = sent.len() - 1 - back;
                    let (records, produced) = &sent[sequence];
                    let request = idempotent(records.clone(), 5, sequence as i64);
                    let retry = engine.produce("orders", request).await.unwrap();
                    assert_eq!(&retry, produced, "retry of sequence {sequence}");
                }
                ProducerStep::Retry(_) => {}
                ProducerStep::Crash => {
                    store.crash();
                    engine = open_memory().await;
                }
            }
            assert_eq!(records_stored(&engine, "orders"), records_total);
        }
        // Every record is stored once, at the offset its request was answered with.
        for (records, produced) in &sent {
            for (record, produced) in records.iter().zip(produced) {
                let fetched = engine
                    .fetch(
                        "orders",
                        produced.partition,
                        fetch_request(produced.offset, 1),
                    )
                    .await
                    .unwrap();
                assert_eq!(fetched.records[0].offset, produced.offset);
                assert_eq!(fetched.records[0].value, record.value);
            }
        }
        if !sent.is_empty() {
            let skipping = idempotent(vec![keyless("x")], 5, sent.len() as i64 + 1);
            let gap = stream_error(engine.produce("orders", skipping).await);
            assert!(matches!(gap, StreamError::SequenceGap { .. }), "{gap:?}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// New requests, retries of recent ones and crashes in any order: a retry always answers
    /// the first answer and stores nothing, and every record is stored exactly once.
    #[test]
    fn idempotent_requests_are_stored_once_through_retries_and_crashes(
        steps in prop::collection::vec(producer_step(), 1..24)
    ) {
        producer_case(steps);
    }
}

/// A failed commit fails its own produces only. The appender keeps two appends in the log at
/// once; when the first fails, the log fails the one behind it too, and that one's batch is
/// stamped again from the offset the failed one would have taken: no hole, no duplicate.
#[tokio::test]
async fn a_failed_commit_leaves_no_hole_for_the_batch_behind_it() {
    let store = MemoryStore::new();
    let engine = Engine::open(
        Arc::new(store.clone()),
        ManualClock::new(START),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    engine.put_stream("log", partitions(1)).await.unwrap();
    produce(&engine, "log", vec![keyless("before")]).await;
    store.hold_commits();
    let spawn = |value: &'static str| {
        let engine = engine.clone();
        tokio::spawn(async move { engine.produce("log", request(vec![keyless(value)])).await })
    };
    let held = |count: usize| {
        let store = store.clone();
        async move {
            while store.held_appends() < count {
                tokio::task::yield_now().await;
            }
        }
    };
    let first = spawn("a");
    guard(held(1)).await;
    let second = spawn("b");
    guard(held(2)).await;
    store.fail_appends(1);
    store.release_commits();
    let first = guard(first).await.unwrap();
    assert!(
        first.is_err(),
        "the failed commit's produce fails: {first:?}"
    );
    let second = guard(second).await.unwrap().unwrap();
    assert_eq!(
        second[0].offset, 1,
        "stamped again at the failed batch's offset"
    );
    let records = fetch_all(&engine, "log", 0, 100).await;
    assert_eq!(values(&records), ["before", "b"]);
    let after = produce(&engine, "log", vec![keyless("after")]).await;
    assert_eq!(after[0].offset, 2);
}
