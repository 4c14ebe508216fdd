//! Many writers at once: optimistic concurrency on one stream, and a reader that catches up on
//! `$all` and then follows it live while writers append.

use crate::*;
use std::collections::BTreeSet;

const WRITERS: u64 = 16;
const APPENDS_PER_WRITER: u64 = 12;

/// One writer's loop: read the stream's version, append one event expecting it, and on a
/// refusal read again. Returns the appends that won.
async fn write_optimistically(engine: Engine, writer: u64) -> Vec<(u64, Appended)> {
    let mut won = Vec::new();
    let mut attempt = 0;
    while (won.len() as u64) < APPENDS_PER_WRITER {
        attempt += 1;
        assert!(attempt < 10_000, "writer {writer} starved");
        let read = engine
            .read_event_stream("account-1", None, ReadDirection::Backward, 1)
            .await;
        let expected = match read {
            Ok(read) => ExpectedVersion::Exact(read.current.expect("a live stream has events")),
            Err(EngineError::EventStore(EventStoreError::StreamNotFound { .. })) => {
                ExpectedVersion::NoStream
            }
            Err(error) => panic!("{error:?}"),
        };
        let n = writer * 1_000 + won.len() as u64;
        match engine
            .append_events("account-1", expected, vec![event(n, "Deposited")])
            .await
        {
            Ok(appended) => {
                let wanted = match expected {
                    ExpectedVersion::Exact(version) => version + 1,
                    _ => 0,
                };
                assert_eq!(
                    appended.version, wanted,
                    "an append lands right after {expected}"
                );
                won.push((n, appended));
            }
            Err(EngineError::EventStore(EventStoreError::WrongExpectedVersion {
                current, ..
            })) => {
                let stale = match expected {
                    ExpectedVersion::Exact(version) => Some(version),
                    _ => None,
                };
                assert!(
                    current > stale,
                    "refused only when someone else got there first"
                );
            }
            Err(error) => panic!("{error:?}"),
        }
    }
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_expected_versions_get_one_winner_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_optimistically(engine.clone(), writer)))
        .collect();
    let mut won = Vec::new();
    for writer in writers {
        won.extend(guard(writer).await.unwrap());
    }

    let total = WRITERS * APPENDS_PER_WRITER;
    assert_eq!(won.len() as u64, total);
    let mut by_version: Vec<(u64, u64, u64)> = (won.iter())
        .map(|(n, appended)| (appended.version, appended.position, *n))
        .collect();
    by_version.sort();
    let won_versions: Vec<u64> = by_version.iter().map(|w| w.0).collect();
    assert_eq!(
        won_versions,
        (0..total).collect::<Vec<_>>(),
        "exactly one winner per version, no gaps"
    );

    let events = read_stream(&engine, "account-1", 50).await;
    assert_eq!(
        events.len() as u64,
        total,
        "the stream holds the winners only"
    );
    assert_eq!(versions(&events), won_versions);
    assert!(
        positions(&events).windows(2).all(|w| w[0] < w[1]),
        "positions increase with versions"
    );
    for (event, (version, position, n)) in events.iter().zip(&by_version) {
        assert_eq!((event.version, event.position), (*version, *position));
        assert_eq!(
            event.id.to_string(),
            uuid(*n),
            "version {version} is its winner's event"
        );
    }
}

/// Appends by one writer: a few batches of 1 to 3 events to its own streams, with a metadata
/// change (a record of `$all` that is not an event) now and then. Returns the positions of
/// its events.
async fn write_batches(engine: Engine, writer: u64, batches: u64) -> Vec<u64> {
    let mut positions = Vec::new();
    for batch in 0..batches {
        let stream = format!("cart-{writer}-{}", batch % 3);
        let count = 1 + (writer + batch) % 3;
        let events = (0..count)
            .map(|i| event(writer * 100_000 + batch * 10 + i, "ItemAdded"))
            .collect();
        let appended = guard(engine.append_events(&stream, ExpectedVersion::Any, events))
            .await
            .unwrap();
        assert_eq!(appended.position - appended.first_position + 1, count);
        positions.extend(appended.first_position..=appended.position);
        if batch % 7 == 3 {
            let metadata = wharf_engine::eventstore::StreamMetadata::default();
            guard(engine.set_event_stream_metadata(&stream, metadata))
                .await
                .unwrap();
        }
        tokio::task::yield_now().await;
    }
    positions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_catches_up_then_follows_live_appends_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let mut written = BTreeSet::new();
    // Some history to catch up on before the live part.
    written.extend(write_batches(engine.clone(), 9, 20).await);
    let before = written.len();

    const BATCHES: u64 = 60;
    let expected_total = before
        + (0..4u64)
            .map(|writer| {
                (0..BATCHES)
                    .map(|batch| 1 + (writer + batch) % 3)
                    .sum::<u64>() as usize
            })
            .sum::<usize>();
    let (caught_up, reader_caught_up) = tokio::sync::oneshot::channel();
    let reader = {
        let engine = engine.clone();
        let mut caught_up = Some(caught_up);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut from = 0;
            while seen.len() < expected_total {
                let page = engine
                    .read_all_events(from, 7, &EventFilter::default())
                    .await
                    .unwrap();
                assert!(page.next >= from);
                seen.extend(page.events.iter().map(|e| e.position));
                if page.events.is_empty() {
                    if let Some(caught_up) = caught_up.take() {
                        caught_up.send(seen.len()).unwrap();
                    }
                    assert!(engine.wait_for_events(page.next).await, "not closing");
                }
                from = page.next;
            }
            (seen, from)
        })
    };
    // The writers start once the reader has read the history and waits at the end, so that
    // both the catch-up and the live path are taken.
    let history = guard(reader_caught_up).await.unwrap();
    assert_eq!(history, before, "catching up reads the whole history");
    let writers: Vec<_> = (0..4)
        .map(|writer| tokio::spawn(write_batches(engine.clone(), writer, BATCHES)))
        .collect();
    for writer in writers {
        written.extend(guard(writer).await.unwrap());
    }
    let (seen, from) = guard(reader).await.unwrap();

    assert_eq!(
        written.len(),
        expected_total,
        "writers' positions are distinct"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "the reader sees events once each, in position order"
    );
    assert_eq!(seen, written.iter().copied().collect::<Vec<_>>());
    let rest = engine
        .read_all_events(from, 100, &EventFilter::default())
        .await
        .unwrap();
    assert!(rest.events.is_empty(), "nothing after what the reader saw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_engine_releases_a_reader_waiting_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = open(dir.path(), &ManualClock::new(START)).await;
    append(
        &engine,
        "cart-1",
        ExpectedVersion::NoStream,
        vec![unnamed("Opened")],
    )
    .await;
    let end = engine.events_end();
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.wait_for_events(end).await })
    };
    // Waiting for a position already there returns at once.
    assert!(guard(engine.wait_for_events(end - 1)).await);
    close(engine, store).await;
    assert!(!guard(waiter).await.unwrap(), "told the engine is closing");
}
