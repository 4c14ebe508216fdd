//! `wharf serve` driven as a user would: the built binary, real sockets, real signals.

#[path = "../common/authority.rs"]
mod authority;
#[path = "../common/mod.rs"]
mod common;
mod process;
mod tls;

use common::{run_to_end, wharf};
use process::{
    free_address, free_addresses, get, refuses_connections, ServerProcess, EXIT_DEADLINE,
};
use std::{fs, path::Path};

/// Starts `wharf serve --data-dir DIR --http-addr ADDR` and waits until it answers.
fn start_default(dir: &Path) -> (ServerProcess, std::net::SocketAddr) {
    let address = free_address();
    let mut command = wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--http-addr")
        .arg(address.to_string());
    let mut server = ServerProcess::spawn(command, dir);
    server.wait_healthy(address);
    (server, address)
}

#[test]
fn serves_operational_endpoints_without_a_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, address) = start_default(dir.path());

    let health = get(address, "/healthz").expect("healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));

    let ready = get(address, "/readyz").expect("readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), serde_json::json!({"status": "ready"}));

    let metrics = get(address, "/metrics").expect("metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        metrics.content_type
    );
    assert!(
        metrics.body.contains("wharf_storage_fsyncs_total"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("wharf_storage_appends_total"));

    let openapi = get(address, "/openapi.json").expect("openapi");
    assert_eq!(openapi.status, 200);
    let document = openapi.json();
    assert!(document["openapi"]
        .as_str()
        .unwrap_or("")
        .starts_with("3.1"));
    assert!(document["paths"]["/healthz"].is_object(), "{document}");

    let missing = get(address, "/no/such/path").expect("unknown path");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type, "application/problem+json");
    let problem = missing.json();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "Not Found");

    assert!(dir.path().join("data").join("logs").is_dir());
    assert!(dir.path().join("data").join("meta").is_dir());
    drop(server);
}

fn stops_cleanly_on(signal: libc::c_int, name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, address) = start_default(dir.path());
    server.signal(signal);
    let status = server.wait_exit(EXIT_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "exit after {name}: {status}; stderr:\n{}",
        server.stderr()
    );
    let stderr = server.stderr();
    assert!(stderr.contains(name), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(refuses_connections(address));
}

#[test]
fn sigterm_stops_the_server_with_status_zero() {
    stops_cleanly_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_the_server_with_status_zero() {
    stops_cleanly_on(libc::SIGINT, "SIGINT");
}

/// The three addresses of the precedence tests and a config file naming the first one.
struct PrecedenceSetup {
    dir: tempfile::TempDir,
    file_address: std::net::SocketAddr,
    env_address: std::net::SocketAddr,
    flag_address: std::net::SocketAddr,
    config: std::path::PathBuf,
    file_data_dir: std::path::PathBuf,
}

fn precedence_setup() -> PrecedenceSetup {
    let dir = tempfile::tempdir().expect("temp dir");
    let addresses = free_addresses(3);
    let file_data_dir = dir.path().join("from-file");
    let config = dir.path().join("wharf.toml");
    fs::write(
        &config,
        format!(
            "data_dir = {:?}\nhttp_addr = \"{}\"\n\n[log]\nformat = \"json\"\n",
            file_data_dir.to_str().expect("utf-8 path"),
            addresses[0]
        ),
    )
    .expect("write config");
    PrecedenceSetup {
        dir,
        file_address: addresses[0],
        env_address: addresses[1],
        flag_address: addresses[2],
        config,
        file_data_dir,
    }
}

#[test]
fn flag_beats_environment_beats_file() {
    let setup = precedence_setup();
    let mut command = wharf();
    command
        .args(["serve", "--config"])
        .arg(&setup.config)
        .env("WHARF_HTTP_ADDR", setup.env_address.to_string())
        .args(["--http-addr", &setup.flag_address.to_string()]);
    let mut server = ServerProcess::spawn(command, setup.dir.path());
    server.wait_healthy(setup.flag_address);
    assert!(refuses_connections(setup.env_address));
    assert!(refuses_connections(setup.file_address));
}

#[test]
fn environment_beats_file() {
    let setup = precedence_setup();
    let mut command = wharf();
    command
        .arg("serve")
        .env("WHARF_CONFIG", &setup.config)
        .env("WHARF_HTTP_ADDR", setup.env_address.to_string());
    let mut server = ServerProcess::spawn(command, setup.dir.path());
    server.wait_healthy(setup.env_address);
    assert!(refuses_connections(setup.file_address));
    assert!(refuses_connections(setup.flag_address));
}

#[test]
fn file_settings_apply_when_nothing_overrides_them() {
    let setup = precedence_setup();
    let mut command = wharf();
    command.args(["serve", "--config"]).arg(&setup.config);
    let mut server = ServerProcess::spawn(command, setup.dir.path());
    server.wait_healthy(setup.file_address);
    assert!(setup.file_data_dir.join("logs").is_dir());

    // The file also asked for JSON logs: the `listening` line is one object with the address.
    let stderr = server.stderr();
    let listening = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "listening")
        .unwrap_or_else(|| panic!("no JSON `listening` line in:\n{stderr}"));
    assert_eq!(
        listening["fields"]["address"],
        setup.file_address.to_string()
    );
}

