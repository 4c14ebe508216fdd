//! Appends: idempotent re-sends, the expected-version rule on live streams, and multi-event
//! appends that land whole and in order.

use crate::*;

/// An answer without its `created` flag: what a re-sent append must repeat.
fn placed(appended: &Appended) -> (u64, u64, u64, u64) {
    (
        appended.first_version,
        appended.version,
        appended.first_position,
        appended.position,
    )
}

#[tokio::test]
async fn re_sent_appends_are_answered_as_the_first_and_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let stream = "order-7";

    let first = append(
        &engine,
        stream,
        ExpectedVersion::NoStream,
        vec![event(1, "Placed"), event(2, "Priced")],
    )
    .await;
    assert_eq!(placed(&first), (0, 1, 0, 1));
    assert!(first.created);
    let again = append(
        &engine,
        stream,
        ExpectedVersion::NoStream,
        vec![event(1, "Placed"), event(2, "Priced")],
    )
    .await;
    assert_eq!(placed(&again), placed(&first), "no_stream re-sent");

    let exact = append(
        &engine,
        stream,
        ExpectedVersion::Exact(1),
        vec![event(3, "Paid")],
    )
    .await;
    assert_eq!(placed(&exact), (2, 2, 2, 2));
    let again = append(
        &engine,
        stream,
        ExpectedVersion::Exact(1),
        vec![event(3, "Paid")],
    )
    .await;
    assert_eq!(placed(&again), placed(&exact), "exact version re-sent");

    let any = append(
        &engine,
        stream,
        ExpectedVersion::Any,
        vec![event(4, "Shipped")],
    )
    .await;
    assert_eq!(placed(&any), (3, 3, 3, 3));
    let again = append(
        &engine,
        stream,
        ExpectedVersion::Any,
        vec![event(4, "Shipped")],
    )
    .await;
    assert_eq!(placed(&again), placed(&any), "any re-sent");

    // A late retry of an earlier append, after others were appended, is still recognised.
    let late = append(
        &engine,
        stream,
        ExpectedVersion::Exact(1),
        vec![event(3, "Paid")],
    )
    .await;
    assert_eq!(placed(&late), placed(&exact));
    let late = append(
        &engine,
        stream,
        ExpectedVersion::NoStream,
        vec![event(1, "Placed"), event(2, "Priced")],
    )
    .await;
    assert_eq!(placed(&late), placed(&first));

    let events = read_stream(&engine, stream, 100).await;
    assert_eq!(ids(&events), [uuid(1), uuid(2), uuid(3), uuid(4)]);
    assert_eq!(engine.events_end(), 4, "nothing re-sent reached the log");

    // Other events at a stale version are refused with the stream's real version.
    let stale = engine
        .append_events(stream, ExpectedVersion::Exact(1), vec![event(5, "Paid")])
        .await;
    assert_eq!(refused_at(stale), Some(3));
    // The events of an earlier append in another order are not that append.
    let shuffled = engine
        .append_events(
            stream,
            ExpectedVersion::NoStream,
            vec![event(2, "Priced"), event(1, "Placed")],
        )
        .await;
    assert_eq!(refused_at(shuffled), Some(3));
    assert_eq!(read_stream(&engine, stream, 100).await.len(), 4);
}

#[tokio::test]
async fn expected_versions_on_new_and_existing_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;

    // A stream never written.
    for expected in [ExpectedVersion::Exists, ExpectedVersion::Exact(0)] {
        let refused = engine
            .append_events("cart-new", expected, vec![unnamed("Opened")])
            .await;
        assert_eq!(refused_at(refused), None, "{expected} on a new stream");
    }
    let error = event_error(
        engine
            .read_event_stream("cart-new", None, ReadDirection::Forward, 10)
            .await,
    );
    assert!(
        matches!(error, EventStoreError::StreamNotFound { .. }),
        "{error:?}"
    );
    let created = append(
        &engine,
        "cart-any",
        ExpectedVersion::Any,
        vec![unnamed("Opened")],
    )
    .await;
    assert!(created.created && created.first_version == 0);
    let created = append(
        &engine,
        "cart-no",
        ExpectedVersion::NoStream,
        vec![unnamed("Opened")],
    )
    .await;
    assert!(created.created && created.first_version == 0);

    // A stream at version 1.
    append(
        &engine,
        "cart-1",
        ExpectedVersion::NoStream,
        vec![unnamed("Opened"), unnamed("Added")],
    )
    .await;
    let refused = engine
        .append_events("cart-1", ExpectedVersion::NoStream, vec![unnamed("Added")])
        .await;
    assert_eq!(refused_at(refused), Some(1));
    let refused = engine
        .append_events("cart-1", ExpectedVersion::Exact(0), vec![unnamed("Added")])
        .await;
    assert_eq!(refused_at(refused), Some(1));
    let refused = engine
        .append_events("cart-1", ExpectedVersion::Exact(2), vec![unnamed("Added")])
        .await;
    assert_eq!(
        refused_at(refused),
        Some(1),
        "a version from the future is refused too"
    );
    let exists = append(
        &engine,
        "cart-1",
        ExpectedVersion::Exists,
        vec![unnamed("Added")],
    )
    .await;
    assert_eq!((exists.first_version, exists.created), (2, false));
    let exact = append(
        &engine,
        "cart-1",
        ExpectedVersion::Exact(2),
        vec![unnamed("Added")],
    )
    .await;
    assert_eq!(exact.version, 3);
    let any = append(
        &engine,
        "cart-1",
        ExpectedVersion::Any,
        vec![unnamed("Added")],
    )
    .await;
    assert_eq!(any.version, 4);
    assert_eq!(
        versions(&read_stream(&engine, "cart-1", 2).await),
        [0, 1, 2, 3, 4]
    );
    let (_, current) = engine.event_stream_metadata("cart-1").unwrap();
    assert_eq!(current, Some(4));

    // Nothing refused reached the log: 1 + 1 + 2 + 3 events.
    assert_eq!(engine.events_end(), 7);
    assert_eq!(engine.event_store_counts(), (3, 7));
}

