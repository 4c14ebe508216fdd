//! The metadata store: definitions (queues, topics, streams, endpoints) kept atomically.
//!
//! Two files:
//! - `meta.json`, a snapshot of every entry, one line per entry, each line with its own CRC32C
//!   (layout below). A damaged line costs only its entry: it is skipped, logged and listed in
//!   [`MetaStore::damage`], with its key when the key's own checksum still holds, so that the
//!   engine can name what was lost. The header counts the entries, so a snapshot cut short is
//!   noticed too. The snapshot is replaced whole (write a temporary file, fsync it, rename it
//!   over the old one, fsync the directory), so a reader after any crash sees the old or the
//!   new snapshot; damage therefore means bytes changed under the store (a bad block, an edit
//!   by hand), and the damaged file is kept as `meta.json.damaged` before any later snapshot
//!   replaces it.
//! - `meta.journal`, the changes since that snapshot: one frame per transaction, appended and
//!   fdatasynced before the change is applied.
//!
//! ```text
//! meta.json:     | crc32c hex8 | ' ' | "wharf-meta 2 " entry count          | '\n' |
//!                | crc32c hex8 | ' ' | key crc32c hex8 ' ' key JSON ' ' value JSON | '\n' | ...
//!                  (each line's CRC covers the rest of the line after its first space;
//!                   the key CRC covers the key JSON alone; JSON here never holds '\n')
//! ```
//!
//! Snapshots written before this layout (a first line holding the CRC32C of one pretty-printed
//! JSON object after it) are still read, whole or not at all: one checksum cannot tell which
//! entry a damage touched, so such a file that fails it refuses to open. The next snapshot
//! written is in the layout above.
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
//! frame with valid frames after it is damage: it is skipped, logged and listed in
//! [`MetaStore::damage`], never cut, and the changes after it stay.
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
    fmt,
    fs::{self, File, OpenOptions},
    ops::{Bound, Range},
    path::{Path, PathBuf},
    sync::Mutex,
};

const META_FILE_NAME: &str = "meta.json";
const META_TEMP_FILE_NAME: &str = "meta.json.tmp";
const META_DAMAGED_FILE_NAME: &str = "meta.json.damaged";
const META_JOURNAL_FILE_NAME: &str = "meta.journal";
/// The first words of a snapshot's header line, then the entry count.
const SNAPSHOT_MAGIC: &str = "wharf-meta 2";

/// The journal is folded into a new snapshot once it is larger than the snapshot and than
/// this: 1 MiB of changes replays in milliseconds at start, and keeps a small store from
/// rewriting its snapshot on every few changes.
pub const META_JOURNAL_BYTES_MIN: u64 = 1 << 20;

/// Metadata found unreadable at open: what it cost and where it was. The rest of the store
/// opened; the lost entries are simply absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaDamage {
    pub path: PathBuf,
    /// The damaged bytes of the file (empty at the end of the file for [`MetaLoss::Entries`]).
    pub bytes: Range<u64>,
    pub lost: MetaLoss,
}

/// What one [`MetaDamage`] cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaLoss {
    /// One snapshot entry; its key when the key's own checksum still holds.
    Entry { key: Option<String> },
    /// Entries the snapshot's header counts that no line of the file holds any more (the file
    /// was cut short, or damage merged lines).
    Entries { count: u64 },
    /// The snapshot's header: how many entries the snapshot held is unknown.
    Header,
    /// One journal change (a transaction of any number of ops): the keys it touched are unknown.
    Change,
}

