//! `wharf-peerbench mqtt idle`: many idle MQTT 3.1.1 clients with persistent sessions, to
//! measure what a connected, idle session costs a broker (memory, CPU while idle) and how fast
//! sessions are made and restored (`bench/mqtt-idle-sessions.sh`).
//!
//! rumqttc runs one event loop per client, too heavy for tens of thousands of them in one
//! process, so this module speaks the few packets it needs itself over tokio sockets. Client
//! `n` is `idle-{n}`: it connects from loopback source address `127.0.0.{1 + n % K}` (each
//! source has its own ephemeral ports, so K sources allow K times ~28,000 connections), sends
//! CONNECT (clean session 0 unless `--clean`), reads CONNACK, and when the broker had no session
//! for it, subscribes to `idle/{n}/#` at QoS 1 and reads SUBACK. At most `--concurrency` clients
//! are between their TCP connect and their last answer at any time. Then every client holds
//! its connection: PINGREQ at three quarters of the keep-alive, nothing else.
//!
//! Phases, each with a deadline: connect (every client set up, refused or failed: counted,
//! never a hang), hold (`--hold-s`: the broker's CPU over it, its RSS before and after), then
//! an optional linger (`--linger-s`: the connections stay open until the broker closes them
//! all, so a script can stop the broker under load and see every connection closed). A line
//! `held: ...` marks the end of the hold; the last line is JSON with the figures.
//!
//! ```text
//! CONNECT   | 0x10 | len | 00 04 "MQTT" | 04 | flags (0x02 clean) | keep alive u16 | id len u16 | id |
//! CONNACK   | 0x20 | 02  | session present (bit 0) | return code |
//! SUBSCRIBE | 0x82 | len | packet id u16 | filter len u16 | filter | requested QoS |
//! SUBACK    | 0x90 | len | packet id u16 | return code per filter (0x80: failure) |
//! PINGREQ c0 00, PINGRESP d0 00, DISCONNECT e0 00
//! ```

use crate::{cpu_time_of, memory_of, own_cpu_time, percentile_ms};
use anyhow::{bail, Context};
use bytes::{Buf, BufMut, BytesMut};
use clap::Args;
use serde_json::{json, Value};
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    runtime::Runtime,
    sync::{mpsc, watch, Notify, Semaphore},
    task::JoinSet,
    time::{timeout, timeout_at, Instant},
};

/// MQTT 3.1.1's protocol level in CONNECT (section 3.1.2.2).
const PROTOCOL_LEVEL: u8 = 4;
const CONNECT: u8 = 0x10;
const CONNACK: u8 = 0x20;
/// SUBSCRIBE with the reserved flags 0b0010 it must carry [MQTT-3.8.1-1].
const SUBSCRIBE: u8 = 0x82;
const SUBACK: u8 = 0x90;
const PINGREQ: [u8; 2] = [0xC0, 0x00];
const DISCONNECT: [u8; 2] = [0xE0, 0x00];
/// The CONNECT flag asking for a clean session (section 3.1.2.4).
const CLEAN_SESSION_FLAG: u8 = 0x02;
/// SUBACK's failure return code (section 3.9.3).
const SUBACK_FAILURE: u8 = 0x80;
/// The one packet id a client uses: it subscribes once.
const SUBSCRIBE_PACKET_ID: u16 = 1;
/// Largest packet a client takes while setting up: CONNACK and SUBACK are 4 and 5 bytes; more
/// means the broker is not speaking 3.1.1 to us.
const SETUP_PACKET_BYTES_MAX: usize = 1024;
/// An idle connection reads PINGRESP (2 bytes) into this, or whatever else the broker sends.
const IDLE_READ_BYTES: usize = 64;
/// Time given to a DISCONNECT to be written before the socket is dropped anyway.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);
/// File descriptors the process keeps for itself beyond one per client (stdio, the runtime's
/// epoll and wakers, /proc reads).
const SPARE_FILES: u64 = 64;
/// Failures shown in full; the rest are only counted.
const FAILURES_SHOWN: usize = 5;

