//! `wharf check DATA_DIR` on a real data directory: clean, then with flipped bytes in an older
//! segment of a log, then with a damaged metadata entry, then on a directory a running server
//! holds.

use std::{path::Path, process::Command};
use wharf_storage::{LogConfig, Store, StoreConfig};

fn check(dir: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("check")
        .arg(dir)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let code = output.status.code().unwrap();
    (code, text(&output.stdout), text(&output.stderr))
}

/// A data directory with a log `wal` of 300 records in 4 KiB segments.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let log = store.log("wal", config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in 0..300u32 {
            log.append([format!("record {i:04} {}", "x".repeat(60))])
                .await
                .unwrap();
        }
        log.close().await.unwrap();
    });
    dir
}

#[test]
fn a_clean_directory_checks_clean_and_damage_is_named_with_exit_code_1() {
    let dir = data_dir();
    let (code, out, err) = check(dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("log wal: offsets 0..300: ok"), "{out}");
    assert!(out.contains("0 damaged ranges (0 records): clean"), "{out}");

    let mut segments: Vec<_> = std::fs::read_dir(dir.path().join("logs/wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut bytes = std::fs::read(&segments[1]).unwrap();
    for byte in &mut bytes[2000..2008] {
        *byte ^= 0xff;
    }
    std::fs::write(&segments[1], bytes).unwrap();
    let (code, out, err) = check(dir.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("log wal: offsets 0..300: damaged"), "{out}");
    assert!(
        out.contains("1 damaged ranges (1 records): DAMAGED"),
        "{out}"
    );
}

#[test]
fn a_damaged_metadata_entry_is_named_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    store.meta().put("queue/a", serde_json::json!(10)).unwrap();
    store.meta().put("queue/b", serde_json::json!(20)).unwrap();
    drop(store);
    // Into the snapshot: a journal with no marker (its first, empty frame) and no snapshot is a
    // store from before snapshots were written at creation, and opening writes its snapshot.
    let journal = dir.path().join("meta/meta.journal");
    let bytes = std::fs::read(&journal).unwrap();
    assert_eq!(&bytes[8..10], b"[]", "the marker");
    std::fs::write(&journal, &bytes[10..]).unwrap();
    let snapshot = dir.path().join("meta/meta.json");
    std::fs::remove_file(&snapshot).unwrap();
    drop(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let text = std::fs::read_to_string(&snapshot).unwrap();
    assert!(text.contains("\"queue/b\" 20\n"), "{text}");
    std::fs::write(&snapshot, text.replace("\"queue/b\" 20", "\"queue/b\" 21")).unwrap();

    let (code, out, err) = check(dir.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("metadata: damaged, 1 entries readable"),
        "{out}"
    );
    assert!(out.contains("entry \"queue/b\" lost"), "{out}");
    assert!(out.contains(": DAMAGED"), "{out}");
}

#[test]
fn a_directory_that_is_not_a_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("is not a Wharf data directory"), "{err}");
}
