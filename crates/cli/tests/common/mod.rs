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
pub const INHERITED_VARIABLES_REMOVED: [&str; 17] = [
    "WHARF_CONFIG",
    "WHARF_AMQP_ADDR",
    "WHARF_AMQPS_ADDR",
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
/// server it starts has no AMQP door (tests run side by side and cannot all take port
/// 5672) unless the test asks with `--amqp-addr`, which overrides the environment.
pub fn wharf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    for name in INHERITED_VARIABLES_REMOVED {
        command.env_remove(name);
    }
    command.env("WHARF_AMQP_ADDR", "off");
    command.env("WHARF_AMQPS_ADDR", "off");
    command.stdin(Stdio::null());
    command
}

/// Runs `command` to completion with a deadline; returns (status, stdout, stderr).
pub fn run_to_end(mut command: Command, deadline: Duration) -> (ExitStatus, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wharf");
    let until = Instant::now() + deadline;
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() >= until {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "wharf still running after {deadline:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
    let output = child.wait_with_output().expect("collect output");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
