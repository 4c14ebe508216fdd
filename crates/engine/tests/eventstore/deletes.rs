//! Soft and hard deletes against every kind of expected version: a soft-deleted stream is
//! recreated by an append, its versions continuing; a hard-deleted one is gone for good.

use crate::*;

/// Writes `stream` at versions 0 and 1, then soft deletes it.
async fn soft_deleted(engine: &Engine, stream: &str, first_id: u64) {
    let events = vec![event(first_id, "Opened"), event(first_id + 1, "Added")];
    append(engine, stream, ExpectedVersion::NoStream, events).await;
    guard(engine.delete_event_stream(stream, false))
        .await
        .unwrap();
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, EngineError>) -> bool {
    matches!(event_error(result), EventStoreError::StreamNotFound { .. })
}

fn is_deleted<T: std::fmt::Debug>(result: Result<T, EngineError>) -> bool {
    matches!(event_error(result), EventStoreError::StreamDeleted { .. })
}

#[tokio::test]
async fn a_soft_deleted_stream_reads_as_absent_and_an_append_recreates_it_where_it_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let recreate = [
        ("cart-any", ExpectedVersion::Any),
        ("cart-no", ExpectedVersion::NoStream),
        ("cart-exact", ExpectedVersion::Exact(1)),
    ];
    for (at, (stream, expected)) in recreate.iter().enumerate() {
        let id = at as u64 * 10;
        soft_deleted(&engine, stream, id).await;
        let read = engine
            .read_event_stream(stream, None, ReadDirection::Forward, 10)
            .await;
        assert!(is_not_found(read), "{stream}");
        let read = engine
            .read_event_stream(stream, Some(0), ReadDirection::Forward, 10)
            .await;
        assert!(is_not_found(read), "{stream} from 0");

        let appended = append(&engine, stream, *expected, vec![event(id + 2, "Reopened")]).await;
        assert_eq!(appended.first_version, 2, "{stream}: versions continue");
        assert!(
            appended.created,
            "{stream}: the append recreated the stream"
        );
        let events = read_stream(&engine, stream, 10).await;
        assert_eq!(
            versions(&events),
            [2],
            "{stream}: the old events stay unreadable"
        );
        assert_eq!(ids(&events), [uuid(id + 2)]);
        let backward = guard(engine.read_event_stream(stream, None, ReadDirection::Backward, 10))
            .await
            .unwrap();
        assert_eq!(versions(&backward.events), [2]);
        assert_eq!(backward.next, None, "{stream}: no page below the delete");
        let from_zero =
            guard(engine.read_event_stream(stream, Some(0), ReadDirection::Forward, 10))
                .await
                .unwrap();
        assert_eq!(versions(&from_zero.events), [2]);
    }

    soft_deleted(&engine, "cart-exists", 40).await;
    let refused = engine
        .append_events(
            "cart-exists",
            ExpectedVersion::Exists,
            vec![event(42, "Reopened")],
        )
        .await;
    // The refusal names the last version written, which `Exact(1)` would then accept.
    assert_eq!(refused_at(refused), Some(1));
    let refused = engine
        .append_events(
            "cart-exists",
            ExpectedVersion::Exact(0),
            vec![event(42, "Reopened")],
        )
        .await;
    assert_eq!(refused_at(refused), Some(1));

    // Soft deleting what holds nothing readable is "not found".
    let again = engine.delete_event_stream("cart-exists", false).await;
    assert!(is_not_found(again));
    let never = engine.delete_event_stream("cart-never", false).await;
    assert!(is_not_found(never));

    // A stream soft deleted, recreated and soft deleted again keeps going.
    guard(engine.delete_event_stream("cart-no", false))
        .await
        .unwrap();
    let appended = append(
        &engine,
        "cart-no",
        ExpectedVersion::NoStream,
        vec![event(3, "Again")],
    )
    .await;
    assert_eq!(appended.first_version, 3);
    assert_eq!(versions(&read_stream(&engine, "cart-no", 10).await), [3]);

    // $all keeps every event: deletes hide events from their stream only.
    let all = read_all(&engine, &EventFilter::default(), 100).await;
    assert_eq!(all.len(), 4 * 2 + 3 + 1);
}

#[tokio::test]
async fn a_hard_deleted_stream_is_never_written_or_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    append(
        &engine,
        "cart-gone",
        ExpectedVersion::NoStream,
        vec![event(1, "Opened")],
    )
    .await;
    guard(engine.delete_event_stream("cart-gone", true))
        .await
        .unwrap();
    soft_deleted(&engine, "cart-soft-then-hard", 10).await;
    guard(engine.delete_event_stream("cart-soft-then-hard", true))
        .await
        .unwrap();
    // A stream can be tombstoned before it was ever written, so that its id is never used.
    guard(engine.delete_event_stream("cart-reserved", true))
        .await
        .unwrap();

    for stream in ["cart-gone", "cart-soft-then-hard", "cart-reserved"] {
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::Exists,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Exact(1),
        ] {
            let refused = engine
                .append_events(stream, expected, vec![event(99, "Reopened")])
                .await;
            assert!(is_deleted(refused), "{stream}, {expected}");
        }
        let read = engine
            .read_event_stream(stream, None, ReadDirection::Forward, 10)
            .await;
        assert!(is_deleted(read), "{stream}");
        let read = engine
            .read_event_stream(stream, None, ReadDirection::Backward, 10)
            .await;
        assert!(is_deleted(read), "{stream}");
        assert!(is_deleted(engine.event_stream_metadata(stream)), "{stream}");
        let metadata = wharf_engine::eventstore::StreamMetadata::default();
        assert!(is_deleted(
            engine.set_event_stream_metadata(stream, metadata).await
        ));
        assert!(
            is_deleted(engine.delete_event_stream(stream, false).await),
            "{stream}"
        );
        assert!(
            is_deleted(engine.delete_event_stream(stream, true).await),
            "{stream}"
        );
        assert!(is_deleted(
            engine.save_snapshot(stream, 0, "{}".into()).await
        ));
        assert!(is_deleted(engine.load_snapshot(stream).await));
    }
    // A refused re-send of the very events written before the delete is refused as well.
    let resent = engine
        .append_events(
            "cart-gone",
            ExpectedVersion::NoStream,
            vec![event(1, "Opened")],
        )
        .await;
    assert!(is_deleted(resent));
}

#[tokio::test]
async fn a_re_sent_no_stream_append_that_recreated_a_soft_deleted_stream_is_answered_as_the_first()
{
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    soft_deleted(&engine, "cart-retry", 0).await;
    let events = || vec![event(5, "Reopened"), event(6, "Added")];
    let first = append(&engine, "cart-retry", ExpectedVersion::NoStream, events()).await;
    assert_eq!((first.first_version, first.version), (2, 3));
    let again = guard(engine.append_events("cart-retry", ExpectedVersion::NoStream, events()))
        .await
        .expect("the re-send of the append that recreated the stream is that append");
    assert_eq!(
        (
            again.first_version,
            again.version,
            again.first_position,
            again.position
        ),
        (
            first.first_version,
            first.version,
            first.first_position,
            first.position
        )
    );
    assert_eq!(
        ids(&read_stream(&engine, "cart-retry", 10).await),
        [uuid(5), uuid(6)]
    );
}
