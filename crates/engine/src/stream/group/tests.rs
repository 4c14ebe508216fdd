//! The group state machine: each strategy's known assignments, the protocol's replies and
//! refusals, and, by property test, its invariants under random sequences of calls checked
//! against a plain model of who is in the group.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const T0: u64 = 1_700_000_000_000;
const SESSION: u64 = SESSION_TIMEOUT_MS_DEFAULT;

/// Checks the expiry index and the assignment against the members.
fn check_invariants(group: &Group) {
    let expected: BTreeSet<(u64, String)> = (group.members.iter())
        .map(|(member_id, member)| (member.expires_at(), member_id.clone()))
        .collect();
    assert_eq!(expected, group.expiries, "expiry index is exact");
    for member in group.members.values() {
        assert!(member.assignment.is_sorted(), "assignment ascending");
        assert!(member.assignment.iter().all(|&p| p < group.partitions));
    }
    if group.members.is_empty() {
        assert_eq!(group.owner_of(0), None);
        return;
    }
    group.rebalance_check();
    for partition in 0..group.partitions {
        let owner = group.owner_of(partition).expect("every partition owned");
        assert!(group.assignment_of(owner).unwrap().contains(&partition));
    }
}

/// Every partition's owner, by partition.
fn owners(group: &Group) -> BTreeMap<u32, String> {
    (0..group.partitions())
        .filter_map(|p| group.owner_of(p).map(|owner| (p, owner.to_owned())))
        .collect()
}

fn group_with(strategy: AssignmentStrategy, partitions: u32, members: &[&str]) -> Group {
    let mut group = Group::new(strategy, partitions);
    for member_id in members {
        group.join(member_id, SESSION, T0).unwrap();
    }
    group
}

fn assignments(group: &Group) -> Vec<Vec<u32>> {
    group.members().into_iter().map(|m| m.assignment).collect()
}

#[test]
fn range_gives_contiguous_ranges_and_the_first_members_one_more() {
    let group = group_with(AssignmentStrategy::Range, 7, &["c", "a", "b"]);
    assert_eq!(
        assignments(&group),
        vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]
    );
    assert_eq!(group.assignment_of("a"), Some(&[0, 1, 2][..]));
    assert_eq!(group.owner_of(4), Some("b"));
    assert_eq!(group.owner_of(7), None);
}

#[test]
fn round_robin_deals_partition_i_to_member_i_modulo_members() {
    let group = group_with(AssignmentStrategy::RoundRobin, 7, &["a", "b", "c"]);
    assert_eq!(
        assignments(&group),
        vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]
    );
}

#[test]
fn sticky_from_nothing_deals_ranges_like_range() {
    let assigned = AssignmentStrategy::Sticky.assign(7, &[vec![], vec![], vec![]]);
    assert_eq!(assigned, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
}

#[test]
fn sticky_join_takes_only_the_surplus_for_the_newcomer() {
    let previous = vec![vec![0, 1, 2], vec![3, 4], vec![5, 6], vec![]];
    let assigned = AssignmentStrategy::Sticky.assign(7, &previous);
    assert_eq!(assigned, vec![vec![0, 1], vec![3, 4], vec![5, 6], vec![2]]);
}

#[test]
fn sticky_leave_moves_only_the_leavers_partitions() {
    let mut group = group_with(AssignmentStrategy::Range, 8, &["a", "b", "c", "d"]);
    group.set_strategy(AssignmentStrategy::Sticky);
    assert_eq!(
        assignments(&group),
        vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]],
        "a balanced assignment stays as it is"
    );
    group.leave("b").unwrap();
    assert_eq!(
        assignments(&group),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]
    );
}

#[test]
fn sticky_keeps_old_owners_where_range_shifts_them() {
    let mut range = group_with(AssignmentStrategy::Range, 6, &["b", "c"]);
    let mut sticky = group_with(AssignmentStrategy::Sticky, 6, &["b", "c"]);
    range.join("a", SESSION, T0).unwrap();
    sticky.join("a", SESSION, T0).unwrap();
    // Range: "a" sorts first and takes 0..2, which shifts 3 to "b": half the partitions move,
    // one of them between old members.
    assert_eq!(
        assignments(&range),
        vec![vec![0, 1], vec![2, 3], vec![4, 5]]
    );
    // Sticky: "b" had 0..3 and "c" 3..6; each gives up one.
    assert_eq!(
        assignments(&sticky),
        vec![vec![2, 5], vec![0, 1], vec![3, 4]]
    );
}