#[derive(Debug, Args, Clone)]
pub struct IdleArgs {
    /// Clients, `idle-{F}` to `idle-{F+N-1}`.
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// F, the number of the first client: runs in several processes (each has its own open
    /// files limit) take distinct ranges.
    #[arg(long, default_value_t = 0)]
    first: u32,
    /// Loopback source addresses 127.0.0.1 to 127.0.0.K, used in turn.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=254))]
    sources: u8,
    /// The broker's address (its MQTT port on IPv4).
    #[arg(long, default_value = "127.0.0.1")]
    host: Ipv4Addr,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Clients setting up at once (TCP connect to SUBACK). Under the listen backlog of 128 that
    /// tokio's and std's listeners get (Wharf's among them): more at once can overflow the
    /// accept queue while the broker is busy, and each dropped connect waits a 1 s SYN
    /// retransmit.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Keep alive in CONNECT, seconds; each client pings at three quarters of it.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u16).range(1..))]
    keep_alive_s: u16,
    /// Clean sessions (CONNECT clean session 1) instead of persistent ones.
    #[arg(long)]
    clean: bool,
    /// Seconds every client stays connected and idle once all are set up.
    #[arg(long, default_value_t = 30)]
    hold_s: u64,
    /// After the hold, seconds to keep the connections until the broker closes them all
    /// (0: disconnect at once).
    #[arg(long, default_value_t = 0)]
    linger_s: u64,
    /// Deadline of each step of one client (TCP connect, CONNACK, SUBACK), seconds.
    #[arg(long, default_value_t = 30)]
    step_timeout_s: u64,
    /// Deadline for setting up every client, seconds; a client not set up by then fails.
    #[arg(long, default_value_t = 900)]
    connect_timeout_s: u64,
    /// Broker process id, for its RSS (VmRSS) and CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// How one client's set-up went.
enum Setup {
    Ready {
        session_present: bool,
    },
    /// CONNACK with a non-zero return code.
    Refused {
        code: u8,
    },
    Failed {
        stage: Stage,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connect,
    Connack,
    Suback,
    /// The whole connect phase's deadline passed first.
    Deadline,
}

/// One client's set-up, as it reports it to the run.
struct SetupReport {
    setup: Setup,
    /// From its set-up slot (a `--concurrency` permit) to its last answer: what the broker
    /// took, without the wait for a slot.
    took: Duration,
}

/// What the run needs to set up any client.
struct Plan {
    server: SocketAddr,
    sources: u8,
    clean: bool,
    keep_alive_s: u16,
    step_timeout: Duration,
    connect_deadline: Instant,
}

/// Connections the broker closed, and when (microseconds since the run began).
struct Closes {
    started: Instant,
    count: AtomicU64,
    first_us: AtomicU64,
    last_us: AtomicU64,
    /// Woken at each close, so the run ends a hold early once every connection is gone.
    wake: Notify,
}

/// The set-up outcomes of all clients.
#[derive(Default)]
struct Tally {
    ready: u64,
    session_present: u64,
    refused: u64,
    /// Refusal return codes seen, each once.
    refused_codes: Vec<u8>,
    failed_connect: u64,
    failed_connack: u64,
    failed_suback: u64,
    failed_deadline: u64,
    failures_shown: Vec<String>,
    took_us: Vec<u64>,
}

/// The broker's RSS (KiB) and CPU time at one moment, when a pid was given.
#[derive(Clone, Copy)]
struct ServerSample {
    rss_kib: Option<u64>,
    cpu: Option<Duration>,
}

struct IdleMeasured {
    tally: Tally,
    connect_seconds: f64,
    before: ServerSample,
    /// Once every client is set up, which is also when the hold begins.
    after_connect: ServerSample,
    hold_end: ServerSample,
    hold_seconds: f64,
    closed_in_hold: u64,
    closed_in_linger: u64,
    /// From the first to the last connection the broker closed, seconds.
    close_spread_seconds: Option<f64>,
    bench_cpu: Duration,
}

pub fn idle(runtime: &Runtime, args: &IdleArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.concurrency == 0 {
        bail!("--clients and --concurrency must be positive");
    }
    if args.first.checked_add(args.clients).is_none() {
        bail!("--first + --clients must fit in 32 bits");
    }
    let open_files_max = raise_open_files_limit()?;
    if u64::from(args.clients) + SPARE_FILES > open_files_max {
        bail!(
            "{} clients need {} open files, and this process may have {open_files_max} \
             (ulimit -Hn)",
            args.clients,
            u64::from(args.clients) + SPARE_FILES
        );
    }
    let measured = runtime.block_on(idle_run(args))?;
    idle_report(args, &measured);
    Ok(())
}

/// Sets the soft limit on open files to the hard one; returns it.
fn raise_open_files_limit() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit whose soft limit does not exceed its hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    Ok(limit.rlim_cur)
}

/// Connect, hold, linger, then disconnect every client still connected.
async fn idle_run(args: &IdleArgs) -> anyhow::Result<IdleMeasured> {
    let bench_cpu_before = own_cpu_time()?;
    let started = Instant::now();
    let plan = Arc::new(Plan {
        server: SocketAddr::V4(SocketAddrV4::new(args.host, args.port)),
        sources: args.sources,
        clean: args.clean,
        keep_alive_s: args.keep_alive_s,
        step_timeout: Duration::from_secs(args.step_timeout_s),
        connect_deadline: started + Duration::from_secs(args.connect_timeout_s),
    });
    let closes = Arc::new(Closes::new(started));
    let (stop, stopped) = watch::channel(false);
    let before = sample(args.server_pid)?;
    let (tasks, tally) = idle_connect_all(args, &plan, &closes, stopped).await;
    let connect_seconds = started.elapsed().as_secs_f64();
    // The hold starts here: its CPU is counted from this sample.
    let after_connect = sample(args.server_pid)?;
    let holding = Instant::now();
    let hold_end_at = holding + Duration::from_secs(args.hold_s);
    closes.wait_all(tally.ready, hold_end_at).await;
    let hold_end = sample(args.server_pid)?;
    let hold_seconds = holding.elapsed().as_secs_f64();
    let closed_in_hold = closes.count.load(Ordering::Relaxed);
    println!(
        "held: {} connected for {hold_seconds:.1} s, {closed_in_hold} closed by the broker",
        tally.ready
    );
    let linger_end_at = Instant::now() + Duration::from_secs(args.linger_s);
    closes.wait_all(tally.ready, linger_end_at).await;
    let closed_in_linger = closes.count.load(Ordering::Relaxed) - closed_in_hold;

    let _ = stop.send(true);
    idle_join(tasks).await;
    Ok(IdleMeasured {
        tally,
        connect_seconds,
        before,
        after_connect,
        hold_end,
        hold_seconds,
        closed_in_hold,
        closed_in_linger,
        close_spread_seconds: closes.spread_seconds(),
        bench_cpu: own_cpu_time()?.saturating_sub(bench_cpu_before),
    })
}

/// Starts every client and waits until each has reported its set-up (by the connect deadline,
/// which each client's own set-up also keeps). The tasks go on holding their connections.
async fn idle_connect_all(
    args: &IdleArgs,
    plan: &Arc<Plan>,
    closes: &Arc<Closes>,
    stopped: watch::Receiver<bool>,
) -> (JoinSet<()>, Tally) {
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let (reports, mut reported) = mpsc::channel::<SetupReport>(args.concurrency);
    let mut tasks = JoinSet::new();
    for index in args.first..args.first + args.clients {
        let (plan, permits, reports) = (plan.clone(), permits.clone(), reports.clone());
        let (closes, stopped) = (closes.clone(), stopped.clone());
        tasks.spawn(async move {
            let (setup, took) = client_setup(index, &plan, &permits).await;
            let stream = match setup {
                Ok((stream, session_present)) => {
                    let setup = Setup::Ready { session_present };
                    report(&reports, setup, took).await;
                    stream
                }
                Err(setup) => return report(&reports, setup, took).await,
            };
            drop(reports);
            client_hold(stream, plan.keep_alive_s, stopped, &closes).await;
        });
    }
    drop(reports);
    let mut tally = Tally::default();
    // Every client reports by the connect deadline; the margin only covers a report in flight.
    let backstop = plan.connect_deadline + plan.step_timeout;
    while let Ok(Some(report)) = timeout_at(backstop, reported.recv()).await {
        tally.add(report);
        if tally.reported() == u64::from(args.clients) {
            break;
        }
    }
    let missing = u64::from(args.clients).saturating_sub(tally.reported());
    tally.failed_deadline += missing;
    (tasks, tally)
}

async fn report(reports: &mpsc::Sender<SetupReport>, setup: Setup, took: Duration) {
    let _ = reports.send(SetupReport { setup, took }).await;
}

/// Waits for a set-up slot, then connects client `index`, subscribing it when the broker has
/// no session for it. Returns the connection and whether the session was present, and the
/// time from the slot to the last answer.
async fn client_setup(
    index: u32,
    plan: &Plan,
    permits: &Semaphore,
) -> (Result<(TcpStream, bool), Setup>, Duration) {
    let deadline_failure = || Setup::Failed {
        stage: Stage::Deadline,
        detail: format!("idle-{index}: not set up before --connect-timeout-s"),
    };
    let waiting = Instant::now();
    let mut permitted = None;
    let setting_up = async {
        let _permit = permits.acquire().await.map_err(|_| deadline_failure())?;
        permitted = Some(Instant::now());
        client_setup_steps(index, plan).await
    };
    let result = match timeout_at(plan.connect_deadline, setting_up).await {
        Ok(result) => result,
        Err(_) => Err(deadline_failure()),
    };
    (result, permitted.unwrap_or(waiting).elapsed())
}

async fn client_setup_steps(index: u32, plan: &Plan) -> Result<(TcpStream, bool), Setup> {
    let client_id = format!("idle-{index}");
    let failed = |stage: Stage, detail: String| Setup::Failed {
        stage,
        detail: format!("{client_id}: {detail}"),
    };
    let source = Ipv4Addr::new(127, 0, 0, 1 + (index % u32::from(plan.sources)) as u8);
    let mut stream = match timeout(plan.step_timeout, client_connect(source, plan.server)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(failed(Stage::Connect, format!("from {source}: {error}"))),
        Err(_) => return Err(failed(Stage::Connect, "TCP connect timed out".into())),
    };
    let mut out = BytesMut::with_capacity(64);
    encode_connect(&client_id, plan.clean, plan.keep_alive_s, &mut out);
    let mut input = BytesMut::with_capacity(16);
    let connack = exchange(&mut stream, &out, &mut input, plan.step_timeout).await;
    let (header, body) = connack.map_err(|detail| failed(Stage::Connack, detail))?;
    let (session_present, code) = match (header, body.as_ref()) {
        (CONNACK, [flags, code]) => (flags & 1 == 1, *code),
        _ => {
            let detail = format!("expected CONNACK, got packet type {:#04x}", header >> 4);
            return Err(failed(Stage::Connack, detail));
        }
    };
    if code != 0 {
        return Err(Setup::Refused { code });
    }
    if session_present {
        return Ok((stream, true));
    }
    out.clear();
    encode_subscribe(&format!("idle/{index}/#"), &mut out);
    let suback = exchange(&mut stream, &out, &mut input, plan.step_timeout).await;
    let (header, body) = suback.map_err(|detail| failed(Stage::Suback, detail))?;
    match (header, body.as_ref()) {
        (SUBACK, [0, 1, code]) if *code != SUBACK_FAILURE => Ok((stream, false)),
        (SUBACK, _) => Err(failed(
            Stage::Suback,
            format!("SUBACK refused: {:02x?}", &body[..]),
        )),
        _ => {
            let detail = format!("expected SUBACK, got packet type {:#04x}", header >> 4);
            Err(failed(Stage::Suback, detail))
        }
    }
}

/// A TCP connection from `source` (any free port of it) to `server`. IP_BIND_ADDRESS_NO_PORT
/// defers the port choice to connect, where the kernel picks it for the whole four-tuple, so
/// ports left in TIME_WAIT by an earlier run towards the same broker do not run a source dry.
async fn client_connect(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let enable: libc::c_int = 1;
    // SAFETY: the descriptor is the open socket above; the option value is a c_int that
    // lives across the call, with its size given.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    socket.connect(server).await
}

/// Writes `out` and reads one packet back, both within `step`; the error says what went wrong.
async fn exchange(
    stream: &mut TcpStream,
    out: &[u8],
    input: &mut BytesMut,
    step: Duration,
) -> Result<(u8, BytesMut), String> {
    let exchanging = async {
        stream.write_all(out).await?;
        read_packet(stream, input).await
    };
    match timeout(step, exchanging).await {
        Ok(Ok(Some(packet))) => Ok(packet),
        Ok(Ok(None)) => Err("the broker closed the connection".into()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", step.as_secs())),
    }
}

/// Reads one whole packet: its first byte and its body. `None` when the broker closed first.
async fn read_packet(
    stream: &mut TcpStream,
    input: &mut BytesMut,
) -> std::io::Result<Option<(u8, BytesMut)>> {
    loop {
        if let Some((body_at, body_len)) = packet_bounds(input)? {
            let header = input[0];
            input.advance(body_at);
            return Ok(Some((header, input.split_to(body_len))));
        }
        if stream.read_buf(input).await? == 0 {
            return Ok(None);
        }
    }
}

/// Where the body of the packet at the head of `input` starts and how long it is, once the
/// packet is whole (`None`: read more). The remaining length is 1 to 4 bytes of 7 bits each,
/// least significant first, bit 7 set while more follow (section 2.2.3).
fn packet_bounds(input: &[u8]) -> std::io::Result<Option<(usize, usize)>> {
    let mut body_len = 0usize;
    for (position, byte) in input.iter().enumerate().skip(1).take(4) {
        body_len |= usize::from(byte & 0x7F) << (7 * (position - 1));
        if byte & 0x80 == 0 {
            let body_at = position + 1;
            if body_len > SETUP_PACKET_BYTES_MAX {
                let message = format!("a {body_len}-byte packet while setting up");
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    message,
                ));
            }
            return Ok((input.len() >= body_at + body_len).then_some((body_at, body_len)));
        }
    }
    if input.len() >= 5 {
        let message = "a remaining length longer than 4 bytes";
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ));
    }
    Ok(None)
}

