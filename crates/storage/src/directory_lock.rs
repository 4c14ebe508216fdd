//! The data directory lock: one process at a time owns a data directory.
//!
//! Two servers on one directory both append to the same segments, each from its own idea of
//! where a log ends, so they overwrite each other's records: acknowledged messages are gone
//! after a restart and nothing logged an error. [`DirectoryLock`] takes `DATA_DIR/lock` with
//! flock(2), exclusive and non-blocking, and holds it as long as it lives.
//!
//! flock rather than fcntl(2) record locks: a flock belongs to the open file, so a second open
//! in the same process is refused as well (fcntl locks belong to the process and would let it
//! through), and closing some other descriptor of the file does not drop it. The kernel releases
//! it when the process dies, `kill -9` included, so a lock file left behind never blocks a
//! restart. The file holds the owner's pid for operators and for the error message; only the
//! lock decides.

use crate::error::StorageError;
use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::fd::AsRawFd,
    path::Path,
};

/// The lock file's name inside the data directory.
const LOCK_FILE_NAME: &str = "lock";

/// An exclusive lock on a data directory, released when dropped (the file closes).
#[derive(Debug)]
pub(crate) struct DirectoryLock {
    _file: File,
}

impl DirectoryLock {
    /// Locks `dir` (which must exist) or fails with [`StorageError::Locked`] when another open
    /// file holds the lock, in this process or another.
    pub(crate) fn acquire(dir: &Path) -> Result<DirectoryLock, StorageError> {
        let path = dir.join(LOCK_FILE_NAME);
        // No truncation on open: until the lock is ours, the pid inside is the owner's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        match lock_exclusive_nonblocking(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(StorageError::Locked {
                    dir: dir.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(e) => return Err(StorageError::io(&path, e)),
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(DirectoryLock { _file: file })
    }
}

fn lock_exclusive_nonblocking(file: &File) -> io::Result<()> {
    // SAFETY: flock only reads its arguments; the descriptor is open for as long as `file`
    // is borrowed.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The owner's pid, if it has written one yet (it writes right after locking).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
