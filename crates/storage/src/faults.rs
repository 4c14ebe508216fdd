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
        Arc,
    },
};

/// Switchable failures for tests. Shared by every file of a store.
#[derive(Debug)]
pub struct Faults {
    /// Bytes that may still be written; negative means unlimited.
    space_bytes: AtomicI64,
    fail_syncs: AtomicBool,
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults {
            space_bytes: AtomicI64::new(-1),
            fail_syncs: AtomicBool::new(false),
        })
    }

    /// Limits the bytes that may still be written (`None`: unlimited, the disk has room again).
    pub fn set_space(&self, bytes: Option<u64>) {
        let value = bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
        self.space_bytes.store(value, Ordering::SeqCst);
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

    /// fdatasync: file data and the metadata needed to read it back.
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
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