#[test]
fn sticky_ignores_previous_claims_out_of_range_or_twice() {
    // 9 does not exist and 1 is the first member's: the second held only 2, and keeps it.
    let previous = vec![vec![0, 1, 9], vec![1, 2], vec![]];
    let assigned = AssignmentStrategy::Sticky.assign(3, &previous);
    assert_eq!(assigned, vec![vec![0], vec![2], vec![1]]);
}

#[test]
fn members_beyond_the_partition_count_get_nothing() {
    for strategy in [
        AssignmentStrategy::Range,
        AssignmentStrategy::RoundRobin,
        AssignmentStrategy::Sticky,
    ] {
        let group = group_with(strategy, 2, &["a", "b", "c"]);
        assert_eq!(
            assignments(&group),
            vec![vec![0], vec![1], vec![]],
            "{strategy}"
        );
        let view = group_with(strategy, 0, &["a"])
            .join("a", SESSION, T0)
            .unwrap();
        assert!(view.assignment.is_empty());
    }
}

#[test]
fn the_generation_is_0_before_anyone_joins_and_1_after_the_first_join() {
    let mut group = Group::new(AssignmentStrategy::Range, 3);
    assert_eq!(group.generation(), 0);
    assert!(group.is_empty());
    assert_eq!(group.next_expiry(), None);
    let view = group.join("a", SESSION, T0).unwrap();
    assert_eq!(
        view,
        MemberView {
            member_id: "a".into(),
            generation: 1,
            assignment: vec![0, 1, 2],
            members: 1,
        }
    );
    assert_eq!(group.generation(), 1);
}

#[test]
fn a_repeated_join_refreshes_the_session_without_a_rebalance() {
    let mut group = group_with(AssignmentStrategy::Range, 4, &["a", "b"]);
    let view = group.join("a", 20_000, T0 + 5_000).unwrap();
    assert_eq!((view.generation, view.members), (2, 2));
    assert_eq!(view.assignment, vec![0, 1]);
    let info = &group.members()[0];
    assert_eq!(
        (info.last_heartbeat, info.session_timeout_ms),
        (T0 + 5_000, 20_000)
    );
    assert_eq!(
        group.next_expiry(),
        Some(T0 + SESSION),
        "b's session is first"
    );
    check_invariants(&group);
}

#[test]
fn join_refuses_a_session_timeout_out_of_range() {
    let mut group = Group::new(AssignmentStrategy::Range, 1);
    for given in [0, SESSION_TIMEOUT_MS_MIN - 1, SESSION_TIMEOUT_MS_MAX + 1] {
        assert_eq!(
            group.join("a", given, T0),
            Err(GroupError::SessionTimeoutOutOfRange {
                given,
                min: SESSION_TIMEOUT_MS_MIN,
                max: SESSION_TIMEOUT_MS_MAX,
            })
        );
    }
    assert!(group.is_empty());
    assert_eq!(group.generation(), 0);
    group.join("a", SESSION_TIMEOUT_MS_MIN, T0).unwrap();
    group.join("b", SESSION_TIMEOUT_MS_MAX, T0).unwrap();
}

#[test]
fn join_refuses_a_member_past_the_limit_but_admits_a_known_one() {
    let mut group = Group::new(AssignmentStrategy::Sticky, 10);
    for index in 0..MEMBERS_MAX {
        group.join(&format!("m{index:04}"), SESSION, T0).unwrap();
    }
    let generation = group.generation();
    assert_eq!(
        group.join("late", SESSION, T0),
        Err(GroupError::TooManyMembers { max: MEMBERS_MAX })
    );
    assert!(group.join("m0000", SESSION, T0 + 1).is_ok());
    assert_eq!((group.len(), group.generation()), (MEMBERS_MAX, generation));
    check_invariants(&group);
}

