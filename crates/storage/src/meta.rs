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
//! journal's truncation only replays changes the snapshot already holds. Opening replays every
//! valid frame of the journal. Only the last frame can be torn, since each one is synced before
//! the next is written: bytes with no valid frame after them are a torn tail and are cut. A bad
//! frame with valid frames after it is damage: it is skipped and logged, never cut, and the
//! changes after it stay.
//!
//! A change whose write or fsync failed was reported as failed, so it must never come back:
//! its bytes are cut from the journal, and the cut is synced before any later frame is
//! written (until it is, every change fails).
//!
//! A new store writes its (empty) snapshot at once, and every journal that follows a snapshot
//! starts with a marker, a frame of no ops. So a missing `meta.json` is told apart from a new
//! store: with a marker in the journal, or logs in the data directory, the snapshot was lost
//! and opening fails ([`StorageError::MetaMissing`]) rather than start with no definitions
//! and orphaned logs. A journal with no marker and no snapshot is a store from before this
//! rule, whose journal holds every change; it opens and gets its snapshot.

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
    /// A failed write may have left bytes after `journal_bytes` (a frame whose fsync failed
    /// can still reach the disk by later writeback). Until the cut back to `journal_bytes` is
    /// itself synced, no change is accepted: a frame written after the failed one would make
    /// a restart read the failed one back.
    cut_pending: bool,
}