fn encode_connect(client_id: &str, clean: bool, keep_alive_s: u16, out: &mut BytesMut) {
    let mut body = BytesMut::with_capacity(12 + client_id.len());
    put_string(&mut body, "MQTT");
    body.put_u8(PROTOCOL_LEVEL);
    body.put_u8(if clean { CLEAN_SESSION_FLAG } else { 0 });
    body.put_u16(keep_alive_s);
    put_string(&mut body, client_id);
    put_packet(out, CONNECT, &body);
}

/// SUBSCRIBE to one filter at QoS 1.
fn encode_subscribe(filter: &str, out: &mut BytesMut) {
    let mut body = BytesMut::with_capacity(5 + filter.len());
    body.put_u16(SUBSCRIBE_PACKET_ID);
    put_string(&mut body, filter);
    body.put_u8(1);
    put_packet(out, SUBSCRIBE, &body);
}

/// A UTF-8 string: its length (u16, big endian), then its bytes (section 1.5.3). Client ids
/// and filters here are a few bytes long.
fn put_string(out: &mut BytesMut, text: &str) {
    out.put_u16(text.len() as u16);
    out.put_slice(text.as_bytes());
}

fn put_packet(out: &mut BytesMut, header: u8, body: &[u8]) {
    out.put_u8(header);
    let mut remaining = body.len();
    loop {
        let digit = (remaining % 128) as u8;
        remaining /= 128;
        if remaining == 0 {
            out.put_u8(digit);
            break;
        }
        out.put_u8(digit | 0x80);
    }
    out.put_slice(body);
}

