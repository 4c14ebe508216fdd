//! One `bash` per page that runs its commands in order, as a reader typing them would: a
//! variable set by one command (`A=...`, `export ...`) is there for the next.

use crate::common::INHERITED_VARIABLES_REMOVED;
use std::{
    io::{Read, Write},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::{Duration, Instant},
};

/// Printed after each command with its exit status; no example prints it.
const END_MARK: &str = "__wharf_docs_example_end__";

pub struct Shell {
    child: Child,
    input: ChildStdin,
    output: Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

/// What a command printed (stdout and stderr, interleaved as on a terminal) and its status.
pub struct Ran {
    pub output: String,
    pub status: i32,
}

impl Shell {
    /// `bash` in `dir` with `variables` set, `wharf` first on `PATH`, and nothing of the test
    /// environment that changes what `wharf` does.
    pub fn start(dir: &Path, variables: &[(&str, String)]) -> Shell {
        let wharf = Path::new(env!("CARGO_BIN_EXE_wharf"));
        let bin = wharf.parent().expect("the binary's directory");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        for name in INHERITED_VARIABLES_REMOVED {
            command.env_remove(name);
        }
        command
            .arg("--noprofile")
            .arg("--norc")
            .current_dir(dir)
            .env("PATH", path)
            .env("HOME", dir)
            .envs(variables.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so that a timeout ends it with every child it started.
            .process_group(0);
        let mut child = command.spawn().expect("spawn bash");
        let input = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (sender, output) = mpsc::channel();
        thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = stdout.read(&mut buffer) {
                if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut shell = Shell {
            child,
            input,
            output,
            pending: Vec::new(),
        };
        shell.send("exec 2>&1");
        shell
    }

    /// Runs `command`; `Err` when it did not finish within `deadline`.
    pub fn run(&mut self, command: &str, deadline: Duration) -> Result<Ran, String> {
        // Standard input is the script itself: a command reading it would eat the next ones.
        self.send(&format!(
            "{{ {command}\n}} </dev/null 2>&1; printf '\\n{END_MARK} %d\\n' $?"
        ));
        let until = Instant::now() + deadline;
        let mark = format!("\n{END_MARK} ");
        loop {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if let Some(at) = text.find(&mark) {
                if let Some(end) = text[at + mark.len()..].find('\n') {
                    let status = text[at + mark.len()..at + mark.len() + end]
                        .parse()
                        .unwrap_or(-1);
                    let consumed = at + mark.len() + end + 1;
                    self.pending = text.as_bytes()[consumed..].to_vec();
                    let output = text[..at].to_string();
                    return Ok(Ran { output, status });
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.pending.extend_from_slice(&bytes),
                Err(_) => {
                    return Err(format!(
                        "no end within {deadline:?}; printed so far:\n{text}"
                    ))
                }
            }
        }
    }

    fn send(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to bash");
        self.input.flush().expect("flush bash input");
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let group = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory effects; the group is the one this shell leads.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
