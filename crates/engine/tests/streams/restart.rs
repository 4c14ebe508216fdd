//! What a stream keeps across a restart, and how its partition count may change.

use crate::*;
use wharf_engine::stream::Cleanup;
use wharf_model::record_batch::Compression;

#[tokio::test]
async fn records_partitions_options_and_committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    let options = StreamOptions {
        partitions: 3,
        retention_ms: Some(7 * 24 * 3_600_000),
        retention_bytes: Some(1 << 30),
        cleanup: Cleanup::Delete,
        compression: Compression::Lz4,
        tombstone_retention_ms: 60_000,
    };
    engine.put_stream("kept", options.clone()).await.unwrap();
    for partition in 0..3 {
        let records = (0..=partition)
            .map(|i| to_partition(partition, &format!("p{partition}-{i}")))
            .collect();
        produce(&engine, "kept", records).await;
    }
    guard(engine.commit_offsets("kept", "readers", None, &[(1, 1), (2, 3)]))
        .await
        .unwrap();
    let before = engine.stream_info("kept").unwrap();
    close(engine, store).await;

    let (engine, _store) = open(dir.path(), &clock).await;
    let after = engine.stream_info("kept").unwrap();
    assert_eq!(after.options, options);
    assert_eq!(after.partitions, before.partitions);
    for partition in 0..3u32 {
        let expected: Vec<String> = (0..=partition)
            .map(|i| format!("p{partition}-{i}"))
            .collect();
        assert_eq!(
            values(&fetch_all(&engine, "kept", partition, 100).await),
            expected
        );
    }
    let group = engine.group_info("kept", "readers").unwrap();
    let committed: Vec<Option<u64>> = group.partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, [None, Some(1), Some(3)]);
    let produced = produce(&engine, "kept", vec![to_partition(2, "p2-3")]).await;
    assert_eq!(produced[0].offset, 3, "producing continues at the end");
}

#[tokio::test]
async fn partitions_grow_and_never_shrink_and_the_growth_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, store) = open(dir.path(), &clock).await;
    assert!(engine.put_stream("growing", partitions(2)).await.unwrap());
    produce(&engine, "growing", vec![to_partition(1, "before")]).await;
    let created = engine.put_stream("growing", partitions(4)).await.unwrap();
    assert!(!created, "a change, not a creation");
    let info = engine.stream_info("growing").unwrap();
    assert_eq!(info.options.partitions, 4);
    assert_eq!(info.partitions.len(), 4);
    assert_eq!(
        info.partitions[1].latest, 1,
        "old partitions keep their records"
    );
    let produced = produce(&engine, "growing", vec![to_partition(3, "new partition")]).await;
    assert_eq!((produced[0].partition, produced[0].offset), (3, 0));

    let error = stream_error(engine.put_stream("growing", partitions(3)).await);
    assert!(
        matches!(
            error,
            StreamError::PartitionsShrink {
                current: 4,
                requested: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(engine.stream_info("growing").unwrap().partitions.len(), 4);
    close(engine, store).await;

    let (engine, _store) = open(dir.path(), &clock).await;
    let info = engine.stream_info("growing").unwrap();
    assert_eq!(info.partitions.len(), 4);
    assert_eq!(
        values(&fetch_all(&engine, "growing", 1, 10).await),
        ["before"]
    );
    assert_eq!(
        values(&fetch_all(&engine, "growing", 3, 10).await),
        ["new partition"]
    );
}
