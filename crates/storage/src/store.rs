//! A store: one data directory holding the metadata store and every log. It implements the
//! [`Storage`] seam; the engine asks it for logs by name and [`LogOptions`], and this file alone
//! turns those into segment sizes and fsync policies.
//!
//! ```text
//! DATA_DIR/
//!   lock                   held (flock) by the open store; holds its pid
//!   reserve                space kept for acks, purges and deletes on a full disk
//!   meta/meta.json         definitions, rewritten atomically
//!   logs/NAME/*.log        one directory of segments per log
//!   quarantine/NAME/       damaged ranges `wharf check --repair` moved out of log NAME
//! ```

use crate::{
    directory_lock::DirectoryLock,
    error::StorageError,
    faults::{Faults, FileOps},
    log::{FsyncPolicy, Log, LogConfig},
    meta::{MetaDamage, MetaOp, MetaStore},
    metrics::StorageMetrics,
    quarantine::{self, Repair},
    reserve::{Reserve, RESERVE_BYTES_DEFAULT},
    seam::{self, Durability, LogOptions, LogSize, LogStore, Storage, StorageFuture},
};
use serde_json::Value;
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Test-only failures for every file of the store.
    pub faults: Option<Arc<Faults>>,
    /// Layout and commit policy of the logs opened through [`Storage::open_log`]: durable
    /// logs use it as it is, transient ones with [`FsyncPolicy::Never`].
    pub log: LogConfig,
    /// Segment size of [`LogSize::Small`] logs. 1 MiB: a topic's bindings fit many times over.
    /// Their first segment is not zero-filled ahead (it grows as it is written), so an idle
    /// topic costs a few hundred bytes of disk; a busy one preallocates its next segments.
    pub small_log_segment_bytes: u64,
    /// Tail cache of each [`LogSize::Large`] log (see [`LogConfig::tail_cache_bytes`]): 8 MiB
    /// holds the last 7,000 or so 1 KiB messages, so consumers that keep up never read a file.
    /// 32 MiB measured no faster on the queue benchmark and twice the peak RSS.
    pub large_log_tail_cache_bytes: usize,
    /// Space set aside for the writes that free space (see `reserve.rs`); at most 1/16 of the
    /// filesystem. 0 keeps no reserve.
    pub reserve_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            faults: None,
            log: LogConfig::default(),
            small_log_segment_bytes: 1 << 20,
            large_log_tail_cache_bytes: 8 << 20,
            reserve_bytes: RESERVE_BYTES_DEFAULT,
        }
    }
}

/// The open data directory. It stays locked until the store, and any file operation still
/// running for it on the blocking pool, is gone.
#[derive(Debug)]
pub struct Store {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    config: StoreConfig,
    meta: MetaStore,
    metrics: Arc<StorageMetrics>,
    logs: Mutex<HashMap<String, Log>>,
    reserve: Reserve,
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
        let logs = dir.join("logs");
        fs::create_dir_all(&logs).map_err(|e| StorageError::io(&dir, e))?;
        let logs_present = (fs::read_dir(&logs).map_err(|e| StorageError::io(&logs, e))?)
            .next()
            .is_some();
        let meta = MetaStore::open(
            &dir.join("meta"),
            FileOps::new(config.faults.clone()),
            logs_present,
        )?;
        let reserve = Reserve::open(
            &dir,
            config.reserve_bytes,
            FileOps::new(config.faults.clone()),
        );
        Ok(Store {
            shared: Arc::new(Shared {
                dir,
                config,
                meta,
                metrics: Arc::new(StorageMetrics::default()),
                logs: Mutex::new(HashMap::new()),
                reserve,
                _lock: lock,
            }),
        })
    }

    /// Whether the log `name` exists on disk (open or not).
    pub fn has_log(&self, name: &str) -> bool {
        self.dir().join("logs").join(name).is_dir()
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn meta(&self) -> &MetaStore {
        &self.shared.meta
    }

    /// Bytes of the disk reserve when allocated (see `reserve.rs`).
    pub fn reserve_bytes(&self) -> u64 {
        self.shared.reserve.bytes()
    }

    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.shared.metrics
    }

    /// Opens the log `name` (a path-safe name chosen by the engine), or returns it if open.
    /// Blocking on first open: recovery scans the log.
    pub fn log(&self, name: &str, config: LogConfig) -> Result<Log, StorageError> {
        self.shared.log(name, config)
    }

    /// Moves the damaged ranges of the log `name` into `DATA_DIR/quarantine/NAME/` and puts
    /// quarantined frames in their place (see `quarantine`), so that opening it afterwards
    /// reports them as [`Log::quarantined`], not as damage. The log must not be open in this
    /// store: an open log's writer holds the bytes of its last block in memory and would write
    /// them back. Blocking.
    pub fn repair_log(&self, name: &str) -> Result<Repair, StorageError> {
        assert_log_name(name);
        let open = (self.shared.logs.lock().expect("logs lock").get(name))
            .is_some_and(|log| !log.is_closed());
        assert!(!open, "log {name} is repaired before it is opened");
        quarantine::repair(
            &self.shared.dir.join("logs").join(name),
            &self.shared.dir.join(QUARANTINE_DIR).join(name),
            &FileOps::new(self.shared.config.faults.clone()),
        )
    }

    /// Closes the log `name` and deletes its files.
    pub async fn delete_log(&self, name: &str) -> Result<(), StorageError> {
        let log = self.shared.logs.lock().expect("logs lock").remove(name);
        if let Some(log) = log {
            log.close().await?;
            self.shared
                .metrics
                .segments
                .dec_by(log.segment_count() as i64);
        }
        let path = self.shared.dir.join("logs").join(name);
        let removing = path.clone();
        seam::off_runtime(&path, move || match fs::remove_dir_all(&removing) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&removing, e)),
        })
        .await
    }

    /// Closes every open log: in-flight appends finish, everything is synced.
    pub async fn close(&self) -> Result<(), StorageError> {
        let logs: Vec<Log> = self
            .shared
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

    /// The configuration of a log opened through the seam with `options`.
    fn log_config(&self, options: LogOptions) -> LogConfig {
        let mut config = self.shared.config.log.clone();
        if options.durability == Durability::Transient {
            config.fsync = FsyncPolicy::Never;
            // Preallocation makes fsyncs cheaper; a log that never fsyncs would only pay for it.
            config.preallocate = false;
        }
        match options.size {
            LogSize::Small => {
                config.segment_bytes = self.shared.config.small_log_segment_bytes;
                // Most stay a few records long: 10,000 topics zero-filled 10 GiB, and a restart
                // then read all of it looking for their ends.
                config.preallocate_first = false;
            }
            LogSize::Large => {
                config.tail_cache_bytes = self.shared.config.large_log_tail_cache_bytes
            }
            LogSize::Growing => config.preallocate_first = false,
        }
        config
    }
}

