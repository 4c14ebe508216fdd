//! A consumer group's membership state machine: members join, heartbeat and leave; the group
//! shares the stream's partitions among them and numbers every sharing with a generation.
//!
//! Pure: no I/O, no clock. Every call that needs the time takes `now` in milliseconds since
//! the Unix epoch, so tests move time by hand and the same calls give the same state.
//!
//! # Model
//!
//! Simpler than Kafka's two-phase rebalance (JoinGroup, API key 11, then SyncGroup, key 14,
//! with a leader member computing the plan in between): here the group itself computes the
//! assignment, at once, whenever membership or the partition count changes. No round trip
//! waits for every member to rejoin, so one slow member cannot hold up the others.
//!
//! - Any join of a new member, leave, expiry or partition-count change recomputes every
//!   member's assignment and bumps the generation by one. The generation is 0 before anyone
//!   joined and 1 after the first join; it never goes back, even when the group empties, so a
//!   member from an old generation can never pass for a current one.
//! - A member learns its new assignment from the reply to its own call (join, heartbeat) or,
//!   when another member caused the change, from its next heartbeat: a heartbeat carrying an
//!   older generation is not an error, its reply carries the current generation and
//!   assignment. Between the rebalance and that heartbeat two members may both read a
//!   partition (delivery is at least once, so that is allowed); commits close the gap: only
//!   the current owner's commit is accepted.
//! - Offset commits are checked with [`Group::check_commit`]: the member must be in the group,
//!   at the current generation, and own the partition in it. A member that missed a rebalance
//!   is refused with [`GroupError::StaleGeneration`] until it heartbeats; one that left or was
//!   expired gets [`GroupError::UnknownMember`] (as Kafka's `UNKNOWN_MEMBER_ID`), which tells
//!   it to join again rather than to heartbeat.
//! - A member whose last heartbeat is `session_timeout_ms` old is removed by
//!   [`Group::expire`], which the runtime calls at [`Group::next_expiry`]. A heartbeat that
//!   arrives late but before that call still counts: expiry happens only there, so the state
//!   never changes behind the runtime's back.
//!
//! Members are always ordered by id, so every strategy is a deterministic function of the
//! member ids, the partition count and (for [`AssignmentStrategy::Sticky`]) the previous
//! assignment.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Most members one group holds. Every rebalance costs O(members + partitions) and every
/// member must heartbeat to learn of it, so a group this large rebalances often and slowly;
/// past a thousand members it is far more likely that clients leak member ids (a fresh id
/// per restart, never leaving) than that one stream has that many readers, and the limit
/// turns that leak into an error instead of a group that grows until sessions expire.
pub const MEMBERS_MAX: usize = 1_000;

/// Shortest session a member may ask for: 1 s. A shorter one makes a garbage-collection
/// pause or a slow network look like a crash, and each false expiry moves partitions twice
/// (out, and back when the member heartbeats again).
pub const SESSION_TIMEOUT_MS_MIN: u64 = 1_000;

/// Longest session a member may ask for: 5 minutes (Kafka's `group.max.session.timeout.ms`
/// before 2.0). A crashed member's partitions are read by nobody until its session expires,
/// so this bounds how long a crash can stall them.
pub const SESSION_TIMEOUT_MS_MAX: u64 = 300_000;

/// The session the runtime should use when a client asks for none: 10 s, Kafka's
/// `session.timeout.ms` default before 3.0; it allows a few missed heartbeats at the usual
/// 3 s interval while a crash still stalls partitions only seconds.
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// How a group shares the partitions among its members (ordered by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentStrategy {
    /// Kafka's `RangeAssignor`: each member gets a contiguous range; the first
    /// `partitions % members` members get one partition more.
    #[default]
    Range,
    /// Partition `i` goes to member `i % members`.
    RoundRobin,
    /// Balanced like the others (counts differ by at most one), but each partition stays
    /// with its previous owner when it can, so a join or leave moves as few partitions as
    /// possible (the idea of Kafka's `StickyAssignor`, KIP-54). Moving a partition costs the
    /// new owner a restart from the last committed offset; keeping it costs nothing.
    Sticky,
}

