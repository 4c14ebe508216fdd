//! The index of the event store: for each stream, the positions of its events in `$all` (its
//! version is the count less one), its deletion state and metadata; and the positions of the
//! system projections, by category and by event type. Rebuilt at open by reading the log from
//! the start; changed only by applying records that are already in the log.

use super::{category, record::StoredRecord};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What an append expects of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever the stream holds (unless it was hard deleted).
    Any,
    /// The stream has no events (never written, or soft deleted since).
    NoStream,
    /// The stream has events.
    Exists,
    /// The stream's last event has this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(version) => write!(f, "{version}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadDirection {
    Forward,
    Backward,
}

/// A stream's settings, set by a metadata record: events past either bound are no longer
/// readable from the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMetadata {
    /// Events older than this (by append time) are not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Only the newest this many events are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
}

/// Whether a stream can be written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Has readable events (or had, before max-age and max-count bounds).
    Live,
    /// Soft deleted and not written since: reads find nothing; an append recreates it, its
    /// versions continuing.
    SoftDeleted,
    /// Hard deleted: never written or read again.
    Tombstoned,
}

/// Where a stream stands, for the expected-version check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The version the next event takes.
    pub next_version: u64,
    /// `None` for a stream never written.
    pub status: Option<StreamStatus>,
}

impl Head {
    pub const NEW: Head = Head {
        next_version: 0,
        status: None,
    };

    fn exists(&self) -> bool {
        self.status == Some(StreamStatus::Live)
    }

    /// The last event's version, if any was ever written.
    pub fn current_version(&self) -> Option<u64> {
        self.next_version.checked_sub(1)
    }

    /// Whether an append expecting `expected` may go ahead: `Ok(true)` when it creates the
    /// stream (there was none, or it was soft deleted).
    pub fn check(&self, expected: ExpectedVersion) -> Result<bool, Refusal> {
        if self.status == Some(StreamStatus::Tombstoned) {
            return Err(Refusal::Deleted);
        }
        let fits = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => !self.exists(),
            ExpectedVersion::Exists => self.exists(),
            ExpectedVersion::Exact(version) => self.current_version() == Some(version),
        };
        match fits {
            true => Ok(!self.exists()),
            false => Err(Refusal::WrongVersion {
                current: self.current_version(),
            }),
        }
    }

    /// The head after `count` more events.
    pub fn after_append(&self, count: u64) -> Head {
        Head {
            next_version: self.next_version + count,
            status: Some(StreamStatus::Live),
        }
    }
}

/// Why [`Head::check`] refused an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Deleted,
    WrongVersion { current: Option<u64> },
}

#[derive(Debug, Default)]
struct StreamState {
    /// Position of every version ever written, version = index.
    positions: Vec<u64>,
    /// Versions below this were soft deleted.
    visible_from: u64,
    status: Option<StreamStatus>,
    metadata: Option<Box<StreamMetadata>>,
}

/// Why [`Index::read`] found nothing to read: the stream was hard deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstoned;

/// The readable part of a stream: versions and their positions, in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    /// (version, position) pairs.
    pub entries: Vec<(u64, u64)>,
    /// Where the next page starts, if more is readable now.
    pub next: Option<u64>,
    /// The last event's version.
    pub current: Option<u64>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Index {
    streams: HashMap<Box<str>, StreamState>,
    categories: HashMap<Box<str>, Vec<u64>>,
    types: HashMap<Box<str>, Vec<u64>>,
    events: u64,
}

impl Index {
    pub fn head(&self, stream: &str) -> Head {
        match self.streams.get(stream) {
            Some(state) => Head {
                next_version: state.positions.len() as u64,
                status: state.status,
            },
            None => Head::NEW,
        }
    }

    pub fn metadata(&self, stream: &str) -> Option<StreamMetadata> {
        let state = self.streams.get(stream)?;
        state.metadata.as_deref().cloned()
    }

