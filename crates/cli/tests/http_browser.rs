//! The browser defences over real sockets against the built `wharf` binary: the `[http]`
//! settings of a config file reach the server, and the requests a hostile page or a rebound
//! DNS name would make are refused byte for byte as a browser sends them.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;

use common::{run_to_end, wharf};
use process::{free_address, ServerProcess, EXIT_DEADLINE};
use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

/// One request to a local server answers in milliseconds; this only stops a hung test.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

const APP: &str = "https://app.example";

/// A raw HTTP/1.1 exchange: status and the whole reply (head and body) in lower case.
fn exchange(address: SocketAddr, request_head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("timeout");
    let request = format!(
        "{request_head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    let status = reply
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {reply}"));
    (status, reply.to_ascii_lowercase())
}

/// `wharf serve` with `[http]` allowing `wharf.test` and the origin `APP`.
fn start(dir: &Path) -> (ServerProcess, SocketAddr) {
    let config = dir.join("wharf.toml");
    let settings =
        format!("[http]\nallowed_hosts = [\"wharf.test\"]\ncors_origins = [\"{APP}\"]\n");
    fs::write(&config, settings).expect("write config");
    let address = free_address();
    let mut command = wharf();
    command
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--http-addr")
        .arg(address.to_string());
    let mut server = ServerProcess::spawn(command, dir);
    server.wait_healthy(address);
    (server, address)
}

/// Creates `q1` with two messages the way the CLI does (JSON, Host of the address).
fn queue_with_two_messages(address: SocketAddr) {
    let json = format!("Host: {address}\r\nContent-Type: application/json");
    let (status, _) = exchange(
        address,
        &format!("PUT /v1/queues/q1 HTTP/1.1\r\n{json}"),
        "{}",
    );
    assert_eq!(status, 201);
    let head = format!("POST /v1/queues/q1/messages HTTP/1.1\r\n{json}");
    let (status, _) = exchange(
        address,
        &head,
        r#"{"messages": [{"body": 1}, {"body": 2}]}"#,
    );
    assert_eq!(status, 201);
}

fn ready_count(address: SocketAddr) -> u64 {
    let (status, reply) = exchange(
        address,
        &format!("GET /v1/queues/q1 HTTP/1.1\r\nHost: {address}"),
        "",
    );
    assert_eq!(status, 200, "{reply}");
    let body = reply.split("\r\n\r\n").nth(1).expect("a body");
    let info: serde_json::Value = serde_json::from_str(body).expect("json");
    info["stats"]["ready"].as_u64().expect("a count")
}

#[test]
fn a_hostile_page_cannot_purge_and_a_rebound_name_is_misdirected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, address) = start(dir.path());
    queue_with_two_messages(address);

    // The request of the report, as curl sent it.
    let evil = format!(
        "POST /v1/queues/q1/purge HTTP/1.1\r\nHost: {address}\r\nOrigin: http://evil.example\r\n\
         Content-Type: application/x-www-form-urlencoded"
    );
    let (status, reply) = exchange(address, &evil, "");
    assert_eq!(status, 403, "{reply}");
    assert!(reply.contains("forbidden_origin"), "{reply}");
    let form = format!(
        "POST /v1/queues/q1/purge HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: text/plain;charset=UTF-8"
    );
    let (status, reply) = exchange(address, &form, "");
    assert_eq!(status, 415, "{reply}");

    let rebound = "POST /v1/queues/q1/purge HTTP/1.1\r\nHost: evil.example:7700\r\n\
                   Origin: http://evil.example:7700\r\nContent-Type: application/json";
    let (status, reply) = exchange(address, rebound, "{}");
    assert_eq!(status, 421, "{reply}");
    assert!(reply.contains("http.allowed_hosts"), "{reply}");
    assert_eq!(ready_count(address), 2);

    // The configured name is served; a bodiless POST with no type (curl -X POST) works.
    let listed = "POST /v1/queues/q1/purge HTTP/1.1\r\nHost: wharf.test";
    let (status, reply) = exchange(address, listed, "");
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains(r#"{"purged":2}"#), "{reply}");
}

#[test]
fn a_configured_origin_passes_its_preflight_and_gets_cors_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, address) = start(dir.path());
    queue_with_two_messages(address);
    let preflight = format!(
        "OPTIONS /v1/queues/q1/purge HTTP/1.1\r\nHost: {address}\r\nOrigin: {APP}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization, content-type"
    );
    let (status, reply) = exchange(address, &preflight, "");
    assert_eq!(status, 204, "{reply}");
    assert!(
        reply.contains(&format!("access-control-allow-origin: {APP}")),
        "{reply}"
    );
    assert!(reply.contains("access-control-allow-headers: authorization, content-type"));
    let actual = format!(
        "POST /v1/queues/q1/purge HTTP/1.1\r\nHost: {address}\r\nOrigin: {APP}\r\n\
         Content-Type: application/json"
    );
    let (status, reply) = exchange(address, &actual, "{}");
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains(&format!("access-control-allow-origin: {APP}")));
    assert!(reply.contains("vary: origin"), "{reply}");
}

#[test]
fn a_bad_http_setting_fails_start_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bad.toml");
    fs::write(
        &config,
        "[http]\ncors_origins = [\"https://app.example/\"]\n",
    )
    .expect("write");
    let mut command = wharf();
    command.args(["serve", "--config"]).arg(&config);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("http.cors_origins"), "{stderr}");
    assert!(stderr.contains("https://app.example/"), "{stderr}");
}
