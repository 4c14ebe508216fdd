//! The disk reserve: space set aside so that a full disk never locks users out of recovery.
//!
//! Acking, nacking, purging and deleting are how an operator frees space, and each of them
//! writes a little first (a settle record, a metadata change). On a disk filled to the last
//! byte, by Wharf's own sends or by anything else, those writes would fail too, and nobody
//! could drain or delete anything. So the store keeps a file, `DATA_DIR/reserve`, allocated
//! at open (`StoreConfig::reserve_bytes`, at most [`RESERVE_FILESYSTEM_SHARE`] of the
//! filesystem so that a small disk is not taken by it).
//!
//! The policy is the engine's, the mechanism is here:
//! - A write that frees space and fails for want of it asks [`Reserve::release`]: the file is
//!   deleted, its space returns to the filesystem, and the write is tried again.
//! - From then on the store is *short* ([`Reserve::is_short`]): the engine refuses writes
//!   that add data (sends, publishes, creates) with [`StorageError::SpaceReserved`], so the
//!   freed space serves the writes that free more.
//! - [`Reserve::restore`], called periodically while short, allocates the file again once the
//!   filesystem has room for it twice over, and the store stops being short.
//!
//! A store that cannot allocate its reserve at open (the disk is already full) opens short:
//! it serves reads and settles with whatever space appears, and refuses new data until the
//! reserve is back.

use crate::{error::StorageError, faults::FileOps};
use std::{
    ffi::CString,
    fs::{self, OpenOptions},
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

/// The reserve file's name in the data directory.
pub const RESERVE_FILE_NAME: &str = "reserve";

/// Default reserve: 32 MiB holds the settle records of a few hundred thousand acks, a purge
/// of millions of messages, and thousands of deletes.
pub const RESERVE_BYTES_DEFAULT: u64 = 32 << 20;

/// The reserve never takes more than 1/16 of the filesystem (2 MiB of a 32 MiB test disk).
pub const RESERVE_FILESYSTEM_SHARE: u64 = 16;

/// The reserve of one data directory.
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
    /// Size of the file; 0 disables the reserve.
    bytes: u64,
    ops: FileOps,
    short: AtomicBool,
    /// Serializes release and restore, which create and delete the same file.
    changing: Mutex<()>,
}

impl Reserve {
    /// Allocates the reserve in `dir` (keeping an existing one) with `wanted` bytes, or fewer
    /// on a small filesystem. A failure to allocate leaves the store short, not unopenable.
    pub(crate) fn open(dir: &Path, wanted: u64, ops: FileOps) -> Reserve {
        let bytes = match filesystem_bytes(dir) {
            Ok((total, _)) => wanted.min(total / RESERVE_FILESYSTEM_SHARE),
            Err(_) => wanted,
        };
        let reserve = Reserve {
            path: dir.join(RESERVE_FILE_NAME),
            bytes,
            ops,
            short: AtomicBool::new(false),
            changing: Mutex::new(()),
        };
        if bytes == 0 {
            let _ = fs::remove_file(&reserve.path);
            return reserve;
        }
        if let Err(error) = reserve.allocate() {
            tracing::warn!(%error, bytes, "could not allocate the disk reserve: the disk is nearly full; sends and creates are refused until space is freed");
            reserve.short.store(true, Ordering::SeqCst);
        }
        reserve
    }

    /// Bytes the reserve holds when allocated.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True while the reserve is spent: writes that add data are to be refused.
    pub(crate) fn is_short(&self) -> bool {
        self.short.load(Ordering::SeqCst)
    }