/// Holds a set-up connection: pings at three quarters of the keep-alive, reads and drops what
/// the broker sends, until the run stops (DISCONNECT, then close) or the broker closes it.
async fn client_hold(
    mut stream: TcpStream,
    keep_alive_s: u16,
    mut stopped: watch::Receiver<bool>,
    closes: &Closes,
) {
    let period = Duration::from_secs(u64::from(keep_alive_s)).mul_f64(0.75);
    let mut pings = tokio::time::interval_at(Instant::now() + period, period);
    let mut scratch = [0u8; IDLE_READ_BYTES];
    let stopping = loop {
        tokio::select! {
            // The guard `wait_for` returns is dropped inside: it must not live across a write.
            () = async { drop(stopped.wait_for(|stop| *stop).await) } => break true,
            read = stream.read(&mut scratch) => {
                if matches!(read, Ok(0) | Err(_)) {
                    break false;
                }
            }
            _ = pings.tick() => {
                if stream.write_all(&PINGREQ).await.is_err() {
                    break false;
                }
            }
        }
    };
    if stopping {
        let _ = timeout(DISCONNECT_WAIT, stream.write_all(&DISCONNECT)).await;
    } else {
        closes.record();
    }
}

/// Waits (bounded by the stop's own deadline) for every client task to have disconnected.
async fn idle_join(mut tasks: JoinSet<()>) {
    let deadline = Instant::now() + DISCONNECT_WAIT * 2;
    while let Ok(Some(_)) = timeout_at(deadline, tasks.join_next()).await {}
    tasks.abort_all();
}

