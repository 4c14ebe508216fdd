//! What the event store keeps across a restart: the index is rebuilt from `$all`, so versions,
//! metadata, deletes, idempotent re-sends, snapshots and projections' checkpoints all survive.

use crate::*;
use wharf_engine::{broker::eventstore::ProjectionFilter, eventstore::StreamMetadata};

#[tokio::test]
async fn the_index_is_rebuilt_at_open_and_appends_continue_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    let placed = append(
        &engine,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(1, "Placed"), event(2, "Priced")],
    )
    .await;
    append(
        &engine,
        "order-1",
        ExpectedVersion::Exact(1),
        vec![event(3, "Paid")],
    )
    .await;
    append(
        &engine,
        "order-2",
        ExpectedVersion::NoStream,
        vec![event(4, "Placed")],
    )
    .await;
    let bounded = StreamMetadata {
        max_count: Some(2),
        max_age_ms: None,
    };
    guard(engine.set_event_stream_metadata("order-2", bounded.clone()))
        .await
        .unwrap();
    append(
        &engine,
        "order-2",
        ExpectedVersion::Exact(0),
        vec![event(5, "Priced"), event(6, "Paid")],
    )
    .await;
    append(
        &engine,
        "order-3",
        ExpectedVersion::NoStream,
        vec![event(7, "Placed"), event(8, "Priced")],
    )
    .await;
    guard(engine.delete_event_stream("order-3", false))
        .await
        .unwrap();
    append(
        &engine,
        "order-4",
        ExpectedVersion::NoStream,
        vec![event(9, "Placed")],
    )
    .await;
    guard(engine.delete_event_stream("order-4", true))
        .await
        .unwrap();
    let snapshot = guard(engine.save_snapshot("order-1", 1, "{\"total\":12}".into()))
        .await
        .unwrap();
    guard(engine.put_projection("orders", ProjectionFilter::default()))
        .await
        .unwrap();
    guard(engine.checkpoint_projection("orders", 3))
        .await
        .unwrap();

    let order_1 = read_stream(&engine, "order-1", 10).await;
    let order_2 = read_stream(&engine, "order-2", 10).await;
    let all = read_all(&engine, &EventFilter::default(), 100).await;
    let end = engine.events_end();
    let counts = engine.event_store_counts();
    close(engine, store).await;

    clock.advance(Duration::from_secs(60));
    let (engine, store) = open(dir.path(), &clock).await;
    assert_eq!(engine.events_end(), end);
    assert_eq!(engine.event_store_counts(), counts);
    assert_eq!(read_stream(&engine, "order-1", 10).await, order_1);
    assert_eq!(read_stream(&engine, "order-2", 10).await, order_2);
    assert_eq!(versions(&order_2), [1, 2], "max_count 2 still applies");
    assert_eq!(
        engine.event_stream_metadata("order-2").unwrap(),
        (bounded, Some(2))
    );
    assert_eq!(read_all(&engine, &EventFilter::default(), 100).await, all);

    let soft = event_error(
        engine
            .read_event_stream("order-3", None, ReadDirection::Forward, 10)
            .await,
    );
    assert!(
        matches!(soft, EventStoreError::StreamNotFound { .. }),
        "{soft:?}"
    );
    let hard = event_error(
        engine
            .read_event_stream("order-4", None, ReadDirection::Forward, 10)
            .await,
    );
    assert!(
        matches!(hard, EventStoreError::StreamDeleted { .. }),
        "{hard:?}"
    );
    let hard = event_error(
        engine
            .append_events("order-4", ExpectedVersion::Any, vec![unnamed("Placed")])
            .await,
    );
    assert!(
        matches!(hard, EventStoreError::StreamDeleted { .. }),
        "{hard:?}"
    );

    assert_eq!(
        guard(engine.load_snapshot("order-1")).await.unwrap(),
        snapshot
    );
    let projection = engine.projection("orders").unwrap();
    assert_eq!(projection.checkpoint, Some(3));
    let after = guard(engine.projection_events("orders", 100))
        .await
        .unwrap();
    assert!(after.events.iter().all(|e| e.position > 3));
    assert_eq!(ids(&after.events), [5, 6, 7, 8, 9].map(uuid));

    // A re-send from before the restart is still recognised.
    let again = append(
        &engine,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(1, "Placed"), event(2, "Priced")],
    )
    .await;
    assert_eq!(
        (
            again.first_version,
            again.version,
            again.first_position,
            again.position
        ),
        (
            placed.first_version,
            placed.version,
            placed.first_position,
            placed.position
        )
    );
    let stale = engine
        .append_events(
            "order-1",
            ExpectedVersion::Exact(1),
            vec![event(10, "Shipped")],
        )
        .await;
    assert_eq!(refused_at(stale), Some(2));

    // Appends continue the versions, and $all where it ended.
    let next = append(
        &engine,
        "order-1",
        ExpectedVersion::Exact(2),
        vec![event(10, "Shipped")],
    )
    .await;
    assert_eq!((next.version, next.first_position), (3, end));
    assert_eq!(next.position, end);
    let recreated = append(
        &engine,
        "order-3",
        ExpectedVersion::NoStream,
        vec![event(11, "Placed")],
    )
    .await;
    assert_eq!((recreated.first_version, recreated.created), (2, true));
    assert_eq!(ids(&read_stream(&engine, "order-3", 10).await), [uuid(11)]);
    let shipped = read_stream(&engine, "order-1", 10).await;
    assert_eq!(shipped[3].time_ms, START + 60_000);
    close(engine, store).await;

    // And once more, with what the second run wrote.
    let (engine, store) = open(dir.path(), &clock).await;
    assert_eq!(
        versions(&read_stream(&engine, "order-1", 10).await),
        [0, 1, 2, 3]
    );
    assert_eq!(versions(&read_stream(&engine, "order-3", 10).await), [2]);
    close(engine, store).await;
}
