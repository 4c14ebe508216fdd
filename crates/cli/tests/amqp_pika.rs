//! The AMQP door driven by RabbitMQ's Python clients, installed into a virtual environment
//! under the target directory. pika: publishes with confirms, consumers with prefetch, acks,
//! rejects, basic.get, exchanges and bindings, mandatory returns, queue arguments, messages
//! crossing between AMQP and HTTP, and confirmed publishes surviving `kill -9`; pika's asyncio
//! adapter too. aio-pika: request-reply through an exclusive callback queue, `reply_to` and
//! `correlation_id`.
//! Celery: a worker runs tasks sent by a client and returns their results (rpc:// backend).

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
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The clients the tests drive: pika (blocking), aio-pika (asyncio, over aiormq) and Celery
/// (over kombu and py-amqp).
const CLIENTS: [&str; 3] = ["pika==1.3.2", "aio-pika==10.2.1", "celery==5.5.3"];

/// A server with the AMQP door on `amqp`.
fn start_amqp(dir: &Path, amqp: std::net::SocketAddr) -> Node {
    Node::start_with(dir, "", &["--amqp-addr", &amqp.to_string()])
}

/// The Python of a virtual environment with the clients.
fn python() -> PathBuf {
    venv::python(
        "amqp-clients-venv",
        &CLIENTS,
        "import pika, aio_pika, celery",
    )
}

fn drive(python: &Path, amqp_port: u16, http: &str, extra: &[&str]) -> String {
    run_script(python, "drive.py", &[&amqp_port.to_string(), http], extra)
}

/// Runs `tests/amqp_pika/NAME` with `args`; fails the test with its output when it fails.
fn run_script(python: &Path, name: &str, args: &[&str], extra: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/amqp_pika")
        .join(name);
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .args(extra)
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn pika_publishes_consumes_and_crosses_to_http() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let node = start_amqp(dir.path(), amqp);
    let http = format!("http://{}", node.address);
    let report = drive(&python, amqp.port(), &http, &[]);
    print!("{report}");
    assert!(report.contains("pika: every check passed"), "{report}");
}

/// AMQPS: the door on the server's certificate (made by rcgen for 127.0.0.1); pika checks it
/// against its CA, and a plain client on the TLS port gets no AMQP.
#[test]
fn pika_talks_amqp_over_tls_with_the_servers_certificate() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let amqps = process::free_address();
    let (cert_arg, key_arg) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let amqps_arg = amqps.to_string();
    let args = [
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
        "--amqps-addr",
        &amqps_arg,
    ];
    // The HTTP door is on TLS too, so the node's plain health probe cannot be used: start
    // the process and wait for the AMQPS port instead.
    let node = tls_node(dir.path(), &args, amqps);
    let report = run_script(
        &python,
        "listeners.py",
        &["tls", &amqps.port().to_string(), &cert_arg],
        &[],
    );
    print!("{report}");
    assert!(report.contains("round trip over TLS passed"), "{report}");
    drop(node);
}

/// `wharf serve ARGS` on `dir`, once `port` accepts connections.
fn tls_node(dir: &Path, args: &[&str], port: std::net::SocketAddr) -> process::ServerProcess {
    let mut command = common::wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--http-addr")
        .arg(process::free_address().to_string())
        .args(args);
    let server = process::ServerProcess::spawn(command, dir);
    let deadline = std::time::Instant::now() + process::STARTUP_DEADLINE;
    while std::net::TcpStream::connect(port).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "AMQPS never listened on {port}; stderr:\n{}",
            server.stderr()
        );
        std::thread::sleep(common::POLL_INTERVAL);
    }
    server
}