impl MetaStore {
    /// Opens the store in `dir`. `logs_present` says whether the data directory holds logs: with
    /// no snapshot, that is evidence of lost state rather than of a new store.
    pub(crate) fn open(
        dir: &Path,
        ops: FileOps,
        logs_present: bool,
    ) -> Result<MetaStore, StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let path = dir.join(META_FILE_NAME);
        let snapshot = match fs::read_to_string(&path) {
            Ok(text) => Some((parse(&path, &text)?, text.len() as u64)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
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
        if snapshot.is_none() {
            open_check_missing_snapshot(&path, &bytes, logs_present)?;
        }
        let snapshot_found = snapshot.is_some();
        let (mut entries, snapshot_bytes) = snapshot.unwrap_or_default();
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
        let store = MetaStore {
            dir: dir.to_path_buf(),
            ops,
            state: Mutex::new(State {
                entries,
                journal,
                journal_bytes,
                snapshot_bytes,
                cut_pending: false,
            }),
        };
        if !snapshot_found {
            // A new store (or one written before snapshots were kept from the start) gets its
            // snapshot now, so that losing it later is noticed rather than read as "empty".
            store.fold(&mut store.state())?;
        }
        Ok(store)
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

    /// Applies every op or none, durably, before returning. Blocking. A change that fails
    /// leaves nothing a restart reads back (unless the machine crashes before the cut of its
    /// bytes is synced, which the next change waits for).
    pub fn apply(&self, ops: Vec<MetaOp>) -> Result<(), StorageError> {
        let mut state = self.state();
        self.finish_cut(&mut state)?;
        let frame = encode_frame(&ops);
        let at = state.journal_bytes;
        let written = self
            .ops
            .write_all_at(&state.journal, &frame, at)
            .and_then(|()| self.ops.sync_data(&state.journal));
        if let Err(error) = written {
            state.cut_pending = true;
            if let Err(cut) = self.finish_cut(&mut state) {
                tracing::warn!(error = %cut, "metadata journal: cutting a failed change failed; the next change retries first");
            }
            return Err(StorageError::io(self.journal_path(), error));
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

    /// Cuts the journal back to its confirmed frames and syncs the cut, if a failure left
    /// something after them.
    fn finish_cut(&self, state: &mut State) -> Result<(), StorageError> {
        if !state.cut_pending {
            return Ok(());
        }
        state
            .journal
            .set_len(state.journal_bytes)
            .and_then(|()| self.ops.sync_all(&state.journal))
            .map_err(|e| StorageError::io(self.journal_path(), e))?;
        state.cut_pending = false;
        Ok(())
    }

    /// Writes a snapshot of every entry and empties the journal, leaving in it only the
    /// marker that says a snapshot comes before it.
    fn fold(&self, state: &mut State) -> Result<(), StorageError> {
        state.snapshot_bytes = self.write_snapshot(&state.entries)?;
        let marker = encode_frame(&[]);
        let emptied = state.journal.set_len(0);
        if emptied.is_ok() {
            state.journal_bytes = 0;
        }
        let written = emptied
            .and_then(|()| self.ops.write_all_at(&state.journal, &marker, 0))
            .and_then(|()| self.ops.sync_all(&state.journal));
        if let Err(error) = written {
            state.cut_pending = true;
            return Err(StorageError::io(self.journal_path(), error));
        }
        state.journal_bytes = marker.len() as u64;
        Ok(())
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(META_JOURNAL_FILE_NAME)
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

/// One journal frame holding `ops`; with none, the marker that starts a journal following a
/// snapshot (a journal written before snapshots were kept from the start has no marker).
fn encode_frame(ops: &[MetaOp]) -> Vec<u8> {
    let json = serde_json::to_vec(ops).expect("JSON values serialize");
    let mut frame = Vec::with_capacity(8 + json.len());
    frame.extend_from_slice(&(json.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    frame.extend_from_slice(&json);
    frame
}

/// With no snapshot, an empty state is right only for a new store, or for an old one whose
/// journal holds everything (it never folded, so it has no marker). A marker, or logs with an
/// empty journal, mean the snapshot existed and is lost.
fn open_check_missing_snapshot(
    path: &Path,
    journal: &[u8],
    logs_present: bool,
) -> Result<(), StorageError> {
    let evidence = if journal.starts_with(&encode_frame(&[])) {
        "the journal continues a snapshot"
    } else if journal.is_empty() && logs_present {
        "the data directory holds logs"
    } else {
        return Ok(());
    };
    Err(StorageError::MetaMissing {
        path: path.to_path_buf(),
        evidence,
    })
}

/// Applies the journal's complete frames in order; returns the bytes they span.
/// Replays the journal's frames into `entries`; returns the end of the last valid frame.
///
/// A frame that fails its checks with a valid frame somewhere after it is damage (a bad block
/// or bytes changed by hand), not a torn write, which can only be the last frame: its changes
/// are lost, the damage is logged, and replay goes on after it. Only bytes with no valid frame
/// after them are a torn tail, which the caller cuts.
fn replay_journal(bytes: &[u8], entries: &mut BTreeMap<String, Value>) -> u64 {
    let mut at = 0usize;
    let mut end = 0usize;
    while at < bytes.len() {
        if let Some((ops, next)) = journal_frame_at(bytes, at) {
            for op in ops {
                apply_op(entries, op);
            }
            (at, end) = (next, next);
            continue;
        }
        let Some(next) = (at + 1..bytes.len()).find(|p| journal_frame_at(bytes, *p).is_some())
        else {
            break;
        };
        tracing::error!(
            from_byte = at,
            to_byte = next,
            "metadata journal: a damaged change is skipped, and what it changed is lost; \
             the changes after it are kept"
        );
        at = next;
    }
    end as u64
}

/// The ops of the journal frame starting at byte `at` and where the next frame starts, when
/// a whole valid frame starts there.
fn journal_frame_at(bytes: &[u8], at: usize) -> Option<(Vec<MetaOp>, usize)> {
    let header = bytes.get(at..at + 8)?;
    let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let json = bytes.get(at + 8..(at + 8).checked_add(length)?)?;
    // Every frame is a JSON array: a cheap test before the checksum, for the search past damage.
    if json.first() != Some(&b'[') || crc32c::crc32c(json) != crc {
        return None;
    }
    let ops = serde_json::from_slice::<Vec<MetaOp>>(json).ok()?;
    Some((ops, at + 8 + length))
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
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        meta.put("queue/a", json!({"lease_ms": 10})).unwrap();
        meta.apply(vec![
            MetaOp::Put("queue/b".into(), json!(1)),
            MetaOp::Put("topic/x".into(), json!(2)),
            MetaOp::Delete("queue/a".into()),
        ])
        .unwrap();
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
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
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
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
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(reopened.list("queue/"), meta.list("queue/"));
        assert_eq!(reopened.list("queue/").len(), 1_000);
    }

    #[test]
    fn a_torn_last_change_is_cut_and_earlier_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        meta.put("queue/b", json!(2)).unwrap();
        drop(meta);
        let path = dir.path().join(META_JOURNAL_FILE_NAME);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(reopened.list(""), vec![("queue/a".to_string(), json!(1))]);
        reopened.put("queue/c", json!(3)).unwrap();
        let again = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(
            again.list("").len(),
            2,
            "a new change follows the cut cleanly"
        );
    }

    #[test]
    fn a_damaged_change_costs_only_itself_and_the_changes_after_it_stay() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        meta.put("queue/b", json!(2)).unwrap();
        meta.put("queue/c", json!(3)).unwrap();
        drop(meta);
        let path = dir.path().join(META_JOURNAL_FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let b = (bytes.windows(7).position(|w| w == b"queue/b")).expect("b's frame");
        bytes[b] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        let keys: Vec<String> = reopened.list("").into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["queue/a", "queue/c"],
            "only the damaged change is lost"
        );
        assert_eq!(
            fs::read(&path).unwrap().len(),
            bytes.len(),
            "damage is not cut as a torn tail"
        );
        reopened.put("queue/d", json!(4)).unwrap();
        drop(reopened);
        let again = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(
            again.list("").len(),
            3,
            "a new change follows the damaged journal"
        );
    }

    #[test]
    fn damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        meta.put("queue/a", json!({"lease_ms": 10})).unwrap();
        meta.fold(&mut meta.state()).unwrap();
        let path = dir.path().join(META_FILE_NAME);
        let text = fs::read_to_string(&path).unwrap().replace("10", "11");
        fs::write(&path, text).unwrap();
        let error = MetaStore::open(dir.path(), FileOps::default(), false).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }

    #[test]
    fn failed_write_leaves_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let faults = crate::Faults::new();
        let meta = MetaStore::open(dir.path(), FileOps::new(Some(faults.clone())), false).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        faults.set_space(Some(3));
        let error = meta.put("queue/b", json!(2)).unwrap_err();
        assert!(error.is_disk_full(), "{error}");
        assert_eq!(meta.get("queue/b"), None);
        faults.set_space(None);
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(reopened.list(""), vec![("queue/a".to_string(), json!(1))]);
        meta.put("queue/b", json!(2)).unwrap();
        assert_eq!(meta.get("queue/b"), Some(json!(2)));
    }

    #[test]
    fn a_change_whose_sync_failed_is_not_read_back_and_blocks_later_ones_until_cut() {
        let dir = tempfile::tempdir().unwrap();
        let faults = crate::Faults::new();
        let ops = FileOps::new(Some(faults.clone()));
        let meta = MetaStore::open(dir.path(), ops, false).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        faults.set_fail_syncs(true);
        meta.put("queue/b", json!(2)).unwrap_err();
        assert!(meta.state().cut_pending, "the cut could not be synced");
        meta.put("queue/c", json!(3)).unwrap_err();
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(reopened.list(""), vec![("queue/a".to_string(), json!(1))]);
        drop(reopened);
        faults.set_fail_syncs(false);
        meta.put("queue/d", json!(4)).unwrap();
        let reopened = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        let keys: Vec<_> = reopened.list("").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["queue/a", "queue/d"]);
    }

    #[test]
    fn a_lost_snapshot_is_refused_when_the_journal_or_logs_show_state() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        drop(meta);
        let snapshot = dir.path().join(META_FILE_NAME);
        fs::remove_file(&snapshot).unwrap();
        let error = MetaStore::open(dir.path(), FileOps::default(), false).unwrap_err();
        assert!(matches!(error, StorageError::MetaMissing { .. }), "{error}");
        // Folded just before the loss: the journal holds only its marker.
        let meta = {
            fs::remove_file(dir.path().join(META_JOURNAL_FILE_NAME)).unwrap();
            MetaStore::open(dir.path(), FileOps::default(), false).unwrap()
        };
        meta.fold(&mut meta.state()).unwrap();
        drop(meta);
        fs::remove_file(&snapshot).unwrap();
        MetaStore::open(dir.path(), FileOps::default(), false).unwrap_err();
        fs::write(dir.path().join(META_JOURNAL_FILE_NAME), b"").unwrap();
        let error = MetaStore::open(dir.path(), FileOps::default(), true).unwrap_err();
        assert!(error.to_string().contains("holds logs"), "{error}");
    }

    #[test]
    fn a_new_store_and_a_journal_without_snapshot_open_and_get_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        drop(MetaStore::open(dir.path(), FileOps::default(), false).unwrap());
        assert!(dir.path().join(META_FILE_NAME).exists());
        drop(MetaStore::open(dir.path(), FileOps::default(), true).unwrap());
        // A store from before snapshots were written at creation: all its state in the journal.
        let other = tempfile::tempdir().unwrap();
        let frame = encode_frame(&[MetaOp::Put("queue/a".into(), json!(1))]);
        fs::write(other.path().join(META_JOURNAL_FILE_NAME), frame).unwrap();
        let meta = MetaStore::open(other.path(), FileOps::default(), true).unwrap();
        assert_eq!(meta.list(""), vec![("queue/a".to_string(), json!(1))]);
        assert!(other.path().join(META_FILE_NAME).exists());
    }
}
