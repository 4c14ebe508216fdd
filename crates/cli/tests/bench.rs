//! `wharf bench storage` run for real with a tiny duration per scenario, and `wharf bench
//! queue --secure` with a small message count: all three runs, then the cost of security.

mod common;

use common::{run_to_end, wharf};
use std::time::Duration;

/// Seven scenarios of a fraction of a second plus preallocating five 64 MiB segments: seconds
/// normally, minutes on a very slow disk.
const BENCH_DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn bench_storage_ends_with_a_json_summary_and_cleans_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args(["bench", "storage", "--seconds", "0.3", "--dir"])
        .arg(dir.path());
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let last = stdout.lines().last().expect("some output");
    let summary: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {last}"));
    for key in [
        "raw_fsync_per_s",
        "raw_seq_write_mb_s",
        "appends_per_s_1",
        "appends_per_s_16",
        "appends_per_s_256",
        "mb_s_batched",
    ] {
        let value = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing or not a number in {last}"));
        assert!(value > 0.0, "{key} = {value}");
        assert!(stdout.contains(key), "table lacks {key}:\n{stdout}");
    }
    assert!(summary["scenarios"]["appends_per_s_256"]["fsyncs"].as_u64() > Some(0));

    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}

#[test]
fn bench_queue_secure_reports_the_plain_run_both_secure_runs_and_the_cost() {
    // The benchmark's temporary directories (data, certificate and key) go here, so the test
    // sees that none is left behind.
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args(["bench", "queue", "--secure", "--messages", "2000"])
        .env("TMPDIR", temp.path())
        .env(
            "WHARF_ADMIN_TOKEN",
            "a token the plain run must not inherit",
        );
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let announced: Vec<usize> = [
        "run 1 of 3: plain",
        "run 2 of 3: secure (HTTPS, Authorization: Bearer",
        "run 3 of 3: secure (HTTPS, Authorization: Basic",
        "bearer token vs plain: end-to-end",
        "Basic user vs plain: end-to-end",
        "security cost: ",
    ]
    .iter()
    .map(|text| (stdout.find(text)).unwrap_or_else(|| panic!("no {text:?} in:\n{stdout}")))
    .collect();
    assert!(
        announced.windows(2).all(|pair| pair[0] < pair[1]),
        "{stdout}"
    );
    let runs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| line.starts_with("{\"batch\""))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert_eq!(runs.len(), 3, "one summary per run:\n{stdout}");
    for run in &runs {
        assert_eq!(run["messages"], 2000);
        assert!(run["wharf_end_to_end_per_s"].as_f64() > Some(0.0), "{run}");
        assert!(run["wharf_server_cpu_s"].is_number(), "{run}");
    }

    let last = stdout.lines().last().expect("some output");
    let summary: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {last}"));
    for (key, run) in [
        ("plain_end_to_end_per_s", &runs[0]),
        ("secure_end_to_end_per_s", &runs[1]),
        ("basic_end_to_end_per_s", &runs[2]),
    ] {
        assert_eq!(summary[key], run["wharf_end_to_end_per_s"], "{key}");
    }
    assert!(summary["security_cost_percent"].is_number(), "{summary}");
    assert!(
        summary["basic_security_cost_percent"].is_number(),
        "{summary}"
    );
    assert!(
        summary["security_cost_within_budget"].is_boolean(),
        "{summary}"
    );

    let left: Vec<_> = std::fs::read_dir(temp.path()).expect("read dir").collect();
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}

#[test]
fn bench_queue_secure_refuses_a_named_server() {
    let mut command = wharf();
    command.args([
        "--server",
        "http://127.0.0.1:9",
        "bench",
        "queue",
        "--secure",
    ]);
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_ne!(status.code(), Some(0), "stdout:\n{stdout}");
    assert!(stderr.contains("--secure"), "stderr:\n{stderr}");
}
