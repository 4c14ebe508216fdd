//! Consumer groups at run time: membership (the pure `stream::group::Group`) kept per stream
//! in memory, committed offsets in the shared log (`committed`), and lag.
//!
//! Members learn where to start reading from their join and heartbeat replies: for each
//! partition assigned to them, the group's committed offset, or by `auto_offset_reset` the
//! partition's earliest or latest offset when the group never committed one.

use super::StreamRuntime;
use crate::{
    broker::Engine,
    error::{EngineError, ResourceKind},
    stream::{
        group::{AssignmentStrategy, Group, GroupError, MemberInfo, MemberView},
        StreamError,
    },
};
use std::{collections::BTreeMap, sync::Arc};

/// How a member joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupJoin {
    /// A member joining again under its id (after a restart of the server or a session that
    /// expired); by default the server makes one.
    pub member_id: Option<String>,
    /// How long the member may stay silent before it is removed; by default
    /// `stream::group::SESSION_TIMEOUT_MS_DEFAULT`.
    pub session_timeout_ms: Option<u64>,
    /// The group's assignment strategy; the first member's choice holds while the group has
    /// members.
    pub strategy: Option<AssignmentStrategy>,
    /// Where partitions without a committed offset start.
    pub auto_offset_reset: OffsetReset,
}

/// Where a partition without a committed offset starts (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
}

/// A member's view after a join or heartbeat, with where to read each partition from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub view: MemberView,
    /// For each assigned partition: the offset to fetch from.
    pub positions: BTreeMap<u32, u64>,
}

/// A group as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub generation: u64,
    pub members: Vec<MemberInfo>,
    pub partitions: Vec<PartitionLag>,
    /// The sum of the partitions' lags (those with a committed offset).
    pub lag: u64,
}

/// One partition of a group: where it committed, the partition's end and the distance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: u32,
    pub committed: Option<u64>,
    pub latest: u64,
    /// `latest - committed`; `None` without a commit.
    pub lag: Option<u64>,
    pub owner: Option<String>,
}

