//! Consumer groups through the engine: assignment, generations, session expiry on the manual
//! clock, start positions, lag and deleting a group.

use crate::*;
use std::collections::BTreeSet;
use wharf_engine::{
    broker::{GroupJoin, MemberState, OffsetReset},
    stream::group::{AssignmentStrategy, GroupError},
};

fn join(member: &str, session_timeout_ms: u64, reset: OffsetReset) -> GroupJoin {
    GroupJoin {
        member_id: Some(member.into()),
        session_timeout_ms: Some(session_timeout_ms),
        strategy: None,
        auto_offset_reset: reset,
    }
}

fn group_error<T: std::fmt::Debug>(result: Result<T, EngineError>) -> GroupError {
    match stream_error(result) {
        StreamError::Group { source, .. } => source,
        other => panic!("expected a group error, got {other:?}"),
    }
}

/// A stream of `count` partitions with `records` records in each.
async fn filled(engine: &Engine, count: u32, records: u64) {
    engine
        .put_stream("orders", partitions(count))
        .await
        .unwrap();
    for partition in 0..count {
        let batch = (0..records)
            .map(|i| to_partition(partition, &format!("{partition}-{i}")))
            .collect();
        produce(engine, "orders", batch).await;
    }
}

fn heartbeat(engine: &Engine, member: &str, generation: u64) -> MemberState {
    engine
        .heartbeat_group(
            "orders",
            "billing",
            member,
            generation,
            OffsetReset::Earliest,
        )
        .unwrap()
}

#[tokio::test]
async fn joined_members_share_every_partition_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 5, 1).await;
    let first = engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    assert_eq!(
        first.view.assignment,
        [0, 1, 2, 3, 4],
        "alone, a reads everything"
    );
    assert_eq!(first.view.generation, 1);
    let second = engine
        .join_group(
            "orders",
            "billing",
            join("b", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    assert_eq!(second.view.generation, 2);
    let first = heartbeat(&engine, "a", first.view.generation);
    assert_eq!(
        first.view.generation, 2,
        "a learns of the rebalance from its heartbeat"
    );
    let a: BTreeSet<u32> = first.view.assignment.iter().copied().collect();
    let b: BTreeSet<u32> = second.view.assignment.iter().copied().collect();
    assert!(a.is_disjoint(&b), "{a:?} {b:?}");
    let all: BTreeSet<u32> = a.union(&b).copied().collect();
    assert_eq!(all, (0..5).collect());
    assert!(a.len().abs_diff(b.len()) <= 1);
    // Positions are given for exactly the assigned partitions.
    let positioned: BTreeSet<u32> = first.positions.keys().copied().collect();
    assert_eq!(positioned, a);
    let info = engine.group_info("orders", "billing").unwrap();
    assert_eq!(info.generation, 2);
    for lag in &info.partitions {
        let owner = if a.contains(&lag.partition) { "a" } else { "b" };
        assert_eq!(lag.owner.as_deref(), Some(owner));
    }
}

#[tokio::test]
async fn a_commit_from_a_stale_generation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 2, 3).await;
    let a = engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    engine
        .join_group(
            "orders",
            "billing",
            join("b", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    let stale = engine
        .commit_offsets(
            "orders",
            "billing",
            Some(("a", a.view.generation)),
            &[(0, 1)],
        )
        .await;
    assert_eq!(
        group_error(stale),
        GroupError::StaleGeneration {
            current: 2,
            given: 1
        }
    );
    let a = heartbeat(&engine, "a", a.view.generation);
    let owned = a.view.assignment[0];
    engine
        .commit_offsets(
            "orders",
            "billing",
            Some(("a", a.view.generation)),
            &[(owned, 2)],
        )
        .await
        .unwrap();
    let other = 1 - owned;
    let not_owned = engine
        .commit_offsets(
            "orders",
            "billing",
            Some(("a", a.view.generation)),
            &[(other, 2)],
        )
        .await;
    assert!(matches!(
        group_error(not_owned),
        GroupError::NotAssigned { .. }
    ));
    let without_member = engine
        .commit_offsets("orders", "billing", None, &[(0, 1)])
        .await;
    assert!(matches!(
        stream_error(without_member),
        StreamError::MemberRequired { .. }
    ));
    let info = engine.group_info("orders", "billing").unwrap();
    let committed: Vec<Option<u64>> = info.partitions.iter().map(|p| p.committed).collect();
    let mut expected = vec![None, None];
    expected[owned as usize] = Some(2);
    assert_eq!(committed, expected, "only the accepted commit is stored");
}

#[tokio::test]
async fn a_silent_member_is_removed_after_its_session_and_its_partitions_move() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    filled(&engine, 4, 1).await;
    engine
        .join_group("orders", "billing", join("a", 5_000, OffsetReset::Earliest))
        .unwrap();
    let b = engine
        .join_group("orders", "billing", join("b", 5_000, OffsetReset::Earliest))
        .unwrap();
    assert_eq!(b.view.assignment.len(), 2);
    clock.advance(Duration::from_millis(3_000));
    let a = heartbeat(&engine, "a", 2);
    assert_eq!((a.view.members, a.view.assignment.len()), (2, 2));
    clock.advance(Duration::from_millis(1_999));
    let a = heartbeat(&engine, "a", 2);
    assert_eq!(a.view.members, 2, "b is silent for 4.999 s of its 5 s");
    clock.advance(Duration::from_millis(1));
    let a = heartbeat(&engine, "a", a.view.generation);
    assert_eq!(a.view.members, 1, "b's session ran out");
    assert_eq!(a.view.generation, 3);
    assert_eq!(a.view.assignment, [0, 1, 2, 3]);
    let info = engine.group_info("orders", "billing").unwrap();
    let members: Vec<&str> = info.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, ["a"]);
    assert!(info
        .partitions
        .iter()
        .all(|p| p.owner.as_deref() == Some("a")));
    let late = engine.heartbeat_group("orders", "billing", "b", 2, OffsetReset::Earliest);
    assert_eq!(
        group_error(late),
        GroupError::UnknownMember {
            member_id: "b".into()
        }
    );
}