/// SIGTERM: a consuming client is told the server stops (`320 CONNECTION_FORCED`) before
/// the process ends, as RabbitMQ tells it, rather than finding its socket closed.
#[test]
fn a_stopping_server_tells_amqp_clients_why() {
    use std::io::{BufRead, BufReader};
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let mut node = start_amqp(dir.path(), amqp);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/amqp_pika/shutdown.py");
    let mut client = Killed(
        Command::new(&python)
            .arg(&script)
            .arg(amqp.port().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run the client"),
    );
    let mut lines = BufReader::new(client.0.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("read");
    assert_eq!(first, "consuming");
    node.server.signal(libc::SIGTERM);
    node.server.wait_exit(process::EXIT_DEADLINE);
    let said = lines.next().expect("a line").expect("read");
    assert_eq!(
        said,
        "closed by the server: 320 CONNECTION_FORCED - the server is shutting down",
        "server log:\n{}",
        node.server.stderr()
    );
}

/// `limits.amqp_connections_max`: one connection over it is refused with 530 and a text that
/// names the setting; a freed slot is taken again.
#[test]
fn connections_over_the_cap_are_refused_with_530() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let _node = Node::start_with(
        dir.path(),
        "[limits]\namqp_connections_max = 3\n",
        &["--amqp-addr", &amqp.to_string()],
    );
    let report = run_script(
        &python,
        "listeners.py",
        &["cap", &amqp.port().to_string(), "3"],
        &[],
    );
    print!("{report}");
    assert!(report.contains("connection 4 refused with 530"), "{report}");
}

#[test]
fn confirmed_publishes_over_amqp_survive_kill_9() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let node = start_amqp(dir.path(), amqp);
    let http = format!("http://{}", node.address);
    drive(&python, amqp.port(), &http, &["publish", "500", "kept"]);
    let node = node.kill_and_restart();
    let info = node
        .client()
        .expect(200, "GET", "/v1/queues/kept", &Value::Null);
    assert_eq!(info["stats"]["ready"], 500, "{info}");
}

/// pika's asyncio adapter: callbacks on an asyncio loop, confirms, a consumer with acks.
#[test]
fn pika_asyncio_adapter_publishes_with_confirms_and_consumes() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let _node = start_amqp(dir.path(), amqp);
    let port = amqp.port().to_string();
    let report = run_script(&python, "pika_asyncio.py", &[&port], &[]);
    print!("{report}");
    assert!(
        report.contains("50 confirmed publishes consumed in order"),
        "{report}"
    );
}

#[test]
fn aio_pika_makes_rpc_calls_through_reply_to() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let _node = start_amqp(dir.path(), amqp);
    let report = run_script(&python, "rpc.py", &[&amqp.port().to_string()], &[]);
    print!("{report}");
    assert!(report.contains("20 RPC round trips"), "{report}");
}

/// A child process killed when dropped, so a failing test leaves no worker behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_celery_worker_runs_tasks_and_returns_results() {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let _node = start_amqp(dir.path(), amqp);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/amqp_pika");
    let broker = format!("amqp://guest:guest@{amqp}//");
    let celery = python.with_file_name("celery");
    let log = std::fs::File::create(dir.path().join("worker.log")).expect("worker log");
    let worker = Command::new(&celery)
        .args([
            "-A",
            "celery_tasks",
            "worker",
            "--pool=solo",
            "--concurrency=1",
        ])
        .args(["--without-mingle", "--without-gossip", "-l", "warning"])
        .env("BROKER", &broker)
        .env("PYTHONPATH", &scripts)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the celery worker");
    let _worker = Killed(worker);
    let output = Command::new(&python)
        .arg(scripts.join("celery_call.py"))
        .env("BROKER", &broker)
        .env("PYTHONPATH", &scripts)
        .current_dir(dir.path())
        .output()
        .expect("run the celery client");
    let report = String::from_utf8_lossy(&output.stdout);
    let worker_log = std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default();
    assert!(
        output.status.success()
            && report.contains("5 task round trips")
            && report.contains("remote control ping answered by"),
        "celery client failed:\n{report}\n{}\nworker:\n{worker_log}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{report}");
}

/// The administrator token of the connections test's server.
const ADMIN_TOKEN: &str = "connections-admin-token-0123";

