//! Committed offsets of every consumer group of every stream: one small log shared by all
//! streams (Kafka's `__consumer_offsets`), replayed into memory at start.
//!
//! A commit is one durable append (its partitions' offsets together, so all or none), which the
//! storage's group commit shares with every other commit in flight. The log only grows, so it
//! is compacted like a topic's: once it holds more than twice the live entries (and at least
//! [`COMPACTION_RECORDS_MIN`] records), the live entries are written again at its end and the
//! segments below deleted. A crash halfway through loses nothing: replay applies the copies
//! and the originals alike, in log order, and the newest wins.
//!
//! ```text
//! commit:        | 0x31 | version 1 | resource u64 LE | partition u32 LE | offset u64 LE | group |
//! group deleted: | 0x32 | version 1 | resource u64 LE | group |
//! ```
//! `group` is the group's name, the rest of the record.

use crate::error::EngineError;
use bytes::{BufMut, Bytes, BytesMut};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};
use wharf_storage::{Durability, LogOptions, LogSize, LogStore, Offset, Storage, StorageError};

/// The name of the log of committed offsets.
pub const COMMITTED_LOG_NAME: &str = "stream-offsets";
/// Records the log holds before compaction is worth a pass.
const COMPACTION_RECORDS_MIN: u64 = 4_096;
const RECORD_COMMIT: u8 = 0x31;
const RECORD_GROUP_DELETED: u8 = 0x32;
const RECORD_VERSION: u8 = 1;
const READ_RECORDS: usize = 4_096;
const READ_BYTES: usize = 4 << 20;

/// Offsets by group name, then partition.
type GroupOffsets = BTreeMap<String, BTreeMap<u32, u64>>;

#[derive(Debug)]
pub struct CommittedOffsets {
    log: Arc<dyn LogStore>,
    /// By stream resource id.
    offsets: Mutex<HashMap<u64, GroupOffsets>>,
    /// Commits share it; a compaction pass takes it alone, so no commit lands between its
    /// copies and the truncation.
    writes: tokio::sync::RwLock<()>,
    compacting: AtomicBool,
}