#[tokio::test]
async fn the_housekeeping_removes_a_silent_member_without_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (engine, _store) = open(dir.path(), &clock).await;
    filled(&engine, 2, 1).await;
    engine
        .join_group("orders", "billing", join("a", 2_000, OffsetReset::Earliest))
        .unwrap();
    assert_eq!(engine.stream_info("orders").unwrap().groups, 1);
    clock.advance(Duration::from_millis(3_000));
    // The group has no commits, so once its only member is gone it is gone too.
    guard(async {
        while engine.stream_info("orders").unwrap().groups != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(engine.list_groups("orders").unwrap().is_empty());
}

#[tokio::test]
async fn join_positions_follow_committed_offsets_or_auto_offset_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 2, 5).await;
    // A group without members commits as a consumer managing its own partitions.
    engine
        .commit_offsets("orders", "billing", None, &[(0, 3)])
        .await
        .unwrap();
    let earliest = engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    assert_eq!(earliest.positions, [(0, 3), (1, 0)].into());
    let latest = engine
        .join_group("orders", "audit", join("z", 10_000, OffsetReset::Latest))
        .unwrap();
    assert_eq!(latest.positions, [(0, 5), (1, 5)].into());
    let error = stream_error(
        engine
            .commit_offsets("orders", "billing", None, &[(1, 6)])
            .await,
    );
    assert!(
        matches!(
            error,
            StreamError::OffsetOutOfRange {
                offset: 6,
                latest: 5,
                ..
            }
        ),
        "a commit past the end: {error:?}"
    );
}

