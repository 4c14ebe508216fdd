//! MQTT over WebSocket in a real browser: `examples/mqtt-page` (MQTT.js, MQTT 5.0 over `/mqtt`
//! on the HTTP port) opened twice in headless Chromium, as clients "ana" and "ben", driven by
//! Selenium from `mqtt_browser/drive.py` against the built `wharf serve`.
//!
//! The script serves the page from an origin of its own (listed in `http.cors_origins`: the
//! browser sends it on the WebSocket upgrade) and checks from what the pages show: each
//! connected once and was granted `chat/#` at QoS 1, a message published over HTTP reaches
//! both, a message published from one page's form is acknowledged and reaches the other (and a
//! queue bound over HTTP), a closed tab ends its connection and leaves the other page connected,
//! without error and still receiving, and the consoles hold no JavaScript error. The MQTT port
//! is off, as in every test: the pages use the WebSocket only.
//!
//! Setup, done once per machine and skipped after: see `common/chromium.rs`; MQTT.js comes from
//! the npm registry (`npm pack`) into the target directory.

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
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The MQTT.js release the page was tested with (any 5.x should do: the page uses `connect`,
/// `subscribe` and `publish` only).
const MQTT_JS_VERSION: &str = "5.16.0";

#[test]
fn two_pages_chat_with_mqtt_js_over_websocket() {
    chromium::install();
    let python = chromium::selenium_python("mqtt-browser-venv", &[], "");
    let mqtt_js = mqtt_js();
    let dir = tempfile::tempdir().expect("temp dir");
    let page_port = process::free_address().port();
    let config = format!("[http]\ncors_origins = [\"http://127.0.0.1:{page_port}\"]\n");
    let node = Node::start_with(dir.path(), &config, &[]);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The page as the example ships it, with the bundle beside it as its README says.
    let page = dir.path().join("page");
    fs::create_dir(&page).expect("make the page's directory");
    let index = manifest.join("../../examples/mqtt-page/index.html");
    fs::copy(&index, page.join("index.html")).expect("copy the page");
    fs::copy(&mqtt_js, page.join("mqtt.min.js")).expect("copy MQTT.js");
    let mut command = Command::new(&python);
    command
        .arg(manifest.join("tests/mqtt_browser/drive.py"))
        .arg(format!("http://{}", node.address))
        .arg(page_port.to_string())
        .arg(&page);
    let passed = "mqtt page: every check passed";
    chromium::drive(command, dir.path(), passed, || node.server.stderr());
}

/// MQTT.js's browser bundle (`dist/mqtt.min.js`, with no dependencies to install), from the
/// npm registry the first time and from the target directory after.
fn mqtt_js() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bundle = target
        .join(format!("mqtt-js-{MQTT_JS_VERSION}"))
        .join("mqtt.min.js");
    if bundle.exists() {
        return bundle;
    }
    // Unpacked aside and moved in whole, so that a run cut short leaves no half a file that
    // the next run would take for the bundle.
    let staging = tempfile::tempdir_in(target).expect("temp dir for npm");
    let packed = Command::new("npm")
        .args(["pack", "--silent", &format!("mqtt@{MQTT_JS_VERSION}")])
        .current_dir(staging.path())
        .output()
        .expect("run npm (this test needs Node.js and npm)");
    assert!(
        packed.status.success(),
        "npm pack mqtt@{MQTT_JS_VERSION} failed:\n{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let tarball = format!("mqtt-{MQTT_JS_VERSION}.tgz");
    let unpacked = Command::new("tar")
        .args(["xzf", &tarball, "package/dist/mqtt.min.js"])
        .current_dir(staging.path())
        .status()
        .expect("run tar");
    assert!(unpacked.success(), "tar xzf {tarball} failed");
    let parent = bundle.parent().expect("the bundle's directory");
    fs::create_dir_all(parent).expect("make the bundle's directory");
    fs::rename(staging.path().join("package/dist/mqtt.min.js"), &bundle)
        .expect("move the bundle in place");
    bundle
}
