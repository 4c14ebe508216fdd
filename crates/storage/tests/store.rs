//! The store's data directory lock: one open store per directory at a time.

use std::fs;
use wharf_storage::{StorageError, Store, StoreConfig};

#[test]
fn a_second_open_is_locked_out_until_the_first_store_drops() {
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let lock_file = dir.path().join("lock");
    let first = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(fs::read_to_string(&lock_file).unwrap(), format!("{pid}\n"));

    let error = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    match &error {
        StorageError::Locked {
            dir: locked,
            pid: owner,
        } => {
            assert_eq!(locked, dir.path());
            assert_eq!(*owner, Some(pid));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!(
            "data directory {} is in use by another Wharf process (pid {pid})",
            dir.path().display()
        )
    );
    // The refused open left the owner's pid in place.
    assert_eq!(fs::read_to_string(&lock_file).unwrap(), format!("{pid}\n"));

    drop(first);
    let second = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(fs::read_to_string(&lock_file).unwrap(), format!("{pid}\n"));
    drop(second);
}

#[test]
fn a_lock_file_left_behind_does_not_block_an_open() {
    let dir = tempfile::tempdir().unwrap();
    // What a killed server leaves: the file with its pid, but no lock (the kernel dropped it).
    fs::write(dir.path().join("lock"), "4294967295\n").unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("lock")).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(store);
}

#[test]
fn a_locked_directory_without_a_pid_yet_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), StoreConfig::default()).unwrap();
    // The owner writes its pid just after locking; a rival can look in between.
    fs::write(dir.path().join("lock"), "").unwrap();
    let error = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(error, StorageError::Locked { pid: None, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "data directory {} is in use by another Wharf process",
            dir.path().display()
        )
    );
    drop(first);
}

/// Bytes the files under `dir` take on disk (allocated blocks, not lengths).
fn disk_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        total += match metadata.is_dir() {
            true => disk_bytes(&entry.path()),
            false => metadata.blocks() * 512,
        };
    }
    total
}

#[tokio::test]
async fn an_idle_small_log_takes_kilobytes_of_disk_not_a_segment() {
    use wharf_storage::{Durability, LogOptions, LogSize, Offset, Storage};
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        durability: Durability::Durable,
        size: LogSize::Small,
    };
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let mut logs = Vec::new();
    for n in 0..50 {
        let log = store
            .open_log(&format!("topic-{n}"), options)
            .await
            .unwrap();
        log.append(&[bytes::Bytes::from_static(b"a binding")], None)
            .await
            .unwrap();
        logs.push(log);
    }
    drop(logs);
    drop(store);
    // Zero-filled ahead, fifty first segments would take 50 MiB.
    let used = disk_bytes(&dir.path().join("logs"));
    assert!(used < 50 * 64 * 1024, "50 small logs take {used} bytes");
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let log = store.open_log("topic-7", options).await.unwrap();
    assert_eq!(log.end_offset(), Offset(1), "the record survives a restart");
}