impl fmt::Display for MetaDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, bytes) = (self.path.display(), &self.bytes);
        match &self.lost {
            MetaLoss::Entry { key: Some(key) } => {
                write!(f, "{path} bytes {bytes:?}: entry {key:?} lost")
            }
            MetaLoss::Entry { key: None } => {
                write!(
                    f,
                    "{path} bytes {bytes:?}: an entry lost, its key unreadable"
                )
            }
            MetaLoss::Entries { count } => {
                write!(f, "{path}: {count} entries counted by the header missing")
            }
            MetaLoss::Header => write!(f, "{path} bytes {bytes:?}: header unreadable"),
            MetaLoss::Change => write!(f, "{path} bytes {bytes:?}: a change lost"),
        }
    }
}

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
    /// Found at open; fixed from then on.
    damage: Vec<MetaDamage>,
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
        let snapshot = match fs::read(&path) {
            Ok(bytes) => Some(parse_snapshot(&path, &bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        if snapshot.as_ref().is_some_and(|s| !s.damage.is_empty()) {
            open_keep_damaged_snapshot(dir);
        }
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
        let Snapshot {
            mut entries,
            bytes: snapshot_bytes,
            mut damage,
        } = snapshot.unwrap_or_default();
        let (journal_bytes, skipped) = replay_journal(&bytes, &mut entries);
        damage.extend(skipped.into_iter().map(|bytes| MetaDamage {
            path: journal_path.clone(),
            bytes,
            lost: MetaLoss::Change,
        }));
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
            damage,
        };
        if !snapshot_found {
            // A new store (or one written before snapshots were kept from the start) gets its
            // snapshot now, so that losing it later is noticed rather than read as "empty".
            store.fold(&mut store.state())?;
        }
        Ok(store)
    }

    /// What damage cost at open, in file order: the snapshot's, then the journal's. Empty for
    /// an undamaged store.
    pub fn damage(&self) -> &[MetaDamage] {
        &self.damage
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.state().entries.get(key).cloned()
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(String, Value)> {
        self.range(prefix, None, usize::MAX)
    }

    /// Up to `limit` entries whose key starts with `prefix` and sorts after `after`, in key
    /// order; see [`entries_range`].
    pub fn range(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(String, Value)> {
        entries_range(&self.state().entries, prefix, after, limit)
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
        let text = encode_snapshot(entries);
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

/// Up to `limit` entries of `entries` whose key starts with `prefix` and sorts after `after`
/// (exclusive; none: from the prefix), in key order. Costs the entries it returns: the walk
/// starts at the cursor and stops at the first key past the prefix.
pub(crate) fn entries_range(
    entries: &BTreeMap<String, Value>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<(String, Value)> {
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    (entries.range::<str, _>((start, Bound::Unbounded)))
        .take_while(|(key, _)| key.starts_with(prefix))
        .take(limit)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
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

/// Replays the journal's frames into `entries`; returns the end of the last valid frame and
/// the byte ranges of the damaged frames skipped.
///
/// A frame that fails its checks with a valid frame somewhere after it is damage (a bad block
/// or bytes changed by hand), not a torn write, which can only be the last frame: its changes
/// are lost, the damage is logged, and replay goes on after it. Only bytes with no valid frame
/// after them are a torn tail, which the caller cuts.
fn replay_journal(bytes: &[u8], entries: &mut BTreeMap<String, Value>) -> (u64, Vec<Range<u64>>) {
    let mut at = 0usize;
    let mut end = 0usize;
    let mut skipped = Vec::new();
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
        skipped.push(at as u64..next as u64);
        at = next;
    }
    (end as u64, skipped)
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

/// A snapshot as read: the entries of its valid lines, its size, and what damage cost.
#[derive(Debug, Default)]
struct Snapshot {
    entries: BTreeMap<String, Value>,
    bytes: u64,
    damage: Vec<MetaDamage>,
}

/// One snapshot in the line layout of the module header.
fn encode_snapshot(entries: &BTreeMap<String, Value>) -> String {
    let mut text = String::new();
    encode_snapshot_line(&mut text, &format!("{SNAPSHOT_MAGIC} {}", entries.len()));
    for (key, value) in entries {
        let key = serde_json::to_string(key).expect("strings serialize");
        let value = serde_json::to_string(value).expect("JSON values serialize");
        let key_crc = crc32c::crc32c(key.as_bytes());
        encode_snapshot_line(&mut text, &format!("{key_crc:08x} {key} {value}"));
    }
    text
}

fn encode_snapshot_line(text: &mut String, payload: &str) {
    debug_assert!(!payload.contains('\n'), "compact JSON escapes newlines");
    let crc = crc32c::crc32c(payload.as_bytes());
    text.push_str(&format!("{crc:08x} {payload}\n"));
}

/// Reads a snapshot in either layout. Only the old layout fails as a whole; in the line layout,
/// damage costs the lines it touches (see the module header).
fn parse_snapshot(path: &Path, bytes: &[u8]) -> Result<Snapshot, StorageError> {
    if is_single_checksum_snapshot(bytes) {
        let entries = parse_single_checksum_snapshot(path, bytes)?;
        let bytes = bytes.len() as u64;
        return Ok(Snapshot {
            entries,
            bytes,
            damage: Vec::new(),
        });
    }
    let mut snapshot = Snapshot {
        bytes: bytes.len() as u64,
        ..Snapshot::default()
    };
    let mut lines = snapshot_lines(bytes);
    let mut found = 0u64;
    let counted = match lines.next() {
        Some((at, line)) => {
            let count = snapshot_header(line);
            if count.is_none() {
                let lost = MetaLoss::Header;
                found += parse_snapshot_damaged_line(path, &mut snapshot, at, line, lost) as u64;
            }
            count
        }
        None => {
            let lost = MetaLoss::Header;
            parse_snapshot_damaged_line(path, &mut snapshot, 0, b"", lost);
            None
        }
    };
    for (at, line) in lines {
        found += 1;
        match snapshot_entry(line) {
            Ok((key, value)) => {
                snapshot.entries.insert(key, value);
            }
            Err(key) => {
                let lost = MetaLoss::Entry { key };
                found += parse_snapshot_damaged_line(path, &mut snapshot, at, line, lost) as u64;
            }
        }
    }
    if let Some(count) = counted.filter(|count| *count > found) {
        let end = bytes.len() as u64;
        snapshot.damage.push(MetaDamage {
            path: path.to_path_buf(),
            bytes: end..end,
            lost: MetaLoss::Entries {
                count: count - found,
            },
        });
    }
    for damage in &snapshot.damage {
        tracing::warn!(%damage, "metadata snapshot: damage is skipped; the other entries are kept");
    }
    Ok(snapshot)
}

/// Records the damaged `line` starting at byte `at`, up to the valid entry line a damaged
/// newline may have merged into it; keeps that entry and says whether there was one.
fn parse_snapshot_damaged_line(
    path: &Path,
    snapshot: &mut Snapshot,
    at: usize,
    line: &[u8],
    lost: MetaLoss,
) -> bool {
    let (damaged_len, entry) = snapshot_resync(line);
    snapshot.damage.push(MetaDamage {
        path: path.to_path_buf(),
        bytes: at as u64..(at + damaged_len) as u64,
        lost,
    });
    let found = entry.is_some();
    snapshot.entries.extend(entry);
    found
}

/// For a damaged line: how many of its bytes are damaged, and the valid entry line after them
/// when a damaged newline had merged one into it. Only starts that look like a line (8 hex
/// digits and a space) are checked, so a long run of garbage costs one pass.
fn snapshot_resync(line: &[u8]) -> (usize, Option<(String, Value)>) {
    let looks_like_a_line = |rest: &[u8]| {
        rest.len() > 18 && rest[..8].iter().all(u8::is_ascii_hexdigit) && rest[8] == b' '
    };
    (1..line.len())
        .filter(|at| looks_like_a_line(&line[*at..]))
        .find_map(|at| Some((at, snapshot_entry(&line[at..]).ok()?)))
        .map_or((line.len(), None), |(at, entry)| (at, Some(entry)))
}

/// The lines of `bytes` with the byte each starts at, without their newline. A last line with
/// no newline (a file cut short) is a line too; nothing after the last newline is none.
fn snapshot_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let rest = &bytes[at..];
        let len = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let line = (at, &rest[..len]);
        at += len + 1;
        Some(line)
    })
}

/// The payload of a line `crc32c-hex8 ' ' payload` whose checksum holds.
fn snapshot_line_payload(line: &[u8]) -> Option<&[u8]> {
    let (crc, payload) = (line.get(..8)?, line.get(9..)?);
    if line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    (crc32c::crc32c(payload) == crc).then_some(payload)
}

/// The entry count of a valid header line.
fn snapshot_header(line: &[u8]) -> Option<u64> {
    let payload = std::str::from_utf8(snapshot_line_payload(line)?).ok()?;
    payload
        .strip_prefix(SNAPSHOT_MAGIC)?
        .strip_prefix(' ')?
        .parse()
        .ok()
}

/// The entry of a valid line; for a damaged one, its key if the key's own checksum holds.
fn snapshot_entry(line: &[u8]) -> Result<(String, Value), Option<String>> {
    let key = snapshot_entry_key(line.get(9..).unwrap_or_default());
    let payload = snapshot_line_payload(line).ok_or_else(|| key.clone().map(|(k, _)| k))?;
    let (key, value_at) = key.ok_or(None)?;
    let value = (payload.get(value_at..))
        .and_then(|json| serde_json::from_slice(json).ok())
        .ok_or(Some(key.clone()))?;
    Ok((key, value))
}

/// The key of an entry line's payload (after the line's own checksum) when the key's checksum
/// holds, and where the value's JSON starts in that payload.
fn snapshot_entry_key(payload: &[u8]) -> Option<(String, usize)> {
    let crc = u32::from_str_radix(std::str::from_utf8(payload.get(..8)?).ok()?, 16).ok()?;
    if payload.get(8) != Some(&b' ') {
        return None;
    }
    let json = &payload[9..];
    let mut keys = serde_json::Deserializer::from_slice(json).into_iter::<String>();
    let key = keys.next()?.ok()?;
    let end = keys.byte_offset();
    if crc32c::crc32c(&json[..end]) != crc || json.get(end) != Some(&b' ') {
        return None;
    }
    Some((key, 9 + end + 1))
}

/// Whether `bytes` is a snapshot of the old layout: a first line of exactly 8 hex digits, then
/// one JSON object. A line-layout snapshot's header is longer, and its second line starts with
/// a hex digit, so one damage cannot make it look old.
fn is_single_checksum_snapshot(bytes: &[u8]) -> bool {
    bytes.len() > 9
        && bytes[..8].iter().all(u8::is_ascii_hexdigit)
        && bytes[8] == b'\n'
        && bytes[9] == b'{'
}

/// Reads an old-layout snapshot, which one checksum covers: whole, or refused.
fn parse_single_checksum_snapshot(
    path: &Path,
    bytes: &[u8],
) -> Result<BTreeMap<String, Value>, StorageError> {
    let invalid = |reason: String| StorageError::MetaInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(e.to_string()))?;
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

/// Keeps a copy of a damaged snapshot, so that the next snapshot (which holds only what could
/// be read) does not erase the evidence. The first damaged copy is kept; a failure to copy
/// costs only the evidence, so it is logged, not fatal.
fn open_keep_damaged_snapshot(dir: &Path) {
    let kept = dir.join(META_DAMAGED_FILE_NAME);
    if kept.exists() {
        return;
    }
    if let Err(error) = fs::copy(dir.join(META_FILE_NAME), &kept) {
        tracing::warn!(%error, path = %kept.display(), "metadata: keeping a copy of the damaged snapshot failed");
    }
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

    /// A store holding `queue/a`, `queue/b` and `queue/c` in its snapshot, closed.
    fn folded_store(dir: &Path) -> PathBuf {
        let meta = MetaStore::open(dir, FileOps::default(), false).unwrap();
        for (key, lease) in [("queue/a", 10), ("queue/b", 20), ("queue/c", 30)] {
            meta.put(key, json!({ "lease_ms": lease })).unwrap();
        }
        meta.fold(&mut meta.state()).unwrap();
        dir.join(META_FILE_NAME)
    }

    fn keys(meta: &MetaStore) -> Vec<String> {
        meta.list("").into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_flipped_byte_in_one_snapshot_entry_costs_only_that_entry_and_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = folded_store(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let value = bytes
            .windows(2)
            .position(|w| w == b"20")
            .expect("b's value");
        bytes[value] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&meta), ["queue/a", "queue/c"]);
        assert_eq!(meta.get("queue/c"), Some(json!({ "lease_ms": 30 })));
        let [damage] = meta.damage() else {
            panic!("one damage: {:?}", meta.damage())
        };
        let key = Some("queue/b".to_string());
        assert_eq!(damage.lost, MetaLoss::Entry { key });
        assert!(damage.bytes.contains(&(value as u64)), "{damage}");
        assert_eq!(damage.path, path);
        assert_eq!(
            fs::read(dir.path().join(META_DAMAGED_FILE_NAME)).unwrap(),
            bytes,
            "the damaged snapshot is kept for the operator"
        );
        // The next snapshot holds what was read, and reopens clean.
        meta.fold(&mut meta.state()).unwrap();
        drop(meta);
        let again = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&again), ["queue/a", "queue/c"]);
        assert!(again.damage().is_empty(), "{:?}", again.damage());
    }

    #[test]
    fn a_damaged_newline_costs_only_the_line_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = folded_store(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let b = bytes
            .windows(7)
            .position(|w| w == b"queue/b")
            .expect("b's key");
        let newline = b - bytes[..b].iter().rev().position(|c| *c == b'\n').unwrap() - 1;
        bytes[newline] = b'x';
        fs::write(&path, &bytes).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&meta), ["queue/b", "queue/c"]);
        let key = Some("queue/a".to_string());
        let lost: Vec<&MetaLoss> = meta.damage().iter().map(|d| &d.lost).collect();
        assert_eq!(lost, [&MetaLoss::Entry { key }]);
    }

    #[test]
    fn a_damaged_key_is_reported_by_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = folded_store(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let key = bytes
            .windows(7)
            .position(|w| w == b"queue/a")
            .expect("a's key");
        bytes[key + 6] = b'z';
        fs::write(&path, &bytes).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&meta), ["queue/b", "queue/c"]);
        let [damage] = meta.damage() else {
            panic!("one damage: {:?}", meta.damage())
        };
        assert_eq!(damage.lost, MetaLoss::Entry { key: None });
        assert!(damage.bytes.contains(&(key as u64 + 6)), "{damage}");
    }

    #[test]
    fn a_snapshot_cut_short_keeps_the_entries_before_the_cut_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = folded_store(dir.path());
        let bytes = fs::read(&path).unwrap();
        let b = bytes
            .windows(7)
            .position(|w| w == b"queue/b")
            .expect("b's key");
        fs::write(&path, &bytes[..b + 3]).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&meta), ["queue/a"]);
        let lost: Vec<&MetaLoss> = meta.damage().iter().map(|d| &d.lost).collect();
        assert_eq!(
            lost,
            [
                &MetaLoss::Entry { key: None },
                &MetaLoss::Entries { count: 1 }
            ],
            "the cut line, and the line after it"
        );
        // Cut inside the header: no entry and no count left, but the loss is reported.
        fs::write(&path, &bytes[..5]).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert!(keys(&meta).is_empty());
        assert_eq!(meta.damage()[0].lost, MetaLoss::Header);
        fs::write(&path, b"").unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(meta.damage()[0].lost, MetaLoss::Header);
    }

    #[test]
    fn zeroes_over_lines_cost_only_those_entries_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = folded_store(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let a = bytes
            .windows(7)
            .position(|w| w == b"queue/a")
            .expect("a's key");
        let b = bytes
            .windows(7)
            .position(|w| w == b"queue/b")
            .expect("b's key");
        bytes[a..b].fill(0);
        fs::write(&path, &bytes).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&meta), ["queue/c"]);
        let lost: Vec<&MetaLoss> = meta.damage().iter().map(|d| &d.lost).collect();
        assert_eq!(
            lost,
            [
                &MetaLoss::Entry { key: None },
                &MetaLoss::Entries { count: 1 }
            ],
            "two lines merged into one damaged line: the header's count tells the second"
        );
    }

    #[test]
    fn a_snapshot_in_the_single_checksum_layout_opens_and_the_next_is_written_in_lines() {
        let dir = tempfile::tempdir().unwrap();
        let entries: BTreeMap<String, Value> =
            [("queue/a".to_string(), json!({"lease_ms": 10}))].into();
        let body = serde_json::to_string_pretty(&entries).unwrap();
        let old = format!("{:08x}\n{body}\n", crc32c::crc32c(body.as_bytes()));
        let path = dir.path().join(META_FILE_NAME);
        fs::write(&path, &old).unwrap();
        fs::write(dir.path().join(META_JOURNAL_FILE_NAME), encode_frame(&[])).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(
            meta.list(""),
            vec![("queue/a".to_string(), json!({"lease_ms": 10}))]
        );
        assert!(meta.damage().is_empty());
        meta.fold(&mut meta.state()).unwrap();
        assert!(fs::read_to_string(&path).unwrap().contains(SNAPSHOT_MAGIC));
        drop(meta);
        let again = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(
            again.list(""),
            vec![("queue/a".to_string(), json!({"lease_ms": 10}))]
        );
        // Damage in the old layout cannot be told from the rest: the file is refused.
        fs::write(&path, old.replace("10", "11")).unwrap();
        let error = MetaStore::open(dir.path(), FileOps::default(), false).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }

    #[test]
    fn a_skipped_journal_change_is_listed_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        meta.put("queue/a", json!(1)).unwrap();
        meta.put("queue/b", json!(2)).unwrap();
        drop(meta);
        let path = dir.path().join(META_JOURNAL_FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let a = (bytes.windows(7).position(|w| w == b"queue/a")).expect("a's frame");
        bytes[a] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default(), false).unwrap();
        assert_eq!(keys(&meta), ["queue/b"]);
        let [damage] = meta.damage() else {
            panic!("one damage: {:?}", meta.damage())
        };
        assert_eq!((&damage.path, &damage.lost), (&path, &MetaLoss::Change));
        assert!(damage.bytes.contains(&(a as u64)), "{damage}");
    }

    /// A damage to a snapshot: flip bytes, zero a range or cut the file at a place given as a
    /// fraction of its length (0..10,000), so that a failing case reads as one.
    #[derive(Debug, Clone)]
    enum Harm {
        Flip { at: usize, count: usize },
        Zero { at: usize, len: usize },
        Truncate { at: usize },
    }

    /// Applies `harm` and returns the positions of the bytes it changed.
    fn harm_apply(harm: &Harm, bytes: &mut Vec<u8>) -> Vec<usize> {
        let before = bytes.clone();
        let place = |at: &usize| bytes.len() * at / 10_000;
        match harm {
            Harm::Flip { at, count } => {
                let at = place(at);
                let end = (at + count).min(bytes.len());
                bytes[at..end].iter_mut().for_each(|b| *b ^= 0xa5);
            }
            Harm::Zero { at, len } => {
                let at = place(at);
                let end = (at + len).min(bytes.len());
                bytes[at..end].fill(0);
            }
            Harm::Truncate { at } => {
                let at = place(at);
                bytes.truncate(at);
                return (at..before.len()).collect();
            }
        }
        (0..bytes.len())
            .filter(|i| bytes[*i] != before[*i])
            .collect()
    }

    fn harm_strategy() -> impl proptest::strategy::Strategy<Value = Harm> {
        use proptest::prelude::*;
        prop_oneof![
            (0..10_000usize, 1..9usize).prop_map(|(at, count)| Harm::Flip { at, count }),
            (0..10_000usize, 1..200usize).prop_map(|(at, len)| Harm::Zero { at, len }),
            (0..10_000usize).prop_map(|at| Harm::Truncate { at }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any damage to a snapshot costs only the entries on the lines it changed (a line
        /// owns its newline); every other entry reads back with its value, nothing is made
        /// up, a lost entry is reported, and an unchanged file reports nothing.
        #[test]
        fn snapshot_damage_costs_only_the_lines_it_changes(
            values in proptest::collection::vec(0..1_000_000u32, 1..12),
            harm in harm_strategy(),
        ) {
            let entries: BTreeMap<String, Value> = (values.iter().enumerate())
                .map(|(i, v)| (format!("queue/q{i} x"), json!({ "lease_ms": v, "n": "\u{e9}\n" })))
                .collect();
            let mut bytes = encode_snapshot(&entries).into_bytes();
            let lines: Vec<Range<usize>> = snapshot_lines(&bytes)
                .map(|(at, line)| at..at + line.len() + 1)
                .collect();
            let changed = harm_apply(&harm, &mut bytes);
            let path = Path::new("meta.json");
            let snapshot = parse_snapshot(path, &bytes).unwrap();
            for (key, value) in &snapshot.entries {
                proptest::prop_assert_eq!(Some(value), entries.get(key), "{} is as written", key);
            }
            for ((key, _), line) in entries.iter().zip(&lines[1..]) {
                let touched = changed.iter().any(|p| line.contains(p));
                proptest::prop_assert!(
                    touched || snapshot.entries.contains_key(key),
                    "{} lost, its line untouched", key
                );
            }
            if changed.is_empty() {
                proptest::prop_assert!(snapshot.damage.is_empty());
            }
            if snapshot.entries.len() < entries.len() {
                proptest::prop_assert!(!snapshot.damage.is_empty(), "a lost entry is reported");
            }
        }
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
