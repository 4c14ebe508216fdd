//! Free space on the data directory's filesystem: the gauge `wharf_storage_disk_free_bytes`,
//! and a warning on `/readyz` below `storage.disk_free_bytes_min`.
//!
//! A full disk fails every send and create with 507; this gives operators the minutes before
//! that. Read with statvfs when asked (a probe or a scrape), so an idle server does no work.
//! The warning does not turn readiness off: consumers acking and purges are what free the
//! space, and a load balancer that stopped routing to the server would stop them too.

use prometheus_client::{
    metrics::gauge::Gauge,
    registry::{Registry, Unit},
};
use std::{ffi::CString, io, os::unix::ffi::OsStrExt, path::PathBuf};

/// Default of `storage.disk_free_bytes_min`: 1 GiB is a few seconds of writes at full speed on
/// a fast disk and minutes at ordinary load, time enough to act on an alert.
pub const DISK_FREE_BYTES_MIN_DEFAULT: u64 = 1 << 30;

#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// Below this, `/readyz` warns; 0 never warns.
    free_min: u64,
    free_bytes: Gauge,
}

impl DiskSpace {
    pub fn new(dir: PathBuf, free_min: u64, registry: &mut Registry) -> DiskSpace {
        let free_bytes = Gauge::default();
        registry.register_with_unit(
            "wharf_storage_disk_free",
            "Space available to the server on the data directory's filesystem",
            Unit::Bytes,
            free_bytes.clone(),
        );
        DiskSpace {
            dir,
            free_min,
            free_bytes,
        }
    }

    /// Bytes an unprivileged writer may still use; also sets the gauge.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let path = CString::new(self.dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: all-zero is a valid statvfs (plain integers), filled in by the call.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `stat` lives for the call.
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let free: u64 = stat.f_bavail.saturating_mul(stat.f_frsize);
        self.free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
        Ok(free)
    }

    /// What `/readyz` says when space is short, or the free space cannot be read.
    pub fn warning(&self) -> Option<String> {
        match self.free_bytes() {
            Ok(free) if free < self.free_min => Some(format!(
                "disk nearly full: {free} bytes free in {}, below storage.disk_free_bytes_min = {}",
                self.dir.display(),
                self.free_min
            )),
            Ok(_) => None,
            Err(error) => Some(format!(
                "free space of {} unknown: {error}",
                self.dir.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_below_the_minimum_and_sets_the_gauge() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = Registry::default();
        let quiet = DiskSpace::new(dir.path().to_path_buf(), 0, &mut registry);
        assert_eq!(quiet.warning(), None);
        assert!(quiet.free_bytes().expect("statvfs") > 0);
        assert!(quiet.free_bytes.get() > 0);
        let mut registry = Registry::default();
        let short = DiskSpace::new(dir.path().to_path_buf(), u64::MAX, &mut registry);
        let warning = short.warning().expect("below the minimum");
        assert!(warning.contains("storage.disk_free_bytes_min"), "{warning}");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("wharf_storage_disk_free_bytes "), "{text}");
    }
}