#[tokio::test]
async fn group_info_reports_the_lag_of_each_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 3, 5).await;
    engine
        .commit_offsets("orders", "billing", None, &[(0, 2), (1, 5)])
        .await
        .unwrap();
    produce(&engine, "orders", vec![to_partition(1, "more")]).await;
    let info = engine.group_info("orders", "billing").unwrap();
    let lags: Vec<(Option<u64>, u64, Option<u64>)> = (info.partitions.iter())
        .map(|p| (p.committed, p.latest, p.lag))
        .collect();
    assert_eq!(
        lags,
        [
            (Some(2), 5, Some(3)),
            (Some(5), 6, Some(1)),
            (None, 5, None)
        ]
    );
    assert_eq!(info.lag, 4);
    assert!(info.members.is_empty());
    let groups = engine.list_groups("orders").unwrap();
    assert_eq!(groups, [info]);
}

#[tokio::test]
async fn delete_group_is_refused_while_it_has_members_and_works_without() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 1, 3).await;
    let a = engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    engine
        .commit_offsets(
            "orders",
            "billing",
            Some(("a", a.view.generation)),
            &[(0, 2)],
        )
        .await
        .unwrap();
    let refused = engine.delete_group("orders", "billing").await;
    assert_eq!(group_error(refused), GroupError::HasMembers { members: 1 });
    assert_eq!(
        engine.group_info("orders", "billing").unwrap().partitions[0].committed,
        Some(2)
    );
    engine.leave_group("orders", "billing", "a").unwrap();
    engine.delete_group("orders", "billing").await.unwrap();
    assert_eq!(
        group_error(engine.group_info("orders", "billing")),
        GroupError::NotFound
    );
    assert_eq!(
        group_error(engine.delete_group("orders", "billing").await),
        GroupError::NotFound
    );
    // Joining again starts from the reset position: the commit is gone.
    let again = engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    assert_eq!(again.positions, [(0, 0)].into());
}

#[tokio::test]
async fn a_grown_stream_shares_its_new_partitions_among_the_members() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 2, 1).await;
    let a = engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    let b = engine
        .join_group(
            "orders",
            "billing",
            join("b", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    assert_eq!(b.view.generation, 2);
    engine.put_stream("orders", partitions(4)).await.unwrap();
    let a = heartbeat(&engine, "a", a.view.generation);
    let b = heartbeat(&engine, "b", b.view.generation);
    assert_eq!((a.view.generation, b.view.generation), (3, 3));
    let mut all: Vec<u32> = a.view.assignment.clone();
    all.extend(&b.view.assignment);
    all.sort();
    assert_eq!(all, [0, 1, 2, 3]);
    // Nothing committed, so an earliest reset starts every partition, old or new, at 0.
    let positions: Vec<(u32, u64)> = (a.positions.iter().chain(&b.positions))
        .map(|(partition, position)| (*partition, *position))
        .collect();
    assert_eq!(positions.len(), 4);
    assert!(
        positions.iter().all(|(_, position)| *position == 0),
        "{positions:?}"
    );
}

#[tokio::test]
async fn a_session_timeout_outside_its_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 1, 1).await;
    for timeout in [999, 300_001] {
        let refused = engine.join_group(
            "orders",
            "billing",
            join("a", timeout, OffsetReset::Earliest),
        );
        assert_eq!(
            group_error(refused),
            GroupError::SessionTimeoutOutOfRange {
                given: timeout,
                min: 1_000,
                max: 300_000
            }
        );
    }
    let error = stream_error(engine.group_info("orders", "billing"));
    assert!(matches!(
        error,
        StreamError::Group {
            source: GroupError::NotFound,
            ..
        }
    ));
}