    /// The first version not soft deleted.
    pub fn visible_from(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |state| state.visible_from)
    }

    /// Streams that were ever written or given metadata.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Events ever appended.
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// The position of `version` of `stream`, if it was written (deleted or not).
    pub fn position_of(&self, stream: &str, version: u64) -> Option<u64> {
        let state = self.streams.get(stream)?;
        state.positions.get(usize::try_from(version).ok()?).copied()
    }

    /// Applies a record found at `position` in the log.
    pub fn apply(&mut self, position: u64, record: &StoredRecord<'_>) {
        match record {
            StoredRecord::Event { header, .. } => {
                let state = self.stream_mut(header.stream);
                if header.version != state.positions.len() as u64 {
                    // Only a log written by another program could do this; versions stay
                    // gap-free by ignoring the event in the stream (it stays in `$all`).
                    tracing::error!(
                        stream = header.stream,
                        version = header.version,
                        position,
                        "event-store record out of sequence; left out of its stream"
                    );
                    return;
                }
                state.positions.push(position);
                state.status = Some(StreamStatus::Live);
                let category = category(header.stream);
                push_position(&mut self.categories, category, position);
                push_position(&mut self.types, header.event_type, position);
                self.events += 1;
            }
            StoredRecord::Metadata { stream, metadata } => {
                let state = self.stream_mut(stream);
                state.metadata = Some(Box::new(metadata.clone()));
            }
            StoredRecord::Delete {
                stream,
                hard,
                visible_from,
            } => {
                let state = self.stream_mut(stream);
                state.visible_from = *visible_from;
                state.status = Some(match hard {
                    true => StreamStatus::Tombstoned,
                    false => StreamStatus::SoftDeleted,
                });
            }
        }
    }

    fn stream_mut(&mut self, stream: &str) -> &mut StreamState {
        if !self.streams.contains_key(stream) {
            self.streams.insert(stream.into(), StreamState::default());
        }
        self.streams.get_mut(stream).expect("inserted above")
    }

    /// Up to `limit` readable versions of `stream` from `from` (default: the first readable
    /// going forward, the last going backward). `None` when the stream has no readable state
    /// (never written, or soft deleted); [`Tombstoned`] when hard deleted.
    pub fn read(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Option<Slice>, Tombstoned> {
        let Some(state) = self.streams.get(stream) else {
            return Ok(None);
        };
        match state.status {
            Some(StreamStatus::Tombstoned) => return Err(Tombstoned),
            Some(StreamStatus::Live) => {}
            _ => return Ok(None),
        }
        let end = state.positions.len() as u64;
        let mut start = state.visible_from;
        if let Some(max_count) = state.metadata.as_ref().and_then(|m| m.max_count) {
            start = start.max(end.saturating_sub(max_count));
        }
        let current = end.checked_sub(1);
        let versions = versions(start, end, from, direction, limit);
        let entries = (versions.0.iter())
            .map(|&version| (version, state.positions[version as usize]))
            .collect();
        Ok(Some(Slice {
            entries,
            next: versions.1,
            current,
        }))
    }

    /// Like [`Index::read`] for a system projection stream (`$ce-...`, `$et-...`): versions
    /// count events inside the projection. `None` for a name that is neither.
    pub fn read_projection(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Option<Slice> {
        let positions = if let Some(name) = stream.strip_prefix(super::CATEGORY_PREFIX) {
            self.categories.get(name)
        } else if let Some(name) = stream.strip_prefix(super::EVENT_TYPE_PREFIX) {
            self.types.get(name)
        } else {
            return None;
        }?;
        let end = positions.len() as u64;
        let (chosen, next) = versions(0, end, from, direction, limit);
        let entries = (chosen.iter())
            .map(|&version| (version, positions[version as usize]))
            .collect();
        Some(Slice {
            entries,
            next,
            current: end.checked_sub(1),
        })
    }
}

fn push_position(map: &mut HashMap<Box<str>, Vec<u64>>, key: &str, position: u64) {
    match map.get_mut(key) {
        Some(positions) => positions.push(position),
        None => {
            map.insert(key.into(), vec![position]);
        }
    }
}

/// The versions in `start..end` a read from `from` takes, and where the next read starts.
fn versions(
    start: u64,
    end: u64,
    from: Option<u64>,
    direction: ReadDirection,
    limit: usize,
) -> (Vec<u64>, Option<u64>) {
    let limit = limit as u64;
    match direction {
        ReadDirection::Forward => {
            let first = from.unwrap_or(start).max(start);
            let last = first.saturating_add(limit).min(end);
            let chosen: Vec<u64> = (first..last.max(first)).collect();
            (chosen, (last < end).then_some(last))
        }
        ReadDirection::Backward => {
            let Some(top) = end.checked_sub(1) else {
                return (Vec::new(), None);
            };
            let first = from.unwrap_or(top).min(top);
            if first < start {
                return (Vec::new(), None);
            }
            if limit == 0 {
                return (Vec::new(), Some(first));
            }
            let lowest = first.saturating_sub(limit.saturating_sub(1)).max(start);
            let chosen: Vec<u64> = (lowest..=first).rev().collect();
            let next = (lowest > start && limit > 0).then(|| lowest - 1);
            (chosen, next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstore::record::{EventHeader, EventId};
    use proptest::prelude::*;

    fn event(index: &mut Index, position: u64, stream: &str, event_type: &str) {
        let version = index.head(stream).next_version;
        let header = EventHeader {
            version,
            time_ms: 0,
            id: EventId([0; 16]),
            stream,
            event_type,
            data_is_json: true,
        };
        let record = StoredRecord::Event {
            header,
            metadata: b"{}",
            data: b"{}",
        };
        index.apply(position, &record);
    }

    #[test]
    fn expected_versions() {
        let new = Head::NEW;
        assert_eq!(new.check(ExpectedVersion::Any), Ok(true));
        assert_eq!(new.check(ExpectedVersion::NoStream), Ok(true));
        let refused = Err(Refusal::WrongVersion { current: None });
        assert_eq!(new.check(ExpectedVersion::Exists), refused);
        assert_eq!(new.check(ExpectedVersion::Exact(0)), refused);
        let two = new.after_append(2);
        assert_eq!(two.check(ExpectedVersion::Exact(1)), Ok(false));
        let refused = Err(Refusal::WrongVersion { current: Some(1) });
        assert_eq!(two.check(ExpectedVersion::Exact(0)), refused);
        assert_eq!(two.check(ExpectedVersion::NoStream), refused);
        assert_eq!(two.check(ExpectedVersion::Exists), Ok(false));
        let soft = Head {
            next_version: 2,
            status: Some(StreamStatus::SoftDeleted),
        };
        assert_eq!(soft.check(ExpectedVersion::NoStream), Ok(true));
        assert_eq!(soft.check(ExpectedVersion::Exact(1)), Ok(true));
        let gone = Head {
            next_version: 2,
            status: Some(StreamStatus::Tombstoned),
        };
        assert_eq!(gone.check(ExpectedVersion::Any), Err(Refusal::Deleted));
    }

    #[test]
    fn reads_respect_deletes_and_max_count() {
        let mut index = Index::default();
        for position in 0..5 {
            event(&mut index, position * 2, "order-1", "Created");
        }
        event(&mut index, 11, "order-2", "Paid");
        let slice = index
            .read("order-1", None, ReadDirection::Forward, 2)
            .unwrap()
            .unwrap();
        assert_eq!(slice.entries, vec![(0, 0), (1, 2)]);
        assert_eq!(slice.next, Some(2));
        assert_eq!(slice.current, Some(4));
        let slice = index
            .read("order-1", None, ReadDirection::Backward, 2)
            .unwrap()
            .unwrap();
        assert_eq!(slice.entries, vec![(4, 8), (3, 6)]);
        assert_eq!(slice.next, Some(2));
        let metadata = StoredRecord::Metadata {
            stream: "order-1",
            metadata: StreamMetadata {
                max_age_ms: None,
                max_count: Some(2),
            },
        };
        index.apply(12, &metadata);
        let slice = index
            .read("order-1", Some(0), ReadDirection::Forward, 10)
            .unwrap()
            .unwrap();
        assert_eq!(slice.entries, vec![(3, 6), (4, 8)]);
        assert_eq!(slice.next, None);
        index.apply(
            13,
            &StoredRecord::Delete {
                stream: "order-1",
                hard: false,
                visible_from: 5,
            },
        );
        assert_eq!(
            index.read("order-1", None, ReadDirection::Forward, 10),
            Ok(None)
        );
        assert_eq!(
            index.head("order-1").check(ExpectedVersion::NoStream),
            Ok(true)
        );
        event(&mut index, 14, "order-1", "Created");
        let slice = index
            .read("order-1", None, ReadDirection::Forward, 10)
            .unwrap()
            .unwrap();
        assert_eq!(slice.entries, vec![(5, 14)]);
        index.apply(
            15,
            &StoredRecord::Delete {
                stream: "order-1",
                hard: true,
                visible_from: 6,
            },
        );
        assert_eq!(
            index.read("order-1", None, ReadDirection::Forward, 10),
            Err(Tombstoned)
        );
        let category = index
            .read_projection("$ce-order", None, ReadDirection::Forward, 100)
            .unwrap();
        assert_eq!(
            category.entries.iter().map(|e| e.1).collect::<Vec<_>>(),
            vec![0, 2, 4, 6, 8, 11, 14]
        );
        let paid = index
            .read_projection("$et-Paid", None, ReadDirection::Forward, 100)
            .unwrap();
        assert_eq!(paid.entries, vec![(0, 11)]);
        assert_eq!(
            index.read_projection("$et-None", None, ReadDirection::Forward, 1),
            None
        );
    }

    proptest! {
        /// Paging forward or backward visits every readable version once, in order.
        #[test]
        fn paging_visits_every_version_once(start in 0u64..20, extra in 0u64..40, limit in 1usize..7, backward: bool) {
            let end = start + extra;
            let direction = if backward { ReadDirection::Backward } else { ReadDirection::Forward };
            let mut seen = Vec::new();
            let mut from = None;
            for _ in 0..100 {
                let (chosen, next) = versions(start, end, from, direction, limit);
                prop_assert!(chosen.len() <= limit);
                seen.extend(chosen);
                match next { Some(next) => from = Some(next), None => break }
            }
            let mut expected: Vec<u64> = (start..end).collect();
            if backward { expected.reverse(); }
            prop_assert_eq!(seen, expected);
        }
    }
}
