//! `wharf bench storage` run for real with a tiny duration per scenario, and `wharf bench
//! queue --secure` with a small message count: two rounds of the three runs, then the cost of
//! security.

mod common;

use common::{run_to_end, wharf};
use std::time::Duration;

/// Seven scenarios of a fraction of a second plus preallocating five 64 MiB segments: seconds
/// normally, minutes on a very slow disk.
const BENCH_DEADLINE: Duration = Duration::from_secs(180);

/// Runs a benchmark command to its end, checks that it succeeded, and returns its output with
/// the JSON summary its last line gives.
fn run_summary(command: std::process::Command) -> (String, serde_json::Value) {
    let args: Vec<_> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().expect("some output");
    let summary = serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {last}"));
    (stdout, summary)
}

#[test]
fn bench_storage_ends_with_a_json_summary_and_cleans_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args(["bench", "storage", "--seconds", "0.3", "--dir"])
        .arg(dir.path());
    let (stdout, summary) = run_summary(command);

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
            .unwrap_or_else(|| panic!("{key} missing or not a number in {summary}"));
        assert!(value > 0.0, "{key} = {value}");
        assert!(stdout.contains(key), "table lacks {key}:\n{stdout}");
    }
    assert!(summary["scenarios"]["appends_per_s_256"]["fsyncs"].as_u64() > Some(0));

    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}

#[test]
fn bench_queue_secure_runs_rounds_of_plain_bearer_and_basic_and_reports_the_median_cost() {
    // The benchmark's temporary directories (data, certificate and key) go here, so the test
    // sees that none is left behind.
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args([
            "bench",
            "queue",
            "--secure",
            "--rounds",
            "2",
            "--messages",
            "2000",
        ])
        .env("TMPDIR", temp.path())
        .env(
            "WHARF_ADMIN_TOKEN",
            "a token the plain run must not inherit",
        );
    let (stdout, summary) = run_summary(command);

    // The second round runs in reverse order, so a drift in speed weighs on all three alike.
    let announced: Vec<usize> = [
        "run 1 of 6: plain",
        "run 2 of 6: secure (HTTPS, Authorization: Bearer",
        "run 3 of 6: secure (HTTPS, Authorization: Basic",
        "round 1 of 2:",
        "bearer token vs plain: end-to-end",
        "Basic user vs plain: end-to-end",
        "run 4 of 6: secure (HTTPS, Authorization: Basic",
        "run 5 of 6: secure (HTTPS, Authorization: Bearer",
        "run 6 of 6: plain",
        "round 2 of 2:",
        "security cost: ",
    ]
    .iter()
    .scan(0, |from, text| {
        let at = *from
            + stdout[*from..]
                .find(text)
                .unwrap_or_else(|| panic!("no {text:?} after byte {from} in:\n{stdout}"));
        *from = at + text.len();
        Some(at)
    })
    .collect();
    assert_eq!(announced.len(), 11);
    let runs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| line.starts_with("{\"wharf_sends_per_s\""))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert_eq!(runs.len(), 6, "one summary per run:\n{stdout}");
    for run in &runs {
        assert_eq!(run["messages"], 2000);
        assert!(run["wharf_end_to_end_per_s"].as_f64() > Some(0.0), "{run}");
        assert!(run["wharf_server_cpu_s"].is_number(), "{run}");
    }

    assert_eq!(summary["rounds"], 2, "{summary}");
    // Runs 1 and 6 are plain, 2 and 5 bearer, 3 and 4 Basic; of two, the median is the mean.
    let per_s = |index: usize| {
        runs[index]["wharf_end_to_end_per_s"]
            .as_f64()
            .unwrap_or(0.0)
    };
    for (key, first, second) in [
        ("plain_end_to_end_per_s", 0, 5),
        ("secure_end_to_end_per_s", 1, 4),
        ("basic_end_to_end_per_s", 2, 3),
    ] {
        let expected = ((per_s(first) + per_s(second)) / 2.0).round();
        let reported = summary[key].as_f64().unwrap_or(-1.0);
        assert!((reported - expected).abs() <= 1.0, "{key}: {summary}");
    }
    for (median, per_round) in [
        ("security_cost_percent", "security_costs_percent"),
        (
            "basic_security_cost_percent",
            "basic_security_costs_percent",
        ),
    ] {
        let costs: Vec<f64> = (summary[per_round].as_array())
            .unwrap_or_else(|| panic!("no {per_round} in {summary}"))
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        assert_eq!(costs.len(), 2, "{summary}");
        let reported = summary[median].as_f64().unwrap_or(f64::NAN);
        assert!(
            (reported - (costs[0] + costs[1]) / 2.0).abs() <= 0.1,
            "{median}: {summary}"
        );
    }
    assert!(
        summary["security_cost_within_budget"].is_boolean(),
        "{summary}"
    );

    let left: Vec<_> = std::fs::read_dir(temp.path()).expect("read dir").collect();
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}

