//! `wharf completions SHELL`, run as a user would: the built binary, no server.

mod common;

use common::{run_to_end, wharf};
use std::{process::Command, time::Duration};

/// Generating a script is milliseconds; this only stops a hung command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// The script on stdout. Read while the command runs (not with `run_to_end`, which waits for
/// the exit first): a script is larger than a pipe's buffer.
fn completions(shell: &str) -> String {
    let output = wharf()
        .args(["completions", shell])
        .output()
        .expect("run wharf");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "completions {shell}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    String::from_utf8(output.stdout).expect("a UTF-8 script")
}

#[test]
fn each_shell_gets_a_script_naming_the_subcommands() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef wharf"),
        ("fish", "complete -c wharf"),
    ] {
        let script = completions(shell);
        assert!(
            script.contains(marker),
            "{shell}: no `{marker}` in\n{script}"
        );
        for subcommand in ["queue", "token", "receive", "completions"] {
            assert!(
                script.contains(subcommand),
                "{shell}: `{subcommand}` missing from\n{script}"
            );
        }
    }
}

#[test]
fn bash_accepts_the_bash_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wharf.bash");
    std::fs::write(&path, completions("bash")).expect("write script");
    let output = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash");
    assert!(
        output.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let mut command = wharf();
    command.args(["completions", "tcsh"]);
    let (status, stdout, stderr) = run_to_end(command, COMMAND_DEADLINE);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("bash, zsh, fish"), "{stderr}");
}
