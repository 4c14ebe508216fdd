//! Helpers every test binary uses: a clean `wharf` command and running it with a deadline.

use std::{
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Pause between polls: short next to any deadline, long enough not to spin a core.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Variables of the test environment that would change what `wharf` does: its settings, a
/// developer's home or XDG directory (and so `~/.config/wharf/cli.toml`), and logging.
pub const INHERITED_VARIABLES_REMOVED: [&str; 19] = [
    "WHARF_CONFIG",
    "WHARF_AMQP_ADDR",
    "WHARF_AMQPS_ADDR",
    "WHARF_MQTT_ADDR",
    "WHARF_MQTTS_ADDR",
    "WHARF_DATA_DIR",
    "WHARF_HTTP_ADDR",
    "WHARF_TLS_CERT",
    "WHARF_TLS_KEY",
    "WHARF_TLS_CLIENT_CA",
    "WHARF_SERVER",
    "WHARF_ADMIN_TOKEN",
    "WHARF_TOKEN",
    "WHARF_USER",
    "WHARF_PASSWORD",
    "WHARF_CLI_CONFIG",
    "XDG_CONFIG_HOME",
    "HOME",
    "RUST_LOG",
];

/// A `wharf` command with none of [`INHERITED_VARIABLES_REMOVED`] and stdin closed. A
/// server it starts has no AMQP or MQTT door (tests run side by side and cannot all take
/// ports 5672 and 1883) unless the test asks with `--amqp-addr` or `--mqtt-addr`, which
/// override the environment.
pub fn wharf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    for name in INHERITED_VARIABLES_REMOVED {
        command.env_remove(name);
    }
    command.env("WHARF_AMQP_ADDR", "off");
    command.env("WHARF_AMQPS_ADDR", "off");
    command.env("WHARF_MQTT_ADDR", "off");
    command.env("WHARF_MQTTS_ADDR", "off");
    command.stdin(Stdio::null());
    command
}

/// Runs `command` to completion with a deadline; returns (status, stdout, stderr).
///
/// The output is read while the command runs: a command that prints more than a pipe holds
/// (64 KiB on Linux) would otherwise block on its write and never exit.
pub fn run_to_end(mut command: Command, deadline: Duration) -> (ExitStatus, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wharf");
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "wharf still running after {deadline:?}; stdout:\n{}\nstderr:\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(POLL_INTERVAL);
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    (status, stdout, stderr)
}

/// Reads `pipe` to its end on a thread of its own, as text.
fn read_in_background(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