#[test]
fn unknown_config_key_fails_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bad.toml");
    fs::write(&config, "data_dir = \"x\"\nbogus_key = 1\n").expect("write config");
    let mut command = wharf();
    command.args(["serve", "--config"]).arg(&config);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("bogus_key"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
}

#[test]
fn bad_config_value_from_env_file_names_key_and_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bad.toml");
    fs::write(&config, "[storage]\nfsync = \"sometimes\"\n").expect("write config");
    let mut command = wharf();
    command.arg("serve").env("WHARF_CONFIG", &config);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("storage.fsync"), "{stderr}");
    assert!(stderr.contains("sometimes"), "{stderr}");
}

#[test]
fn occupied_address_fails_with_status_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address");
    let mut command = wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", &address.to_string()]);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {address}")),
        "{stderr}"
    );
}

#[test]
fn a_second_server_on_a_data_directory_in_use_is_refused_until_the_first_dies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let (mut first, first_address) = start_default(dir.path());

    let mut command = wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--http-addr", &free_address().to_string()]);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = format!(
        "error: data directory {} is in use by another Wharf process (pid {}); \
         stop it or choose another --data-dir",
        data_dir.display(),
        first.child.id()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    let health = get(first_address, "/healthz").expect("healthz of the first server");
    assert_eq!(health.status, 200);

    // The kernel drops the lock of a killed process: no stale lock blocks the restart.
    first.signal(libc::SIGKILL);
    first.wait_exit(EXIT_DEADLINE);
    let (_second, second_address) = start_default(dir.path());
    let health = get(second_address, "/healthz").expect("healthz of the second server");
    assert_eq!(health.status, 200);
}

#[test]
fn malformed_flag_is_a_usage_error() {
    let mut command = wharf();
    command.args(["serve", "--http-addr", "not-an-address"]);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--http-addr"), "{stderr}");
}

#[test]
fn a_data_directory_that_lost_its_metadata_snapshot_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let (mut first, _) = start_default(dir.path());
    first.signal(libc::SIGTERM);
    first.wait_exit(EXIT_DEADLINE);
    let snapshot = data_dir.join("meta").join("meta.json");
    std::fs::remove_file(&snapshot).expect("the server wrote a snapshot");

    let mut command = wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--http-addr", &free_address().to_string()]);
    let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = format!(
        "error: cannot open the store in {}: metadata snapshot {} is missing but ",
        data_dir.display(),
        snapshot.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

/// A stand-in OpenTelemetry collector: takes OTLP/HTTP posts on `listener` and sends each
/// request's path and body to the returned channel; answers 200 with an empty message.
fn fake_collector(listener: std::net::TcpListener) -> std::sync::mpsc::Receiver<(String, Vec<u8>)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let (posts, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).expect("a header line");
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().expect("a length");
                        }
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).expect("the body");
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                    content-length: 0\r\n\r\n";
                reader
                    .get_mut()
                    .write_all(answer.as_bytes())
                    .expect("answer");
                if posts.send((path, body)).is_err() {
                    return;
                }
            }
        }
    });
    received
}

#[test]
fn spans_are_exported_over_otlp_and_continue_the_callers_trace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let collector = listener.local_addr().expect("address");
    let posts = fake_collector(listener);
    let config = dir.path().join("wharf.toml");
    fs::write(
        &config,
        format!("[log]\notlp_endpoint = \"http://{collector}\"\n"),
    )
    .expect("config");
    let address = free_address();
    let mut command = wharf();
    command
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", &address.to_string()]);
    let mut server = ServerProcess::spawn(command, dir.path());
    server.wait_healthy(address);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let created = agent
        .put(&format!("http://{address}/v1/queues/traced"))
        .header("traceparent", &traceparent)
        .header("content-type", "application/json")
        .send("{}")
        .expect("PUT");
    assert_eq!(created.status().as_u16(), 201);
    // Stopping sends the spans not yet exported.
    server.signal(libc::SIGTERM);
    assert_eq!(
        server.wait_exit(EXIT_DEADLINE).code(),
        Some(0),
        "{}",
        server.stderr()
    );

    let (path, body) = posts
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| {
            panic!(
                "no spans reached the collector; stderr:\n{}",
                server.stderr()
            )
        });
    assert_eq!(path, "/v1/traces");
    // Protobuf keeps strings and ids as raw bytes: the span's name, the service, and the
    // caller's trace id (its parent) are all in the body.
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|window| window == needle);
    assert!(contains(b"PUT /v1/queues/{name}"), "{body:?}");
    assert!(contains(b"wharf"));
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert!(
        contains(&trace_bytes),
        "the span is not in the caller's trace"
    );
}
