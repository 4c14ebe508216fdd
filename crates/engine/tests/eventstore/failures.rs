//! Appends the disk refuses (full, or failing syncs): the append fails, nothing of it is
//! readable, the next append takes its version, and a restart finds the same store.

use crate::*;
use wharf_storage::{Faults, StoreConfig};

async fn open_with_faults(
    dir: &Path,
    clock: &Arc<ManualClock>,
    faults: &Arc<Faults>,
) -> (Engine, Arc<Store>) {
    let config = StoreConfig {
        faults: Some(faults.clone()),
        reserve_bytes: 0,
        ..StoreConfig::default()
    };
    let store = guard(async {
        loop {
            match Store::open(dir, config.clone()) {
                Ok(store) => break Arc::new(store),
                Err(wharf_storage::StorageError::Locked { .. }) => tokio::task::yield_now().await,
                Err(error) => panic!("{error}"),
            }
        }
    })
    .await;
    let engine = Engine::open(store.clone(), clock.clone(), EngineConfig::default())
        .await
        .unwrap();
    (engine, store)
}

fn is_storage<T: std::fmt::Debug>(result: &Result<T, EngineError>) -> bool {
    matches!(result, Err(EngineError::Storage(_)))
}

#[tokio::test]
async fn a_refused_append_leaves_no_trace_and_the_next_takes_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let faults = Faults::new();
    let (engine, store) = open_with_faults(dir.path(), &clock, &faults).await;
    append(
        &engine,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(0, "Placed")],
    )
    .await;
    let mut stored = vec![uuid(0)];

    let full_disk = |on: bool| faults.set_space(if on { Some(0) } else { None });
    let failing_syncs = |on: bool| faults.set_fail_syncs(on);
    let faults_to_try: [&dyn Fn(bool); 2] = [&full_disk, &failing_syncs];
    for (round, fault) in faults_to_try.iter().enumerate() {
        let round = round as u64 + 1;
        let version = round - 1;
        let end = engine.events_end();
        fault(true);
        let refused = engine
            .append_events(
                "order-1",
                ExpectedVersion::Exact(version),
                vec![event(100 + round, "Lost")],
            )
            .await;
        assert!(is_storage(&refused), "round {round}: {refused:?}");
        let metadata = wharf_engine::eventstore::StreamMetadata::default();
        let refused = engine.set_event_stream_metadata("order-1", metadata).await;
        assert!(is_storage(&refused), "round {round}: {refused:?}");
        let refused = engine.delete_event_stream("order-1", false).await;
        assert!(is_storage(&refused), "round {round}: {refused:?}");
        fault(false);

        assert_eq!(engine.events_end(), end, "round {round}: $all did not move");
        assert_eq!(ids(&read_stream(&engine, "order-1", 10).await), stored);
        assert_eq!(
            ids(&read_all(&engine, &EventFilter::default(), 10).await),
            stored
        );
        let next = append(
            &engine,
            "order-1",
            ExpectedVersion::Exact(version),
            vec![event(round, "Kept")],
        )
        .await;
        assert_eq!(
            next.version, round,
            "round {round}: the refused append took no version"
        );
        stored.push(uuid(round));
        let all = read_all(&engine, &EventFilter::default(), 10).await;
        assert_eq!(ids(&all), stored, "round {round}");
        assert_eq!(positions(&all).last(), Some(&next.position));
    }
    close(engine, store).await;

    let (engine, store) = open_with_faults(dir.path(), &clock, &faults).await;
    let events = read_stream(&engine, "order-1", 10).await;
    assert_eq!(ids(&events), stored);
    assert_eq!(versions(&events), [0, 1, 2]);
    assert_eq!(
        ids(&read_all(&engine, &EventFilter::default(), 10).await),
        stored
    );
    close(engine, store).await;
}