#[test]
fn a_heartbeat_with_an_old_generation_returns_the_new_assignment() {
    let mut group = group_with(AssignmentStrategy::Range, 4, &["a"]);
    assert_eq!(group.assignment_of("a"), Some(&[0, 1, 2, 3][..]));
    group.join("b", SESSION, T0 + 100).unwrap();
    let view = group.heartbeat("a", 1, T0 + 200).unwrap();
    assert_eq!(
        view,
        MemberView {
            member_id: "a".into(),
            generation: 2,
            assignment: vec![0, 1],
            members: 2,
        }
    );
    assert_eq!(group.generation(), 2, "a heartbeat does not rebalance");
    assert_eq!(group.members()[0].last_heartbeat, T0 + 200);
    assert_eq!(group.next_expiry(), Some(T0 + 100 + SESSION));
}

#[test]
fn a_heartbeat_or_leave_from_an_unknown_member_is_refused() {
    let mut group = group_with(AssignmentStrategy::Range, 4, &["a"]);
    let unknown = GroupError::UnknownMember {
        member_id: "x".into(),
    };
    assert_eq!(group.heartbeat("x", 1, T0), Err(unknown.clone()));
    assert_eq!(group.leave("x"), Err(unknown));
    assert_eq!(group.generation(), 1);
}

#[test]
fn leave_rebalances_and_the_last_leave_empties_the_group() {
    let mut group = group_with(AssignmentStrategy::Range, 4, &["a", "b"]);
    group.leave("a").unwrap();
    assert_eq!(group.generation(), 3);
    assert_eq!(group.assignment_of("b"), Some(&[0, 1, 2, 3][..]));
    assert_eq!(group.assignment_of("a"), None);
    group.leave("b").unwrap();
    assert_eq!(group.generation(), 4);
    assert!(group.is_empty());
    assert_eq!(group.next_expiry(), None);
    let view = group.join("a", SESSION, T0).unwrap();
    assert_eq!(view.generation, 5, "the generation never goes back");
}

#[test]
fn expire_removes_exactly_the_silent_members_and_reassigns_their_partitions() {
    let mut group = group_with(AssignmentStrategy::Sticky, 6, &["a", "b", "c"]);
    assert_eq!(group.next_expiry(), Some(T0 + SESSION));
    group.heartbeat("a", 3, T0 + 4_000).unwrap();
    group.heartbeat("c", 3, T0 + 6_000).unwrap();
    assert_eq!(group.next_expiry(), Some(T0 + SESSION), "b is silent");
    assert!(group.expire(T0 + SESSION - 1).is_empty());
    assert_eq!(group.generation(), 3, "nothing expired, nothing changed");
    assert_eq!(group.expire(T0 + SESSION), vec!["b".to_owned()]);
    assert_eq!(group.generation(), 4);
    // Before: a [0, 1], b [3, 4], c [2, 5]; b's two are shared out, nothing else moves.
    assert_eq!(group.assignment_of("a"), Some(&[0, 1, 3][..]));
    assert_eq!(group.assignment_of("c"), Some(&[2, 4, 5][..]));
    assert_eq!(group.next_expiry(), Some(T0 + 4_000 + SESSION));
    check_invariants(&group);
}

#[test]
fn expire_removes_several_members_in_one_rebalance() {
    let mut group = group_with(AssignmentStrategy::Range, 3, &["a", "b", "c"]);
    group.heartbeat("b", 3, T0 + 1_000).unwrap();
    let expired = group.expire(T0 + SESSION);
    assert_eq!(expired, vec!["a".to_owned(), "c".to_owned()]);
    assert_eq!(group.generation(), 4, "one generation for both");
    assert_eq!(group.expire(T0 + 1_000 + SESSION), vec!["b".to_owned()]);
    assert_eq!(group.generation(), 5);
    assert!(group.is_empty());
}

