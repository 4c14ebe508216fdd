//! The metadata store: definitions (queues, topics, streams, endpoints) kept atomically.
//!
//! Two files:
//! - `meta.json`, a snapshot of every entry. Its first line holds the CRC32C of the rest, so a
//!   damaged file is reported rather than half-read. It is replaced whole (write a temporary
//!   file, fsync it, rename it over the old one, fsync the directory), so a reader after any
//!   crash sees the old or the new snapshot.
//! - `meta.journal`, the changes since that snapshot: one frame per transaction, appended and
//!   fdatasynced before the change is applied.
//!
//! ```text
//! journal frame: | length u32 LE | crc32c u32 LE of the JSON | JSON array of ops ... |
//! op:            {"put": [key, value]} or {"delete": key}
//! ```
//!
//! A change therefore costs one append and one fdatasync whatever the number of entries, so
//! creating 100,000 queues stays linear (rewriting the whole file per change made it
//! quadratic). Once the journal outgrows the snapshot (and at least
//! [`META_JOURNAL_BYTES_MIN`]), the next change writes a new snapshot and empties the journal.
//! Ops are idempotent (whole values), so a crash between the new snapshot's rename and the
//! journal's truncation only replays changes the snapshot already holds. Opening replays the
//! journal up to its first incomplete or damaged frame: only the last frame can be torn, since
//! each one is synced before the next is written, and the torn tail is cut.

use crate::{error::StorageError, faults::FileOps};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    path::{Path, PathBuf},
    sync::Mutex,
};

const META_FILE_NAME: &str = "meta.json";
const META_TEMP_FILE_NAME: &str = "meta.json.tmp";
const META_JOURNAL_FILE_NAME: &str = "meta.journal";

/// The journal is folded into a new snapshot once it is larger than the snapshot and than
/// this: 1 MiB of changes replays in milliseconds at start, and keeps a small store from
/// rewriting its snapshot on every few changes.
pub const META_JOURNAL_BYTES_MIN: u64 = 1 << 20;

/// One change in a metadata transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaOp {
    Put(String, Value),
    Delete(String),
}

#[derive(Debug)]
pub struct MetaStore {
    dir: PathBuf,
    ops: FileOps,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    entries: BTreeMap<String, Value>,
    journal: File,
    /// Bytes of valid frames in the journal: where the next frame goes.
    journal_bytes: u64,
    /// Size of the current snapshot, to decide when to fold the journal into a new one.
    snapshot_bytes: u64,
}

