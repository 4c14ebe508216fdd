//! A `wharf serve` child process and the HTTP client the tests talk to it with.

use crate::common::POLL_INTERVAL;
use std::{
    fs::File,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// A debug build on a busy two-core machine can take a few seconds to open the store and bind.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Shutdown drains idle connections and syncs an empty store: well under a second normally.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(15);
/// One request to a local server answers in milliseconds; this only stops a hung test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `count` distinct loopback addresses whose ports were free a moment ago. All listeners are
/// held at once so the ports differ, then released for the server to take.
pub fn free_addresses(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local address"))
        .collect()
}

pub fn free_address() -> SocketAddr {
    free_addresses(1)[0]
}

/// A running `wharf serve`; killed on drop if the test did not stop it.
pub struct ServerProcess {
    pub child: Child,
    stderr_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with stderr captured in a file under `log_dir`.
    pub fn spawn(mut command: Command, log_dir: &Path) -> ServerProcess {
        let stderr_path = log_dir.join(format!("wharf-stderr-{}.log", unique_suffix()));
        let stderr = File::create(&stderr_path).expect("create stderr file");
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn wharf");
        ServerProcess { child, stderr_path }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls `/healthz` on `address` until it answers 200; fails if the process exits first or
    /// the deadline passes.
    pub fn wait_healthy(&mut self, address: SocketAddr) {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Ok(reply) = get(address, "/healthz") {
                if reply.status == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!(
                    "wharf exited with {status} before answering on {address}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "wharf did not answer /healthz on {address} within {STARTUP_DEADLINE:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped.
        let status = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            status,
            0,
            "kill failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the process to exit, failing after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            assert!(
                Instant::now() < until,
                "wharf still running {deadline:?} later; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP reply, reduced to what the tests check.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.body))
    }
}

/// `GET http://address/path`; any status is a reply, only transport failures are errors.
pub fn get(address: SocketAddr, path: &str) -> Result<Reply, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .proxy(None)
        .build()
        .into();
    let mut response = agent.get(&format!("http://{address}{path}")).call()?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(Reply {
        status: response.status().as_u16(),
        content_type,
        body: response.body_mut().read_to_string()?,
    })
}

/// True when nothing accepts TCP connections on `address`.
pub fn refuses_connections(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, REQUEST_TIMEOUT).is_err()
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
