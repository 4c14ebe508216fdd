//! Fetching: count and byte bounds, `next_offset`, out-of-range offsets, long polls on the
//! manual clock, and offsets by position and time.

use crate::*;
use wharf_engine::broker::OffsetAt;

/// Ten records `k0`..`k9`, each with a 100-byte value, in batches of 1, 2, 3 and 4 records.
async fn ten_records(engine: &Engine) {
    engine.put_stream("log", partitions(1)).await.unwrap();
    let mut number = 0;
    for batch in 1..=4 {
        let records = (0..batch)
            .map(|_| {
                number += 1;
                let value = format!("{:0>100}", number - 1);
                ProduceRecord {
                    key: Some(Bytes::from(format!("k{}", number - 1))),
                    ..to_partition(0, &value)
                }
            })
            .collect();
        produce(engine, "log", records).await;
    }
}

fn keys(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| text(&r.key).unwrap()).collect()
}

#[tokio::test]
async fn fetch_stops_at_max_records_and_reports_where_to_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    ten_records(&engine).await;
    // From inside a batch (offset 4 is the second record of the third batch).
    let fetched = engine.fetch("log", 0, fetch_request(4, 3)).await.unwrap();
    assert_eq!(keys(&fetched.records), ["k4", "k5", "k6"]);
    let offsets: Vec<u64> = fetched.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [4, 5, 6]);
    assert_eq!(fetched.next_offset, 7);
    assert_eq!((fetched.earliest, fetched.latest), (0, 10));
    let rest = engine.fetch("log", 0, fetch_request(7, 100)).await.unwrap();
    assert_eq!(keys(&rest.records), ["k7", "k8", "k9"]);
    assert_eq!(rest.next_offset, 10);
    assert_eq!(
        text(&rest.records[2].value).unwrap(),
        format!("{:0>100}", 9)
    );
}

fn bounded(offset: u64, max_bytes: usize) -> FetchRequest {
    FetchRequest {
        max_bytes,
        ..fetch_request(offset, 100)
    }
}

#[tokio::test]
async fn fetch_stops_at_max_bytes_but_always_returns_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    ten_records(&engine).await;
    // Each record is 2 key bytes and 100 value bytes: 102. Offsets 3..=5 are one batch.
    let fetched = engine.fetch("log", 0, bounded(3, 250)).await.unwrap();
    assert_eq!(keys(&fetched.records), ["k3", "k4"]);
    assert_eq!(fetched.next_offset, 5);
    let fetched = engine.fetch("log", 0, bounded(3, 306)).await.unwrap();
    assert_eq!(keys(&fetched.records), ["k3", "k4", "k5"]);
    assert_eq!(fetched.next_offset, 6);
    let fetched = engine.fetch("log", 0, bounded(3, 10)).await.unwrap();
    assert_eq!(
        keys(&fetched.records),
        ["k3"],
        "the first record whatever its size"
    );
    assert_eq!(fetched.next_offset, 4);
    let fetched = engine.fetch("log", 0, bounded(6, 0)).await.unwrap();
    assert_eq!(keys(&fetched.records), ["k6"]);
    // Whatever the batches, a fetch never passes the bound after its first record.
    for max_bytes in [0, 101, 102, 203, 204, 500, 1_000] {
        for offset in 0..10 {
            let fetched = engine
                .fetch("log", 0, bounded(offset, max_bytes))
                .await
                .unwrap();
            let bytes = 102 * fetched.records.len();
            assert!(!fetched.records.is_empty());
            assert!(
                fetched.records.len() == 1 || bytes <= max_bytes,
                "{offset} {max_bytes}"
            );
            assert_eq!(fetched.records[0].offset, offset);
            assert_eq!(fetched.next_offset, offset + fetched.records.len() as u64);
        }
    }
}

/// The bound is documented as key and value bytes, but the index picks batches by their
/// encoded size (batch header, record framing, compression) before records are counted.
#[tokio::test]
async fn max_bytes_counts_key_and_value_bytes_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    ten_records(&engine).await;
    let fetched = engine.fetch("log", 0, bounded(0, 250)).await.unwrap();
    assert_eq!(keys(&fetched.records), ["k0", "k1"]);
}

#[tokio::test]
async fn fetch_at_the_end_is_empty_and_past_it_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    ten_records(&engine).await;
    let fetched = engine
        .fetch("log", 0, fetch_request(10, 100))
        .await
        .unwrap();
    assert!(fetched.records.is_empty());
    assert_eq!(fetched.next_offset, 10);
    let error = stream_error(engine.fetch("log", 0, fetch_request(11, 100)).await);
    assert!(
        matches!(
            error,
            StreamError::OffsetOutOfRange {
                partition: 0,
                offset: 11,
                earliest: 0,
                latest: 10,
                ..
            }
        ),
        "{error:?}"
    );
    let error = stream_error(engine.fetch("log", 1, fetch_request(0, 100)).await);
    assert!(
        matches!(
            error,
            StreamError::PartitionNotFound {
                partition: 1,
                partitions: 1,
                ..
            }
        ),
        "{error:?}"
    );
}

