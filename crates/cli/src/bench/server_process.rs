//! A `wharf serve` child process started by a benchmark, and what Linux tells about it.
//!
//! Running the server as a separate process (the same binary) keeps its memory and CPU apart
//! from the load generator's, so `/proc/PID/status` and `/proc/PID/stat` measure the server
//! alone. The data directory is a fresh temporary one, removed when the child is dropped.

use super::BenchError;
use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A release server opens an empty store and binds in well under a second; a debug build on a
/// busy two-core machine can take several.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Graceful shutdown drains connections and syncs the logs; past this the child is killed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Settings the child must not inherit: the configuration file and the security options.
const SECURITY_ENV: [&str; 5] = [
    "WHARF_CONFIG",
    "WHARF_ADMIN_TOKEN",
    "WHARF_TLS_CERT",
    "WHARF_TLS_KEY",
    "WHARF_TLS_CLIENT_CA",
];

pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
    /// The MQTT door's address, when [`ServerOptions::mqtt`] asked for one.
    pub mqtt_address: Option<SocketAddr>,
    log_path: PathBuf,
    // Declared last so it is removed after the child has exited.
    _dir: tempfile::TempDir,
}

/// How the child server is secured; the default is plain HTTP with no authentication.
#[derive(Debug, Default)]
pub struct ServerOptions {
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Every /v1 request then needs this bearer token. Passed in the environment, not on the
    /// command line, so other users of the machine cannot read it from the process list.
    pub admin_token: Option<String>,
    /// `--webhooks-allow-private`: endpoints on loopback receive.
    pub allow_private_webhooks: bool,
    /// A configuration file's text (TOML), for limits a benchmark needs raised.
    pub config: Option<String>,
    /// Open the MQTT door on a free loopback port (off otherwise).
    pub mqtt: bool,
}

/// Memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub peak_kib: u64,
    pub resident_kib: u64,
}

impl ServerProcess {
    /// Starts `wharf serve` on a free loopback port and waits until it accepts connections.
    pub fn start() -> Result<ServerProcess, BenchError> {
        ServerProcess::start_with(&ServerOptions::default())
    }

    /// Like [`ServerProcess::start`], secured as `options` say.
    pub fn start_with(options: &ServerOptions) -> Result<ServerProcess, BenchError> {
        let dir = tempfile::Builder::new().prefix("wharf-bench-").tempdir();
        let dir =
            dir.map_err(|source| io_error("create a directory in", std::env::temp_dir(), source))?;
        let address = free_address()?;
        let mqtt_address = options.mqtt.then(free_address).transpose()?;
        let exe = std::env::current_exe()
            .map_err(|source| io_error("locate", PathBuf::from("the wharf binary"), source))?;
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path)
            .map_err(|source| io_error("create", log_path.clone(), source))?;
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--http-addr")
            .arg(address.to_string())
            // The benchmarks drive HTTP; an AMQP door on 5672 would clash with a running
            // server or RabbitMQ.
            .args(["--amqp-addr", "off", "--amqps-addr", "off"])
            .arg("--mqtt-addr")
            .arg(mqtt_address.map_or("off".to_string(), |address| address.to_string()))
            .args(["--mqtts-addr", "off"]);
        // Only `options` secure the child: a token or certificate in the caller's environment
        // would make the load's plain requests fail.
        for name in SECURITY_ENV {
            command.env_remove(name);
        }
        if let Some((cert, key)) = &options.tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
        }
        if let Some(token) = &options.admin_token {
            command.env("WHARF_ADMIN_TOKEN", token);
        }
        if options.allow_private_webhooks {
            command.arg("--webhooks-allow-private");
        }
        if let Some(config) = &options.config {
            let path = dir.path().join("wharf.toml");
            std::fs::write(&path, config)
                .map_err(|source| io_error("write", path.clone(), source))?;
            command.arg("--config").arg(path);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| io_error("start", exe, source))?;
        let mut server = ServerProcess {
            child,
            address,
            mqtt_address,
            log_path,
            _dir: dir,
        };
        server.wait_listening()?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak and current resident memory.
    pub fn memory(&self) -> Result<Memory, BenchError> {
        process_memory(self.pid())
    }

    /// User plus system CPU time the server has used so far.
    pub fn cpu_time(&self) -> Result<Duration, BenchError> {
        process_cpu_time_of(self.pid())
    }

    /// SIGTERM, then a deadline for the graceful shutdown, then SIGKILL.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let until = Instant::now() + SHUTDOWN_DEADLINE;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_listening(&mut self) -> Result<(), BenchError> {
        let until = Instant::now() + STARTUP_DEADLINE;
        loop {
            if std::net::TcpStream::connect_timeout(&self.address, POLL_INTERVAL).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Server(format!(
                    "wharf serve exited with {status} before listening: {}",
                    self.log_tail()
                )));
            }
            if Instant::now() >= until {
                return Err(BenchError::Server(format!(
                    "wharf serve did not listen on {} within {STARTUP_DEADLINE:?}: {}",
                    self.address,
                    self.log_tail()
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The end of the server's stderr, for error messages.
    pub fn log_tail(&self) -> String {
        const SHOWN_BYTES_MAX: usize = 2_000;
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(SHOWN_BYTES_MAX);
        let start = (start..text.len())
            .find(|&index| text.is_char_boundary(index))
            .unwrap_or(text.len());
        text[start..].trim().to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// VmHWM and VmRSS of `pid`.
pub fn process_memory(pid: u32) -> Result<Memory, BenchError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text =
        std::fs::read_to_string(&path).map_err(|source| io_error("read", path.clone(), source))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        peak_kib: field("VmHWM:"),
        resident_kib: field("VmRSS:"),
    })
}

/// utime + stime of `pid` from `/proc/PID/stat`, all threads included.
pub fn process_cpu_time_of(pid: u32) -> Result<Duration, BenchError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text =
        std::fs::read_to_string(&path).map_err(|source| io_error("read", path.clone(), source))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after_name = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let ticks = |index: usize| -> u64 {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let total_ticks = ticks(11) + ticks(12);
    Ok(Duration::from_micros(
        total_ticks * 1_000_000 / ticks_per_second,
    ))
}

fn free_address() -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|source| io_error("bind", PathBuf::from("a loopback port"), source))?;
    listener.local_addr().map_err(|source| {
        io_error(
            "read the address of",
            PathBuf::from("a loopback port"),
            source,
        )
    })
}

fn io_error(action: &'static str, path: PathBuf, source: std::io::Error) -> BenchError {
    BenchError::Io {
        action,
        path,
        source,
    }
}
