//! The security client commands (`wharf user ...`, `wharf token ...`, `wharf whoami`,
//! `wharf audit`) and the credentials every client command presents (`--token`, `--user` and
//! `--password`, their `WHARF_*` variables, `cli.toml`), run as a user would: the built binary
//! against a real `wharf serve --admin-token` on loopback.
//!
//! Every command's stdout and stderr is checked against the secrets it was handed: a command
//! may print a secret only when it has just created it (`token create`).

mod common;
// Shared with the serve tests; this file uses only part of it.
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;

use common::{run_to_end, wharf};
use process::{free_address, ServerProcess};
use serde_json::Value;
use std::{
    cell::RefCell,
    io::Write,
    net::SocketAddr,
    process::{Command, ExitStatus, Stdio},
    time::Duration,
};

/// One client command against a local server: milliseconds normally (a password check is an
/// Argon2id run); this stops a hung one.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// The administrator token the server is seeded with.
const ADMIN_TOKEN: &str = "admin-token-for-cli-tests-0123456789";

struct Server {
    _process: ServerProcess,
    address: SocketAddr,
    dir: tempfile::TempDir,
    /// Secrets no command output may contain (beyond the one `token create` just made).
    secrets: RefCell<Vec<String>>,
}

/// Credentials for one command, as environment variables or flags.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    Admin,
    Token(&'a str),
    User(&'a str, &'a str),
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
        .arg(address.to_string())
        .arg("--admin-token")
        .arg(ADMIN_TOKEN);
    let mut process = ServerProcess::spawn(command, dir.path());
    process.wait_healthy(address);
    Server {
        _process: process,
        address,
        dir,
        secrets: RefCell::new(vec![ADMIN_TOKEN.to_string()]),
    }
}

impl Server {
    /// `wharf ARGS...` with `who`'s credentials in the environment and no `--server`: the
    /// server comes from `WHARF_SERVER`.
    fn command(&self, who: As<'_>, args: &[&str]) -> Command {
        let mut command = wharf();
        command
            .env("WHARF_SERVER", format!("http://{}", self.address))
            .args(args);
        match who {
            As::Nobody => {}
            As::Admin => {
                command.env("WHARF_TOKEN", ADMIN_TOKEN);
            }
            As::Token(token) => {
                command.env("WHARF_TOKEN", token);
            }
            As::User(user, password) => {
                // An empty variable counts as unset, so it does not clash with the user.
                (command.env("WHARF_TOKEN", ""))
                    .env("WHARF_USER", user)
                    .env("WHARF_PASSWORD", password);
            }
        }
        command
    }

    /// Runs the command; fails the test if its output holds a secret. Returns (status,
    /// stdout, stderr).
    fn run_command(&self, command: Command) -> (ExitStatus, String, String) {
        let (status, stdout, stderr) = run_to_end(command, COMMAND_DEADLINE);
        self.assert_no_secret(&stdout, &stderr);
        (status, stdout, stderr)
    }

    fn run(&self, who: As<'_>, args: &[&str]) -> (ExitStatus, String, String) {
        self.run_command(self.command(who, args))
    }

