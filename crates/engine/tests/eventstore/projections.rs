//! System projections (`$ce-{category}`, `$et-{type}`) and checkpointed projections whose
//! position the server keeps across restarts.

use crate::*;
use wharf_engine::broker::eventstore::ProjectionFilter;

/// order-1, order-2, invoice-1 and orderbook (a category of its own), interleaved.
async fn shop(engine: &Engine) {
    append(
        engine,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(1, "OrderPlaced")],
    )
    .await;
    append(
        engine,
        "invoice-1",
        ExpectedVersion::NoStream,
        vec![event(2, "InvoiceSent")],
    )
    .await;
    append(
        engine,
        "order-2",
        ExpectedVersion::NoStream,
        vec![event(3, "OrderPlaced"), event(4, "OrderPaid")],
    )
    .await;
    append(
        engine,
        "orderbook",
        ExpectedVersion::NoStream,
        vec![event(5, "OrderPaid")],
    )
    .await;
    append(
        engine,
        "order-1",
        ExpectedVersion::Exact(0),
        vec![event(6, "OrderPaid")],
    )
    .await;
    append(
        engine,
        "invoice-1",
        ExpectedVersion::Exact(0),
        vec![event(7, "OrderPaidNoted")],
    )
    .await;
    append(
        engine,
        "order-1-x",
        ExpectedVersion::NoStream,
        vec![event(8, "OrderShipped")],
    )
    .await;
}

#[tokio::test]
async fn system_projections_list_events_by_category_and_by_type_across_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    shop(&engine).await;

    let category = read_stream(&engine, "$ce-order", 100).await;
    assert_eq!(ids(&category), [1, 3, 4, 6, 8].map(uuid));
    let streams: Vec<&str> = category.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(
        streams,
        ["order-1", "order-2", "order-2", "order-1", "order-1-x"]
    );
    assert_eq!(
        versions(&category),
        [0, 0, 1, 1, 0],
        "events keep their own stream's versions"
    );
    assert_eq!(
        ids(&read_stream(&engine, "$ce-order", 2).await),
        [1, 3, 4, 6, 8].map(uuid)
    );
    assert_eq!(
        ids(&read_stream(&engine, "$ce-orderbook", 10).await),
        [uuid(5)]
    );
    assert_eq!(
        ids(&read_stream(&engine, "$ce-invoice", 10).await),
        [2, 7].map(uuid)
    );

    let paid = read_stream(&engine, "$et-OrderPaid", 100).await;
    assert_eq!(
        ids(&paid),
        [4, 5, 6].map(uuid),
        "exactly the type, not a prefix of it"
    );
    let backward =
        guard(engine.read_event_stream("$et-OrderPaid", None, ReadDirection::Backward, 2))
            .await
            .unwrap();
    assert_eq!(ids(&backward.events), [6, 5].map(uuid));
    assert_eq!(
        (backward.next, backward.current),
        (Some(0), Some(2)),
        "versions count inside the projection"
    );

    let other = event_error(
        engine
            .read_event_stream("$other", None, ReadDirection::Forward, 10)
            .await,
    );
    assert!(
        matches!(other, EventStoreError::Invalid { .. }),
        "no such projection kind: {other:?}"
    );
    for missing in ["$ce-cart", "$et-CartOpened"] {
        let error = event_error(
            engine
                .read_event_stream(missing, None, ReadDirection::Forward, 10)
                .await,
        );
        assert!(
            matches!(error, EventStoreError::StreamNotFound { .. }),
            "{missing}: {error:?}"
        );
    }
    // The server's streams are read-only.
    let write = event_error(
        engine
            .append_events("$ce-order", ExpectedVersion::Any, vec![unnamed("X")])
            .await,
    );
    assert!(
        matches!(write, EventStoreError::Invalid { .. }),
        "{write:?}"
    );
}

