//! `wharf bench storage` run for real with a tiny duration per scenario.

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