#[test]
fn a_commit_needs_the_current_generation_and_an_owned_partition() {
    let mut group = group_with(AssignmentStrategy::Range, 4, &["a"]);
    assert_eq!(group.check_commit("a", 1, 3), Ok(()));
    group.join("b", SESSION, T0).unwrap();
    assert_eq!(
        group.check_commit("a", 1, 0),
        Err(GroupError::StaleGeneration {
            current: 2,
            given: 1
        })
    );
    assert_eq!(
        group.check_generation("a", 3),
        Err(GroupError::StaleGeneration {
            current: 2,
            given: 3
        })
    );
    assert_eq!(group.check_commit("a", 2, 1), Ok(()));
    assert_eq!(group.check_generation("b", 2), Ok(()));
    for partition in [2, 4] {
        assert_eq!(
            group.check_commit("a", 2, partition),
            Err(GroupError::NotAssigned {
                partition,
                member_id: "a".into()
            })
        );
    }
    group.leave("b").unwrap();
    assert_eq!(
        group.check_commit("b", 3, 2),
        Err(GroupError::UnknownMember {
            member_id: "b".into()
        })
    );
}

#[test]
fn partitions_only_grow_and_growth_rebalances_a_non_empty_group() {
    let mut group = Group::new(AssignmentStrategy::Range, 2);
    group.set_partitions(4);
    assert_eq!((group.partitions(), group.generation()), (4, 0));
    group.join("a", SESSION, T0).unwrap();
    group.join("b", SESSION, T0).unwrap();
    group.set_partitions(3);
    group.set_partitions(4);
    assert_eq!((group.partitions(), group.generation()), (4, 2));
    group.set_partitions(5);
    assert_eq!(group.generation(), 3);
    assert_eq!(assignments(&group), vec![vec![0, 1, 2], vec![3, 4]]);
}

#[test]
fn a_strategy_change_rebalances_with_the_new_strategy() {
    let mut group = group_with(AssignmentStrategy::Range, 4, &["a", "b"]);
    group.set_strategy(AssignmentStrategy::Range);
    assert_eq!(group.generation(), 2);
    group.set_strategy(AssignmentStrategy::RoundRobin);
    assert_eq!(group.generation(), 3);
    assert_eq!(group.strategy(), AssignmentStrategy::RoundRobin);
    assert_eq!(assignments(&group), vec![vec![0, 2], vec![1, 3]]);
}

#[test]
fn members_lists_every_member_by_id() {
    let mut group = group_with(AssignmentStrategy::Range, 3, &["b", "a"]);
    group.heartbeat("b", 2, T0 + 7).unwrap();
    assert_eq!(
        group.members(),
        vec![
            MemberInfo {
                member_id: "a".into(),
                assignment: vec![0, 1],
                last_heartbeat: T0,
                session_timeout_ms: SESSION,
            },
            MemberInfo {
                member_id: "b".into(),
                assignment: vec![2],
                last_heartbeat: T0 + 7,
                session_timeout_ms: SESSION,
            },
        ]
    );
}

#[test]
fn strategy_names_parse_print_and_serialize_alike() {
    assert_eq!(AssignmentStrategy::default(), AssignmentStrategy::Range);
    for (strategy, name) in [
        (AssignmentStrategy::Range, "range"),
        (AssignmentStrategy::RoundRobin, "round_robin"),
        (AssignmentStrategy::Sticky, "sticky"),
    ] {
        assert_eq!(strategy.to_string(), name);
        assert_eq!(name.parse::<AssignmentStrategy>(), Ok(strategy));
        let json = serde_json::to_string(&strategy).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        let back: AssignmentStrategy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, strategy);
    }
    assert_eq!(
        "roundrobin".parse::<AssignmentStrategy>(),
        Err(UnknownStrategy {
            given: "roundrobin".into()
        })
    );
}

/// One call on the group. Members are picked from a small pool of ids so calls often hit
/// present members.
#[derive(Debug, Clone)]
enum Op {
    Join { member: u8, session_timeout_ms: u64 },
    Heartbeat { member: u8, generations_behind: u64 },
    Leave { member: u8 },
    Advance { ms: u64 },
    Expire,
    SetPartitions { grow_by: u32 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let member = 0u8..8;
    prop_oneof![
        3 => (member.clone(), prop::sample::select(vec![1_000u64, 2_500, 10_000]))
            .prop_map(|(member, session_timeout_ms)| Op::Join { member, session_timeout_ms }),
        3 => (member.clone(), 0u64..3)
            .prop_map(|(member, generations_behind)| Op::Heartbeat { member, generations_behind }),
        1 => member.prop_map(|member| Op::Leave { member }),
        2 => (0u64..4_000).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Expire),
        1 => (0u32..3).prop_map(|grow_by| Op::SetPartitions { grow_by }),
    ]
}

