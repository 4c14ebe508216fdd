//! Retention on the manual clock: the engine's housekeeping runs every second of its clock,
//! so the tests move the clock past a second and poll the stream's extent until the oldest
//! segments are gone.

use crate::*;

/// 1 KiB values: 300 of them span about five 64 KiB segments.
const VALUE_BYTES: usize = 1_024;

fn value(number: u64) -> String {
    format!("{number:0>width$}", width = VALUE_BYTES)
}

/// Produces records `first..first + count` to partition 0, one request each (one batch each).
async fn produce_numbered(engine: &Engine, stream: &str, first: u64, count: u64) {
    for number in first..first + count {
        let produced = produce(engine, stream, vec![to_partition(0, &value(number))]).await;
        assert_eq!(produced[0].offset, number);
    }
}

/// Moves the clock past the housekeeping interval until partition 0's earliest offset is
/// above 0, and returns it.
async fn earliest_after_housekeeping(engine: &Engine, clock: &ManualClock) -> u64 {
    guard(async {
        loop {
            clock.advance(Duration::from_millis(1_100));
            let earliest = engine.stream_info("aging").unwrap().partitions[0].earliest;
            if earliest > 0 {
                return earliest;
            }
            // Polling for the background task's work, with `guard` as the deadline.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// What holds once retention moved `earliest` forward over records `0..latest`.
async fn check_after_retention(engine: &Engine, earliest: u64, latest: u64) {
    let info = engine.stream_info("aging").unwrap().partitions[0];
    assert_eq!(info.latest, latest, "retention never moves the end");
    assert_eq!(info.records, latest - info.earliest);
    let error = stream_error(
        engine
            .fetch("aging", 0, fetch_request(earliest - 1, 10))
            .await,
    );
    assert!(
        matches!(
            error,
            StreamError::OffsetOutOfRange { offset, earliest: reported, latest: end, .. }
                if offset == earliest - 1 && reported >= earliest && end == latest
        ),
        "{error:?}"
    );
    let info = engine.stream_info("aging").unwrap().partitions[0];
    let fetched = engine
        .fetch("aging", 0, fetch_request(info.earliest, 2))
        .await
        .unwrap();
    assert_eq!(fetched.records[0].offset, info.earliest);
    assert_eq!(values(&fetched.records)[0], value(info.earliest));
    let offset_at = engine
        .offset_at("aging", 0, wharf_engine::broker::OffsetAt::Earliest)
        .await
        .unwrap();
    assert_eq!(offset_at, info.earliest);
    let records = fetch_all(engine, "aging", 0, 50).await;
    let expected: Vec<String> = (info.earliest..latest).map(value).collect();
    assert_eq!(values(&records), expected);
}

#[tokio::test]
async fn retention_by_bytes_deletes_the_oldest_segments() {
    const RETENTION_BYTES: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    let options = StreamOptions {
        retention_bytes: Some(RETENTION_BYTES),
        ..partitions(1)
    };
    engine.put_stream("aging", options).await.unwrap();
    produce_numbered(&engine, "aging", 0, 300).await;
    let bytes_before = engine.stream_info("aging").unwrap().partitions[0].bytes;
    assert!(bytes_before > 3 * SEGMENT_BYTES);

    guard(engine.commit_offsets("aging", "readers", None, &[(0, 1)]))
        .await
        .unwrap();
    let earliest = earliest_after_housekeeping(&engine, &clock).await;
    check_after_retention(&engine, earliest, 300).await;
    let info = engine.stream_info("aging").unwrap().partitions[0];
    // A group whose commit retention passed starts from the earliest record kept.
    let join = wharf_engine::broker::GroupJoin {
        member_id: Some("reader".into()),
        ..Default::default()
    };
    let member = engine.join_group("aging", "readers", join).unwrap();
    assert_eq!(member.positions, [(0, info.earliest)].into());
    // The start survives a restart.
    close(engine, store).await;
    let (engine, _store) = open(dir.path(), &clock).await;
    let reopened = engine.stream_info("aging").unwrap().partitions[0];
    assert_eq!((reopened.earliest, reopened.latest), (info.earliest, 300));
    check_after_retention(&engine, reopened.earliest, 300).await;
    // Whole segments go: what stays is at least the limit (less one batch) and at most the
    // limit and one segment.
    assert!(info.bytes <= RETENTION_BYTES + SEGMENT_BYTES, "{info:?}");
    assert!(
        info.bytes + 2 * VALUE_BYTES as u64 >= RETENTION_BYTES,
        "{info:?}"
    );
}

#[tokio::test]
async fn retention_by_age_deletes_segments_older_than_it() {
    const RETENTION_MS: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    let options = StreamOptions {
        retention_ms: Some(RETENTION_MS),
        ..partitions(1)
    };
    engine.put_stream("aging", options).await.unwrap();
    produce_numbered(&engine, "aging", 0, 150).await;
    clock.advance(Duration::from_millis(2 * RETENTION_MS));
    produce_numbered(&engine, "aging", 150, 150).await;

    let earliest = earliest_after_housekeeping(&engine, &clock).await;
    assert!(
        earliest <= 150,
        "records younger than the limit stay: {earliest}"
    );
    check_after_retention(&engine, earliest, 300).await;
}

#[tokio::test]
async fn a_stream_without_retention_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    engine.put_stream("aging", partitions(1)).await.unwrap();
    produce_numbered(&engine, "aging", 0, 150).await;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(24 * 3_600));
        tokio::task::yield_now().await;
    }
    let info = engine.stream_info("aging").unwrap().partitions[0];
    assert_eq!((info.earliest, info.latest, info.records), (0, 150, 150));
}