impl MetaStore {
    pub(crate) fn open(dir: &Path, ops: FileOps) -> Result<MetaStore, StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let path = dir.join(META_FILE_NAME);
        let (mut entries, snapshot_bytes) = match fs::read_to_string(&path) {
            Ok(text) => (parse(&path, &text)?, text.len() as u64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), 0),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        let journal_path = dir.join(META_JOURNAL_FILE_NAME);
        let journal = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&journal_path)
            .map_err(|e| StorageError::io(&journal_path, e))?;
        let bytes = fs::read(&journal_path).map_err(|e| StorageError::io(&journal_path, e))?;
        let journal_bytes = replay_journal(&bytes, &mut entries);
        if journal_bytes < bytes.len() as u64 {
            tracing::warn!(
                valid_bytes = journal_bytes,
                file_bytes = bytes.len(),
                "metadata journal: cutting a torn last change"
            );
            journal
                .set_len(journal_bytes)
                .and_then(|()| ops.sync_all(&journal))
                .map_err(|e| StorageError::io(&journal_path, e))?;
        }
        Ok(MetaStore {
            dir: dir.to_path_buf(),
            ops,
            state: Mutex::new(State {
                entries,
                journal,
                journal_bytes,
                snapshot_bytes,
            }),
        })
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.state().entries.get(key).cloned()
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(String, Value)> {
        let state = self.state();
        state
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn put(&self, key: impl Into<String>, value: Value) -> Result<(), StorageError> {
        self.apply(vec![MetaOp::Put(key.into(), value)])
    }

    pub fn delete(&self, key: impl Into<String>) -> Result<(), StorageError> {
        self.apply(vec![MetaOp::Delete(key.into())])
    }

    /// Applies every op or none, durably, before returning. Blocking.
    pub fn apply(&self, ops: Vec<MetaOp>) -> Result<(), StorageError> {
        let mut state = self.state();
        let json = serde_json::to_vec(&ops).expect("JSON values serialize");
        let mut frame = Vec::with_capacity(8 + json.len());
        frame.extend_from_slice(&(json.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
        frame.extend_from_slice(&json);
        let at = state.journal_bytes;
        let journal_path = self.dir.join(META_JOURNAL_FILE_NAME);
        let written = self
            .ops
            .write_all_at(&state.journal, &frame, at)
            .and_then(|()| self.ops.sync_data(&state.journal));
        if let Err(error) = written {
            // Cut what may have been written, so a later frame cannot follow a partial one.
            let _ = state.journal.set_len(at);
            return Err(StorageError::io(&journal_path, error));
        }
        state.journal_bytes += frame.len() as u64;
        for op in ops {
            apply_op(&mut state.entries, op);
        }
        if state.journal_bytes > state.snapshot_bytes.max(META_JOURNAL_BYTES_MIN) {
            // The change is durable in the journal; a failed fold only postpones the next one.
            if let Err(error) = self.fold(&mut state) {
                tracing::warn!(%error, "metadata: writing a new snapshot failed; the journal keeps the changes");
            }
        }
        Ok(())
    }

    /// Writes a snapshot of every entry and empties the journal.
    fn fold(&self, state: &mut State) -> Result<(), StorageError> {
        state.snapshot_bytes = self.write_snapshot(&state.entries)?;
        let journal_path = self.dir.join(META_JOURNAL_FILE_NAME);
        state
            .journal
            .set_len(0)
            .and_then(|()| self.ops.sync_all(&state.journal))
            .map_err(|e| StorageError::io(&journal_path, e))?;
        state.journal_bytes = 0;
        Ok(())
    }

    fn write_snapshot(&self, entries: &BTreeMap<String, Value>) -> Result<u64, StorageError> {
        let body = serde_json::to_string_pretty(entries).expect("JSON values serialize");
        let text = format!("{:08x}\n{body}\n", crc32c::crc32c(body.as_bytes()));
        let temp = self.dir.join(META_TEMP_FILE_NAME);
        let io_error = |e| StorageError::io(&temp, e);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io_error)?;
        let written = self
            .ops
            .write_all_at(&file, text.as_bytes(), 0)
            .and_then(|()| self.ops.sync_all(&file));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error(e));
        }
        let path = self.dir.join(META_FILE_NAME);
        fs::rename(&temp, &path).map_err(|e| StorageError::io(&path, e))?;
        let dir = File::open(&self.dir).map_err(|e| StorageError::io(&self.dir, e))?;
        self.ops
            .sync_all(&dir)
            .map_err(|e| StorageError::io(&self.dir, e))?;
        Ok(text.len() as u64)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still guards consistent data, since
        // entries change only after their journal frame is durable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn apply_op(entries: &mut BTreeMap<String, Value>, op: MetaOp) {
    match op {
        MetaOp::Put(key, value) => {
            entries.insert(key, value);
        }
        MetaOp::Delete(key) => {
            entries.remove(&key);
        }
    }
}

/// Applies the journal's complete frames in order; returns the bytes they span.
fn replay_journal(bytes: &[u8], entries: &mut BTreeMap<String, Value>) -> u64 {
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(json) = bytes.get(at + 8..at + 8 + length) else {
            break;
        };
        if crc32c::crc32c(json) != crc {
            break;
        }
        let Ok(ops) = serde_json::from_slice::<Vec<MetaOp>>(json) else {
            break;
        };
        for op in ops {
            apply_op(entries, op);
        }
        at += 8 + length;
    }
    at as u64
}