fn any_strategy() -> impl Strategy<Value = AssignmentStrategy> {
    prop::sample::select(vec![
        AssignmentStrategy::Range,
        AssignmentStrategy::RoundRobin,
        AssignmentStrategy::Sticky,
    ])
}

/// The members as a plain map: id to (last heartbeat, session timeout).
type Model = BTreeMap<String, (u64, u64)>;

/// Runs `ops` on a group and on the model, checking after each step that they agree, that
/// the invariants hold, that the generation moved exactly when membership or the partition
/// count did, and (sticky groups only) that nothing moved that did not have to.
fn run(strategy: AssignmentStrategy, partitions: u32, ops: &[Op]) {
    let mut group = Group::new(strategy, partitions);
    let mut model = Model::new();
    let mut now = T0;
    for op in ops {
        let generation_before = group.generation();
        let owners_before = owners(&group);
        let changed = apply(&mut group, &mut model, &mut now, op);
        check_invariants(&group);
        let members: Vec<String> = group.members().into_iter().map(|m| m.member_id).collect();
        assert_eq!(members, model.keys().cloned().collect::<Vec<_>>());
        let expected = generation_before + u64::from(changed.is_some());
        assert_eq!(group.generation(), expected, "after {op:?}");
        if strategy == AssignmentStrategy::Sticky {
            if let Some(change) = changed {
                check_sticky(&owners_before, &owners(&group), &change);
            }
        }
    }
}

/// What a step changed, for the stickiness check.
#[derive(Debug)]
enum Change {
    Joined(String),
    Left(Vec<String>),
    Grew,
}

/// Applies `op` to both; returns what changed, if the generation should have moved.
fn apply(group: &mut Group, model: &mut Model, now: &mut u64, op: &Op) -> Option<Change> {
    match *op {
        Op::Join {
            member,
            session_timeout_ms,
        } => {
            let member_id = format!("m{member}");
            let view = group.join(&member_id, session_timeout_ms, *now).unwrap();
            let is_new = model
                .insert(member_id.clone(), (*now, session_timeout_ms))
                .is_none();
            assert_eq!(view.assignment, group.assignment_of(&member_id).unwrap());
            assert_eq!(
                (view.generation, view.members),
                (group.generation(), model.len())
            );
            is_new.then_some(Change::Joined(member_id))
        }
        Op::Heartbeat {
            member,
            generations_behind,
        } => {
            let member_id = format!("m{member}");
            let generation = group.generation().saturating_sub(generations_behind);
            let reply = group.heartbeat(&member_id, generation, *now);
            match model.get_mut(&member_id) {
                Some((last_heartbeat, _)) => {
                    *last_heartbeat = *now;
                    let view = reply.unwrap();
                    assert_eq!(view.generation, group.generation());
                    assert_eq!(view.assignment, group.assignment_of(&member_id).unwrap());
                    assert_eq!(group.check_generation(&member_id, view.generation), Ok(()));
                }
                None => assert_eq!(reply, Err(GroupError::UnknownMember { member_id })),
            }
            None
        }
        Op::Leave { member } => {
            let member_id = format!("m{member}");
            let reply = group.leave(&member_id);
            match model.remove(&member_id) {
                Some(_) => {
                    assert_eq!(reply, Ok(()));
                    Some(Change::Left(vec![member_id]))
                }
                None => {
                    assert_eq!(reply, Err(GroupError::UnknownMember { member_id }));
                    None
                }
            }
        }
        Op::Advance { ms } => {
            *now += ms;
            None
        }
        Op::Expire => apply_expire(group, model, *now),
        Op::SetPartitions { grow_by } => {
            group.set_partitions(group.partitions() + grow_by);
            (grow_by > 0 && !model.is_empty()).then_some(Change::Grew)
        }
    }
}