impl Engine {
    /// Adds a member to the group (creating the group) or refreshes it.
    pub fn join_group(
        &self,
        stream: &str,
        group: &str,
        join: GroupJoin,
    ) -> Result<MemberState, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let group = super::parse_name(group, ResourceKind::Group)?;
        let member_id = match join.member_id {
            Some(id) => super::parse_name(&id, ResourceKind::Member)?,
            None => format!("{group}-{}", self.generate_id(self.now())),
        };
        let timeout = join
            .session_timeout_ms
            .unwrap_or(crate::stream::group::SESSION_TIMEOUT_MS_DEFAULT);
        let now = self.now();
        let view = {
            let mut groups = stream.lock_groups();
            let partitions = stream.partition_count();
            let strategy = join.strategy.unwrap_or_default();
            let entry = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(strategy, partitions));
            entry.expire(now);
            entry
                .join(&member_id, timeout, now)
                .map_err(|source| group_error(&stream, &group, source))?
        };
        Ok(self.member_state(&stream, &group, view, join.auto_offset_reset))
    }

    /// Keeps a member in the group; answers its (possibly new) generation and assignment.
    pub fn heartbeat_group(
        &self,
        stream: &str,
        group: &str,
        member_id: &str,
        generation: u64,
        reset: OffsetReset,
    ) -> Result<MemberState, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let now = self.now();
        let view = {
            let mut groups = stream.lock_groups();
            let Some(entry) = groups.get_mut(group) else {
                let source = GroupError::UnknownMember {
                    member_id: member_id.to_string(),
                };
                return Err(group_error(&stream, group, source));
            };
            entry.expire(now);
            entry
                .heartbeat(member_id, generation, now)
                .map_err(|source| group_error(&stream, group, source))?
        };
        Ok(self.member_state(&stream, group, view, reset))
    }

    /// Removes a member; its partitions go to the others at once.
    pub fn leave_group(
        &self,
        stream: &str,
        group: &str,
        member_id: &str,
    ) -> Result<(), EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let mut groups = stream.lock_groups();
        let Some(entry) = groups.get_mut(group) else {
            let source = GroupError::UnknownMember {
                member_id: member_id.to_string(),
            };
            return Err(group_error(&stream, group, source));
        };
        entry
            .leave(member_id)
            .map_err(|source| group_error(&stream, group, source))?;
        if entry.is_empty() {
            groups.remove(group);
        }
        Ok(())
    }

    /// Stores the group's positions (the next offset to read, per partition), durably. With
    /// a member, it must hold the current generation and the partitions; without one, the
    /// group must have no members (a consumer managing its own partitions).
    pub async fn commit_offsets(
        &self,
        stream: &str,
        group: &str,
        member: Option<(&str, u64)>,
        offsets: &[(u32, u64)],
    ) -> Result<(), EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        let group = super::parse_name(group, ResourceKind::Group)?;
        let partitions = stream.partition_count();
        for (partition, offset) in offsets {
            let runtime = stream.partition(*partition)?;
            let latest = runtime.lock().index.next_offset();
            if *offset > latest {
                let earliest = stream.earliest(&runtime.lock().index);
                return Err(StreamError::OffsetOutOfRange {
                    stream: stream.name.clone(),
                    partition: *partition,
                    offset: *offset,
                    earliest,
                    latest,
                }
                .into());
            }
        }
        debug_assert!(offsets.iter().all(|(p, _)| *p < partitions));
        {
            let mut groups = stream.lock_groups();
            let now = self.now();
            match (groups.get_mut(&group), member) {
                (Some(entry), Some((member_id, generation))) => {
                    entry.expire(now);
                    for (partition, _) in offsets {
                        (entry.check_commit(member_id, generation, *partition))
                            .map_err(|source| group_error(&stream, &group, source))?;
                    }
                }
                (Some(entry), None) if !entry.is_empty() => {
                    let stream = stream.name.clone();
                    return Err(StreamError::MemberRequired { stream, group }.into());
                }
                (None, Some((member_id, _))) => {
                    let source = GroupError::UnknownMember {
                        member_id: member_id.to_string(),
                    };
                    return Err(group_error(&stream, &group, source));
                }
                _ => {}
            }
        }
        // A rebalance between the check and the write lets a commit of the old generation
        // through; its consumer read those records, so the next owner starting there skips
        // nothing it should have seen.
        self.inner
            .committed
            .commit(stream.resource, &group, offsets)
            .await
    }

    /// A group's members, committed offsets and lag.
    pub fn group_info(&self, stream: &str, group: &str) -> Result<GroupInfo, EngineError> {
        let stream = self.stream(stream)?;
        let info = self.group_info_of(&stream, group);
        if info.members.is_empty() && info.partitions.iter().all(|p| p.committed.is_none()) {
            let source = GroupError::NotFound;
            return Err(group_error(&stream, group, source));
        }
        Ok(info)
    }

    /// Every group of the stream with members or committed offsets.
    pub fn list_groups(&self, stream: &str) -> Result<Vec<GroupInfo>, EngineError> {
        let stream = self.stream(stream)?;
        let mut names: std::collections::BTreeSet<String> =
            stream.lock_groups().keys().cloned().collect();
        names.extend(self.inner.committed.group_names(stream.resource));
        Ok(names
            .iter()
            .map(|name| self.group_info_of(&stream, name))
            .collect())
    }

    /// Deletes a group's committed offsets; refused while it has members.
    pub async fn delete_group(&self, stream: &str, group: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        {
            let mut groups = stream.lock_groups();
            if let Some(entry) = groups.get_mut(group) {
                entry.expire(self.now());
                if !entry.is_empty() {
                    let source = GroupError::HasMembers {
                        members: entry.members().len(),
                    };
                    return Err(group_error(&stream, group, source));
                }
                groups.remove(group);
            }
        }
        if !self
            .inner
            .committed
            .delete_group(stream.resource, group)
            .await?
        {
            return Err(group_error(&stream, group, GroupError::NotFound));
        }
        Ok(())
    }

    fn group_info_of(&self, stream: &Arc<StreamRuntime>, group: &str) -> GroupInfo {
        let committed = self.inner.committed.committed(stream.resource, group);
        let (generation, members, owners) = {
            let mut groups = stream.lock_groups();
            match groups.get_mut(group) {
                Some(entry) => {
                    entry.expire(self.now());
                    let owners: BTreeMap<u32, String> = (0..stream.partition_count())
                        .filter_map(|p| entry.owner_of(p).map(|owner| (p, owner.to_string())))
                        .collect();
                    (entry.generation(), entry.members(), owners)
                }
                None => (0, Vec::new(), BTreeMap::new()),
            }
        };
        let partitions: Vec<PartitionLag> = (stream.partitions().iter())
            .map(|partition| {
                let latest = partition.lock().index.next_offset();
                let committed = committed.get(&partition.number).copied();
                PartitionLag {
                    partition: partition.number,
                    committed,
                    latest,
                    lag: committed.map(|c| latest.saturating_sub(c)),
                    owner: owners.get(&partition.number).cloned(),
                }
            })
            .collect();
        let lag = partitions.iter().filter_map(|p| p.lag).sum();
        GroupInfo {
            name: group.to_string(),
            generation,
            members,
            partitions,
            lag,
        }
    }

    fn member_state(
        &self,
        stream: &StreamRuntime,
        group: &str,
        view: MemberView,
        reset: OffsetReset,
    ) -> MemberState {
        let committed = self.inner.committed.committed(stream.resource, group);
        let positions = (view.assignment.iter())
            .filter_map(|partition| {
                let runtime = stream.partition(*partition).ok()?;
                let state = runtime.lock();
                let start = match (committed.get(partition), reset) {
                    (Some(offset), _) => (*offset).max(stream.earliest(&state.index)),
                    (None, OffsetReset::Earliest) => stream.earliest(&state.index),
                    (None, OffsetReset::Latest) => state.index.next_offset(),
                };
                Some((*partition, start))
            })
            .collect();
        MemberState { view, positions }
    }
}

fn group_error(stream: &StreamRuntime, group: &str, source: GroupError) -> EngineError {
    StreamError::Group {
        stream: stream.name.clone(),
        group: group.to_string(),
        source,
    }
    .into()
}
