//! The web dashboard in a real browser: headless Chromium, driven by Selenium from
//! `ui_dashboard/drive.py`, against the built `wharf serve` with an administrator token.
//!
//! The script creates its data and alert rules over the API, logs in through the page, reads
//! every page (overview, queues, a queue, topics, a topic, connections) from the DOM, waits
//! for the rules' real states and their events, deletes a message, redrives, purges, sends and
//! publishes through the page's buttons and forms and checks the API agrees, sees a pika
//! connection and closes it from the page, and fails on any JavaScript error or
//! content-security-policy violation in the browser console. It writes a screenshot of each
//! page to `docs/images/ui-*.png`, the ones docs/operations.md shows.
//!
//! Setup, done once per machine and skipped after: see `common/chromium.rs`.

#[path = "common/chromium.rs"]
mod chromium;
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
use std::{path::Path, process::Command};

const TOKEN: &str = "ui-dashboard-administrator-token";
/// The AMQP client whose connection the Connections page shows (as in amqp_pika.rs).
const PIKA: &str = "pika==1.3.2";

#[test]
fn every_dashboard_page_works_in_headless_chromium() {
    chromium::install();
    let python = chromium::selenium_python("ui-dashboard-venv", &[PIKA], "import pika");
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let node = Node::start_with(dir.path(), &config(), &["--amqp-addr", &amqp.to_string()]);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let screenshots = manifest.join("../../docs/images");
    let mut command = Command::new(&python);
    command
        .arg(manifest.join("tests/ui_dashboard/drive.py"))
        .arg(format!("http://{}", node.address))
        .arg(&screenshots)
        .arg(amqp.port().to_string())
        .env("WHARF_UI_TOKEN", TOKEN);
    let passed = "dashboard: every check passed";
    chromium::drive(command, dir.path(), passed, || node.server.stderr());
}

/// A secured server (the test gives the AMQP door's address), whose alert rules move within a
/// second, and whose `/metrics` leaves one of the script's five queues without series of its
/// own (the overview says so).
fn config() -> String {
    format!(
        "[security]\nadmin_token = \"{TOKEN}\"\n\n\
         [alerts]\ninterval_ms = 200\n\n\
         [metrics]\nresource_series_max = 4\n"
    )
}
