//! Batches of appends to several streams: each append on its own (its own expected version,
//! refused alone), those to one stream in the order given, and a bad one refusing the whole
//! batch before anything is written.

use crate::*;
use wharf_engine::{broker::eventstore::StreamAppend, eventstore::APPEND_BATCH_MAX};

fn to(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend {
        stream: stream.to_string(),
        expected,
        events,
    }
}

/// The field of the invalid-field refusal of `result`, or a panic naming what came instead.
fn invalid_field<T: std::fmt::Debug>(result: Result<T, EngineError>) -> String {
    match event_error(result) {
        EventStoreError::Invalid { field, .. } => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[tokio::test]
async fn each_append_of_a_batch_stands_alone_and_one_stream_s_go_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    append(
        &engine,
        "cart-9",
        ExpectedVersion::NoStream,
        vec![unnamed("Opened")],
    )
    .await;

    let outcomes = guard(engine.append_events_batch(&[
        to(
            "order-1",
            ExpectedVersion::NoStream,
            vec![event(1, "Placed")],
        ),
        to(
            "order-2",
            ExpectedVersion::NoStream,
            vec![event(2, "Placed")],
        ),
        to(
            "order-1",
            ExpectedVersion::Exact(0),
            vec![event(3, "Paid"), event(4, "Shipped")],
        ),
        to("cart-9", ExpectedVersion::Exact(5), vec![unnamed("Added")]),
        to(
            "order-1",
            ExpectedVersion::Exact(0),
            vec![unnamed("Cancelled")],
        ),
        to(
            "order-1",
            ExpectedVersion::Exact(2),
            vec![event(5, "Closed")],
        ),
    ]))
    .await
    .expect("a valid batch is answered append by append");
    assert_eq!(outcomes.len(), 6);
    let appended: Vec<Option<(u64, u64, bool)>> = (outcomes.iter())
        .map(|outcome| {
            outcome
                .as_ref()
                .ok()
                .map(|a| (a.first_version, a.version, a.created))
        })
        .collect();
    assert_eq!(
        appended,
        vec![
            Some((0, 0, true)),
            Some((0, 0, true)),
            Some((1, 2, false)),
            None,
            None,
            Some((3, 3, false)),
        ],
        "order-1's appends apply in the order sent, each against what the one before left"
    );
    let mut outcomes = outcomes.into_iter();
    let refused = outcomes.nth(3).expect("the fourth outcome");
    assert_eq!(
        refused_at(refused),
        Some(0),
        "cart-9 is refused alone, at its version"
    );
    assert_eq!(refused_at(outcomes.next().expect("the fifth")), Some(2));

    let order = read_stream(&engine, "order-1", 100).await;
    assert_eq!(versions(&order), vec![0, 1, 2, 3]);
    assert_eq!(ids(&order), vec![uuid(1), uuid(3), uuid(4), uuid(5)]);
    assert!(positions(&order).windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(read_stream(&engine, "cart-9", 100).await.len(), 1);
    assert_eq!(read_stream(&engine, "order-2", 100).await.len(), 1);

    // The appends with ids again: each is a retry answered as the first was, storing nothing.
    let again = guard(engine.append_events_batch(&[
        to(
            "order-2",
            ExpectedVersion::NoStream,
            vec![event(2, "Placed")],
        ),
        to(
            "order-1",
            ExpectedVersion::Exact(0),
            vec![event(3, "Paid"), event(4, "Shipped")],
        ),
    ]))
    .await
    .unwrap();
    let again: Vec<(u64, u64)> = (again.into_iter())
        .map(|outcome| outcome.map(|a| (a.first_version, a.version)).unwrap())
        .collect();
    assert_eq!(again, vec![(0, 0), (1, 2)]);
    assert_eq!(read_stream(&engine, "order-1", 100).await.len(), 4);
}

#[tokio::test]
async fn a_bad_append_refuses_the_whole_batch_naming_it_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let good = || to("order-1", ExpectedVersion::Any, vec![unnamed("Placed")]);
    let cases = [
        (
            vec![
                good(),
                to("order-2", ExpectedVersion::Any, vec![unnamed("")]),
            ],
            "appends[1].events[0].type",
        ),
        (
            vec![to("order-2", ExpectedVersion::Any, vec![]), good()],
            "appends[0].events",
        ),
        (
            vec![
                good(),
                to("$ce-order", ExpectedVersion::Any, vec![unnamed("X")]),
            ],
            "appends[1].stream",
        ),
        (
            vec![good(), to("a/b", ExpectedVersion::Any, vec![unnamed("X")])],
            "appends[1].stream",
        ),
        (vec![], "appends"),
        ((0..=APPEND_BATCH_MAX).map(|_| good()).collect(), "appends"),
    ];
    for (batch, field) in cases {
        let refused = guard(engine.append_events_batch(&batch)).await;
        assert_eq!(invalid_field(refused), field);
    }
    let mut bad_id = unnamed("Placed");
    bad_id.id = Some("not-a-uuid".into());
    let refused = guard(engine.append_events_batch(&[
        good(),
        good(),
        to("x", ExpectedVersion::Any, vec![bad_id]),
    ]))
    .await;
    assert_eq!(invalid_field(refused), "appends[2].events[0].id");
    let missing =
        guard(engine.read_event_stream("order-1", None, ReadDirection::Forward, 10)).await;
    assert!(
        matches!(event_error(missing), EventStoreError::StreamNotFound { .. }),
        "no append of a refused batch was written"
    );
    assert_eq!(engine.event_store_counts(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_on_shared_streams_lose_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    const STREAMS: usize = 8;
    const ROUNDS: usize = 25;
    // Four writers, each appending `any` to every stream once per batch.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let batch: Vec<_> = (0..STREAMS)
                        .map(|s| to(&format!("s-{s}"), ExpectedVersion::Any, vec![unnamed("E")]))
                        .collect();
                    let outcomes = guard(engine.append_events_batch(&batch)).await.unwrap();
                    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for s in 0..STREAMS {
        let events = read_stream(&engine, &format!("s-{s}"), 1000).await;
        assert_eq!(
            versions(&events),
            (0..(4 * ROUNDS) as u64).collect::<Vec<_>>()
        );
    }
}