/// A pika connection with a channel and a consumer shows in `GET /v1/connections` and in
/// `wharf queue list` and `wharf connection list`; a non-administrator sees its own but may not
/// close it; an administrator's `DELETE` closes it with 320 CONNECTION_FORCED, its unacked
/// delivery goes back to the queue and it leaves the list.
#[test]
fn connections_are_listed_and_an_operator_closes_one() {
    use std::io::{BufRead, BufReader};
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let amqp = process::free_address();
    let config = format!("[security]\nadmin_token = \"{ADMIN_TOKEN}\"\n");
    let node = Node::start_with(dir.path(), &config, &["--amqp-addr", &amqp.to_string()]);
    let admin = node.client().authorized(&format!("Bearer {ADMIN_TOKEN}"));
    let user = json!({"password": "alice-password-1",
                      "grants": [{"actions": ["read", "write", "manage"], "resource": "queue:*"}]});
    admin.expect(201, "PUT", "/v1/users/alice", &user);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/amqp_pika/connections.py");
    let child = Command::new(&python)
        .arg(&script)
        .args([
            &amqp.port().to_string(),
            "alice",
            "alice-password-1",
            ADMIN_TOKEN,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the pika client");
    let mut child = Killed(child);
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the client");
    assert_eq!(line.trim(), "READY", "the client did not get its delivery");

    let listed = admin.expect(200, "GET", "/v1/connections?door=amqp", &Value::Null);
    let connections = listed["connections"].as_array().expect("a list");
    assert_eq!(connections.len(), 2, "{listed}");
    // The administrator token's connection came first, and has no user.
    let (other, connection) = (&connections[0], &connections[1]);
    assert_eq!(other["user"], Value::Null, "{listed}");
    assert_eq!(other["token"], "admin", "{listed}");
    assert_eq!(other["channel_count"], 0, "{listed}");
    assert_eq!(connection["door"], "amqp");
    assert_eq!(connection["user"], "alice");
    assert_eq!(connection["virtual_host"], "/");
    assert_eq!(connection["client"]["connection_name"], "watcher-app");
    assert_eq!(connection["channel_count"], 1);
    assert_eq!(connection["consumer_count"], 1);
    let id = connection["id"].as_u64().expect("an id");
    let other_id = other["id"].as_u64().expect("an id");
    assert!(other_id < id, "ids grow: {listed}");
    let path = format!("/v1/connections/{id}");
    let detail = admin.expect(200, "GET", &path, &Value::Null);
    let consumer = &detail["channels"][0]["consumers"][0];
    assert_eq!(consumer["tag"], "watcher", "{detail}");
    assert_eq!(consumer["queue"], "watched");
    assert_eq!(consumer["prefetch"], 5);
    assert_eq!(consumer["no_ack"], false);
    assert_eq!(detail["channels"][0]["confirm"], true);

    let alice = node
        .client()
        .authorized("Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQtMQ==");
    let own = alice.expect(200, "GET", "/v1/connections", &Value::Null);
    assert_eq!(own["connections"][0]["id"], id, "alice sees her own");
    alice.expect(403, "DELETE", &path, &Value::Null);

    let cli = |args: &[&str]| {
        let mut command = common::wharf();
        command
            .args(["--server", &format!("http://{}", node.address)])
            .args(["--token", ADMIN_TOKEN])
            .args(args);
        let (status, stdout, stderr) =
            common::run_to_end(command, std::time::Duration::from_secs(30));
        assert!(status.success(), "wharf {args:?}: {stderr}");
        stdout
    };
    let queues = cli(&["queue", "list"]);
    assert!(
        queues.lines().next().unwrap_or("").contains("CONSUMERS"),
        "{queues}"
    );
    let watched: Vec<&str> = (queues.lines())
        .find(|line| line.starts_with("watched "))
        .expect("the queue is listed")
        .split_whitespace()
        .collect();
    // NAME READY DELAYED LEASED CONSUMERS DURABLE
    assert_eq!(watched, ["watched", "0", "0", "1", "1", "yes"], "{queues}");
    let table = cli(&["connection", "list"]);
    let row = table.lines().nth(2).expect("a row per connection");
    assert!(row.starts_with(&format!("{id} ")), "{table}");
    assert!(row.contains(" amqp ") && row.contains(" alice "), "{table}");
    assert!(row.contains("(watcher-app)"), "{table}");

    admin.expect(204, "DELETE", &path, &Value::Null);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the client");
    let status = child.0.wait().expect("the client ends");
    assert!(status.success(), "{rest}");
    assert!(
        rest.contains("closed by broker 320 CONNECTION_FORCED - closed by an operator"),
        "{rest}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = admin.expect(200, "GET", "/v1/connections", &Value::Null);
        if listed["connections"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still listed: {listed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let gone = admin.expect(404, "GET", &path, &Value::Null);
    assert_eq!(gone["code"], "connection_not_found", "{gone}");
    admin.expect(404, "DELETE", "/v1/connections/not-a-number", &Value::Null);
    // The delivery it never acked is back in its queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let queue = admin.expect(200, "GET", "/v1/queues/watched", &Value::Null);
        if queue["stats"]["ready"] == 1 && queue["stats"]["consumers"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not requeued: {queue}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
