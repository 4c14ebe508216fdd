//! `wharf bench topic` and `wharf bench request` run for real against their own child server
//! with tiny counts: each must finish and end with a JSON summary holding its figures.

mod common;

use common::{run_to_end, wharf};
use serde_json::Value;
use std::time::Duration;

/// A debug server on a busy two-core machine: a few hundred fsyncs take seconds, not minutes.
const BENCH_DEADLINE: Duration = Duration::from_secs(180);

/// Runs `wharf bench ARGS`, checks it succeeded and returns its last line as JSON.
fn bench_summary(args: &[&str]) -> Value {
    let mut command = wharf();
    command.arg("bench").args(args);
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {last}"))
}

fn positive(summary: &Value, key: &str) -> f64 {
    let value = summary[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {summary}"));
    assert!(value > 0.0, "{key} = {value} in {summary}");
    value
}

#[test]
fn bench_topic_reports_each_binding_count_and_the_fanout() {
    let summary = bench_summary(&[
        "topic",
        "--messages",
        "60",
        "--bindings",
        "1,9",
        "--batch",
        "10",
        "--producers",
        "2",
        "--fanout-queues",
        "3",
        "--fanout-messages",
        "6",
    ]);
    for count in [1, 9] {
        for name in ["msgs_per_s", "p50_ms", "p99_ms", "bindings_per_s"] {
            positive(&summary, &format!("wharf_topic_{count}_{name}"));
        }
        assert!(summary[format!("wharf_topic_{count}_setup_s")].is_number());
    }
    // One binding matches its key once; nine bindings are three ids of three kinds each, and
    // every key matches its id's three.
    assert_eq!(positive(&summary, "wharf_topic_1_routed_per_msg"), 1.0);
    assert_eq!(positive(&summary, "wharf_topic_9_routed_per_msg"), 3.0);
    for name in ["publishes_per_s", "p50_ms", "p99_ms"] {
        positive(&summary, &format!("wharf_fanout_{name}"));
    }
    assert_eq!(positive(&summary, "wharf_fanout_routed_per_msg"), 3.0);
    assert!(summary["wharf_topic_server_cpu_s"].is_number());
}

#[test]
fn bench_request_reports_concurrent_and_sequential_round_trips() {
    let summary = bench_summary(&[
        "request",
        "--requests",
        "40",
        "--concurrency",
        "2",
        "--sequential-requests",
        "10",
    ]);
    for prefix in ["wharf_request", "wharf_request_sequential"] {
        for name in ["round_trips_per_s", "p50_ms", "p99_ms"] {
            positive(&summary, &format!("{prefix}_{name}"));
        }
    }
    assert_eq!(summary["requests"], 40);
    assert_eq!(summary["concurrency"], 2);
}
