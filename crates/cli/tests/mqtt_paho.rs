//! The MQTT door driven by the Eclipse paho-mqtt Python client (2.1.0), installed into a
//! virtual environment under the target directory, in MQTT 3.1.1 and 5.0: CONNECT and CONNACK
//! (a second CONNECT, a bad protocol name or level, an empty client id, a takeover by the same
//! id), PINGREQ and keep alive, publish and subscribe at QoS 0, 1 and 2 with exact payload
//! bytes and granted and delivered QoS, `+` and `#` (and `$` topics that they do not match),
//! unsubscribe, retained messages, wills (with 5.0's will delay), persistent and clean
//! sessions, QoS 2 exactly once over a duplicate PUBLISH, and a wildcard PUBLISH refused; in
//! 5.0 also no local, retain as published, retain handling, subscription identifiers, topic
//! aliases, message expiry, request-response properties, shared subscriptions, Receive
//! Maximum and the CONNACK properties; and messages crossing between MQTT and HTTP.
//!
//! The checks are `tests/mqtt_paho/drive.py`; its docstring lists them and says which pass on
//! Mosquitto, against which they were written (`drive.py --broker mosquitto`).

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

/// The client the checks drive, pinned so that a new release cannot change what they see.
const CLIENT: &str = "paho-mqtt==2.1.0";

#[test]
fn paho_speaks_mqtt_3_1_1_and_5_with_the_door_and_crosses_to_http() {
    let python = venv::python(
        "mqtt-clients-venv",
        &[CLIENT],
        "import paho.mqtt; assert paho.mqtt.__version__ == '2.1.0'",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mqtt = process::free_address();
    let node = Node::start_with(dir.path(), "", &["--mqtt-addr", &mqtt.to_string()]);
    let http = format!("http://{}", node.address);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mqtt_paho/drive.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(["--host", &mqtt.ip().to_string()])
        .args(["--port", &mqtt.port().to_string()])
        .args(["--broker", "wharf", "--http", &http])
        .output()
        .expect("run drive.py");
    let report = String::from_utf8_lossy(&output.stdout);
    print!("{report}");
    assert!(
        output.status.success() && report.contains("mqtt: every check passed"),
        "drive.py failed:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        node.server.stderr()
    );
}
