//! The metadata store: small definitions (queues, topics, streams, endpoints) kept atomically.
//!
//! All entries live in one file, `meta.json`, rewritten whole on every change: write a temporary
//! file, fsync it, rename it over the old one, fsync the directory. A reader after any crash sees
//! either the old or the new file, never a mix, and a multi-key change is one rename. Definitions
//! change rarely and are few (thousands, not millions), so rewriting the file costs less than an
//! embedded KV's second fsync stream. The first line holds the CRC32C of the rest, so a damaged
//! file is reported rather than half-read.

use crate::{error::StorageError, faults::FileOps};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    path::{Path, PathBuf},
    sync::Mutex,
};

const META_FILE_NAME: &str = "meta.json";
const META_TEMP_FILE_NAME: &str = "meta.json.tmp";

/// One change in a metadata transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaOp {
    Put(String, Value),
    Delete(String),
}

#[derive(Debug)]
pub struct MetaStore {
    dir: PathBuf,
    ops: FileOps,
    entries: Mutex<BTreeMap<String, Value>>,
}

impl MetaStore {
    pub(crate) fn open(dir: &Path, ops: FileOps) -> Result<MetaStore, StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let path = dir.join(META_FILE_NAME);
        let entries = match fs::read_to_string(&path) {
            Ok(text) => parse(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        Ok(MetaStore {
            dir: dir.to_path_buf(),
            ops,
            entries: Mutex::new(entries),
        })
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.entries.lock().expect("meta lock").get(key).cloned()
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(String, Value)> {
        let entries = self.entries.lock().expect("meta lock");
        entries
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
        let mut entries = self.entries.lock().expect("meta lock");
        let mut next = entries.clone();
        for op in ops {
            match op {
                MetaOp::Put(key, value) => {
                    next.insert(key, value);
                }
                MetaOp::Delete(key) => {
                    next.remove(&key);
                }
            }
        }
        self.write(&next)?;
        *entries = next;
        Ok(())
    }

    fn write(&self, entries: &BTreeMap<String, Value>) -> Result<(), StorageError> {
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
            .map_err(|e| StorageError::io(&self.dir, e))
    }
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
    fn damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path(), FileOps::default()).unwrap();
        meta.put("queue/a", json!({"lease_ms": 10})).unwrap();
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