#[tokio::test]
async fn a_repeated_join_keeps_the_generation_and_a_leave_moves_partitions_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 3, 1).await;
    engine
        .join_group(
            "orders",
            "billing",
            join("a", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    let b = engine
        .join_group(
            "orders",
            "billing",
            join("b", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    let again = engine
        .join_group(
            "orders",
            "billing",
            join("b", 10_000, OffsetReset::Earliest),
        )
        .unwrap();
    assert_eq!(again.view, b.view, "a retried join does not rebalance");
    engine.leave_group("orders", "billing", "b").unwrap();
    let a = heartbeat(&engine, "a", b.view.generation);
    assert_eq!(a.view.assignment, [0, 1, 2]);
    assert_eq!(a.view.generation, b.view.generation + 1);
    let gone = engine
        .commit_offsets(
            "orders",
            "billing",
            Some(("b", a.view.generation)),
            &[(0, 1)],
        )
        .await;
    assert_eq!(
        group_error(gone),
        GroupError::UnknownMember {
            member_id: "b".into()
        }
    );
}

#[tokio::test]
async fn the_first_members_strategy_holds_while_the_group_has_members() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store) = open(dir.path(), &ManualClock::new(START)).await;
    filled(&engine, 4, 1).await;
    let with = |member: &str, strategy| GroupJoin {
        strategy: Some(strategy),
        ..join(member, 10_000, OffsetReset::Earliest)
    };
    engine
        .join_group(
            "orders",
            "billing",
            with("a", AssignmentStrategy::RoundRobin),
        )
        .unwrap();
    let b = engine
        .join_group("orders", "billing", with("b", AssignmentStrategy::Range))
        .unwrap();
    let a = heartbeat(&engine, "a", b.view.generation);
    assert_eq!(a.view.assignment, [0, 2], "round robin, a's choice");
    assert_eq!(b.view.assignment, [1, 3]);
}

/// Enough commits that the shared log of committed offsets compacts itself (it does past
/// 4,096 records), then a restart and a crash: each group's newest commit is what comes back,
/// and a deleted group stays deleted.
#[tokio::test]
async fn committed_offsets_survive_the_logs_compaction_and_restarts() {
    use wharf_storage::MemoryStore;
    const COMMITS: u64 = 5_000;
    let store = MemoryStore::new();
    let clock = ManualClock::new(START);
    let open_memory = || async {
        Engine::open(
            Arc::new(store.clone()),
            clock.clone(),
            EngineConfig::default(),
        )
        .await
        .unwrap()
    };
    let engine = open_memory().await;
    filled(&engine, 2, 10).await;
    for number in 0..COMMITS {
        let offsets = [(0, number % 11), (1, (number * 7) % 11)];
        let group = if number % 2 == 0 { "even" } else { "odd" };
        guard(engine.commit_offsets("orders", group, None, &offsets))
            .await
            .unwrap();
    }
    guard(engine.commit_offsets("orders", "doomed", None, &[(0, 4)]))
        .await
        .unwrap();
    guard(engine.delete_group("orders", "doomed"))
        .await
        .unwrap();
    let committed = |engine: &Engine, group: &str| -> Vec<Option<u64>> {
        let info = engine.group_info("orders", group).unwrap();
        info.partitions.iter().map(|p| p.committed).collect()
    };
    // The last even commit is number 4,998, the last odd 4,999.
    let even = vec![Some(4_998 % 11), Some((4_998 * 7) % 11)];
    let odd = vec![Some(4_999 % 11), Some((4_999 * 7) % 11)];
    assert_eq!(committed(&engine, "even"), even);
    assert_eq!(committed(&engine, "odd"), odd);

    store.reopen();
    drop(engine);
    let engine = open_memory().await;
    assert_eq!(committed(&engine, "even"), even);
    assert_eq!(committed(&engine, "odd"), odd);
    assert!(group_error(engine.group_info("orders", "doomed")) == GroupError::NotFound);

    guard(engine.commit_offsets("orders", "even", None, &[(1, 10)]))
        .await
        .unwrap();
    store.crash();
    drop(engine);
    let engine = open_memory().await;
    assert_eq!(committed(&engine, "even"), [even[0], Some(10)]);
    assert_eq!(committed(&engine, "odd"), odd);
    let names: Vec<String> = (engine.list_groups("orders").unwrap())
        .into_iter()
        .map(|group| group.name)
        .collect();
    assert_eq!(names, ["even", "odd"]);
}