#[tokio::test]
async fn a_checkpointed_projection_reads_past_its_checkpoint_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    shop(&engine).await;
    let filter = ProjectionFilter {
        type_prefix: Some("OrderPaid".into()),
        stream_prefix: Some("order".into()),
    };
    assert!(guard(engine.put_projection("paid-orders", filter.clone()))
        .await
        .unwrap());
    let fresh = engine.projection("paid-orders").unwrap();
    assert_eq!(
        (fresh.checkpoint, fresh.head, fresh.lag_events),
        (None, Some(7), 8)
    );

    let first = guard(engine.projection_events("paid-orders", 100))
        .await
        .unwrap();
    assert_eq!(ids(&first.events), [4, 5, 6].map(uuid));
    let page = guard(engine.projection_events("paid-orders", 1))
        .await
        .unwrap();
    assert_eq!(ids(&page.events), [uuid(4)]);

    // The read model applied the first two.
    let checkpoint = first.events[1].position;
    let moved = guard(engine.checkpoint_projection("paid-orders", checkpoint))
        .await
        .unwrap();
    assert_eq!(moved.checkpoint, Some(checkpoint));
    assert!(moved.lag_events < fresh.lag_events);
    assert_eq!(moved.lag_events, 8 - (checkpoint + 1));
    let rest = guard(engine.projection_events("paid-orders", 100))
        .await
        .unwrap();
    assert_eq!(ids(&rest.events), [uuid(6)]);

    clock.advance(Duration::from_millis(1_500));
    let lag = guard(engine.projection_lag_ms(&moved)).await.unwrap();
    assert_eq!(
        lag, 1_500,
        "the oldest record after the checkpoint was appended at START"
    );

    let ahead = event_error(
        engine
            .checkpoint_projection("paid-orders", engine.events_end())
            .await,
    );
    assert!(
        matches!(ahead, EventStoreError::CheckpointAhead { .. }),
        "{ahead:?}"
    );
    // Changing the filter keeps the checkpoint.
    let all_paid = ProjectionFilter {
        type_prefix: Some("OrderPaid".into()),
        stream_prefix: None,
    };
    assert!(
        !guard(engine.put_projection("paid-orders", all_paid.clone()))
            .await
            .unwrap()
    );
    let rest = guard(engine.projection_events("paid-orders", 100))
        .await
        .unwrap();
    assert_eq!(ids(&rest.events), [6, 7].map(uuid));
    close(engine, store).await;

    let (engine, store) = open(dir.path(), &clock).await;
    let after = engine.projection("paid-orders").unwrap();
    assert_eq!(
        (after.checkpoint, &after.filter),
        (Some(checkpoint), &all_paid)
    );
    let rest = guard(engine.projection_events("paid-orders", 100))
        .await
        .unwrap();
    assert_eq!(ids(&rest.events), [6, 7].map(uuid));
    append(
        &engine,
        "order-3",
        ExpectedVersion::NoStream,
        vec![event(9, "OrderPaid")],
    )
    .await;
    let rest = guard(engine.projection_events("paid-orders", 100))
        .await
        .unwrap();
    assert_eq!(ids(&rest.events), [6, 7, 9].map(uuid));
    let last = rest.events.last().unwrap().position;
    let done = guard(engine.checkpoint_projection("paid-orders", last))
        .await
        .unwrap();
    assert_eq!(done.lag_events, 0);
    assert_eq!(guard(engine.projection_lag_ms(&done)).await.unwrap(), 0);
    assert!(guard(engine.projection_events("paid-orders", 100))
        .await
        .unwrap()
        .events
        .is_empty());

    let listed: Vec<String> = engine
        .projections(usize::MAX)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(listed, ["paid-orders"]);
    guard(engine.delete_projection("paid-orders"))
        .await
        .unwrap();
    let gone = event_error(engine.projection("paid-orders"));
    assert!(
        matches!(gone, EventStoreError::ProjectionNotFound { .. }),
        "{gone:?}"
    );
    assert!(engine.projections(usize::MAX).is_empty());
    close(engine, store).await;
}