fn parse(path: &Path, text: &str) -> Result<BTreeMap<String, Value>, StorageError> {
    let invalid = |reason: String| StorageError::MetaInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let (crc_line, body) = text
        .split_once('\n')
        .ok_or_else(|| invalid("missing checksum line".into()))?;
    let body = body.strip_suffix('\n').unwrap_or(body);
    let stored = u32::from_str_radix(crc_line, 16)
        .map_err(|_| invalid(format!("bad checksum line {crc_line:?}")))?;
    if crc32c::crc32c(body.as_bytes()) != stored {
        return Err(invalid("checksum mismatch".into()));
    }
    serde_json::from_str(body).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_survive_reopen_and_transactions_apply_whole() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        meta.put("queue/a", json!({"lease_ms": 10})).unwrap();
        meta.apply(vec![
            MetaOp::Put("queue/b".into(), json!(1)),
            MetaOp::Put("topic/x".into(), json!(2)),
            MetaOp::Delete("queue/a".into()),
        ])
        .unwrap();
        let reopened = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        assert_eq!(reopened.get("queue/a"), None);
        assert_eq!(
            reopened.list("queue/"),
            vec![("queue/b".to_string(), json!(1))]
        );
        assert_eq!(reopened.get("topic/x"), Some(json!(2)));
    }

    #[test]
    fn the_journal_folds_into_a_snapshot_and_reopens_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        let value = json!({"options": "x".repeat(1_000)});
        for i in 0..2_000 {
            meta.put(format!("queue/{i:05}"), value.clone()).unwrap();
        }
        for i in (0..2_000).step_by(2) {
            meta.delete(format!("queue/{i:05}")).unwrap();
        }
        let journal = fs::metadata(dir.path().join(META_JOURNAL_FILE_NAME)).unwrap();
        assert!(
            journal.len() <= 2 * META_JOURNAL_BYTES_MIN.max(2_100_000),
            "the journal was folded, not left to grow: {} bytes",
            journal.len()
        );
        let reopened = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        assert_eq!(reopened.list("queue/"), meta.list("queue/"));
        assert_eq!(reopened.list("queue/").len(), 1_000);
    }

    #[test]
    fn a_torn_last_change_is_cut_and_earlier_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        meta.put("queue/b", json!(2)).unwrap();
        drop(meta);
        let path = dir.path().join(META_JOURNAL_FILE_NAME);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let reopened = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        assert_eq!(reopened.list(""), vec![("queue/a".to_string(), json!(1))]);
        reopened.put("queue/c", json!(3)).unwrap();
        let again = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        assert_eq!(
            again.list("").len(),
            2,
            "a new change follows the cut cleanly"
        );
    }

    #[test]
    fn damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        meta.put("queue/a", json!({"lease_ms": 10})).unwrap();
        meta.fold(&mut meta.state()).unwrap();
        let path = dir.path().join(META_FILE_NAME);
        let text = fs::read_to_string(&path).unwrap().replace("10", "11");
        fs::write(&path, text).unwrap();
        let error = MetaStore::open(dir.path(), FileOps::default()).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }

    #[test]
    fn failed_write_leaves_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let faults = crate::Faults::new();
        let meta = MetaStore::open(dir.path(), FileOps::new(Some(faults.clone()))).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        faults.set_space(Some(3));
        let error = meta.put("queue/b", json!(2)).unwrap_err();
        assert!(error.is_disk_full(), "{error}");
        assert_eq!(meta.get("queue/b"), None);
        faults.set_space(None);
        let reopened = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        assert_eq!(reopened.list(""), vec![("queue/a".to_string(), json!(1))]);
        meta.put("queue/b", json!(2)).unwrap();
        assert_eq!(meta.get("queue/b"), Some(json!(2)));
    }
}
