//! The queue client commands (`wharf queue ...`, `wharf send`, `wharf receive`) and
//! `wharf bench queue`, run as a user would: the built binary against a real `wharf serve`.

mod common;
// Shared with the serve tests; this file uses only part of it.
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;

use common::{run_to_end, wharf, POLL_INTERVAL};
use process::{free_address, get, ServerProcess};
use serde_json::Value;
use std::{
    io::Write,
    net::SocketAddr,
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// One client command against a local server: milliseconds normally; this stops a hung one.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// Lease expiry and dead-lettering happen on the server's timers: well under a second.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);
/// A small `bench queue` run on a debug build of a busy two-core machine.
const BENCH_DEADLINE: Duration = Duration::from_secs(240);

struct Server {
    _process: ServerProcess,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = free_address();
    let mut command = wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--http-addr")
        .arg(address.to_string());
    let mut process = ServerProcess::spawn(command, dir.path());
    process.wait_healthy(address);
    Server {
        _process: process,
        address,
        _dir: dir,
    }
}

impl Server {
    /// Runs `wharf --server URL ARGS...`; returns (status, stdout, stderr).
    fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let mut command = wharf();
        command
            .arg("--server")
            .arg(format!("http://{}", self.address))
            .args(args);
        run_to_end(command, COMMAND_DEADLINE)
    }

    /// Like [`Server::run`], failing the test unless the command succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.run(args);
        assert!(
            status.success(),
            "wharf {args:?} failed with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    /// Runs a command with `input` on its standard input; returns stdout.
    fn ok_with_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let mut command = wharf();
        command
            .arg("--server")
            .arg(format!("http://{}", self.address))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn wharf");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        let output = child.wait_with_output().expect("wait for wharf");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "wharf {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn stats(&self, queue: &str) -> Value {
        json(&self.ok(&["queue", "stats", queue]))
    }

    /// Polls `queue stats` until `ready` reaches `expected`.
    fn wait_ready(&self, queue: &str, expected: u64) {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let stats = self.stats(queue);
            if stats["stats"]["ready"] == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queue} did not reach {expected} ready: {stats}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(json).collect()
}

fn decode_base64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64")
}

#[test]
fn create_list_stats_and_delete_a_queue() {
    let server = start_server();
    let created = json(&server.ok(&[
        "queue",
        "create",
        "jobs",
        "--lease-ms",
        "5000",
        "--max-deliveries",
        "3",
        "--overflow",
        "drop-oldest",
        "--max-length",
        "10",
    ]));
    assert_eq!(created["name"], "jobs");
    assert_eq!(created["options"]["lease_ms"], 5000);
    assert_eq!(created["options"]["max_deliveries"], 3);
    assert_eq!(created["options"]["overflow"], "drop_oldest");
    assert_eq!(created["options"]["durable"], true);
    server.ok(&["queue", "create", "scratch", "--transient"]);

    let list = server.ok(&["queue", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{list}");
    assert!(lines.iter().any(|line| line.starts_with("jobs ")), "{list}");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("scratch ") && line.ends_with("no")),
        "{list}"
    );

    let stats = server.stats("jobs");
    assert_eq!(stats["stats"]["ready"], 0);
    assert_eq!(stats["options"]["max_length"], 10);

    assert_eq!(server.ok(&["queue", "delete", "jobs"]), "");
    let (status, _, stderr) = server.run(&["queue", "stats", "jobs"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("jobs"),
        "{stderr}"
    );
}

#[test]
fn create_on_an_existing_queue_changes_only_the_options_given() {
    let server = start_server();
    server.ok(&[
        "queue",
        "create",
        "jobs",
        "--lease-ms",
        "5000",
        "--dead-letter-queue",
        "jobs-dead",
        "--transient",
    ]);
    let updated = json(&server.ok(&["queue", "create", "jobs", "--max-length", "10"]));
    let options = &updated["options"];
    assert_eq!(options["max_length"], 10, "{updated}");
    assert_eq!(options["lease_ms"], 5000, "kept: {updated}");
    assert_eq!(options["dead_letter_queue"], "jobs-dead", "kept: {updated}");
    assert_eq!(options["durable"], false, "kept: {updated}");

    let updated = json(&server.ok(&["queue", "create", "jobs", "--lease-ms", "7000"]));
    assert_eq!(updated["options"]["lease_ms"], 7000, "{updated}");
    assert_eq!(updated["options"]["max_length"], 10, "kept: {updated}");
    assert_eq!(server.stats("jobs")["options"], updated["options"]);
}

#[test]
fn send_json_text_and_stdin_bytes_then_receive_with_ack() {
    let server = start_server();
    server.ok(&["queue", "create", "inbox"]);
    let sent = json_lines(&server.ok(&[
        "send",
        "inbox",
        r#"{"order":7}"#,
        "--id",
        "order-7",
        "--header",
        "source=test",
    ]));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], "order-7");
    assert_eq!(sent[0]["duplicate"], false);
    server.ok(&["send", "inbox", "hello world"]);
    let bytes: Vec<u8> = (0u8..=255).collect();
    server.ok_with_stdin(&["send", "inbox", "-"], &bytes);

    let received = json_lines(&server.ok(&["receive", "inbox", "--max", "10", "--ack"]));
    assert_eq!(received.len(), 3, "{received:?}");
    // Same priority: in send order.
    assert_eq!(received[0]["id"], "order-7");
    assert_eq!(received[0]["body"], serde_json::json!({"order": 7}));
    assert_eq!(received[0]["headers"]["source"], "test");
    assert!(received[0]["receipt"].is_string());
    assert!(received[1]["content_type"]
        .as_str()
        .is_some_and(|content_type| content_type.starts_with("text/plain")));
    let text = decode_base64(received[1]["body_base64"].as_str().expect("base64 body"));
    assert_eq!(text, b"hello world");
    assert_eq!(received[2]["content_type"], "application/octet-stream");
    let stdin_body = decode_base64(received[2]["body_base64"].as_str().expect("base64 body"));
    assert_eq!(stdin_body, bytes);

    let stats = server.stats("inbox");
    assert_eq!(stats["stats"]["ready"], 0, "{stats}");
    assert_eq!(stats["stats"]["leased"], 0, "acked, not leased: {stats}");
    assert_eq!(stats["stats"]["counters"]["acked"], 3, "{stats}");
    let again = server.ok(&["receive", "inbox", "--max", "10"]);
    assert_eq!(again, "", "acked messages came back");
}