/// A strategy name that is none of `range`, `round_robin`, `sticky`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown assignment strategy {given:?}; known are range, round_robin, sticky")]
pub struct UnknownStrategy {
    pub given: String,
}

/// What one member needs to know after a call: its generation and partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member_id: String,
    pub generation: u64,
    /// The partitions this member owns in `generation`, ascending.
    pub assignment: Vec<u32>,
    /// How many members the group has.
    pub members: usize,
}

/// One member as the group sees it, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    /// Ascending.
    pub assignment: Vec<u32>,
    /// When the member last joined or heartbeat, in ms since the Unix epoch.
    pub last_heartbeat: u64,
    pub session_timeout_ms: u64,
}

/// Why a group refused a call. Each variant is an operating error the caller replies with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The member is not in the group (never joined, left or expired): it must join again.
    #[error("member {member_id:?} is not in the group")]
    UnknownMember { member_id: String },
    /// A commit from a generation that is not the current one: the member missed a rebalance
    /// and must heartbeat to learn its new assignment.
    #[error("generation {given} is not the current generation {current}")]
    StaleGeneration { current: u64, given: u64 },
    /// A commit for a partition the member does not own in the current generation.
    #[error("partition {partition} is not assigned to member {member_id:?}")]
    NotAssigned { partition: u32, member_id: String },
    /// A new member would pass [`MEMBERS_MAX`].
    #[error("the group already has the most members allowed, {max}")]
    TooManyMembers { max: usize },
    #[error("session timeout {given} ms is outside {min}..={max} ms")]
    SessionTimeoutOutOfRange { given: u64, min: u64, max: u64 },
    /// The group has no members and no committed offsets.
    #[error("the group does not exist (no members and no committed offsets)")]
    NotFound,
    /// Deleting a group is refused while members read for it.
    #[error("the group has {members} members; it can be deleted once they have left")]
    HasMembers { members: usize },
}

/// One consumer group of one stream. Single owner, no locks: the stream's task calls it.
#[derive(Debug, Clone)]
pub struct Group {
    strategy: AssignmentStrategy,
    partitions: u32,
    generation: u64,
    /// By id: the order every strategy sees members in.
    members: BTreeMap<String, Member>,
    /// (expiry time, member id) of every member, so that expiry and the next timer do not
    /// scan the group. Kept exact by `expiry_track`/`expiry_untrack` around every change of
    /// a member's heartbeat or session.
    expiries: BTreeSet<(u64, String)>,
}

#[derive(Debug, Clone)]
struct Member {
    /// Ascending.
    assignment: Vec<u32>,
    last_heartbeat: u64,
    session_timeout_ms: u64,
}

impl Member {
    fn expires_at(&self) -> u64 {
        self.last_heartbeat.saturating_add(self.session_timeout_ms)
    }
}

impl Group {
    /// An empty group, generation 0, over `partitions` partitions.
    pub fn new(strategy: AssignmentStrategy, partitions: u32) -> Group {
        Group {
            strategy,
            partitions,
            generation: 0,
            members: BTreeMap::new(),
            expiries: BTreeSet::new(),
        }
    }

