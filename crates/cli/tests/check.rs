//! `wharf check DATA_DIR` on a real data directory: clean, then with flipped bytes in an older
//! segment of a log, then with a damaged metadata entry, then on a directory a running server
//! holds; and `wharf check --repair` on the damaged data of a stopped server, which then starts
//! and serves the rest.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use queue_client::Node;
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::Command,
};
use wharf_storage::{LogConfig, Store, StoreConfig};

fn check(dir: &Path) -> (i32, String, String) {
    check_with(dir, &[])
}

fn check_with(dir: &Path, flags: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("check")
        .args(flags)
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

const QUEUE: &str = "orders";
const MESSAGES: usize = 40;

/// A stopped server's data directory whose queue holds `MESSAGES` messages, one send each.
fn stopped_server_data(dir: &Path) -> PathBuf {
    let mut node = Node::start(dir);
    let client = node.client();
    client.expect(201, "PUT", &format!("/v1/queues/{QUEUE}"), &json!({}));
    for n in 0..MESSAGES {
        let messages = json!({ "messages": [{ "body": { "n": n } }] });
        client.expect(
            201,
            "POST",
            &format!("/v1/queues/{QUEUE}/messages"),
            &messages,
        );
    }
    node.server.signal(libc::SIGTERM);
    node.server.wait_exit(process::EXIT_DEADLINE);
    dir.join("data")
}

/// Byte positions of the frames of a segment file (its layout: `wharf_storage` record.rs).
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if length < 16 {
            break;
        }
        starts.push(at);
        at += length;
    }
    starts
}

/// The segment file under `data/logs/` with the most records.
fn busiest_segment(data: &Path) -> PathBuf {
    let mut segments = Vec::new();
    for log in std::fs::read_dir(data.join("logs")).unwrap() {
        for file in std::fs::read_dir(log.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|x| x == "log") {
                let frames = frame_starts(&std::fs::read(&path).unwrap()).len();
                segments.push((frames, path));
            }
        }
    }
    segments.sort();
    segments.pop().unwrap().1
}

fn receive_all(node: &Node) -> Vec<Value> {
    let client = node.client();
    let mut received = Vec::new();
    for _ in 0..MESSAGES {
        let batch = client.receive(QUEUE, 100, 60_000);
        if batch.is_empty() {
            break;
        }
        received.extend(batch);
    }
    received
}

#[test]
fn repair_moves_a_stopped_servers_damage_into_quarantine_and_the_server_runs_on_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = stopped_server_data(dir.path());
    let segment = busiest_segment(&data);
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = frame_starts(&bytes);
    assert!(starts.len() >= MESSAGES, "{} frames", starts.len());
    let middle = starts[starts.len() / 2];
    bytes[middle + 20] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let (code, out, err) = check(&data);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("1 damaged ranges (1 records): DAMAGED"),
        "{out}"
    );

    let (code, out, err) = check_with(&data, &["--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": moved offsets "), "{out}");
    assert!(out.contains("0 damaged ranges (0 records): clean"), "{out}");
    let log_name = segment.parent().unwrap().file_name().unwrap();
    let quarantined: Vec<PathBuf> = std::fs::read_dir(data.join("quarantine").join(log_name))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let bin = quarantined
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .unwrap_or_else(|| panic!("no .bin in {quarantined:?}"));
    let moved = std::fs::read(bin).unwrap();
    assert_eq!(moved[..], bytes[middle..middle + moved.len()]);
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");

    let (code, out, err) = check(&data);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("quarantined ("), "{out}");
    assert!(
        out.contains("1 quarantined ranges (1 records), 0 damaged ranges (0 records): clean"),
        "{out}"
    );

    // The server starts on the repaired directory and delivers every message but the one.
    let node = Node::start(dir.path());
    let received = receive_all(&node);
    assert_eq!(received.len(), MESSAGES - 1, "{received:?}");
}
