//! The MQTT door with security on and over TLS, driven by paho-mqtt (`mqtt_paho/secure.py`):
//! CONNECT refused without credentials or with wrong ones, a user's password and a token
//! (empty user name) accepted, a read-only user's publish refused by its grants; and MQTT over
//! TLS (`--mqtts-addr`, the server's `[tls]` certificate, made by rcgen for the test) with a
//! QoS 1 round trip in both versions.

#[path = "common/authority.rs"]
mod authority;
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
use serde_json::json;
use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

const ADMIN: &str = "mqtt-secure-test-administrator-token";

fn python() -> PathBuf {
    venv::python(
        "mqtt-clients-venv",
        &["paho-mqtt==2.1.0"],
        "import paho.mqtt; assert paho.mqtt.__version__ == '2.1.0'",
    )
}

/// Runs `secure.py` with `args`; fails the test with its output (and the server's log).
fn secure(args: &[&str], server_log: impl Fn() -> String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mqtt_paho/secure.py");
    let output = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run secure.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("mqtt secure: every check passed"),
        "{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server_log()
    );
}

#[test]
fn logins_and_grants_hold_on_the_mqtt_door() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mqtt = process::free_address();
    let config = format!("[security]\nadmin_token = \"{ADMIN}\"\n");
    let node = Node::start_with(dir.path(), &config, &["--mqtt-addr", &mqtt.to_string()]);
    let admin = node.client().authorized(&format!("Bearer {ADMIN}"));
    for (name, actions) in [
        ("device", json!(["read", "write"])),
        ("viewer", json!(["read"])),
    ] {
        let grants = json!([{"actions": actions, "resource": "topic:mqtt"}]);
        let body = json!({"password": format!("{name} password 1"), "grants": grants});
        admin.expect(201, "PUT", &format!("/v1/users/{name}"), &body);
    }
    let port = mqtt.port().to_string();
    let args = [
        "logins",
        "--port",
        &port,
        "--token",
        ADMIN,
        "--user",
        "device",
        "--password",
        "device password 1",
        "--reader",
        "viewer:viewer password 1",
    ];
    secure(&args, || node.server.stderr());
}

#[test]
fn mqtt_over_tls_uses_the_servers_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let authority = authority::Authority::new("mqtt test CA");
    let ca = authority.write(&dir.path().join("ca.pem"));
    let (cert, key) = authority.issue_into(dir.path());
    let mqtts = process::free_address();
    let mut command = common::wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", &process::free_address().to_string()])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--mqtts-addr", &mqtts.to_string()]);
    let server = process::ServerProcess::spawn(command, dir.path());
    wait_accepting(mqtts, || server.stderr());
    let port = mqtts.port().to_string();
    let ca = ca.to_string_lossy().into_owned();
    secure(&["tls", "--tls-port", &port, "--ca", &ca], || {
        server.stderr()
    });
}

/// Waits until `address` accepts TCP connections (the server is up).
fn wait_accepting(address: SocketAddr, server_log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "MQTTS never listened:\n{}",
            server_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