    /// Adds the member (its id chosen by the caller, unique in the group) and rebalances, or,
    /// when it is already in, refreshes its heartbeat and session without rebalancing (a
    /// client retrying a join whose reply it lost must not move partitions). Returns its view.
    pub fn join(
        &mut self,
        member_id: &str,
        session_timeout_ms: u64,
        now: u64,
    ) -> Result<MemberView, GroupError> {
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&session_timeout_ms) {
            return Err(GroupError::SessionTimeoutOutOfRange {
                given: session_timeout_ms,
                min: SESSION_TIMEOUT_MS_MIN,
                max: SESSION_TIMEOUT_MS_MAX,
            });
        }
        if self.members.contains_key(member_id) {
            self.expiry_untrack(member_id);
            let member = self.members.get_mut(member_id).expect("checked above");
            member.last_heartbeat = now;
            member.session_timeout_ms = session_timeout_ms;
            self.expiry_track(member_id);
            return Ok(self.view(member_id));
        }
        if self.members.len() >= MEMBERS_MAX {
            return Err(GroupError::TooManyMembers { max: MEMBERS_MAX });
        }
        let member = Member {
            assignment: Vec::new(),
            last_heartbeat: now,
            session_timeout_ms,
        };
        self.members.insert(member_id.to_owned(), member);
        self.expiry_track(member_id);
        self.rebalance();
        Ok(self.view(member_id))
    }

    /// Keeps the member's session alive and returns its view. `generation` is the one the
    /// member last heard of; whatever it is, the reply carries the current generation and
    /// assignment, which is how a member learns of a rebalance another member caused.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: u64,
        now: u64,
    ) -> Result<MemberView, GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_owned(),
            });
        }
        // Every generation gets the same answer. An older one is how a member learns of a
        // rebalance; a newer one cannot come from this group, whose generations never go
        // back, and the current one in the reply puts that member right too.
        let _ = generation;
        self.expiry_untrack(member_id);
        self.members
            .get_mut(member_id)
            .expect("checked above")
            .last_heartbeat = now;
        self.expiry_track(member_id);
        Ok(self.view(member_id))
    }

    /// Removes the member and rebalances.
    pub fn leave(&mut self, member_id: &str) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_owned(),
            });
        }
        self.expiry_untrack(member_id);
        self.members.remove(member_id);
        self.rebalance();
        Ok(())
    }

    /// Removes every member whose session expired (last heartbeat + session timeout <= `now`)
    /// and, if any, rebalances once for all of them. Returns their ids, earliest expiry first.
    pub fn expire(&mut self, now: u64) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some((expires_at, _)) = self.expiries.first() {
            if *expires_at > now {
                break;
            }
            let (_, member_id) = self.expiries.pop_first().expect("first exists");
            let removed = self.members.remove(&member_id);
            assert!(removed.is_some(), "expiry index lists absent {member_id:?}");
            expired.push(member_id);
        }
        if !expired.is_empty() {
            self.rebalance();
        }
        expired
    }

    /// The earliest time at which a member would expire, for the runtime's timer; `None` when
    /// the group is empty.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.first().map(|(expires_at, _)| *expires_at)
    }

    /// Sets the stream's partition count and rebalances if it grew and anyone is in the
    /// group. Partitions only grow (a stream never drops a partition's log), so a count not
    /// above the current one changes nothing.
    pub fn set_partitions(&mut self, partitions: u32) {
        if partitions <= self.partitions {
            return;
        }
        self.partitions = partitions;
        if !self.members.is_empty() {
            self.rebalance();
        }
    }

    /// Changes the strategy and, if it differs and anyone is in the group, rebalances with it.
    /// A switch to [`AssignmentStrategy::Sticky`] keeps what it can of the old assignment.
    pub fn set_strategy(&mut self, strategy: AssignmentStrategy) {
        if strategy == self.strategy {
            return;
        }
        self.strategy = strategy;
        if !self.members.is_empty() {
            self.rebalance();
        }
    }

    /// Whether `member_id` may commit at `generation`: it is in the group and `generation` is
    /// the current one. The check every offset commit makes, through [`Group::check_commit`].
    pub fn check_generation(&self, member_id: &str, generation: u64) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_owned(),
            });
        }
        if generation != self.generation {
            return Err(GroupError::StaleGeneration {
                current: self.generation,
                given: generation,
            });
        }
        Ok(())
    }

    /// Whether `member_id` may commit an offset of `partition` at `generation`: as
    /// [`Group::check_generation`], and the member owns the partition in this generation.
    pub fn check_commit(
        &self,
        member_id: &str,
        generation: u64,
        partition: u32,
    ) -> Result<(), GroupError> {
        self.check_generation(member_id, generation)?;
        let owned = self
            .assignment_of(member_id)
            .is_some_and(|assignment| assignment.binary_search(&partition).is_ok());
        if !owned {
            return Err(GroupError::NotAssigned {
                partition,
                member_id: member_id.to_owned(),
            });
        }
        Ok(())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn strategy(&self) -> AssignmentStrategy {
        self.strategy
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Every member, ordered by id.
    pub fn members(&self) -> Vec<MemberInfo> {
        (self.members.iter())
            .map(|(member_id, member)| MemberInfo {
                member_id: member_id.clone(),
                assignment: member.assignment.clone(),
                last_heartbeat: member.last_heartbeat,
                session_timeout_ms: member.session_timeout_ms,
            })
            .collect()
    }

    /// The member's partitions in the current generation, ascending; `None` if it is not in
    /// the group.
    pub fn assignment_of(&self, member_id: &str) -> Option<&[u32]> {
        (self.members.get(member_id)).map(|member| member.assignment.as_slice())
    }

    /// The member owning `partition` in the current generation. Scans the members (a binary
    /// search in each): called on admin paths, not per message.
    pub fn owner_of(&self, partition: u32) -> Option<&str> {
        (self.members.iter())
            .find(|(_, member)| member.assignment.binary_search(&partition).is_ok())
            .map(|(member_id, _)| member_id.as_str())
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The view of a member known to be in the group.
    fn view(&self, member_id: &str) -> MemberView {
        let member = &self.members[member_id];
        MemberView {
            member_id: member_id.to_owned(),
            generation: self.generation,
            assignment: member.assignment.clone(),
            members: self.members.len(),
        }
    }

    /// Recomputes every member's assignment and starts a new generation.
    fn rebalance(&mut self) {
        let previous: Vec<Vec<u32>> = (self.members.values_mut())
            .map(|member| std::mem::take(&mut member.assignment))
            .collect();
        let assignments = self.strategy.assign(self.partitions, &previous);
        for (member, assignment) in self.members.values_mut().zip(assignments) {
            member.assignment = assignment;
        }
        self.generation += 1;
        self.rebalance_check();
    }

    /// Postcondition of a rebalance: with members, every partition has exactly one owner and
    /// counts differ by at most one; without, nobody owns anything.
    fn rebalance_check(&self) {
        let mut owned = vec![false; self.partitions as usize];
        let (mut fewest, mut most) = (usize::MAX, 0);
        for member in self.members.values() {
            for &partition in &member.assignment {
                let seen = &mut owned[partition as usize];
                assert!(!*seen, "partition {partition} assigned twice");
                *seen = true;
            }
            fewest = fewest.min(member.assignment.len());
            most = most.max(member.assignment.len());
        }
        if !self.members.is_empty() {
            assert!(owned.iter().all(|&o| o), "a partition has no owner");
            assert!(most - fewest <= 1, "unbalanced: {fewest} to {most}");
        }
    }

    fn expiry_track(&mut self, member_id: &str) {
        let expires_at = self.members[member_id].expires_at();
        let inserted = self.expiries.insert((expires_at, member_id.to_owned()));
        assert!(inserted, "member {member_id:?} tracked twice");
    }

    fn expiry_untrack(&mut self, member_id: &str) {
        let expires_at = self.members[member_id].expires_at();
        let removed = self.expiries.remove(&(expires_at, member_id.to_owned()));
        assert!(removed, "member {member_id:?} was not tracked");
    }
}

impl AssignmentStrategy {
    /// Shares partitions `0..partitions` among `previous.len()` members, ordered by id;
    /// `previous[i]` is what member `i` owned before (read only by `Sticky`; a new member
    /// owned nothing). Returns each member's partitions, ascending, in the same order. Counts
    /// differ by at most one; members beyond the partition count get none.
    pub fn assign(self, partitions: u32, previous: &[Vec<u32>]) -> Vec<Vec<u32>> {
        if previous.is_empty() {
            return Vec::new();
        }
        match self {
            AssignmentStrategy::Range => assign_range(partitions, previous.len()),
            AssignmentStrategy::RoundRobin => assign_round_robin(partitions, previous.len()),
            AssignmentStrategy::Sticky => assign_sticky(partitions, previous),
        }
    }
}

impl fmt::Display for AssignmentStrategy {
    /// The name in configuration: `range`, `round_robin`, `sticky`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "round_robin",
            AssignmentStrategy::Sticky => "sticky",
        })
    }
}

