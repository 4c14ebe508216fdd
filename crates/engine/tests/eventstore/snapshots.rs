//! Snapshots: saved at a version the stream has, the newest loaded back, refused ahead of the
//! stream, and no longer the stream's once the events they sum up are deleted.

use crate::*;

#[tokio::test]
async fn the_newest_snapshot_loads_and_one_ahead_of_the_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    let events = (0..3).map(|n| event(n, "Added")).collect();
    append(&engine, "basket-1", ExpectedVersion::NoStream, events).await;

    let missing = event_error(engine.load_snapshot("basket-1").await);
    assert!(
        matches!(missing, EventStoreError::SnapshotNotFound { .. }),
        "{missing:?}"
    );
    let saved = guard(engine.save_snapshot("basket-1", 1, "{\"items\":2}".into()))
        .await
        .unwrap();
    assert_eq!((saved.version, saved.time_ms), (1, START));
    assert_eq!(
        guard(engine.load_snapshot("basket-1")).await.unwrap(),
        saved
    );

    clock.advance(Duration::from_millis(10));
    let newer = guard(engine.save_snapshot("basket-1", 2, "{\"items\":3}".into()))
        .await
        .unwrap();
    let loaded = guard(engine.load_snapshot("basket-1")).await.unwrap();
    assert_eq!(loaded, newer);
    assert_eq!(
        (loaded.version, &loaded.state[..], loaded.time_ms),
        (2, &b"{\"items\":3}"[..], START + 10)
    );

    let ahead = event_error(engine.save_snapshot("basket-1", 3, "{}".into()).await);
    assert!(
        matches!(
            ahead,
            EventStoreError::SnapshotAhead {
                version: 3,
                current: Some(2),
                ..
            }
        ),
        "{ahead:?}"
    );
    assert_eq!(
        guard(engine.load_snapshot("basket-1")).await.unwrap(),
        newer,
        "a refused save changes nothing"
    );

    // Other streams have their own snapshots, or none.
    append(
        &engine,
        "basket-2",
        ExpectedVersion::NoStream,
        vec![event(10, "Added")],
    )
    .await;
    let other = event_error(engine.load_snapshot("basket-2").await);
    assert!(
        matches!(other, EventStoreError::SnapshotNotFound { .. }),
        "{other:?}"
    );
    let never = event_error(engine.save_snapshot("basket-9", 0, "{}".into()).await);
    assert!(
        matches!(never, EventStoreError::StreamNotFound { .. }),
        "{never:?}"
    );
}

#[tokio::test]
async fn a_snapshot_is_not_found_once_its_events_are_soft_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let events = (0..3).map(|n| event(n, "Added")).collect();
    append(&engine, "basket-1", ExpectedVersion::NoStream, events).await;
    guard(engine.save_snapshot("basket-1", 2, "{\"items\":3}".into()))
        .await
        .unwrap();
    guard(engine.delete_event_stream("basket-1", false))
        .await
        .unwrap();
    let gone = event_error(engine.load_snapshot("basket-1").await);
    assert!(
        matches!(
            gone,
            EventStoreError::StreamNotFound { .. } | EventStoreError::SnapshotNotFound { .. }
        ),
        "{gone:?}"
    );

    // Recreated, the stream starts from nothing: the old snapshot is not its state.
    append(
        &engine,
        "basket-1",
        ExpectedVersion::NoStream,
        vec![event(3, "Added")],
    )
    .await;
    let stale = event_error(engine.load_snapshot("basket-1").await);
    assert!(
        matches!(stale, EventStoreError::SnapshotNotFound { .. }),
        "{stale:?}"
    );
    let fresh = guard(engine.save_snapshot("basket-1", 3, "{\"items\":1}".into()))
        .await
        .unwrap();
    assert_eq!(
        guard(engine.load_snapshot("basket-1")).await.unwrap(),
        fresh
    );
}

#[tokio::test]
async fn a_snapshot_of_soft_deleted_versions_is_refused_and_leaves_the_newest_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    let events = (0..3).map(|n| event(n, "Added")).collect();
    append(&engine, "basket-1", ExpectedVersion::NoStream, events).await;
    guard(engine.delete_event_stream("basket-1", false))
        .await
        .unwrap();
    append(
        &engine,
        "basket-1",
        ExpectedVersion::NoStream,
        vec![event(3, "Added")],
    )
    .await;
    let fresh = guard(engine.save_snapshot("basket-1", 3, "{\"items\":1}".into()))
        .await
        .unwrap();
    // Version 1 was written, but deleted: no state of the stream as it is now.
    let deleted = event_error(
        engine
            .save_snapshot("basket-1", 1, "{\"items\":2}".into())
            .await,
    );
    assert!(
        matches!(deleted, EventStoreError::Invalid { ref field, .. } if field == "version"),
        "{deleted:?}"
    );
    assert_eq!(
        guard(engine.load_snapshot("basket-1")).await.unwrap(),
        fresh
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_snapshots_leave_the_same_newest_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    let events = (0..64).map(|n| event(n, "Added")).collect();
    append(&engine, "basket-1", ExpectedVersion::NoStream, events).await;
    for round in 0..20u64 {
        let savers: Vec<_> = (0..8u64)
            .map(|saver| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let state = format!("{{\"round\":{round},\"saver\":{saver}}}");
                    engine
                        .save_snapshot("basket-1", saver * 8, state.into())
                        .await
                })
            })
            .collect();
        for saver in savers {
            guard(saver).await.unwrap().unwrap();
        }
    }
    let before = guard(engine.load_snapshot("basket-1")).await.unwrap();
    close(engine, store).await;
    let (engine, store) = open(dir.path(), &clock).await;
    let after = guard(engine.load_snapshot("basket-1")).await.unwrap();
    assert_eq!(before, after, "the newest snapshot is the last one stored");
    close(engine, store).await;
}
