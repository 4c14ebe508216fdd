//! Stream metadata bounds what reads of a stream return: the newest `max_count` events, and
//! those younger than `max_age_ms` by the injected clock.

use crate::*;
use wharf_engine::eventstore::StreamMetadata;

#[tokio::test]
async fn max_count_keeps_only_the_newest_events_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let events = (0..5).map(|n| event(n, "Counted")).collect();
    append(&engine, "meter-1", ExpectedVersion::NoStream, events).await;
    let bounded = StreamMetadata {
        max_count: Some(2),
        max_age_ms: None,
    };
    guard(engine.set_event_stream_metadata("meter-1", bounded.clone()))
        .await
        .unwrap();
    assert_eq!(
        engine.event_stream_metadata("meter-1").unwrap(),
        (bounded.clone(), Some(4))
    );

    assert_eq!(versions(&read_stream(&engine, "meter-1", 10).await), [3, 4]);
    assert_eq!(versions(&read_stream(&engine, "meter-1", 1).await), [3, 4]);
    let from_zero = guard(engine.read_event_stream("meter-1", Some(0), ReadDirection::Forward, 10))
        .await
        .unwrap();
    assert_eq!(versions(&from_zero.events), [3, 4]);
    assert_eq!(from_zero.current, Some(4));
    let backward = guard(engine.read_event_stream("meter-1", None, ReadDirection::Backward, 10))
        .await
        .unwrap();
    assert_eq!(versions(&backward.events), [4, 3]);
    assert_eq!(backward.next, None);

    // The window moves with new events, and the expected version is still the whole stream's.
    append(
        &engine,
        "meter-1",
        ExpectedVersion::Exact(4),
        vec![event(5, "Counted")],
    )
    .await;
    assert_eq!(versions(&read_stream(&engine, "meter-1", 10).await), [4, 5]);
    // Widening the bound brings older events back: max_count hides, it does not delete.
    let wider = StreamMetadata {
        max_count: Some(4),
        max_age_ms: None,
    };
    guard(engine.set_event_stream_metadata("meter-1", wider))
        .await
        .unwrap();
    assert_eq!(
        versions(&read_stream(&engine, "meter-1", 10).await),
        [2, 3, 4, 5]
    );

    let zero = StreamMetadata {
        max_count: Some(0),
        max_age_ms: None,
    };
    let refused = event_error(engine.set_event_stream_metadata("meter-1", zero).await);
    assert!(
        matches!(refused, EventStoreError::Invalid { ref field, .. } if field == "max_count"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn max_age_hides_events_older_than_the_clock_allows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    // Metadata may come before the stream's first event.
    let aged = StreamMetadata {
        max_age_ms: Some(5_000),
        max_count: None,
    };
    guard(engine.set_event_stream_metadata("sensor-1", aged.clone()))
        .await
        .unwrap();
    assert_eq!(
        engine.event_stream_metadata("sensor-1").unwrap(),
        (aged, None)
    );

    append(
        &engine,
        "sensor-1",
        ExpectedVersion::NoStream,
        vec![event(0, "Read"), event(1, "Read")],
    )
    .await;
    clock.advance(Duration::from_millis(3_000));
    append(
        &engine,
        "sensor-1",
        ExpectedVersion::Exact(1),
        vec![event(2, "Read")],
    )
    .await;
    let events = read_stream(&engine, "sensor-1", 10).await;
    assert_eq!(versions(&events), [0, 1, 2]);
    assert_eq!(events[0].time_ms, START);
    assert_eq!(events[2].time_ms, START + 3_000);

    clock.advance(Duration::from_millis(2_001));
    assert_eq!(
        versions(&read_stream(&engine, "sensor-1", 10).await),
        [2],
        "the first two are 5,001 ms old"
    );
    clock.advance(Duration::from_millis(3_000));
    assert!(read_stream(&engine, "sensor-1", 10).await.is_empty());
    // Too old to read is not deleted: the stream is there, its version unchanged.
    let read = guard(engine.read_event_stream("sensor-1", None, ReadDirection::Forward, 10))
        .await
        .unwrap();
    assert_eq!(read.current, Some(2));
    let next = append(
        &engine,
        "sensor-1",
        ExpectedVersion::Exact(2),
        vec![event(3, "Read")],
    )
    .await;
    assert_eq!(next.version, 3);
    assert_eq!(versions(&read_stream(&engine, "sensor-1", 10).await), [3]);

    // Both bounds at once: the stricter wins.
    let both = StreamMetadata {
        max_age_ms: Some(60_000),
        max_count: Some(1),
    };
    guard(engine.set_event_stream_metadata("sensor-1", both))
        .await
        .unwrap();
    clock.advance(Duration::from_millis(1));
    assert_eq!(versions(&read_stream(&engine, "sensor-1", 10).await), [3]);
}

#[tokio::test]
async fn a_read_of_zero_events_returns_none_in_either_direction() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let events = (0..3).map(|n| event(n, "Counted")).collect();
    append(&engine, "meter-1", ExpectedVersion::NoStream, events).await;
    for stream in ["meter-1", "$ce-meter", "$et-Counted"] {
        for direction in [ReadDirection::Forward, ReadDirection::Backward] {
            for from in [None, Some(0), Some(2)] {
                let read = guard(engine.read_event_stream(stream, from, direction, 0))
                    .await
                    .unwrap();
                assert!(
                    read.events.is_empty(),
                    "{stream} {direction:?} from {from:?}: {:?}",
                    versions(&read.events)
                );
            }
        }
    }
    let all = guard(engine.read_all_events(0, 0, &EventFilter::default()))
        .await
        .unwrap();
    assert!(all.events.is_empty());
    assert_eq!(all.next, 0, "nothing read, nothing skipped");
}