impl FromStr for AssignmentStrategy {
    type Err = UnknownStrategy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "range" => Ok(AssignmentStrategy::Range),
            "round_robin" => Ok(AssignmentStrategy::RoundRobin),
            "sticky" => Ok(AssignmentStrategy::Sticky),
            _ => Err(UnknownStrategy {
                given: text.to_owned(),
            }),
        }
    }
}

/// How many partitions each of `members` members gets when shared evenly: `base` each, and
/// one more for `extra` of them.
fn fair_share(partitions: u32, members: usize) -> (usize, usize) {
    let partitions = partitions as usize;
    (partitions / members, partitions % members)
}

fn assign_range(partitions: u32, members: usize) -> Vec<Vec<u32>> {
    let (base, extra) = fair_share(partitions, members);
    let mut start = 0u32;
    (0..members)
        .map(|index| {
            let count = (base + usize::from(index < extra)) as u32;
            let range = (start..start + count).collect();
            start += count;
            range
        })
        .collect()
}

fn assign_round_robin(partitions: u32, members: usize) -> Vec<Vec<u32>> {
    let mut assignments = vec![Vec::new(); members];
    for partition in 0..partitions {
        assignments[partition as usize % members].push(partition);
    }
    assignments
}

/// Keeps as many partitions with their previous owners as a balanced result allows, then
/// deals the rest to the members short of their share, fewest first.
///
/// Each member's share is `base` or `base + 1`; the `extra` larger shares go to the members
/// that held the most before (ties by id), which maximises what stays put. When the previous
/// assignment was itself balanced and complete, a join therefore takes partitions only from
/// members over their new share and gives them only to the newcomer, and a leave moves only
/// the leaver's partitions. Partitions out of range or claimed twice in `previous` (it is
/// input, not trusted) count as unowned; the first claimant keeps a duplicate.
fn assign_sticky(partitions: u32, previous: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let (base, extra) = fair_share(partitions, previous.len());
    let mut claimed = vec![false; partitions as usize];
    let held: Vec<Vec<u32>> = (previous.iter())
        .map(|owned| {
            let mut owned: Vec<u32> = (owned.iter().copied())
                .filter(|&partition| partition < partitions)
                .filter(|&partition| !std::mem::replace(&mut claimed[partition as usize], true))
                .collect();
            owned.sort_unstable();
            owned
        })
        .collect();
    let mut by_held: Vec<usize> = (0..held.len()).collect();
    by_held.sort_by_key(|&index| (std::cmp::Reverse(held[index].len()), index));
    let mut shares = vec![base; held.len()];
    for &index in &by_held[..extra] {
        shares[index] = base + 1;
    }
    let mut kept = vec![false; partitions as usize];
    let mut assignments: Vec<Vec<u32>> = (held.into_iter().zip(&shares))
        .map(|(mut owned, &share)| {
            owned.truncate(share);
            for &partition in &owned {
                kept[partition as usize] = true;
            }
            owned
        })
        .collect();
    let mut free = (0..partitions).filter(|&partition| !kept[partition as usize]);
    let mut by_count: Vec<usize> = (0..assignments.len()).collect();
    by_count.sort_by_key(|&index| (assignments[index].len(), index));
    for index in by_count {
        let missing = shares[index] - assignments[index].len();
        assignments[index].extend(free.by_ref().take(missing));
        assignments[index].sort_unstable();
    }
    assert!(free.next().is_none(), "every partition dealt");
    assignments
}

#[cfg(test)]
mod tests;
