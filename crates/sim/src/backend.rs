//! The storage a run drives the engine over, and what each kind lets the simulator break.
//!
//! - **memory** (the default): `wharf_storage::MemoryStore`, the seam's deterministic second
//!   implementation. A crash is `MemoryStore::crash`: everything not synced is lost (lazy
//!   appends, held commits, transient logs back to their last clean close). A fault makes
//!   commits fail (`fail_appends`), for good or for the next few. A crash inside an operation
//!   holds commits until the operation waits on one, then releases it or loses it with the
//!   process (`lifecycle`).
//! - **files**: the file `Store` in a temporary directory with `wharf_storage::Faults` (a full
//!   disk, failing fsyncs), the blocking pool gated so that file I/O runs in a fixed order, and
//!   crashes at an operation's first file write (`io`). It is what finds the file store's own
//!   defects (a spare segment, a torn commit, a half-done rotation), so it stays.
//!
//! What the engine is promised is the same over both; the model differs in one place: a crash
//! over memory loses transient queues' recent records, which a process crash over files (the
//! page cache survives it) does not.

use crate::{
    io::Io,
    model::{violation, Violation},
    ops::Fault,
};
use std::{fmt, path::Path, str::FromStr, sync::Arc};
use wharf_engine::EngineError;
use wharf_storage::{Faults, LogConfig, MemoryStore, StorageError, Store, StoreConfig};

/// WAL segment size over files: tiny, so that rotation, reclaim and copying stragglers forward
/// run every few dozen messages instead of never (STYLE.md, "tiny-limits config").
const WAL_SEGMENT_BYTES: u64 = 4_096;

/// Opens of a locked data directory to try before calling it a leak. A store is unlocked when
/// its last handle goes; tasks of the engine that held one end within a few yields.
const OPEN_ATTEMPTS_MAX: usize = 100;

/// Which storage a run uses: part of what names a run, with its seed and steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// `wharf_storage::MemoryStore`: crashes lose what is not synced, commits fail on demand.
    #[default]
    Memory,
    /// The file store in a temporary directory, with file faults.
    Files,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Memory => "memory",
            Backend::Files => "files",
        })
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Backend, String> {
        match text {
            "memory" => Ok(Backend::Memory),
            "files" => Ok(Backend::Files),
            other => Err(format!("{other:?} is no storage: memory or files")),
        }
    }
}

/// The storage of a run, which outlives its processes.
#[derive(Debug)]
pub(crate) enum Disk {
    Memory(MemoryStore),
    Files {
        dir: tempfile::TempDir,
        faults: Arc<Faults>,
    },
}

impl Disk {
    pub(crate) fn new(backend: Backend) -> Result<Disk, Violation> {
        Ok(match backend {
            Backend::Memory => Disk::Memory(MemoryStore::new()),
            Backend::Files => Disk::Files {
                dir: temp_dir().map_err(|error| {
                    violation("the run has a directory", format!("creating it: {error}"))
                })?,
                faults: Faults::new(),
            },
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Disk::Memory(_) => Backend::Memory,
            Disk::Files { .. } => Backend::Files,
        }
    }

    /// Breaks the storage as `fault` says, until [`Disk::heal`] (or a crash).
    pub(crate) fn inject(&self, fault: Fault) {
        match (self, fault) {
            (Disk::Files { faults, .. }, Fault::DiskFull { bytes }) => {
                faults.set_space(Some(bytes))
            }
            (Disk::Files { faults, .. }, Fault::SyncsFail) => faults.set_fail_syncs(true),
            (Disk::Memory(store), Fault::CommitsFail { count }) => {
                // Without a count, every commit fails until healed: u32::MAX is more commits
                // than any run makes.
                store.fail_appends(count.unwrap_or(u32::MAX))
            }
            (disk, fault) => unreachable!("{fault:?} is never drawn over {}", disk.backend()),
        }
    }

    /// Ends every injected fault.
    pub(crate) fn heal(&self) {
        match self {
            Disk::Memory(store) => store.fail_appends(0),
            Disk::Files { faults, .. } => {
                faults.set_space(None);
                faults.set_fail_syncs(false);
            }
        }
    }

    /// The process dies now. Over memory the store loses what is not synced and refuses the
    /// dead process's handles from here on (so nothing its tasks do as they are dropped
    /// lands); over files the process's handles simply go, and the page cache keeps every
    /// write.
    pub(crate) fn crash(&self) {
        if let Disk::Memory(store) = self {
            store.crash();
        }
    }

    /// Whether a crash loses records of transient queues that a clean close would have kept.
    pub(crate) fn crash_loses_transient(&self) -> bool {
        matches!(self, Disk::Memory(_))
    }

    /// After a clean close: the store serves the next process.
    pub(crate) fn closed(&self) {
        if let Disk::Memory(store) = self {
            store.reopen();
        }
    }
}

/// Opens the file store in `dir`, waiting for a previous process's last handles to go.
pub(crate) async fn open_files(
    dir: &Path,
    faults: &Arc<Faults>,
    io: &Io,
) -> Result<Arc<Store>, Violation> {
    let config = StoreConfig {
        faults: Some(faults.clone()),
        log: LogConfig {
            segment_bytes: WAL_SEGMENT_BYTES,
            ..LogConfig::default()
        },
        // The model expects a full disk to fail every write; the reserve's policy is tested
        // in crates/engine/tests/failures.rs.
        reserve_bytes: 0,
        ..StoreConfig::default()
    };
    let mut attempts = 0;
    loop {
        match Store::open(dir, config.clone()) {
            Ok(store) => return Ok(Arc::new(store)),
            Err(StorageError::Locked { .. }) if attempts < OPEN_ATTEMPTS_MAX => {
                attempts += 1;
                io.idle().await.map_err(crate::node::stuck)?;
            }
            Err(error) => return Err(crate::node::reopen_failed(&EngineError::Storage(error))),
        }
    }
}

/// The run's data directory: on tmpfs when there is one, since only a process crash is
/// simulated (the page cache survives it) and fsync there costs nothing.
fn temp_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut builder = tempfile::Builder::new();
        builder.prefix("wharf-sim-");
        builder
    };
    match std::env::var_os("WHARF_SIM_DIR") {
        Some(dir) => builder.tempdir_in(dir),
        None if shm.is_dir() => builder.tempdir_in(shm).or_else(|_| builder.tempdir()),
        None => builder.tempdir(),
    }
}
