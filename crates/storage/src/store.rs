//! A store: one data directory holding the metadata store and every log.
//!
//! ```text
//! DATA_DIR/
//!   lock                   held (flock) by the open store; holds its pid
//!   meta/meta.json         definitions, rewritten atomically
//!   logs/NAME/*.log        one directory of segments per log
//! ```

use crate::{
    directory_lock::DirectoryLock,
    error::StorageError,
    faults::{Faults, FileOps},
    log::{Log, LogConfig},
    meta::MetaStore,
    metrics::StorageMetrics,
};
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Test-only failures for every file of the store.
    pub faults: Option<Arc<Faults>>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    config: StoreConfig,
    meta: MetaStore,
    metrics: Arc<StorageMetrics>,
    logs: Mutex<HashMap<String, Log>>,
    /// Held, never read: dropping the store releases the directory to the next process.
    _lock: DirectoryLock,
}

impl Store {
    /// Opens or creates the store in `dir` and locks the directory until the store is dropped.
    /// Fails with [`StorageError::Locked`] while another store has it open. Blocking.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        // Locked before anything inside is read or written.
        let lock = DirectoryLock::acquire(&dir)?;
        fs::create_dir_all(dir.join("logs")).map_err(|e| StorageError::io(&dir, e))?;
        let meta = MetaStore::open(&dir.join("meta"), FileOps::new(config.faults.clone()))?;
        Ok(Store {
            dir,
            config,
            meta,
            metrics: Arc::new(StorageMetrics::default()),
            logs: Mutex::new(HashMap::new()),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.metrics
    }

    /// Opens the log `name` (a path-safe name chosen by the engine), or returns it if open.
    /// Blocking on first open: recovery scans the log.
    pub fn log(&self, name: &str, config: LogConfig) -> Result<Log, StorageError> {
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
            "log names are single path components"
        );
        let mut logs = self.logs.lock().expect("logs lock");
        if let Some(log) = logs.get(name) {
            return Ok(log.clone());
        }
        let config = LogConfig {
            faults: config.faults.or_else(|| self.config.faults.clone()),
            ..config
        };
        let log = Log::open(
            self.dir.join("logs").join(name),
            config,
            self.metrics.clone(),
        )?;
        logs.insert(name.to_string(), log.clone());
        Ok(log)
    }

    /// Whether the log `name` exists on disk (open or not).
    pub fn has_log(&self, name: &str) -> bool {
        self.dir.join("logs").join(name).is_dir()
    }

    /// Closes the log `name` and deletes its files.
    pub async fn delete_log(&self, name: &str) -> Result<(), StorageError> {
        let log = self.logs.lock().expect("logs lock").remove(name);
        if let Some(log) = log {
            log.close().await?;
            self.metrics.segments.dec_by(log.segment_count() as i64);
        }
        let path = self.dir.join("logs").join(name);
        match fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    /// Closes every open log: in-flight appends finish, everything is synced.
    pub async fn close(&self) -> Result<(), StorageError> {
        let logs: Vec<Log> = self
            .logs
            .lock()
            .expect("logs lock")
            .values()
            .cloned()
            .collect();
        for log in logs {
            log.close().await?;
        }
        Ok(())
    }
}
