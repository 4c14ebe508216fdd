//! Free space on the data directory's filesystem: the gauge `wharf_storage_disk_free_bytes`,
//! and a warning on `/readyz` below `storage.disk_free_bytes_min`.
//!
//! A full disk fails every send and create with 507; this gives operators the minutes before
//! that. Read with statvfs when asked (a probe or a scrape), so an idle server does no work.
//! The warning does not turn readiness off: consumers acking and purges are what free the
//! space, and a load balancer that stopped routing to the server would stop them too.
//!
//! Once the disk is full, the storage's reserve keeps acks, purges and deletes working and
//! sends are refused (see the storage crate's `reserve.rs`): `/readyz` says so, and the gauge
//! `wharf_storage_disk_reserve_spent` is 1 until the reserve is taken back.

use prometheus_client::{
    metrics::gauge::Gauge,
    registry::{Registry, Unit},
};
use std::{io, path::PathBuf, sync::Arc};
use wharf_engine::log_throttle::LogThrottle;
use wharf_storage::Storage;

/// Default of `storage.disk_free_bytes_min`: 1 GiB is a few seconds of writes at full speed on
/// a fast disk and minutes at ordinary load, time enough to act on an alert.
pub const DISK_FREE_BYTES_MIN_DEFAULT: u64 = 1 << 30;

#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// Below this, `/readyz` warns; 0 never warns.
    free_min: u64,
    free_bytes: Gauge,
    /// Says whether its disk reserve is spent.
    store: Arc<dyn Storage>,
    reserve_spent: Gauge,
}

impl DiskSpace {
    pub fn new(
        dir: PathBuf,
        free_min: u64,
        store: Arc<dyn Storage>,
        registry: &mut Registry,
    ) -> DiskSpace {
        let free_bytes = Gauge::default();
        registry.register_with_unit(
            "wharf_storage_disk_free",
            "Space available to the server on the data directory's filesystem",
            Unit::Bytes,
            free_bytes.clone(),
        );
        let reserve_spent = Gauge::default();
        registry.register(
            "wharf_storage_disk_reserve_spent",
            "1 while the disk was full and its reserve serves acks, purges and deletes only",
            reserve_spent.clone(),
        );
        DiskSpace {
            dir,
            free_min,
            free_bytes,
            store,
            reserve_spent,
        }
    }

    /// Bytes an unprivileged writer may still use; also sets the gauge.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let (_, free) = wharf_storage::filesystem_bytes(&self.dir)?;
        self.free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
        self.reserve_spent.set(i64::from(self.store.space_short()));
        Ok(free)
    }

    /// What `/readyz` says when space is short, or the free space cannot be read. Anyone may
    /// read `/readyz`, so it says "the data directory", never its path (the operator knows
    /// it; the log has the OS error).
    pub fn warning(&self) -> Option<String> {
        if self.store.space_short() {
            return Some(
                "disk full in the data directory: sends and creates are refused, the disk \
                 reserve serves acks, purges and deletes until space is freed"
                    .to_string(),
            );
        }
        match self.free_bytes() {
            Ok(free) if free < self.free_min => Some(format!(
                "disk nearly full: {free} bytes free in the data directory, below \
                 storage.disk_free_bytes_min = {}",
                self.free_min
            )),
            Ok(_) => None,
            Err(error) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    let dir = self.dir.display();
                    tracing::warn!(%error, %dir, suppressed, "reading the free space failed");
                }
                Some("free space of the data directory unknown; the server log has why".to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_below_the_minimum_and_sets_the_gauge() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Storage> = Arc::new(wharf_storage::MemoryStore::new());
        let mut registry = Registry::default();
        let quiet = DiskSpace::new(dir.path().to_path_buf(), 0, store.clone(), &mut registry);
        assert_eq!(quiet.warning(), None);
        assert!(quiet.free_bytes().expect("statvfs") > 0);
        assert!(quiet.free_bytes.get() > 0);
        let mut registry = Registry::default();
        let short = DiskSpace::new(dir.path().to_path_buf(), u64::MAX, store, &mut registry);
        let warning = short.warning().expect("below the minimum");
        assert!(warning.contains("storage.disk_free_bytes_min"), "{warning}");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("wharf_storage_disk_free_bytes "), "{text}");
        assert!(
            text.contains("wharf_storage_disk_reserve_spent 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_spent_reserve_is_shown_on_readyz_and_the_gauge() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = wharf_storage::StoreConfig {
            reserve_bytes: 64 << 10,
            ..wharf_storage::StoreConfig::default()
        };
        let store = wharf_storage::Store::open(dir.path(), config).expect("opens");
        assert!(store.release_reserve().await.expect("released"));
        let mut registry = Registry::default();
        let disk = DiskSpace::new(dir.path().to_path_buf(), 0, Arc::new(store), &mut registry);
        let warning = disk.warning().expect("the reserve is spent");
        assert!(
            warning.contains("sends and creates are refused"),
            "{warning}"
        );
        let dir_text = dir.path().display().to_string();
        assert!(
            !warning.contains(&dir_text),
            "no path on /readyz: {warning}"
        );
        disk.free_bytes().expect("statvfs");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains("wharf_storage_disk_reserve_spent 1"),
            "{text}"
        );
    }
}