/// Lets the tasks of this single-threaded runtime run until each waits on something.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_long_poll_at_the_end_returns_the_record_produced_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    engine.put_stream("live", partitions(2)).await.unwrap();
    produce(&engine, "live", vec![to_partition(0, "before")]).await;
    let waiting = {
        let engine = engine.clone();
        let wait = FetchRequest {
            wait: Duration::from_secs(10),
            ..fetch_request(1, 100)
        };
        tokio::spawn(async move { engine.fetch("live", 0, wait).await })
    };
    settle().await;
    assert!(!waiting.is_finished(), "nothing to return yet");
    // A record on another partition does not wake it.
    produce(&engine, "live", vec![to_partition(1, "elsewhere")]).await;
    settle().await;
    assert!(!waiting.is_finished());
    produce(&engine, "live", vec![to_partition(0, "during")]).await;
    let fetched = guard(waiting).await.unwrap().unwrap();
    assert_eq!(values(&fetched.records), ["during"]);
    assert_eq!(fetched.records[0].offset, 1);
    assert_eq!(fetched.next_offset, 2);
}

#[tokio::test]
async fn a_long_poll_returns_empty_once_the_clock_passes_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    engine.put_stream("quiet", partitions(1)).await.unwrap();
    let waiting = {
        let engine = engine.clone();
        let wait = FetchRequest {
            wait: Duration::from_secs(5),
            ..fetch_request(0, 100)
        };
        tokio::spawn(async move { engine.fetch("quiet", 0, wait).await })
    };
    settle().await;
    clock.advance(Duration::from_millis(4_999));
    settle().await;
    assert!(
        !waiting.is_finished(),
        "the deadline is 5 s after the fetch"
    );
    clock.advance(Duration::from_millis(1));
    let fetched = guard(waiting).await.unwrap().unwrap();
    assert!(fetched.records.is_empty());
    assert_eq!((fetched.next_offset, fetched.latest), (0, 0));
}

#[tokio::test]
async fn a_long_poll_on_a_deleted_stream_ends_with_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("doomed", partitions(1)).await.unwrap();
    let waiting = {
        let engine = engine.clone();
        let wait = FetchRequest {
            wait: Duration::from_secs(10),
            ..fetch_request(0, 100)
        };
        tokio::spawn(async move { engine.fetch("doomed", 0, wait).await })
    };
    settle().await;
    engine.delete_stream("doomed").await.unwrap();
    let error = stream_error(guard(waiting).await.unwrap());
    assert!(matches!(error, StreamError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn offset_at_finds_the_earliest_the_end_and_the_first_record_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    engine.put_stream("timed", partitions(1)).await.unwrap();
    let at = |timestamp: i64| ProduceRecord {
        timestamp: Some(timestamp),
        ..to_partition(0, &timestamp.to_string())
    };
    produce(&engine, "timed", vec![at(1_000), at(2_000), at(3_000)]).await;
    produce(&engine, "timed", vec![at(4_000), at(5_000)]).await;
    let offset_at = |at| engine.offset_at("timed", 0, at);
    assert_eq!(offset_at(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(offset_at(OffsetAt::Latest).await.unwrap(), 5);
    let by_time = [
        (0, 0),
        (1_000, 0),
        (1_001, 1),
        (2_500, 2),
        (3_000, 2),
        (3_001, 3),
        (4_000, 3),
        (5_000, 4),
        (5_001, 5),
    ];
    for (timestamp, offset) in by_time {
        assert_eq!(
            offset_at(OffsetAt::Timestamp(timestamp)).await.unwrap(),
            offset,
            "first record at or after {timestamp}"
        );
    }
    let fetched = engine.fetch("timed", 0, fetch_request(2, 1)).await.unwrap();
    assert_eq!(fetched.records[0].timestamp, 3_000);
    // A record without a timestamp gets the engine's time.
    produce(&engine, "timed", vec![to_partition(0, "now")]).await;
    let fetched = engine.fetch("timed", 0, fetch_request(5, 1)).await.unwrap();
    assert_eq!(fetched.records[0].timestamp, START as i64);
}

#[tokio::test]
async fn a_long_poll_waits_at_most_fetch_wait_max() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    engine.put_stream("quiet", partitions(1)).await.unwrap();
    let waiting = {
        let engine = engine.clone();
        let wait = FetchRequest {
            wait: Duration::from_secs(600),
            ..fetch_request(0, 100)
        };
        tokio::spawn(async move { engine.fetch("quiet", 0, wait).await })
    };
    settle().await;
    clock.advance(wharf_engine::broker::FETCH_WAIT_MAX - Duration::from_millis(1));
    settle().await;
    assert!(!waiting.is_finished());
    clock.advance(Duration::from_millis(1));
    let fetched = guard(waiting).await.unwrap().unwrap();
    assert!(fetched.records.is_empty());
}
