//! Fault injection for the file calls that make data durable.
//!
//! Every segment and metadata write and sync goes through [`FileOps`]. In production it holds no
//! [`Faults`] and calls the OS directly; tests hand it a `Faults` to make the disk "full" after a
//! byte budget (writes fail with ENOSPC after writing what fits, as a real full disk does) or to
//! make syncs fail, then give the space back and check that service resumes.

use std::{
    fs::File,
    io,
    os::unix::fs::FileExt,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc, Mutex,
    },
};

/// What a test runs just before each `fdatasync` of a log's commit.
pub type SyncHook = Arc<dyn Fn() + Send + Sync>;

/// Switchable failures for tests. Shared by every file of a store.
pub struct Faults {
    /// Bytes that may still be written; negative means unlimited.
    space_bytes: AtomicI64,
    fail_syncs: AtomicBool,
    before_sync_data: Mutex<Option<SyncHook>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("space_bytes", &self.space_bytes)
            .field("fail_syncs", &self.fail_syncs)
            .finish_non_exhaustive()
    }
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults {
            space_bytes: AtomicI64::new(-1),
            fail_syncs: AtomicBool::new(false),
            before_sync_data: Mutex::new(None),
        })
    }

    /// Runs `hook` before every `fdatasync` of a commit (on the flusher's thread, while the
    /// commit is on its way to the disk), or nothing with `None`.
    pub fn set_before_sync_data(&self, hook: Option<SyncHook>) {
        *self
            .before_sync_data
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = hook;
    }

    /// Limits the bytes that may still be written (`None`: unlimited, the disk has room again).
    pub fn set_space(&self, bytes: Option<u64>) {
        let value = bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
        self.space_bytes.store(value, Ordering::SeqCst);
    }

    /// The bytes that may still be written (`None`: unlimited).
    pub fn space(&self) -> Option<u64> {
        u64::try_from(self.space_bytes.load(Ordering::SeqCst)).ok()
    }

    /// Gives `bytes` back to a limited budget, as deleting a file does on a real disk.
    fn give_back(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let _ = (self.space_bytes).fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| {
            (current >= 0).then(|| current.saturating_add(bytes))
        });
    }

    /// Makes every sync fail with EIO while `on`.
    pub fn set_fail_syncs(&self, on: bool) {
        self.fail_syncs.store(on, Ordering::SeqCst);
    }

    /// How many of `want` bytes may be written now, taking them from the budget.
    fn take_space(&self, want: usize) -> usize {
        let mut current = self.space_bytes.load(Ordering::SeqCst);
        loop {
            if current < 0 {
                return want;
            }
            let granted = (want as i64).min(current);
            match self.space_bytes.compare_exchange(
                current,
                current - granted,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return granted as usize,
                Err(seen) => current = seen,
            }
        }
    }
}

/// The door through which storage writes and syncs files.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileOps {
    faults: Option<Arc<Faults>>,
}

impl FileOps {
    pub(crate) fn new(faults: Option<Arc<Faults>>) -> FileOps {
        FileOps { faults }
    }

    pub(crate) fn write_all_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        self.write_all_at_in_blocks(file, buf, position, 1)
    }

    /// A write whose partial form (on a full disk) is cut at a multiple of `block` bytes, as
    /// direct I/O requires.
    pub(crate) fn write_all_at_in_blocks(
        &self,
        file: &File,
        buf: &[u8],
        position: u64,
        block: usize,
    ) -> io::Result<()> {
        let Some(faults) = &self.faults else {
            return file.write_all_at(buf, position);
        };
        let granted = faults.take_space(buf.len());
        let granted = granted - granted % block;
        file.write_all_at(&buf[..granted], position)?;
        if granted < buf.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    /// Allocates `len` bytes of `file` from its start (blocks reserved, reading as zeroes),
    /// all or nothing: on a full disk it fails with ENOSPC and takes no budget.
    pub(crate) fn allocate(&self, file: &File, len: u64) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            let want = usize::try_from(len).unwrap_or(usize::MAX);
            let granted = faults.take_space(want);
            if granted < want {
                faults.give_back(granted as u64);
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        allocate(file, len)
    }

    /// Tells the fault budget that a file of `bytes` was deleted.
    pub(crate) fn freed(&self, bytes: u64) {
        if let Some(faults) = &self.faults {
            faults.give_back(bytes);
        }
    }

    /// fdatasync: file data and the metadata needed to read it back.
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            let hook = faults
                .before_sync_data
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(hook) = hook {
                hook();
            }
        }
        self.check_sync()?;
        file.sync_data()
    }

    /// fsync: data and all metadata (used for directories and new files).
    pub(crate) fn sync_all(&self, file: &File) -> io::Result<()> {
        self.check_sync()?;
        file.sync_all()
    }

    fn check_sync(&self) -> io::Result<()> {
        match &self.faults {
            Some(faults) if faults.fail_syncs.load(Ordering::SeqCst) => {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
            _ => Ok(()),
        }
    }
}

/// fallocate(2), or zeroes written where the filesystem cannot allocate without writing.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(len_signed) = i64::try_from(len) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: fallocate only reads its integer arguments; the descriptor is open for writing.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_signed) } == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(error);
    }
    let zeroes = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeroes.len() as u64) as usize;
        file.write_all_at(&zeroes[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