impl CommittedOffsets {
    /// Opens the log and replays it.
    pub(crate) async fn open(store: &dyn Storage) -> Result<CommittedOffsets, EngineError> {
        let options = LogOptions {
            durability: Durability::Durable,
            size: LogSize::Small,
        };
        let log = store.open_log(COMMITTED_LOG_NAME, options).await?;
        let mut offsets: HashMap<u64, GroupOffsets> = HashMap::new();
        let mut position = log.start_offset().0;
        while position < log.end_offset().0 {
            let records = match log
                .read_batch(Offset(position), READ_RECORDS, READ_BYTES)
                .await
            {
                Ok(records) => records,
                Err(StorageError::Corrupt { .. }) => {
                    position += 1;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if records.is_empty() {
                break;
            }
            for record in records {
                position = record.offset.0 + 1;
                match decode(&record.payload) {
                    Some(change) => apply(&mut offsets, change),
                    None => tracing::error!(
                        position = record.offset.0,
                        "skipping an unreadable committed offset record"
                    ),
                }
            }
        }
        Ok(CommittedOffsets {
            log,
            offsets: Mutex::new(offsets),
            writes: tokio::sync::RwLock::new(()),
            compacting: AtomicBool::new(false),
        })
    }

    /// Stores `offsets` (partition, next offset to read) of `group` durably, all or none.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        resource: u64,
        group: &str,
        offsets: &[(u32, u64)],
    ) -> Result<(), EngineError> {
        let records: Vec<Bytes> = (offsets.iter())
            .map(|(partition, offset)| encode_commit(resource, *partition, *offset, group))
            .collect();
        {
            let _writing = self.writes.read().await;
            self.log.append(&records, None).await?;
            let mut all = self.lock();
            let committed = all
                .entry(resource)
                .or_default()
                .entry(group.to_string())
                .or_default();
            for (partition, offset) in offsets {
                committed.insert(*partition, *offset);
            }
        }
        self.maybe_compact();
        Ok(())
    }

    /// Forgets a group's offsets, durably. Returns whether it had any.
    pub(crate) async fn delete_group(
        self: &Arc<Self>,
        resource: u64,
        group: &str,
    ) -> Result<bool, EngineError> {
        let _writing = self.writes.read().await;
        let known = self
            .lock()
            .get(&resource)
            .is_some_and(|groups| groups.contains_key(group));
        if !known {
            return Ok(false);
        }
        let mut record = BytesMut::new();
        record.put_u8(RECORD_GROUP_DELETED);
        record.put_u8(RECORD_VERSION);
        record.put_u64_le(resource);
        record.put_slice(group.as_bytes());
        self.log.append(&[record.freeze()], None).await?;
        apply(
            &mut self.lock(),
            Change::GroupDeleted {
                resource,
                group: group.to_string(),
            },
        );
        Ok(true)
    }

    /// The committed offsets of `group`, by partition.
    pub fn committed(&self, resource: u64, group: &str) -> BTreeMap<u32, u64> {
        let all = self.lock();
        (all.get(&resource)
            .and_then(|groups| groups.get(group))
            .cloned())
        .unwrap_or_default()
    }

    /// The groups of a stream that committed offsets.
    pub fn group_names(&self, resource: u64) -> Vec<String> {
        let all = self.lock();
        all.get(&resource)
            .map_or_else(Vec::new, |groups| groups.keys().cloned().collect())
    }

    /// Drops a deleted stream's offsets from memory; the next compaction leaves them behind.
    pub(crate) fn forget(&self, resource: u64) {
        self.lock().remove(&resource);
    }

    /// Keeps only the offsets of the streams `live` names (at open: streams deleted before a
    /// compaction dropped their records).
    pub(crate) fn retain(&self, live: &std::collections::HashSet<u64>) {
        self.lock().retain(|resource, _| live.contains(resource));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, GroupOffsets>> {
        self.offsets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live_entries(&self) -> u64 {
        let all = self.lock();
        (all.values())
            .flat_map(|groups| groups.values())
            .map(|offsets| offsets.len() as u64)
            .sum()
    }

    fn maybe_compact(self: &Arc<Self>) {
        let stored = self.log.end_offset().0 - self.log.start_offset().0;
        if stored < COMPACTION_RECORDS_MIN || stored < 2 * self.live_entries() {
            return;
        }
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let offsets = self.clone();
        tokio::spawn(async move {
            if let Err(error) = offsets.compact().await {
                tracing::warn!(%error, "compacting the committed offsets log stopped");
            }
            offsets.compacting.store(false, Ordering::Release);
        });
    }

    /// Writes every live entry again at the end, then drops the segments below.
    pub(crate) async fn compact(&self) -> Result<(), EngineError> {
        let _alone = self.writes.write().await;
        let before = self.log.end_offset();
        let records: Vec<Bytes> = {
            let all = self.lock();
            (all.iter())
                .flat_map(|(resource, groups)| {
                    groups.iter().flat_map(move |(group, offsets)| {
                        (offsets.iter()).map(move |(partition, offset)| {
                            encode_commit(*resource, *partition, *offset, group)
                        })
                    })
                })
                .collect()
        };
        for chunk in records.chunks(READ_RECORDS) {
            self.log.append(chunk, None).await?;
        }
        self.log.truncate_before(before).await?;
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Change {
    Commit {
        resource: u64,
        partition: u32,
        offset: u64,
        group: String,
    },
    GroupDeleted {
        resource: u64,
        group: String,
    },
}

fn apply(offsets: &mut HashMap<u64, GroupOffsets>, change: Change) {
    match change {
        Change::Commit {
            resource,
            partition,
            offset,
            group,
        } => {
            let groups = offsets.entry(resource).or_default();
            groups.entry(group).or_default().insert(partition, offset);
        }
        Change::GroupDeleted { resource, group } => {
            if let Some(groups) = offsets.get_mut(&resource) {
                groups.remove(&group);
                if groups.is_empty() {
                    offsets.remove(&resource);
                }
            }
        }
    }
}

fn encode_commit(resource: u64, partition: u32, offset: u64, group: &str) -> Bytes {
    let mut record = BytesMut::with_capacity(22 + group.len());
    record.put_u8(RECORD_COMMIT);
    record.put_u8(RECORD_VERSION);
    record.put_u64_le(resource);
    record.put_u32_le(partition);
    record.put_u64_le(offset);
    record.put_slice(group.as_bytes());
    record.freeze()
}

fn decode(payload: &[u8]) -> Option<Change> {
    let (&kind, rest) = payload.split_first()?;
    let (&version, rest) = rest.split_first()?;
    if version != RECORD_VERSION || rest.len() < 8 {
        return None;
    }
    let resource = u64::from_le_bytes(rest[..8].try_into().ok()?);
    let rest = &rest[8..];
    match kind {
        RECORD_COMMIT if rest.len() >= 12 => {
            let partition = u32::from_le_bytes(rest[..4].try_into().ok()?);
            let offset = u64::from_le_bytes(rest[4..12].try_into().ok()?);
            let group = String::from_utf8(rest[12..].to_vec()).ok()?;
            Some(Change::Commit {
                resource,
                partition,
                offset,
                group,
            })
        }
        RECORD_GROUP_DELETED => {
            let group = String::from_utf8(rest.to_vec()).ok()?;
            Some(Change::GroupDeleted { resource, group })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_to_what_was_encoded() {
        let record = encode_commit(7, 3, 42, "billing");
        let change = decode(&record).unwrap();
        let expected = Change::Commit {
            resource: 7,
            partition: 3,
            offset: 42,
            group: "billing".into(),
        };
        assert_eq!(change, expected);
        assert_eq!(decode(&record[..10]), None, "a cut record is refused");
        assert_eq!(decode(&[0x99, 1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
