//! Crash test: a child process appends under concurrent load and prints every acknowledged
//! append; the parent kills it with SIGKILL at random moments, reopens the log, and checks that
//! every acknowledged record is present and intact. Repeated for many cycles on the same log.
//!
//! The child is this test binary itself, re-run with `--ignored --exact crash_child`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};
use wharf_storage::{FsyncPolicy, Log, LogConfig, Offset, StorageMetrics};

const CHILD_DIR_VARIABLE: &str = "WHARF_CRASH_CHILD_DIR";
const CYCLES: u64 = 24;

fn config() -> LogConfig {
    LogConfig {
        // Small segments so kills land during rotation too.
        segment_bytes: 64 << 10,
        fsync: FsyncPolicy::Always,
        preallocate: true,
        preallocate_first: true,
        direct_io: true,
        faults: None,
        tail_cache_bytes: 0,
        // Kills land while commits gather appends too.
        commit_gather: Duration::from_millis(1),
    }
}

/// Payload of record `index` within an append identified by `seed`: checkable from the line the
/// child prints, of varying length.
fn payload(seed: u64, index: u64) -> Vec<u8> {
    let len = ((seed ^ index).wrapping_mul(2654435761) % 700) as usize + 1;
    (0..len)
        .map(|j| (seed.wrapping_mul(31).wrapping_add(index * 7 + j as u64)) as u8)
        .collect()
}

#[test]
#[ignore = "child process of kill9_never_loses_an_acknowledged_record"]
fn crash_child() {
    let dir = std::env::var(CHILD_DIR_VARIABLE).expect("run by the crash test");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = Log::open(&dir, config(), Arc::new(StorageMetrics::default())).unwrap();
        let pid = std::process::id() as u64;
        let mut tasks = Vec::new();
        for task in 0..16u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0u64.. {
                    let seed = (pid << 32) ^ (task << 24) ^ round;
                    // Task 0 appends ~70 KiB at a time so commits also take the direct-I/O path.
                    let count = if task == 0 { 200 } else { 1 + (seed % 4) };
                    let records: Vec<Vec<u8>> = (0..count).map(|i| payload(seed, i)).collect();
                    let range = log.append(&records).await.unwrap();
                    // Printed only once the append is acknowledged (durable).
                    println!("ACK {} {} {}", range.start.0, count, seed);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn kill9_never_loses_an_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<(u64, u64, u64)> = Vec::new();
    let mut rng = 0x9E3779B97F4A7C15u64;
    for cycle in 0..CYCLES {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_for = Duration::from_millis(30 + rng % 250);
        let acked = run_child_and_kill(dir.path(), run_for);
        assert!(
            cycle > 0 || !acked.is_empty(),
            "the child acknowledged nothing in its first run"
        );
        acknowledged.extend(acked);
        verify(dir.path(), &acknowledged, cycle);
    }
    println!(
        "crash test: {CYCLES} SIGKILL cycles, {} acknowledged appends verified",
        acknowledged.len()
    );
}

/// Runs the child for `run_for`, kills it with SIGKILL, and returns the appends it acknowledged.
fn run_child_and_kill(dir: &Path, run_for: Duration) -> Vec<(u64, u64, u64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VARIABLE, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Start the clock at the first acknowledgement, so slow start-up does not eat the run.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.is_empty() && Instant::now() < deadline {
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(50)) {
            lines.push(line);
        }
    }
    std::thread::sleep(run_for);
    // SIGKILL: no destructors, no flush, exactly like a crash of the process.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(lines_rx.try_iter());
    lines
        .iter()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("ACK ")?.split(' ');
            let start = parts.next()?.parse().ok()?;
            let count = parts.next()?.parse().ok()?;
            let seed = parts.next()?.parse().ok()?;
            Some((start, count, seed))
        })
        .collect()
}

fn verify(dir: &Path, acknowledged: &[(u64, u64, u64)], cycle: u64) {
    let log = Log::open(dir, config(), Arc::new(StorageMetrics::default())).unwrap();
    assert!(
        log.damage().is_empty(),
        "cycle {cycle}: damage {:?}",
        log.damage()
    );
    for &(start, count, seed) in acknowledged {
        for i in 0..count {
            let offset = Offset(start + i);
            let record = log
                .read(offset)
                .unwrap_or_else(|e| panic!("cycle {cycle}: reading {offset}: {e}"))
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged record {offset} lost"));
            assert_eq!(
                record.payload,
                payload(seed, i),
                "cycle {cycle}: record {offset} differs"
            );
        }
    }
}