    /// Like [`Server::run`], failing the test unless the command succeeds; returns stdout.
    fn ok(&self, who: As<'_>, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.run(who, args);
        assert!(
            status.success(),
            "wharf {args:?} failed with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    /// Like [`Server::run`], failing the test if the command succeeds; returns stderr.
    fn fails(&self, who: As<'_>, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.run(who, args);
        assert!(
            !status.success(),
            "wharf {args:?} succeeded\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert_eq!(status.code(), Some(1), "{stderr}");
        stderr
    }

    /// Runs a command with `input` on its standard input; returns stdout.
    fn ok_with_stdin(&self, who: As<'_>, args: &[&str], input: &str) -> String {
        let mut command = self.command(who, args);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn wharf");
        (child.stdin.take().expect("stdin"))
            .write_all(input.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("wait for wharf");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        self.assert_no_secret(&stdout, &stderr);
        assert!(
            output.status.success(),
            "wharf {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    /// Creates a token as `who` and returns (id, secret); from then on the secret is one
    /// no other command may print.
    fn create_token(&self, who: As<'_>, args: &[&str]) -> (String, String) {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let created = json(&self.ok(who, &all));
        let secret = created["token"].as_str().expect("token secret").to_string();
        let id = created["id"].as_str().expect("token id").to_string();
        assert_ne!(id, secret);
        self.secrets.borrow_mut().push(secret.clone());
        (id, secret)
    }

    fn add_user(&self, name: &str, password: &str, grants: &[&str]) -> Value {
        self.secrets.borrow_mut().push(password.to_string());
        let mut args = vec!["user", "add", name, "--password-stdin"];
        for grant in grants {
            args.extend_from_slice(&["--grant", grant]);
        }
        json(&self.ok_with_stdin(As::Admin, &args, &format!("{password}\n")))
    }

    fn assert_no_secret(&self, stdout: &str, stderr: &str) {
        for secret in self.secrets.borrow().iter() {
            assert!(
                !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
                "a command printed a secret it was given\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(json).collect()
}

#[test]
fn without_credentials_a_command_fails_with_the_401_detail() {
    let server = start_server();
    let stderr = server.fails(As::Nobody, &["queue", "list"]);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("credentials are required"), "{stderr}");
    assert!(
        stderr.contains("--token"),
        "the hint names the flag: {stderr}"
    );

    let stderr = server.fails(As::Token("not-a-real-token"), &["queue", "list"]);
    assert!(stderr.contains("credentials are not valid"), "{stderr}");
    assert!(!stderr.contains("not-a-real-token"), "{stderr}");

    server.ok(As::Admin, &["queue", "create", "orders.new"]);
    let listed = server.ok(As::Admin, &["queue", "list"]);
    assert!(listed.contains("orders.new"), "{listed}");
    let whoami = json(&server.ok(As::Admin, &["whoami"]));
    assert_eq!(whoami["kind"], "token", "{whoami}");
}

#[test]
fn a_read_only_token_may_receive_but_not_send_until_revoked() {
    let server = start_server();
    server.ok(As::Admin, &["queue", "create", "orders.new"]);
    server.ok(As::Admin, &["send", "orders.new", r#"{"n":1}"#]);
    let alice = server.add_user("alice", "alice-password-1", &["read,write@queue:orders.*"]);
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["grants"][0]["resource"], "queue:orders.*");

    let as_alice = As::User("alice", "alice-password-1");
    let (id, secret) = server.create_token(
        as_alice,
        &[
            "reader",
            "--grant",
            "read@queue:orders.*",
            "--expires-in",
            "1h",
        ],
    );
    let reader = As::Token(&secret);
    let stderr = server.fails(reader, &["send", "orders.new", r#"{"n":2}"#]);
    assert!(stderr.contains("not allowed: write"), "{stderr}");
    let received = json_lines(&server.ok(reader, &["receive", "orders.new", "--ack"]));
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["body"]["n"], 1);

    let whoami = json(&server.ok(reader, &["whoami"]));
    assert_eq!(whoami["kind"], "token");
    assert_eq!(whoami["id"], id.as_str());
    assert_eq!(whoami["owner"], "alice");
    let tokens = json_lines(&server.ok(as_alice, &["token", "list"]));
    assert!(
        tokens.iter().any(|token| token["id"] == id.as_str()),
        "{tokens:?}"
    );
    assert!(tokens[0]["expires_at"].is_u64(), "{tokens:?}");

    server.ok(as_alice, &["token", "revoke", &id]);
    let stderr = server.fails(reader, &["receive", "orders.new"]);
    assert!(stderr.contains("authentication failed"), "{stderr}");
}

#[test]
fn a_grant_beyond_the_creators_own_is_refused() {
    let server = start_server();
    server.add_user("bob", "bob-password-1", &["read@queue:orders.*"]);
    let stderr = server.fails(
        As::User("bob", "bob-password-1"),
        &["token", "create", "wide", "--grant", "write@queue:orders.*"],
    );
    assert!(stderr.contains("not allowed"), "{stderr}");
    let stderr = server.fails(As::User("bob", "bob-password-1"), &["user", "list"]);
    assert!(stderr.contains("not allowed: admin"), "{stderr}");
}

#[test]
fn passwd_replaces_a_password_and_the_old_one_stops_working() {
    let server = start_server();
    server.add_user("carol", "carol-password-old", &["read@queue:*"]);
    server
        .secrets
        .borrow_mut()
        .push("carol-password-new".into());
    let old = As::User("carol", "carol-password-old");
    assert_eq!(json(&server.ok(old, &["whoami"]))["name"], "carol");

    // A user may change its own password.
    server.ok_with_stdin(
        old,
        &["user", "passwd", "carol", "--password-stdin"],
        "carol-password-new\n",
    );
    let stderr = server.fails(old, &["whoami"]);
    assert!(stderr.contains("credentials are not valid"), "{stderr}");
    let new = As::User("carol", "carol-password-new");
    assert_eq!(json(&server.ok(new, &["whoami"]))["kind"], "user");

    // An administrator may change anyone's, with the password as a flag.
    server
        .secrets
        .borrow_mut()
        .push("carol-password-3rd".into());
    let args = [
        "user",
        "passwd",
        "carol",
        "--new-password",
        "carol-password-3rd",
    ];
    server.ok(As::Admin, &args);
    server.fails(new, &["whoami"]);
    server.ok(As::User("carol", "carol-password-3rd"), &["whoami"]);
}

#[test]
fn users_are_listed_and_deleted_and_the_audit_log_shows_it() {
    let server = start_server();
    server.add_user("dave", "dave-password-1", &[]);
    let users = json_lines(&server.ok(As::Admin, &["user", "list"]));
    assert!(users.iter().any(|user| user["name"] == "dave"), "{users:?}");
    server.ok(As::Admin, &["user", "delete", "dave"]);
    server.fails(As::User("dave", "dave-password-1"), &["whoami"]);
    let users = json_lines(&server.ok(As::Admin, &["user", "list"]));
    assert!(users.iter().all(|user| user["name"] != "dave"), "{users:?}");

    let entries = json_lines(&server.ok(As::Admin, &["audit", "--limit", "1000"]));
    assert!(
        (entries.iter()).any(|entry| entry["operation"] == "DELETE /v1/users/{name}"),
        "{entries:?}"
    );
    let first = entries[0]["offset"].as_u64().expect("offset");
    let after = first.to_string();
    let rest = json_lines(&server.ok(As::Admin, &["audit", "--after", &after, "--limit", "1"]));
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(rest[0]["offset"].as_u64() > Some(first), "{rest:?}");
}

#[test]
fn a_config_file_names_the_server_and_credentials_and_flags_beat_it() {
    let server = start_server();
    let config = server.dir.path().join("wharf").join("cli.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &config,
        format!(
            "server = \"http://{}\"\ntoken = \"{ADMIN_TOKEN}\"\n",
            server.address
        ),
    )
    .expect("write config");

    // Named with --cli-config; no WHARF_SERVER, no WHARF_TOKEN.
    let mut command = wharf();
    command.arg("--cli-config").arg(&config).arg("whoami");
    let (status, stdout, stderr) = server.run_command(command);
    assert!(status.success(), "{stderr}");
    assert_eq!(json(&stdout)["kind"], "token");

    // Found at $XDG_CONFIG_HOME/wharf/cli.toml without being named.
    let mut command = wharf();
    command
        .env("XDG_CONFIG_HOME", server.dir.path())
        .args(["queue", "list"]);
    let (status, _, stderr) = server.run_command(command);
    assert!(status.success(), "{stderr}");

    // A flag beats the file: a bad token on the command line is the one sent.
    let mut command = wharf();
    command.env("XDG_CONFIG_HOME", server.dir.path()).args([
        "--token",
        "flag-token-that-is-wrong",
        "whoami",
    ]);
    let (status, _, stderr) = server.run_command(command);
    assert!(!status.success());
    assert!(stderr.contains("credentials are not valid"), "{stderr}");
    assert!(!stderr.contains("flag-token-that-is-wrong"), "{stderr}");

    // A file with a mistake is named, its secret is not.
    std::fs::write(&config, format!("tokne = \"{ADMIN_TOKEN}\"\n")).expect("write config");
    let mut command = wharf();
    command.arg("--cli-config").arg(&config).arg("whoami");
    let (status, _, stderr) = server.run_command(command);
    assert!(!status.success());
    assert!(stderr.contains("cli.toml"), "{stderr}");
}

#[test]
fn help_never_shows_a_secret_from_the_environment() {
    let server = start_server();
    let mut command = server.command(As::Admin, &["--help"]);
    command.env("WHARF_PASSWORD", "password-in-the-environment");
    server
        .secrets
        .borrow_mut()
        .push("password-in-the-environment".into());
    let (status, stdout, _) = server.run_command(command);
    assert!(status.success());
    assert!(stdout.contains("--token"), "{stdout}");
    assert!(stdout.contains("WHARF_TOKEN"), "{stdout}");
}

#[test]
fn bench_queue_presents_the_credentials_to_a_named_server() {
    let server = start_server();
    let args = [
        "bench",
        "queue",
        "--messages",
        "200",
        "--producers",
        "1",
        "--consumers",
        "1",
        "--body-bytes",
        "64",
    ];
    let stderr = server.fails(As::Nobody, &args);
    assert!(stderr.contains("401"), "{stderr}");
    let stdout = server.ok(As::Admin, &args);
    let summary = json(stdout.lines().last().expect("some output"));
    assert_eq!(summary["messages"], 200, "{stdout}");
}