#[tokio::test]
async fn a_multi_event_append_is_consecutive_in_its_stream_and_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    append(
        &engine,
        "invoice-1",
        ExpectedVersion::Any,
        vec![event(1, "InvoiceDrafted")],
    )
    .await;
    let order = vec![
        event(10, "OrderPlaced"),
        event(11, "OrderPriced"),
        event(12, "InvoiceRequested"),
        event(13, "OrderPaid"),
        event(14, "OrderShipped"),
    ];
    let appended = append(&engine, "order-1", ExpectedVersion::NoStream, order).await;
    assert_eq!(placed(&appended), (0, 4, 1, 5));
    append(
        &engine,
        "invoice-1",
        ExpectedVersion::Exact(0),
        vec![event(2, "InvoiceSent")],
    )
    .await;
    append(
        &engine,
        "order-1",
        ExpectedVersion::Exact(4),
        vec![event(15, "OrderClosed")],
    )
    .await;

    let stream = read_stream(&engine, "order-1", 100).await;
    assert_eq!(versions(&stream), [0, 1, 2, 3, 4, 5]);
    assert_eq!(positions(&stream), [1, 2, 3, 4, 5, 7]);
    assert_eq!(stream[2].event_type, "InvoiceRequested");
    assert_eq!(&stream[2].data[..], b"{\"n\":12}");
    assert!(stream[2].data_is_json);
    assert_eq!(
        &stream[2].metadata[..],
        b"{}",
        "no metadata reads as an empty object"
    );
    let backward = guard(engine.read_event_stream("order-1", None, ReadDirection::Backward, 4))
        .await
        .unwrap();
    assert_eq!(versions(&backward.events), [5, 4, 3, 2]);
    assert_eq!((backward.next, backward.current), (Some(1), Some(5)));

    let all = read_all(&engine, &EventFilter::default(), 1_000).await;
    assert_eq!(positions(&all), (0..8).collect::<Vec<_>>());
    let expected_ids: Vec<String> = [1, 10, 11, 12, 13, 14, 2, 15].map(uuid).into();
    assert_eq!(ids(&all), expected_ids);

    // Paging with `next` visits everything once, at any page size, filtered or not.
    let filters = [
        EventFilter::default(),
        EventFilter {
            type_prefix: Some("Order".into()),
            ..EventFilter::default()
        },
        EventFilter {
            stream_prefix: Some("invoice-".into()),
            ..EventFilter::default()
        },
        EventFilter {
            type_prefix: Some("Invoice".into()),
            stream_prefix: Some("order-".into()),
            ..EventFilter::default()
        },
        EventFilter {
            stream: Some("order-1".into()),
            ..EventFilter::default()
        },
    ];
    let wanted: [&[u64]; 5] = [
        &[1, 10, 11, 12, 13, 14, 2, 15],
        &[10, 11, 13, 14, 15],
        &[1, 2],
        &[12],
        &[10, 11, 12, 13, 14, 15],
    ];
    for (filter, wanted) in filters.iter().zip(wanted) {
        let wanted: Vec<String> = wanted.iter().map(|n| uuid(*n)).collect();
        for page in [1, 2, 3, 1_000] {
            let read = read_all(&engine, filter, page).await;
            assert_eq!(ids(&read), wanted, "{filter:?}, {page} per page");
            assert!(positions(&read).windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_multi_event_appends_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let writers: Vec<_> = (0..8u64)
        .map(|writer| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for batch in 0..10u64 {
                    let events = (0..5)
                        .map(|i| event(writer * 1_000 + batch * 10 + i, "Step"))
                        .collect();
                    let stream = format!("job-{}", (writer + batch) % 3);
                    let appended =
                        guard(engine.append_events(&stream, ExpectedVersion::Any, events))
                            .await
                            .unwrap();
                    answers.push((writer * 1_000 + batch * 10, stream, appended));
                }
                answers
            })
        })
        .collect();
    let all_events = {
        let mut answers = Vec::new();
        for writer in writers {
            answers.extend(writer.await.unwrap());
        }
        answers
    };
    let all = read_all(&engine, &EventFilter::default(), 64).await;
    assert_eq!(all.len(), 400);
    for (first_n, stream, appended) in all_events {
        assert_eq!(appended.position - appended.first_position, 4);
        assert_eq!(appended.version - appended.first_version, 4);
        let batch = &all[appended.first_position as usize..=appended.position as usize];
        let wanted: Vec<String> = (first_n..first_n + 5).map(uuid).collect();
        assert_eq!(
            ids(batch),
            wanted,
            "an append's events sit together in $all"
        );
        assert!(batch.iter().all(|e| e.stream == stream));
        assert_eq!(
            versions(batch),
            (appended.first_version..=appended.version).collect::<Vec<_>>()
        );
    }
    for job in 0..3 {
        let stream = read_stream(&engine, &format!("job-{job}"), 1_000).await;
        assert_eq!(
            versions(&stream),
            (0..stream.len() as u64).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_any_append_re_sent_while_the_first_is_in_flight_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    append(
        &engine,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(0, "Placed")],
    )
    .await;
    for round in 1..=20u64 {
        // A client that timed out and sent the same events again before the first answer.
        let sends: Vec<_> = (0..2)
            .map(|_| {
                let engine = engine.clone();
                let events = vec![event(round * 10, "Noted"), event(round * 10 + 1, "Noted")];
                tokio::spawn(async move {
                    engine
                        .append_events("order-1", ExpectedVersion::Any, events)
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for send in sends {
            answers.push(placed(&guard(send).await.unwrap().unwrap()));
        }
        assert_eq!(
            answers[0], answers[1],
            "round {round}: both sends get the one append"
        );
        let events = read_stream(&engine, "order-1", 1_000).await;
        assert_eq!(
            events.len() as u64,
            1 + 2 * round,
            "round {round}: stored once"
        );
    }
}

#[tokio::test]
async fn malformed_appends_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let none = event_error(
        engine
            .append_events("order-1", ExpectedVersion::Any, vec![])
            .await,
    );
    assert!(matches!(none, EventStoreError::NoEvents), "{none:?}");
    let many: Vec<NewEvent> = (0..1_001).map(|_| unnamed("Placed")).collect();
    let many = event_error(
        engine
            .append_events("order-1", ExpectedVersion::Any, many)
            .await,
    );
    assert!(
        matches!(many, EventStoreError::TooManyEvents { count: 1_001 }),
        "{many:?}"
    );
    let bad_id = NewEvent {
        id: Some("not-a-uuid".into()),
        ..unnamed("Placed")
    };
    let bad_id = event_error(
        engine
            .append_events(
                "order-1",
                ExpectedVersion::Any,
                vec![unnamed("Placed"), bad_id],
            )
            .await,
    );
    assert!(
        matches!(bad_id, EventStoreError::Invalid { ref field, .. } if field == "events[1].id"),
        "{bad_id:?}"
    );
    let bad_type = event_error(
        engine
            .append_events("order-1", ExpectedVersion::Any, vec![unnamed("")])
            .await,
    );
    assert!(
        matches!(bad_type, EventStoreError::Invalid { ref field, .. } if field == "events[0].type"),
        "{bad_type:?}"
    );
    for stream in ["", "$ce-order", "a\u{0}b"] {
        let refused = event_error(
            engine
                .append_events(stream, ExpectedVersion::Any, vec![unnamed("Placed")])
                .await,
        );
        assert!(
            matches!(refused, EventStoreError::Invalid { .. }),
            "{stream:?}: {refused:?}"
        );
    }
    assert_eq!(engine.events_end(), 0);
    let at_most: Vec<NewEvent> = (0..1_000).map(|_| unnamed("Placed")).collect();
    let appended = append(&engine, "order-1", ExpectedVersion::NoStream, at_most).await;
    assert_eq!((appended.version, appended.position), (999, 999));
}
