//! The OpenAPI document against the server it describes, as a client generator would meet it:
//! schemathesis (installed here into a virtual environment under the target directory) runs
//! every operation but the event stream of subscriptions, with every check and every phase
//! (the stateful one on the document's links and those schemathesis infers), a fixed seed and
//! a bounded number of examples, against the built `wharf serve` with an administrator token.
//! Any failure of any check fails this test, with schemathesis's report.
//!
//! `openapi_fuzz/hooks.py` gives schemathesis valid texts for the formats whose grammar is no
//! regular expression (filters, routing patterns, grant resources).

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;
#[path = "common/venv.rs"]
mod venv;

use queue_client::Node;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The schemathesis release this test was written against; a new one may add checks.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const TOKEN: &str = "openapi-fuzz-administrator-token";
/// Examples per operation and phase: enough to reach every schema branch, few enough that
/// the run takes a few minutes on two cores.
const MAX_EXAMPLES: &str = "15";

/// The `schemathesis` executable of its virtual environment.
fn schemathesis() -> PathBuf {
    let probe = "import importlib.metadata as m; assert m.version('schemathesis') == '4.32.5'";
    venv::python("schemathesis-venv", &[SCHEMATHESIS], probe).with_file_name("schemathesis")
}

#[test]
fn every_operation_keeps_the_openapi_contract_under_schemathesis() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_configured(
        dir.path(),
        &format!("[security]\nadmin_token = \"{TOKEN}\"\n"),
    );
    let address = node.address;

    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi_fuzz");
    let output = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(hooks.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("http://{address}/openapi.json"))
        .args([
            "--checks",
            "all",
            "--seed",
            "1",
            "--max-examples",
            MAX_EXAMPLES,
        ])
        .args(["--workers", "1", "--no-color", "--request-timeout", "25"])
        // An event stream answers 200 and then stays open: no request-response check can end
        // it. Subscriptions and tails are tested by http_topics.rs, http_streams.rs,
        // http_events.rs and realtime.rs instead.
        .args(["--exclude-path", "/v1/topics/{name}/subscribe"])
        .args(["--exclude-path", "/v1/sse"])
        .args(["--exclude-path", "/v1/events/subscribe"])
        .args([
            "--exclude-path",
            "/v1/streams/{name}/partitions/{partition}/tail",
        ])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &hooks)
        // Its reports and cassettes go to the temporary directory, not the source tree.
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        node.server.stderr()
    );
    let summary = report.lines().rev().find(|line| line.contains("generated"));
    println!("schemathesis: {}", summary.unwrap_or("no summary line"));
    assert!(summary.is_some(), "no test cases reported:\n{report}");
    // The stateful phase follows the document's links (create, then read, use and delete).
    let links = report.lines().find(|line| line.contains("API Links:"));
    println!(
        "schemathesis stateful: {}",
        links.unwrap_or("no links line").trim()
    );
    assert!(
        links.is_some_and(|line| !line.contains(" 0 selected")),
        "the stateful phase followed no links:\n{report}"
    );
}