fn apply_expire(group: &mut Group, model: &mut Model, now: u64) -> Option<Change> {
    let due: Vec<String> = (model.iter())
        .filter(|(_, (last_heartbeat, timeout))| last_heartbeat + timeout <= now)
        .map(|(member_id, _)| member_id.clone())
        .collect();
    let mut expired = group.expire(now);
    expired.sort();
    assert_eq!(expired, due, "expiry removes exactly the silent members");
    for member_id in &due {
        model.remove(member_id);
    }
    let next = (model.values()).map(|(last_heartbeat, timeout)| last_heartbeat + timeout);
    assert_eq!(group.next_expiry(), next.min());
    (!due.is_empty()).then_some(Change::Left(due))
}

/// A sticky rebalance after a join moves partitions only to the newcomer; after a leave or
/// expiry only the leavers' partitions move; after growth no old partition moves.
fn check_sticky(before: &BTreeMap<u32, String>, after: &BTreeMap<u32, String>, change: &Change) {
    for (partition, owner_before) in before {
        // No owner after: the group emptied, which only leaving does.
        let owner_after = after.get(partition);
        if owner_after == Some(owner_before) {
            continue;
        }
        match change {
            Change::Joined(newcomer) => assert_eq!(
                owner_after,
                Some(newcomer),
                "partition {partition} moved between old members"
            ),
            Change::Left(leavers) => assert!(
                leavers.contains(owner_before),
                "partition {partition} of a remaining member moved"
            ),
            Change::Grew => panic!("partition {partition} moved when partitions grew"),
        }
    }
}

/// The most partitions any balanced assignment can leave with their previous owners, by
/// trying every choice of which members get the larger share (`held[i]` partitions held by
/// member `i`, no partition held twice).
fn most_kept_by_brute_force(partitions: u32, held: &[usize]) -> usize {
    let members = held.len();
    let (base, extra) = (partitions as usize / members, partitions as usize % members);
    (0u32..1 << members)
        .filter(|larger| larger.count_ones() as usize == extra)
        .map(|larger| {
            (held.iter().enumerate())
                .map(|(index, &count)| count.min(base + usize::from(larger >> index & 1 == 1)))
                .sum()
        })
        .max()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sticky_keeps_as_many_partitions_in_place_as_any_balanced_assignment(
        partitions in 0u32..24,
        members in 1usize..7,
        owner_picks in prop::collection::vec(0usize..10, 24),
    ) {
        // Each partition's previous owner, or none for picks past the member count (a
        // partition just added, or its owner gone).
        let mut previous = vec![Vec::new(); members];
        for (partition, &pick) in (0..partitions).zip(&owner_picks) {
            if pick < members {
                previous[pick].push(partition);
            }
        }
        let assigned = AssignmentStrategy::Sticky.assign(partitions, &previous);
        let kept: usize = (assigned.iter().zip(&previous))
            .map(|(now, before)| now.iter().filter(|p| before.contains(p)).count())
            .sum();
        let held: Vec<usize> = previous.iter().map(Vec::len).collect();
        prop_assert_eq!(kept, most_kept_by_brute_force(partitions, &held));
    }

    #[test]
    fn random_calls_keep_the_group_consistent(
        strategy in any_strategy(),
        partitions in 0u32..12,
        ops in prop::collection::vec(op_strategy(), 1..80),
    ) {
        run(strategy, partitions, &ops);
    }

    #[test]
    fn every_strategy_shares_every_partition_evenly(
        strategy in any_strategy(),
        partitions in 0u32..40,
        previous in prop::collection::vec(prop::collection::vec(0u32..45, 0..8), 1..10),
    ) {
        let assigned = strategy.assign(partitions, &previous);
        prop_assert_eq!(assigned.len(), previous.len());
        let mut all: Vec<u32> = assigned.iter().flatten().copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..partitions).collect::<Vec<_>>());
        let counts = assigned.iter().map(Vec::len);
        prop_assert!(counts.clone().max().unwrap() - counts.min().unwrap() <= 1);
        prop_assert!(assigned.iter().all(|a| a.is_sorted()));
        prop_assert_eq!(&strategy.assign(partitions, &previous), &assigned, "deterministic");
    }
}