impl Closes {
    fn new(started: Instant) -> Closes {
        Closes {
            started,
            count: AtomicU64::new(0),
            first_us: AtomicU64::new(u64::MAX),
            last_us: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    fn record(&self) {
        let at_us = self.started.elapsed().as_micros() as u64;
        self.first_us.fetch_min(at_us, Ordering::Relaxed);
        self.last_us.fetch_max(at_us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Waits until the broker has closed `connected` connections, or `until`.
    async fn wait_all(&self, connected: u64, until: Instant) {
        while self.count.load(Ordering::Relaxed) < connected {
            if timeout_at(until, self.wake.notified()).await.is_err() {
                return;
            }
        }
    }

    fn spread_seconds(&self) -> Option<f64> {
        let first = self.first_us.load(Ordering::Relaxed);
        let last = self.last_us.load(Ordering::Relaxed);
        (first <= last).then(|| (last - first) as f64 / 1e6)
    }
}

impl Tally {
    fn reported(&self) -> u64 {
        self.ready
            + self.refused
            + self.failed_connect
            + self.failed_connack
            + self.failed_suback
            + self.failed_deadline
    }

    fn add(&mut self, report: SetupReport) {
        self.took_us.push(report.took.as_micros() as u64);
        match report.setup {
            Setup::Ready { session_present } => {
                self.ready += 1;
                self.session_present += u64::from(session_present);
            }
            Setup::Refused { code } => {
                self.refused += 1;
                if !self.refused_codes.contains(&code) {
                    self.refused_codes.push(code);
                }
            }
            Setup::Failed { stage, detail } => {
                let count = match stage {
                    Stage::Connect => &mut self.failed_connect,
                    Stage::Connack => &mut self.failed_connack,
                    Stage::Suback => &mut self.failed_suback,
                    Stage::Deadline => &mut self.failed_deadline,
                };
                *count += 1;
                if self.failures_shown.len() < FAILURES_SHOWN {
                    self.failures_shown.push(detail);
                }
            }
        }
    }

    fn failed(&self) -> u64 {
        self.failed_connect + self.failed_connack + self.failed_suback + self.failed_deadline
    }
}

fn sample(server_pid: Option<u32>) -> anyhow::Result<ServerSample> {
    Ok(ServerSample {
        rss_kib: server_pid
            .map(memory_of)
            .transpose()?
            .map(|(_, resident)| resident),
        cpu: server_pid.map(cpu_time_of).transpose()?,
    })
}

/// Broker CPU seconds between two samples.
fn cpu_between(from: ServerSample, to: ServerSample) -> Option<f64> {
    Some(to.cpu?.saturating_sub(from.cpu?).as_secs_f64())
}

/// KiB of broker RSS gained between two samples, per session.
fn rss_per_session_kib(from: ServerSample, to: ServerSample, sessions: u64) -> Option<f64> {
    let gained = to.rss_kib? as f64 - from.rss_kib? as f64;
    (sessions > 0).then(|| gained / sessions as f64)
}

fn idle_report(args: &IdleArgs, measured: &IdleMeasured) {
    let figures = Figures::of(measured);
    idle_print(args, measured, &figures);
    println!("{}", idle_summary(args, measured, &figures));
}

/// What the report derives from the measurements.
struct Figures {
    took_p50_ms: f64,
    took_p99_ms: f64,
    sessions_per_s: f64,
    connect_cpu_s: Option<f64>,
    connect_cpu_us_per_session: Option<f64>,
    idle_cpu_s: Option<f64>,
    idle_cpu_percent: Option<f64>,
    rss_per_session_kib: Option<f64>,
}

impl Figures {
    fn of(measured: &IdleMeasured) -> Figures {
        let tally = &measured.tally;
        let mut took = tally.took_us.clone();
        took.sort_unstable();
        let connect_cpu_s = cpu_between(measured.before, measured.after_connect);
        let idle_cpu_s = cpu_between(measured.after_connect, measured.hold_end);
        Figures {
            took_p50_ms: percentile_ms(&took, 50),
            took_p99_ms: percentile_ms(&took, 99),
            sessions_per_s: tally.ready as f64 / measured.connect_seconds.max(f64::EPSILON),
            connect_cpu_s,
            connect_cpu_us_per_session: connect_cpu_s
                .map(|cpu| cpu * 1e6 / tally.ready.max(1) as f64),
            idle_cpu_s,
            idle_cpu_percent: idle_cpu_s.map(|cpu| cpu * 100.0 / measured.hold_seconds.max(1e-3)),
            rss_per_session_kib: rss_per_session_kib(
                measured.before,
                measured.hold_end,
                tally.ready,
            ),
        }
    }
}

fn idle_print(args: &IdleArgs, measured: &IdleMeasured, figures: &Figures) {
    let tally = &measured.tally;
    let mib = |kib: Option<u64>| kib.map(|kib| kib as f64 / 1024.0);
    let shown = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{value:.2}"));
    let kind = if args.clean { "clean" } else { "persistent" };
    println!(
        "MQTT 3.1.1 idle: {} {kind} sessions from {} source addresses, {} setting up at once, keep alive {} s",
        args.clients, args.sources, args.concurrency, args.keep_alive_s
    );
    println!("  connected                    {:>12}", tally.ready);
    println!(
        "  session present              {:>12}",
        tally.session_present
    );
    println!(
        "  refused (CONNACK codes)      {:>12} {:02x?}",
        tally.refused, tally.refused_codes
    );
    println!(
        "  failed connect/connack/suback/deadline {} / {} / {} / {}",
        tally.failed_connect, tally.failed_connack, tally.failed_suback, tally.failed_deadline
    );
    for failure in &tally.failures_shown {
        println!("    {failure}");
    }
    println!(
        "  set up in s                  {:>12.1}",
        measured.connect_seconds
    );
    println!(
        "  sessions/s                   {:>12.0}",
        figures.sessions_per_s
    );
    println!(
        "  set-up p50 / p99 ms          {:>12.1} / {:.1}",
        figures.took_p50_ms, figures.took_p99_ms
    );
    println!(
        "  server CPU µs per session    {:>12}",
        shown(figures.connect_cpu_us_per_session)
    );
    println!(
        "  server RSS before MiB        {:>12}",
        shown(mib(measured.before.rss_kib))
    );
    println!(
        "  server RSS idle MiB          {:>12}",
        shown(mib(measured.hold_end.rss_kib))
    );
    println!(
        "  server RSS KiB per session   {:>12}",
        shown(figures.rss_per_session_kib)
    );
    println!(
        "  server CPU % while idle      {:>12}",
        shown(figures.idle_cpu_percent)
    );
    println!(
        "  closed by broker hold/linger {:>12} / {}",
        measured.closed_in_hold, measured.closed_in_linger
    );
    println!(
        "  bench CPU s                  {:>12.2}",
        measured.bench_cpu.as_secs_f64()
    );
}

fn idle_summary(args: &IdleArgs, measured: &IdleMeasured, figures: &Figures) -> Value {
    let tally = &measured.tally;
    json!({
        "clients": args.clients, "first": args.first, "sources": args.sources, "clean": args.clean,
        "concurrency": args.concurrency, "keep_alive_s": args.keep_alive_s,
        "connected": tally.ready, "session_present": tally.session_present,
        "refused": tally.refused, "refused_codes": tally.refused_codes, "failed": tally.failed(),
        "failed_connect": tally.failed_connect, "failed_connack": tally.failed_connack,
        "failed_suback": tally.failed_suback, "failed_deadline": tally.failed_deadline,
        "connect_s": measured.connect_seconds, "sessions_per_s": figures.sessions_per_s.round(),
        "setup_p50_ms": figures.took_p50_ms, "setup_p99_ms": figures.took_p99_ms,
        "server_connect_cpu_s": figures.connect_cpu_s,
        "server_cpu_us_per_session": figures.connect_cpu_us_per_session,
        "rss_before_kib": measured.before.rss_kib,
        "rss_connected_kib": measured.after_connect.rss_kib,
        "rss_idle_kib": measured.hold_end.rss_kib,
        "rss_per_session_kib": figures.rss_per_session_kib,
        "hold_s": measured.hold_seconds, "server_idle_cpu_s": figures.idle_cpu_s,
        "server_idle_cpu_percent": figures.idle_cpu_percent,
        "closed_in_hold": measured.closed_in_hold, "closed_in_linger": measured.closed_in_linger,
        "close_spread_s": measured.close_spread_seconds,
        "bench_cpu_s": measured.bench_cpu.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_is_encoded_as_section_3_1_lays_it_out() {
        let mut out = BytesMut::new();
        encode_connect("idle-7", false, 300, &mut out);
        let expected: &[u8] = &[
            0x10, 18, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0x01, 0x2C, 0, 6, b'i', b'd', b'l', b'e',
            b'-', b'7',
        ];
        assert_eq!(&out[..], expected);
        out.clear();
        encode_connect("x", true, 1, &mut out);
        assert_eq!(out[9], CLEAN_SESSION_FLAG);
    }

    #[test]
    fn subscribe_carries_packet_id_filter_and_qos_1() {
        let mut out = BytesMut::new();
        encode_subscribe("idle/3/#", &mut out);
        let expected: &[u8] = &[
            0x82, 13, 0, 1, 0, 8, b'i', b'd', b'l', b'e', b'/', b'3', b'/', b'#', 1,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn packet_bounds_wait_for_the_whole_packet() {
        assert_eq!(packet_bounds(&[]).unwrap(), None);
        assert_eq!(packet_bounds(&[0x20]).unwrap(), None);
        assert_eq!(packet_bounds(&[0x20, 2, 1]).unwrap(), None);
        assert_eq!(packet_bounds(&[0x20, 2, 1, 0]).unwrap(), Some((2, 2)));
        assert_eq!(packet_bounds(&[0x90, 0x83, 0x01]).unwrap(), None);
        assert!(packet_bounds(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
        assert!(packet_bounds(&[0x30, 0x80, 0x10]).is_err());
    }

    #[test]
    fn long_bodies_take_a_second_length_byte() {
        let mut out = BytesMut::new();
        put_packet(&mut out, CONNECT, &[0; 200]);
        assert_eq!(&out[..3], &[CONNECT, 0xC8, 0x01]);
        assert_eq!(packet_bounds(&out).unwrap(), Some((3, 200)));
        assert_eq!(packet_bounds(&out[..100]).unwrap(), None);
    }
}
