//! The CQRS orders example (`examples/cqrs-orders`) run end to end against the built server:
//! its `run_example.sh` drives the event store with the example's Python command side
//! (expected versions, snapshots, a 409 race) and its SQLite read model (a checkpointed
//! projection, reruns, resume after a crash), and checks every result itself. Skipped, with a
//! message, when `python3` is missing (the example is Python, standard library only).

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
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

/// The script runs about twenty short Python commands, two of them pausing a second on
/// purpose: seconds on a debug build; this only stops a hung run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

/// True when `python3` runs.
fn python3_present() -> bool {
    let output = Command::new("python3").arg("--version").output();
    output.is_ok_and(|output| output.status.success())
}

#[test]
fn cqrs_orders_example_runs_end_to_end() {
    if !python3_present() {
        eprintln!("SKIPPED example_cqrs_orders: python3 is not installed (the example needs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new("bash");
    command
        .arg("examples/cqrs-orders/run_example.sh")
        .current_dir(&root)
        .stdin(Stdio::null());
    // The developer's Wharf settings (a token, another server) must not reach the example;
    // HOME and the rest stay, as python3 may be found through them.
    for name in common::INHERITED_VARIABLES_REMOVED {
        if name.starts_with("WHARF_") {
            command.env_remove(name);
        }
    }
    command.env("WHARF_URL", format!("http://{}", node.address));
    let (status, stdout, stderr) = common::run_to_end(command, SCRIPT_DEADLINE);
    assert!(
        status.success() && stdout.contains("All checks passed."),
        "run_example.sh failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver stderr:\n{}",
        node.server.stderr()
    );
}