impl Shared {
    fn log(&self, name: &str, config: LogConfig) -> Result<Log, StorageError> {
        assert_log_name(name);
        let mut logs = self.logs.lock().expect("logs lock");
        if let Some(log) = logs.get(name) {
            // A log whose close is still running is handed out as it is, closing: a second
            // handle must never write the same files.
            if !log.is_closed() {
                return Ok(log.clone());
            }
            self.metrics.segments.dec_by(log.segment_count() as i64);
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
}

/// Where repairs move damaged ranges, one folder per log.
const QUARANTINE_DIR: &str = "quarantine";

/// Longest log name: a log is a directory named after it, and 255 bytes is the longest file
/// name Linux (`NAME_MAX`), macOS and Windows file systems take. The engine derives log names
/// from resource names and keeps them within this.
pub const LOG_NAME_BYTES_MAX: usize = 255;

fn assert_log_name(name: &str) {
    assert!(
        !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
        "log names are single path components"
    );
    assert!(
        name.len() <= LOG_NAME_BYTES_MAX,
        "log names fit one file name"
    );
}

/// The seam over the file store. Opening a log scans it and metadata changes fsync, so both run
/// on the blocking pool; metadata reads come from memory.
impl Storage for Store {
    fn open_log<'a>(
        &'a self,
        name: &'a str,
        options: LogOptions,
    ) -> StorageFuture<'a, Arc<dyn LogStore>> {
        let (shared, config, owned_name) = (
            self.shared.clone(),
            self.log_config(options),
            name.to_string(),
        );
        Box::pin(async move {
            let log = seam::off_runtime(&self.shared.dir, move || shared.log(&owned_name, config))
                .await?;
            Ok(Arc::new(log) as Arc<dyn LogStore>)
        })
    }

    fn delete_log<'a>(&'a self, name: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(Store::delete_log(self, name))
    }

    fn meta_get(&self, key: &str) -> Option<Value> {
        self.shared.meta.get(key)
    }

    fn meta_range(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(String, Value)> {
        self.shared.meta.range(prefix, after, limit)
    }

    fn meta_damage(&self) -> Vec<MetaDamage> {
        self.shared.meta.damage().to_vec()
    }

    fn meta_apply(&self, ops: Vec<MetaOp>) -> StorageFuture<'_, ()> {
        let shared = self.shared.clone();
        Box::pin(seam::off_runtime(&self.shared.dir, move || {
            shared.meta.apply(ops)
        }))
    }

    fn space_short(&self) -> bool {
        self.shared.reserve.is_short()
    }

    fn release_reserve(&self) -> StorageFuture<'_, bool> {
        let shared = self.shared.clone();
        Box::pin(seam::off_runtime(&self.shared.dir, move || {
            shared.reserve.release()
        }))
    }

    fn restore_reserve(&self) -> StorageFuture<'_, bool> {
        let shared = self.shared.clone();
        Box::pin(seam::off_runtime(&self.shared.dir, move || {
            shared.reserve.restore()
        }))
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        Box::pin(Store::close(self))
    }
}