/// Receives one message from `queue` and returns its receipt.
fn receive_receipt(server: &Server, queue: &str, extra: &[&str]) -> String {
    let mut args = vec!["receive", queue];
    args.extend_from_slice(extra);
    let received = json_lines(&server.ok(&args));
    assert_eq!(received.len(), 1, "{received:?}");
    received[0]["receipt"]
        .as_str()
        .expect("a receipt")
        .to_string()
}

#[test]
fn receive_then_ack_by_argument_and_from_stdin() {
    let server = start_server();
    server.ok(&["queue", "create", "inbox"]);
    server.ok(&["send", "inbox", "1"]);
    server.ok(&["send", "inbox", "2"]);

    let first = receive_receipt(&server, "inbox", &[]);
    let results = json_lines(&server.ok(&["ack", "inbox", &first]));
    assert_eq!(results, [serde_json::json!({"receipt": first, "ok": true})]);

    // As in `wharf receive ... | jq -r .receipt | wharf ack inbox`.
    let second = receive_receipt(&server, "inbox", &[]);
    let results =
        json_lines(&server.ok_with_stdin(&["ack", "inbox"], format!("{second}\n\n").as_bytes()));
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["ok"], true, "{results:?}");

    let stats = server.stats("inbox");
    assert_eq!(stats["stats"]["counters"]["acked"], 2, "{stats}");
    assert_eq!(stats["stats"]["leased"], 0, "{stats}");
}

