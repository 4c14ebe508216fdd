//! Snapshots: the latest saved state of a stream at a version, so that an aggregate loads
//! from it and the events after it. Kept in a log of their own, `event-snapshots`, so that
//! `$all` holds events only; the newest snapshot of each stream is found through a map of
//! positions rebuilt at open.
//!
//! ```text
//! snapshot: | stream len u16 | stream | version u64 | time_ms u64 | state (JSON text, rest) |
//! ```

use super::Engine;
use crate::{
    error::EngineError,
    eventstore::{check_stream_id, EventStoreError, StreamStatus},
};
use bytes::{BufMut, Bytes, BytesMut};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use wharf_storage::{Durability, LogOptions, LogSize, LogStore, Offset, Storage};

pub const SNAPSHOTS_LOG: &str = "event-snapshots";

/// A stream's saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub stream: String,
    /// The version of the last event the state includes.
    pub version: u64,
    pub time_ms: u64,
    /// JSON text.
    pub state: Bytes,
}

#[derive(Debug)]
pub(crate) struct Snapshots {
    log: Arc<dyn LogStore>,
    /// The position of each stream's newest snapshot.
    newest: Mutex<HashMap<Box<str>, u64>>,
}

impl Snapshots {
    pub(crate) async fn open(store: &dyn Storage) -> Result<Snapshots, EngineError> {
        let options = LogOptions {
            durability: Durability::Durable,
            size: LogSize::Growing,
        };
        let log = store.open_log(SNAPSHOTS_LOG, options).await?;
        let mut newest = HashMap::new();
        let mut at = log.start_offset();
        loop {
            let batch = log.read_batch(at, 4_096, 16 << 20).await?;
            let Some(last) = batch.last() else { break };
            at = last.offset.next();
            for record in &batch {
                match decode(&record.payload) {
                    Some(snapshot) => {
                        newest.insert(snapshot.stream.into_boxed_str(), record.offset.0);
                    }
                    None => tracing::error!(
                        position = record.offset.0,
                        "skipping a damaged snapshot record"
                    ),
                }
            }
        }
        Ok(Snapshots {
            log,
            newest: Mutex::new(newest),
        })
    }
}

fn encode(snapshot: &Snapshot) -> Bytes {
    let mut out = BytesMut::with_capacity(18 + snapshot.stream.len() + snapshot.state.len());
    out.put_u16_le(snapshot.stream.len() as u16);
    out.put_slice(snapshot.stream.as_bytes());
    out.put_u64_le(snapshot.version);
    out.put_u64_le(snapshot.time_ms);
    out.put_slice(&snapshot.state);
    out.freeze()
}

fn decode(payload: &Bytes) -> Option<Snapshot> {
    let length = u16::from_le_bytes(payload.get(..2)?.try_into().ok()?) as usize;
    let stream = std::str::from_utf8(payload.get(2..2 + length)?).ok()?;
    let at = 2 + length;
    let version = u64::from_le_bytes(payload.get(at..at + 8)?.try_into().ok()?);
    let time_ms = u64::from_le_bytes(payload.get(at + 8..at + 16)?.try_into().ok()?);
    Some(Snapshot {
        stream: stream.to_string(),
        version,
        time_ms,
        state: payload.slice(at + 16..),
    })
}

impl Engine {
    /// Saves `state` (JSON text) as the snapshot of `stream` at `version`, which must be
    /// written already and not soft deleted.
    pub async fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        state: Bytes,
    ) -> Result<Snapshot, EngineError> {
        self.check_open()?;
        check_stream_id("stream", stream)?;
        self.readable_head(stream, Some(version))?;
        let snapshot = Snapshot {
            stream: stream.to_string(),
            version,
            time_ms: self.now(),
            state,
        };
        let snapshots = &self.events().snapshots;
        let written = snapshots.log.append(&[encode(&snapshot)], None).await?;
        let mut newest = snapshots.newest.lock().expect("snapshot lock");
        // Concurrent saves may get here out of log order; the newest is the last in the log,
        // as the map rebuilt at open has it.
        let position = newest.entry(stream.into()).or_insert(written.start.0);
        *position = (*position).max(written.start.0);
        Ok(snapshot)
    }

    /// The newest snapshot of `stream`.
    pub async fn load_snapshot(&self, stream: &str) -> Result<Snapshot, EngineError> {
        check_stream_id("stream", stream)?;
        let visible_from = self.readable_head(stream, None)?;
        let snapshots = &self.events().snapshots;
        let not_found = || EventStoreError::SnapshotNotFound {
            stream: stream.to_string(),
        };
        let position = (snapshots.newest.lock().expect("snapshot lock").get(stream)).copied();
        let position = position.ok_or_else(not_found)?;
        let record = snapshots.log.read(Offset(position)).await?;
        let snapshot = record.and_then(|record| decode(&record.payload));
        let snapshot = snapshot.ok_or_else(|| EventStoreError::Damaged {
            position,
            problem: "the snapshot record does not decode".to_string(),
        })?;
        // A snapshot of events deleted since is no longer the stream's.
        match snapshot.version >= visible_from {
            true => Ok(snapshot),
            false => Err(not_found().into()),
        }
    }

    /// Checks that `stream` can be read (and holds `version`, not soft deleted, if given);
    /// returns the first version not soft deleted.
    fn readable_head(&self, stream: &str, version: Option<u64>) -> Result<u64, EngineError> {
        let index = self.events().index.read().expect("event index lock");
        let head = index.head(stream);
        match head.status {
            Some(StreamStatus::Tombstoned) => {
                let stream = stream.to_string();
                return Err(EventStoreError::StreamDeleted { stream }.into());
            }
            Some(StreamStatus::Live) => {}
            _ => {
                let stream = stream.to_string();
                return Err(EventStoreError::StreamNotFound { stream }.into());
            }
        }
        if let Some(version) = version.filter(|v| Some(*v) > head.current_version()) {
            return Err(EventStoreError::SnapshotAhead {
                stream: stream.to_string(),
                version,
                current: head.current_version(),
            }
            .into());
        }
        let visible_from = index.visible_from(stream);
        // Such a snapshot could never be loaded, yet as the newest it would hide the ones
        // that can.
        if let Some(version) = version.filter(|v| *v < visible_from) {
            let problem = format!(
                "version {version} of {stream:?} was soft deleted; its events start at {visible_from}"
            );
            return Err(EventStoreError::invalid("version", problem).into());
        }
        Ok(visible_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip() {
        let snapshot = Snapshot {
            stream: "order-1".to_string(),
            version: 7,
            time_ms: 9,
            state: Bytes::from_static(b"{\"paid\":true}"),
        };
        assert_eq!(decode(&encode(&snapshot)), Some(snapshot));
        assert_eq!(decode(&Bytes::from_static(b"\x05\x00ab")), None);
    }
}