#[test]
fn bench_queue_rounds_need_secure() {
    let mut command = wharf();
    command.args(["bench", "queue", "--rounds", "2"]);
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_ne!(status.code(), Some(0), "stdout:\n{stdout}");
    assert!(stderr.contains("--secure"), "stderr:\n{stderr}");
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

#[test]
fn bench_queue_drives_the_binary_batch_type_end_to_end() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args(["bench", "queue", "--messages", "2000", "--format", "binary"])
        .env("TMPDIR", temp.path());
    let (stdout, summary) = run_summary(command);
    assert!(
        stdout.contains("2000 messages of 1024 B as Binary"),
        "{stdout}"
    );
    assert_eq!(summary["format"], "binary", "{summary}");
    assert_eq!(summary["wharf_redelivered"], 0, "{summary}");
    assert!(
        summary["wharf_end_to_end_per_s"].as_f64() > Some(0.0),
        "{summary}"
    );
    assert!(
        summary["wharf_p99_ms"].as_f64() > Some(0.0),
        "latencies were measured: {summary}"
    );
}

/// `wharf bench mqtt` on a server of its own: every QoS 1 message and every fan-out delivery
/// arrives, and the server's CPU and memory are measured.
#[test]
fn bench_mqtt_pubsub_and_fanout_deliver_everything_on_their_own_server() {
    let runs: [&[&str]; 2] = [
        &["pubsub", "--qos", "1", "--messages", "2000"],
        &[
            "fanout",
            "--subscribers",
            "20",
            "--messages",
            "20",
            "--rate",
            "0",
        ],
    ];
    for workload in runs {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut command = wharf();
        command
            .args(["bench", "mqtt"])
            .args(workload)
            .args(["--timeout-s", "60"])
            .env("TMPDIR", temp.path());
        let (_, summary) = run_summary(command);
        assert_eq!(summary["wharf_lost"], 0, "{summary}");
        assert_eq!(summary["wharf_duplicates"], 0, "{summary}");
        assert!(summary["wharf_server_cpu_s"].is_f64(), "{summary}");
        assert!(summary["wharf_rss_mib"].as_f64() > Some(1.0), "{summary}");
        let rate = match workload[0] {
            "pubsub" => &summary["wharf_end_to_end_per_s"],
            _ => &summary["wharf_deliveries_per_s"],
        };
        assert!(rate.as_f64() > Some(0.0), "{summary}");
    }
}

#[test]
fn bench_webhooks_delivers_every_message_and_reports_rates_beside_the_reference() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args([
            "bench",
            "webhooks",
            "--messages",
            "300",
            "--rate",
            "50",
            "--seconds",
            "1",
        ])
        .env("TMPDIR", temp.path());
    let (stdout, summary) = run_summary(command);
    assert!(
        stdout.contains("300 messages published in batches of 100, all delivered"),
        "{stdout}"
    );
    for key in [
        "reference_posts_per_s",
        "deliveries_per_s",
        "server_cpu_us_per_delivery",
    ] {
        assert!(summary[key].as_f64() > Some(0.0), "{key}: {summary}");
    }
    assert!(summary["latency_p99_ms"].as_f64() >= summary["latency_p50_ms"].as_f64());
}

#[test]
fn bench_realtime_measures_idle_connections_fan_out_and_round_trips() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args([
            "bench",
            "realtime",
            "--connections",
            "50",
            "--subscribers",
            "20",
        ])
        .args([
            "--publishes",
            "10",
            "--interval-ms",
            "1",
            "--requests",
            "20",
        ])
        .env("TMPDIR", temp.path());
    let (stdout, summary) = run_summary(command);
    assert!(
        stdout.contains("10 publishes x 20 subscribers, 200 of 200 delivered"),
        "{stdout}"
    );
    for door in ["websocket", "http"] {
        let (p50, p99) = (
            summary[format!("{door}_request_p50_ms")].as_f64(),
            summary[format!("{door}_request_p99_ms")].as_f64(),
        );
        assert!(p50 > Some(0.0) && p99 >= p50, "{door}: {summary}");
    }
    assert!(summary["idle_websocket_kib_per_connection"]
        .as_f64()
        .is_some());
    assert!(summary["fan_out_p99_ms"].as_f64() >= summary["fan_out_p50_ms"].as_f64());
}

#[test]
fn bench_events_runs_every_scenario_with_one_writer_and_cleans_up() {
    // With `--writers 1` the concurrent round is the single-writer one: it runs once (a second
    // round on the same streams would be refused by their expected versions).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = wharf();
    command
        .args(["bench", "events", "--seconds", "0.3", "--writers", "1"])
        .args(["--streams", "200", "--dir"])
        .arg(dir.path());
    let (stdout, summary) = run_summary(command);
    assert_eq!(
        stdout.matches("appends,   1 writers").count(),
        3,
        "one engine, one HTTP and one batched HTTP round:\n{stdout}"
    );
    for key in [
        "raw_fsync_per_s",
        "engine_appends_1_per_s",
        "engine_all_read_mb_s",
        "http_appends_1_per_s",
        "http_appends_1_server_cpu_us",
        "http_batched_appends_1_per_s",
        "http_batched_appends_1_server_cpu_us",
        "http_all_read_mb_s",
    ] {
        let value = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing or not a number in {summary}"));
        assert!(value > 0.0, "{key} = {value}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(left.is_empty(), "bench left files behind: {left:?}");
}