#[test]
fn nack_with_dead_letter_moves_the_message_with_its_error() {
    let server = start_server();
    server.ok(&["queue", "create", "jobs-dead"]);
    server.ok(&[
        "queue",
        "create",
        "jobs",
        "--dead-letter-queue",
        "jobs-dead",
    ]);
    server.ok(&["send", "jobs", r#""poison""#]);
    let receipt = receive_receipt(&server, "jobs", &[]);
    let results = json_lines(&server.ok(&[
        "nack",
        "jobs",
        &receipt,
        "--dead-letter",
        "--error",
        "cannot parse",
    ]));
    assert_eq!(results[0]["ok"], true, "{results:?}");
    server.wait_ready("jobs-dead", 1);
    let dead = json_lines(&server.ok(&["queue", "peek", "jobs-dead"]));
    assert_eq!(dead[0]["body"], "poison", "{dead:?}");
    assert_eq!(dead[0]["dead_letter"]["reason"], "rejected", "{dead:?}");
    assert_eq!(
        dead[0]["dead_letter"]["last_error"], "cannot parse",
        "{dead:?}"
    );

    // Without --dead-letter the message is ready again, here at once.
    server.ok(&["send", "jobs", r#""retry me""#]);
    let receipt = receive_receipt(&server, "jobs", &[]);
    server.ok(&["nack", "jobs", &receipt, "--delay-ms", "0"]);
    server.wait_ready("jobs", 1);
}

#[test]
fn lease_extends_a_lease_past_its_first_end() {
    let server = start_server();
    server.ok(&["queue", "create", "slow"]);
    server.ok(&["send", "slow", "1"]);
    server.ok(&["send", "slow", "2"]);
    let extended = receive_receipt(&server, "slow", &["--lease-ms", "500"]);
    // A control leased as long, not extended: once it is back, the first lease has ended too.
    receive_receipt(&server, "slow", &["--lease-ms", "500"]);
    let results = json_lines(&server.ok(&["lease", "slow", &extended, "--lease-ms", "60000"]));
    assert_eq!(results[0]["ok"], true, "{results:?}");

    server.wait_ready("slow", 1);
    let stats = server.stats("slow");
    assert_eq!(
        stats["stats"]["leased"], 1,
        "the extended lease ended: {stats}"
    );
    server.ok(&["ack", "slow", &extended]);
}

#[test]
fn a_stale_receipt_is_reported_and_the_command_fails() {
    let server = start_server();
    server.ok(&["queue", "create", "once"]);
    server.ok(&["send", "once", "1"]);
    server.ok(&["send", "once", "2"]);
    let stale = receive_receipt(&server, "once", &[]);
    server.ok(&["ack", "once", &stale]);
    let fresh = receive_receipt(&server, "once", &[]);

    let (status, stdout, stderr) = server.run(&["ack", "once", &stale, &fresh]);
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let results = json_lines(&stdout);
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0]["code"], "stale_receipt", "{results:?}");
    assert_eq!(
        results[1]["ok"], true,
        "the fresh one is acked all the same"
    );
    assert!(
        stderr.starts_with("error: queue `once`: 1 of 2 receipts failed to ack: "),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{stale}: ")),
        "names the receipt: {stderr}"
    );
    assert!(stderr.contains("stale_receipt"), "says why: {stderr}");
    assert!(!stderr.contains(&fresh), "{stderr}");
    assert_eq!(server.stats("once")["stats"]["counters"]["acked"], 2);

    // No receipts at all: neither arguments nor lines on standard input.
    let (status, _, stderr) = server.run(&["ack", "once"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no receipts given"), "{stderr}");
}

#[test]
fn send_file_sends_every_line_in_batches() {
    let server = start_server();
    server.ok(&["queue", "create", "bulk"]);
    // 2,500 messages: three batches of at most 1,000. JSON lines go as JSON, other lines as
    // their bytes; blank lines are skipped; CRLF ends a line like LF.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("messages.txt");
    let mut text = String::new();
    for index in 0..2_500 {
        match index % 2 {
            0 => text.push_str(&format!("{{\"n\":{index}}}\n")),
            _ => text.push_str(&format!("line {index}\r\n\n")),
        }
    }
    std::fs::write(&path, &text).expect("write the file");
    let path = path.to_str().expect("utf-8 path");
    let (status, printed, stderr) =
        server.run(&["send", "bulk", "--file", path, "--header", "k=v"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(printed, "sent 2500 messages (0 duplicates)\n");
    // No progress bar when stderr is not a terminal.
    assert_eq!(stderr, "");
    assert_eq!(server.stats("bulk")["stats"]["ready"], 2_500);
    let first = json_lines(&server.ok(&["queue", "peek", "bulk", "--max", "2"]));
    assert_eq!(first[0]["body"], serde_json::json!({"n": 0}));
    assert_eq!(first[0]["headers"]["k"], "v");
    assert_eq!(
        decode_base64(first[1]["body_base64"].as_str().unwrap()),
        b"line 1"
    );
    assert_eq!(first[1]["content_type"], "text/plain; charset=utf-8");

    // `-` reads standard input.
    let printed = server.ok_with_stdin(&["send", "bulk", "--file", "-"], b"7\nseven\n");
    assert_eq!(printed, "sent 2 messages (0 duplicates)\n");
    assert_eq!(server.stats("bulk")["stats"]["ready"], 2_502);
}

#[test]
fn send_file_to_a_missing_queue_says_which_lines_were_not_sent() {
    let server = start_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("messages.txt");
    std::fs::write(&path, "1\n2\n").expect("write the file");
    let path = path.to_str().expect("utf-8 path");
    let (status, stdout, stderr) = server.run(&["send", "nope", "--file", path]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("error: lines 1 to 2 were not sent (queue \"nope\" does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 messages of the lines before them were sent"),
        "{stderr}"
    );
    let (status, _, stderr) = server.run(&["send", "nope", "--file", "/no/such/file"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read /no/such/file"), "{stderr}");
    let (status, _, stderr) = server.run(&["send", "nope", "x", "--file", path]);
    assert_eq!(status.code(), Some(2), "BODY and --file together: {stderr}");
}

#[test]
fn peek_leaves_messages_and_purge_drops_them() {
    let server = start_server();
    server.ok(&["queue", "create", "work"]);
    for number in 1..=3 {
        server.ok(&["send", "work", &number.to_string()]);
    }
    let peeked = json_lines(&server.ok(&["queue", "peek", "work", "--max", "2"]));
    assert_eq!(peeked.len(), 2);
    assert_eq!(peeked[0]["body"], 1);
    assert!(peeked[0].get("receipt").is_none(), "{}", peeked[0]);
    assert_eq!(server.stats("work")["stats"]["ready"], 3);

    assert_eq!(server.ok(&["queue", "purge", "work"]).trim(), "purged 3");
    assert_eq!(server.stats("work")["stats"]["ready"], 0);
}

#[test]
fn redrive_moves_dead_letters_back_to_their_queue() {
    let server = start_server();
    server.ok(&["queue", "create", "failed"]);
    server.ok(&[
        "queue",
        "create",
        "tasks",
        "--max-deliveries",
        "1",
        "--dead-letter-queue",
        "failed",
        "--lease-ms",
        "100",
    ]);
    server.ok(&["send", "tasks", r#""flaky""#]);
    let first = json_lines(&server.ok(&["receive", "tasks"]));
    assert_eq!(first.len(), 1);
    // Not acked: the lease ends, and one delivery was all the queue allows.
    server.wait_ready("failed", 1);
    let dead = json_lines(&server.ok(&["queue", "peek", "failed"]));
    assert_eq!(
        dead[0]["dead_letter"]["source_queue"], "tasks",
        "{}",
        dead[0]
    );

    assert_eq!(
        server.ok(&["queue", "redrive", "failed"]).trim(),
        "redriven 1"
    );
    server.wait_ready("tasks", 1);
    let again = json_lines(&server.ok(&["receive", "tasks", "--ack"]));
    assert_eq!(again[0]["body"], "flaky");
}

#[test]
fn unknown_queue_fails_with_a_message_naming_it() {
    let server = start_server();
    let (status, stdout, stderr) = server.run(&["send", "nowhere", "1"]);
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");

    let (status, _, stderr) = server.run(&["receive", "nowhere"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("nowhere"), "{stderr}");

    server.ok(&["queue", "create", "jobs"]);
    let (status, _, stderr) = server.run(&["queue", "create", "jobs", "--lease-ms", "0"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lease_ms"), "the field is named: {stderr}");
}

#[test]
fn unreachable_server_is_reported_as_such() {
    let address = free_address();
    let mut command = wharf();
    command
        .arg("--server")
        .arg(format!("http://{address}"))
        .args(["queue", "list"]);
    let (status, _, stderr) = run_to_end(command, COMMAND_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: cannot connect to http://{address}: connection refused \
             (is `wharf serve` running there? set --server or WHARF_SERVER)"
        )
    );
    assert!(
        get(address, "/healthz").is_err(),
        "something listens on {address}"
    );
}

/// Runs `wharf queue list` against `server` given as `--server` or, with `from_environment`,
/// as `WHARF_SERVER`; returns stderr after checking the failure is one plain line.
fn fails_with_one_line(server: &str, from_environment: bool) -> String {
    let mut command = wharf();
    match from_environment {
        true => command.env("WHARF_SERVER", server),
        false => command.arg("--server").arg(server),
    };
    command.args(["queue", "list"]);
    let (status, stdout, stderr) = run_to_end(command, COMMAND_DEADLINE);
    assert_eq!(status.code(), Some(1), "{server}: {stderr}");
    assert_eq!(stdout, "", "{server}");
    assert_eq!(stderr.lines().count(), 1, "{server}: one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{server}: {stderr}");
    for debug_output in ["panicked", "Error {", "Os {", "kind:"] {
        assert!(!stderr.contains(debug_output), "{server}: {stderr}");
    }
    stderr.trim_end().to_string()
}

#[test]
fn a_bad_server_url_is_named_with_its_problem() {
    for (server, expected) in [
        (
            "localhost:7700",
            r#"error: --server "localhost:7700": there is no scheme; write http://localhost:7700"#,
        ),
        (
            "ftp://x",
            r#"error: --server "ftp://x": the scheme must be http, not ftp"#,
        ),
        ("http://", r#"error: --server "http://": there is no host"#),
        (
            "http://bad host",
            r#"error: --server "http://bad host": it contains whitespace"#,
        ),
        (
            "http://bad!host:7700",
            r#"error: --server "http://bad!host:7700": the host "bad!host" is not a host name or IP address"#,
        ),
        (
            "http://localhost:70000",
            r#"error: --server "http://localhost:70000": the port "70000" is not a number from 1 to 65535"#,
        ),
    ] {
        assert_eq!(fails_with_one_line(server, false), expected);
    }
    let stderr = fails_with_one_line("https://localhost:7700", false);
    assert!(stderr.contains("plain HTTP only"), "{stderr}");
    assert_eq!(
        fails_with_one_line("ftp://x", true),
        r#"error: WHARF_SERVER "ftp://x": the scheme must be http, not ftp"#
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cli.toml");
    std::fs::write(&file, "server = \"localhost:7700\"\n").expect("write cli.toml");
    let mut command = wharf();
    command
        .arg("--cli-config")
        .arg(&file)
        .args(["queue", "list"]);
    let (status, _, stderr) = run_to_end(command, COMMAND_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        r#"error: `server` in the client configuration "localhost:7700": there is no scheme; write http://localhost:7700"#
    );
    let stderr = fails_with_one_line("http://no-such-host.invalid:7700", false);
    assert!(
        stderr.starts_with("error: cannot connect to http://no-such-host.invalid:7700: "),
        "{stderr}"
    );
}

#[test]
fn bench_queue_starts_its_own_server_and_ends_with_a_json_summary() {
    let mut command = wharf();
    command.args([
        "bench",
        "queue",
        "--messages",
        "2000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--body-bytes",
        "256",
    ]);
    let (status, stdout, stderr) = run_to_end(command, BENCH_DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().expect("some output");
    let summary = json(last);
    for key in [
        "wharf_sends_per_s",
        "wharf_end_to_end_per_s",
        "wharf_p99_ms",
        "wharf_rss_mib",
        "wharf_server_cpu_s",
    ] {
        let value = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {last}"));
        assert!(value > 0.0, "{key} = {value} in {last}");
    }
    assert!(summary["wharf_p50_ms"].as_f64().is_some(), "{last}");
    assert_eq!(summary["messages"], 2000);
}
