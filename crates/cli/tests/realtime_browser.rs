//! Real-time delivery in a real browser: `examples/realtime-page` opened twice in headless
//! Chromium (as two room members with browser tokens), driven by Selenium from
//! `realtime_browser/drive.py` against the built `wharf serve`.
//!
//! The script serves the page from an origin of its own (listed in `http.cors_origins`),
//! mints the tokens over the API, and checks from what the pages show: the WebSocket
//! subscribed and the event stream open, each page sees the other in the room, messages
//! published over HTTP appear in order over both, a message published from one page's form
//! reaches the other, a topic the token does not name is refused, a closed tab leaves the room,
//! and the console holds no JavaScript error.
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

const TOKEN: &str = "realtime-browser-administrator-token";

#[test]
fn a_page_follows_a_topic_over_websocket_and_sse_with_browser_tokens() {
    chromium::install();
    let python = chromium::selenium_python("realtime-browser-venv", &[], "");
    let dir = tempfile::tempdir().expect("temp dir");
    let page_port = process::free_address().port();
    let config = format!(
        "[security]\nadmin_token = \"{TOKEN}\"\n\n\
         [http]\ncors_origins = [\"http://127.0.0.1:{page_port}\"]\n\n\
         [realtime]\ntoken_secret = \"realtime-browser-test-secret-of-32-bytes\"\n"
    );
    let node = Node::start_configured(dir.path(), &config);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(&python);
    command
        .arg(manifest.join("tests/realtime_browser/drive.py"))
        .arg(format!("http://{}", node.address))
        .arg(page_port.to_string())
        .arg(manifest.join("../../examples/realtime-page"))
        .env("WHARF_ADMIN_TOKEN", TOKEN);
    let passed = "realtime page: every check passed";
    chromium::drive(command, dir.path(), passed, || node.server.stderr());
}