    /// Deletes the reserve file, handing its space to the writes that free space. Returns
    /// whether any space was freed (false when it was spent already or disabled). Blocking.
    pub(crate) fn release(&self) -> Result<bool, StorageError> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        if self.bytes == 0 || self.is_short() {
            return Ok(false);
        }
        self.short.store(true, Ordering::SeqCst);
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(StorageError::io(&self.path, error)),
        }
        self.ops.freed(self.bytes);
        tracing::warn!(
            bytes = self.bytes,
            "disk full: released the disk reserve for acks, purges and deletes; sends and creates are refused until space is freed"
        );
        Ok(true)
    }

    /// Allocates the reserve again once the filesystem has room for it twice over, ending the
    /// short state. Returns whether the store is no longer short. Blocking.
    pub(crate) fn restore(&self) -> Result<bool, StorageError> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        if !self.is_short() {
            return Ok(true);
        }
        let (_, free) =
            filesystem_bytes(&self.path).map_err(|e| StorageError::io(&self.path, e))?;
        if free < self.bytes.saturating_mul(2) {
            return Ok(false);
        }
        if self.bytes > 0 {
            self.allocate()?;
        }
        self.short.store(false, Ordering::SeqCst);
        tracing::info!(
            bytes = self.bytes,
            "disk space is back: the disk reserve is allocated again; sends and creates resume"
        );
        Ok(true)
    }

    /// Creates the file with all its blocks allocated and synced, unless it is there whole.
    fn allocate(&self) -> Result<(), StorageError> {
        let io = |e| StorageError::io(&self.path, e);
        if fs::metadata(&self.path).is_ok_and(|m| m.len() == self.bytes) {
            return Ok(());
        }
        let file = (OpenOptions::new().write(true).create(true).truncate(true))
            .open(&self.path)
            .map_err(io)?;
        let allocated = self
            .ops
            .allocate(&file, self.bytes)
            .and_then(|()| self.ops.sync_all(&file));
        if let Err(error) = allocated {
            drop(file);
            let _ = fs::remove_file(&self.path);
            return Err(io(error));
        }
        Ok(())
    }
}

/// The filesystem's size and the bytes an unprivileged writer may still use, at `path` (a
/// directory, or a file whose directory is asked).
pub fn filesystem_bytes(path: &Path) -> io::Result<(u64, u64)> {
    let path = match path.is_dir() {
        true => path,
        false => path.parent().unwrap_or(path),
    };
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all-zero is a valid statvfs (plain integers), filled in by the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` lives for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    Ok((total, free))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Faults;

    #[test]
    fn release_frees_the_space_once_and_restore_takes_it_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let faults = Faults::new();
        faults.set_space(Some(1 << 20));
        let reserve = Reserve::open(dir.path(), 64 << 10, FileOps::new(Some(faults.clone())));
        assert!(!reserve.is_short());
        let file = dir.path().join(RESERVE_FILE_NAME);
        assert_eq!(fs::metadata(&file).expect("reserve file").len(), 64 << 10);
        assert_eq!(faults.space(), Some((1 << 20) - (64 << 10)));

        assert!(reserve.release().expect("released"));
        assert!(reserve.is_short());
        assert!(!file.exists());
        assert_eq!(faults.space(), Some(1 << 20), "its space is back");
        assert!(!reserve.release().expect("nothing left"), "released once");

        faults.set_space(Some(4 << 10));
        assert!(reserve.restore().is_err(), "no room for it");
        assert!(reserve.is_short() && !file.exists());
        faults.set_space(None);
        assert!(reserve.restore().expect("restored"));
        assert!(!reserve.is_short());
        assert_eq!(fs::metadata(&file).expect("reserve file").len(), 64 << 10);
    }

    #[test]
    fn a_full_disk_at_open_leaves_the_store_short() {
        let dir = tempfile::tempdir().expect("temp dir");
        let faults = Faults::new();
        faults.set_space(Some(0));
        let reserve = Reserve::open(dir.path(), 64 << 10, FileOps::new(Some(faults)));
        assert!(reserve.is_short());
        assert!(!dir.path().join(RESERVE_FILE_NAME).exists());
        assert!(!reserve.release().expect("nothing to release"));
    }

    #[test]
    fn a_reserve_of_zero_is_never_short() {
        let dir = tempfile::tempdir().expect("temp dir");
        let reserve = Reserve::open(dir.path(), 0, FileOps::new(None));
        assert!(!reserve.is_short());
        assert!(!reserve.release().expect("nothing to release"));
        assert!(!dir.path().join(RESERVE_FILE_NAME).exists());
    }
}
